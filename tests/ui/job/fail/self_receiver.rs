use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Welcome { user_id: i64 }

struct Mailer;

impl Mailer {
    #[qron::job(executor = "email")]
    async fn email(&self, msg: Welcome) -> Result<(), qron::JobError> {
        let _ = msg.user_id;
        Ok(())
    }
}

fn main() {}

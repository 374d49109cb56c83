use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Welcome { user_id: i64 }

#[qron::job(executor = "email")]
fn email(msg: Welcome) -> Result<(), qron::JobError> {
    let _ = msg.user_id;
    Ok(())
}

fn main() {}

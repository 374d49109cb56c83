#[qron::job(executor = "email")]
async fn email(user_id: i64) -> Result<(), String> {
    Err(format!("no user {user_id}"))
}

fn main() {}

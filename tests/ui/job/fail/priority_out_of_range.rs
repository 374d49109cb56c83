#[qron::job(executor = "email", priority = 10)]
async fn email(user_id: i64) -> Result<(), qron::JobError> {
    let _ = user_id;
    Ok(())
}

fn main() {}

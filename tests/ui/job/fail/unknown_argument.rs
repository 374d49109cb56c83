#[qron::job(executor = "email", retries = 3)]
async fn email(user_id: i64) -> Result<(), qron::JobError> {
    let _ = user_id;
    Ok(())
}

fn main() {}

const EXECUTOR: &str = "email";

#[qron::job(executor = EXECUTOR)]
async fn email(user_id: i64) -> Result<(), qron::JobError> {
    let _ = user_id;
    Ok(())
}

fn main() {}

#[qron::job(executor = "email")]
async fn email<T: serde::Serialize>(msg: T) -> Result<(), qron::JobError> {
    let _ = msg;
    Ok(())
}

fn main() {}

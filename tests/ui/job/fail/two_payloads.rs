#[qron::job(executor = "email")]
async fn email(ctx: qron::Context, user_id: i64, subject: String) -> Result<(), qron::JobError> {
    let _ = (ctx, user_id, subject);
    Ok(())
}

fn main() {}

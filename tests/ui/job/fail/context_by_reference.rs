#[qron::job(executor = "email")]
async fn email(ctx: &qron::Context, user_id: i64) -> Result<(), qron::JobError> {
    let _ = (ctx, user_id);
    Ok(())
}

fn main() {}

#[qron::job(executor = "email")]
async fn email(ctx: qron::Context, user_id: i64, again: qron::Context) -> Result<(), qron::JobError> {
    let _ = (ctx, user_id, again);
    Ok(())
}

fn main() {}

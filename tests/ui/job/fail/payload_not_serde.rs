struct Welcome { user_id: i64 }

#[qron::job(executor = "email")]
async fn email(msg: Welcome) -> Result<(), qron::JobError> {
    let _ = msg.user_id;
    Ok(())
}

fn main() {}

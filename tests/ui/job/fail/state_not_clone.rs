struct Mailer;

#[qron::job(executor = "email")]
async fn email(qron::State(mailer): qron::State<Mailer>, user_id: i64) -> Result<(), qron::JobError> {
    let _ = (mailer, user_id);
    Ok(())
}

fn main() {}

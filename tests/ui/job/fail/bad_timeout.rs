#[qron::job(executor = "report", timeout = "1 month")]
async fn report(day: String) -> Result<(), qron::JobError> {
    let _ = day;
    Ok(())
}

fn main() {}

#[qron::job(executor = "tick")]
async fn tick() -> Result<(), qron::JobError> {
    Ok(())
}

fn main() {}

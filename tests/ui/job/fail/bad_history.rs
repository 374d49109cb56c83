use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Ping;

#[qron::job(executor = "ping", history = "some")]
async fn ping(_: Ping) -> Result<(), qron::JobError> {
    Ok(())
}

fn main() {}

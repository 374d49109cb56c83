//! A worker in a process of its own, for tests that kill it: `qron-test-worker <url> <database>
//! <executor>…`. It serves the jobs of the `qron_tests` library until it is killed or stopped,
//! with the concurrency `QRON_TEST_CONCURRENCY` (when set) for each executor.

use std::str::FromStr as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(database)) = (args.next(), args.next()) else {
        return Err("usage: qron-test-worker <url> <database> <executor>...".into());
    };
    let executors: Vec<String> = args.collect();
    let opts = sqlx::postgres::PgConnectOptions::from_str(&url)?.database(&database);
    let pool = sqlx::PgPool::connect_with(opts).await?;
    // Name the jobs of the library: with nothing else of it referenced here, the linker would
    // drop their registrations (see `WorkerBuilder::job`).
    let mut builder = qron::Worker::builder(qron::Client::new(pool))
        .job::<qron_tests::jobs::ActLease>()
        .executors(executors.clone())
        .poll_interval(std::time::Duration::from_millis(50));
    if let Ok(n) = std::env::var("QRON_TEST_CONCURRENCY") {
        for e in &executors {
            builder = builder.concurrency(e, n.parse()?);
        }
    }
    let worker = builder.build()?;
    worker.run().await?;
    Ok(())
}

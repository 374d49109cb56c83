//! A worker in a process of its own, for tests that kill it: `qron-test-worker <url> <database>
//! <executor>…`. It serves the jobs of the `qron_tests` library until it is killed, or stopped
//! softly by SIGTERM. Settings from the environment:
//! - `QRON_TEST_CONCURRENCY`: the concurrency of each executor;
//! - `QRON_TEST_RESCUE_MS`: the rescue interval;
//! - `QRON_TEST_LEASE_MS`: the lease time;
//! - `QRON_TEST_GRACE_MS`, `QRON_TEST_FLUSH_MS`: the shutdown grace and flush timeout;
//! - `QRON_TEST_RECORD=1`: the `fault` job records its executions in the test's database;
//! - `QRON_TEST_STARTS=<dir>`: and writes each start to a file of this process's in `<dir>`.

use std::str::FromStr as _;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(database)) = (args.next(), args.next()) else {
        return Err("usage: qron-test-worker <url> <database> <executor>...".into());
    };
    let executors: Vec<String> = args.collect();
    // The poison scenario's handlers panic on purpose: one line each, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let quiet = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|m| m.starts_with("poison:"));
        if !quiet {
            eprintln!("qron-test-worker: {info}");
        }
    }));
    let opts = sqlx::postgres::PgConnectOptions::from_str(&url)?.database(&database);
    let pool = sqlx::PgPool::connect_with(opts).await?;
    if std::env::var("QRON_TEST_RECORD").is_ok() {
        let _ = qron_tests::fault::RECORDER.set(pool.clone());
    }
    qron_tests::fault::record_starts_from_env()?;
    // Name the jobs of the library: with nothing else of it referenced here, the linker would
    // drop their registrations (see `WorkerBuilder::job`).
    let mut builder = qron::Worker::builder(qron::Client::new(pool))
        .job::<qron_tests::jobs::ActLease>()
        .job::<qron_tests::fault::Fault>()
        .executors(executors.clone())
        .poll_interval(Duration::from_millis(50));
    if let Ok(n) = std::env::var("QRON_TEST_CONCURRENCY") {
        for e in &executors {
            builder = builder.concurrency(e, n.parse()?);
        }
    }
    if let Ok(ms) = std::env::var("QRON_TEST_RESCUE_MS") {
        builder = builder.rescue_interval(Duration::from_millis(ms.parse()?));
    }
    if let Ok(ms) = std::env::var("QRON_TEST_LEASE_MS") {
        builder = builder.lease_time(Duration::from_millis(ms.parse()?));
    }
    if let Ok(ms) = std::env::var("QRON_TEST_GRACE_MS") {
        builder = builder.shutdown_grace(Duration::from_millis(ms.parse()?));
    }
    if let Ok(ms) = std::env::var("QRON_TEST_FLUSH_MS") {
        builder = builder.flush_timeout(Duration::from_millis(ms.parse()?));
    }
    let worker = builder.build()?;
    let stopper = worker.stopper();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        term.recv().await;
        stopper.soft();
    });
    worker.run().await?;
    Ok(())
}

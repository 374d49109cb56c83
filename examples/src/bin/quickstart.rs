//! qron's quick start: the three jobs of the Go version's README, declared with
//! `#[qron::job]`, scheduled, and run by a worker for a few seconds.
//!
//! ```text
//! cargo run -p qron-examples --bin quickstart            # a 6-second demo
//! cargo run -p qron-examples --bin quickstart -- 60      # a longer one; Ctrl-C stops it early
//! ```
//!
//! It connects to `DATABASE_URL`, or starts a throwaway PostgreSQL when that is unset (and
//! deletes it on exit, Ctrl-C included).
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use qron::{Client, JobError, OnConflict, Worker};
use serde::{Deserialize, Serialize};

/// Every day at midnight: a backup.
#[derive(Debug, Serialize, Deserialize)]
struct BackupPlan {
    database: String,
}

#[qron::job(executor = "backup", timeout = "1h", max_attempts = 3)]
async fn backup(ctx: qron::Context, plan: BackupPlan) -> Result<(), JobError> {
    tracing::info!(job = ctx.id(), database = %plan.database, "backing up");
    Ok(())
}

/// Every second: a counter that keeps its count in its payload (a resumable workflow).
#[derive(Debug, Serialize, Deserialize)]
struct Count {
    count: u64,
}

#[qron::job(executor = "counter")]
async fn counter(ctx: qron::Context, mut state: Count) -> Result<(), JobError> {
    state.count += 1;
    ctx.set_payload(&state)?; // the next execution starts from here
    Ok(())
}

/// Once, two seconds from now: an email.
#[derive(Debug, Serialize, Deserialize)]
struct Welcome {
    user_id: i64,
}

#[qron::job(executor = "email", max_attempts = 5, backoff(base = "1s", max = "1m"))]
async fn email(msg: Welcome) -> Result<(), JobError> {
    tracing::info!(user = msg.user_id, "sending the welcome email");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    // Ctrl-C ends the demo cleanly: returning from main stops and deletes the throwaway server.
    tokio::select! {
        res = run(Duration::from_secs(seconds)) => res,
        _ = tokio::signal::ctrl_c() => {
            println!("\ninterrupted: stopping");
            Ok(())
        }
    }
}

async fn run(length: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let external = std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty());
    let opts = tokio::task::spawn_blocking(qron::embedded::connect_options_from_env).await??;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await?;
    let client = Client::new(pool);
    client.migrate().await?;
    println!(
        "connected to {} PostgreSQL and migrated schema `qron` in {:.1?}",
        if external {
            "the DATABASE_URL"
        } else {
            "a throwaway"
        },
        started.elapsed()
    );
    qron::init(client.clone());

    // Named, so that every start-up schedules them once: OnConflict::Keep.
    let nightly = Backup::schedule(
        "0 0 * * *",
        BackupPlan {
            database: "app".into(),
        },
    )
    .name("nightly")
    .on_conflict(OnConflict::Keep)
    .await?;
    let tick = Counter::schedule("@every 1 second", Count { count: 0 })
        .name("tick")
        .on_conflict(OnConflict::Replace)
        .await?;
    let welcome = Email::schedule("@after 2 seconds", Welcome { user_id: 7 }).await?;
    for job in [&nightly, &tick, &welcome] {
        let description = qron::Schedule::parse(&job.expr)?.describe();
        println!(
            "scheduled {:<8} {:<22} ({description}), first run {}",
            job.executor,
            job.expr,
            job.run_at.format("%H:%M:%S")
        );
    }

    let worker = Worker::builder(client.clone())
        .executors(["backup", "counter", "email"])
        .build()?;
    let metrics = worker.metrics();
    let stopper = worker.stopper();
    let running = tokio::spawn(worker.run());
    let deadline = Instant::now() + length;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        print!(
            "\r{:>4.1}s  leased {:>3}  succeeded {:>3}  retried {}  failed {}  in flight {}   ",
            started.elapsed().as_secs_f64(),
            metrics.leased(),
            metrics.succeeded(),
            metrics.retried(),
            metrics.failed(),
            metrics.in_flight()
        );
        std::io::stdout().flush()?;
    }
    println!();
    stopper.soft();
    running.await??;

    let tick = client.get(tick.id).await?;
    let welcome = client.get(welcome.id).await?;
    let nightly = client.get(nightly.id).await?;
    println!(
        "counter ran {} times; its payload now holds count = {}",
        tick.executions, tick.payload["count"]
    );
    println!(
        "email {:?} after {} execution(s)",
        welcome.status, welcome.executions
    );
    println!(
        "backup waits for {} (next run)",
        nightly.run_at.format("%Y-%m-%d %H:%M UTC")
    );
    client.pool().close().await;
    Ok(())
}

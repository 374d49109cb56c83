//! The reliability suite (issue 15; what it shows is in RELIABILITY.md): real workers in child
//! processes against a real PostgreSQL, with faults injected, and every handler execution
//! recorded so that each job's fate is counted exactly (`qron_tests::fault`).
//!
//! Sizes follow `QRON_RELIABILITY_SCALE` (default 1; the soak and larger runs set more).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod crash;
mod fan_in;
mod frozen;
mod limits;
mod operate;
mod poison;
mod restart;
mod shutdown;
mod skew;
mod soak;
mod step;
mod tenants;

use std::time::Duration;

/// Scenarios load the whole machine: they run one at a time.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A scenario's database, with the side table of executions, and the turn to run: the caller
/// holds the guard for the whole scenario.
pub async fn scenario() -> (tokio::sync::MutexGuard<'static, ()>, qron_tests::TestDb) {
    let turn = ONE_AT_A_TIME.lock().await;
    let db = qron_tests::TestDb::new().await;
    sqlx::query(qron_tests::fault::EXECUTIONS_TABLE)
        .execute(&db.pool)
        .await
        .unwrap();
    (turn, db)
}

/// A private, durable server (the throwaway default, with no fsync and asynchronous commits,
/// forgets its last commits in an immediate restart: the server's promise, not qron's), with
/// qron's schema and the side table of executions, and a pool to it.
pub async fn durable_server() -> (
    std::sync::Arc<qron::embedded::EmbeddedPostgres>,
    sqlx::PgPool,
) {
    let pg = tokio::task::spawn_blocking(|| {
        qron::embedded::EmbeddedPostgres::builder()
            .setting("fsync", "on")
            .setting("synchronous_commit", "on")
            .setting("full_page_writes", "on")
            .start()
    })
    .await
    .unwrap()
    .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(pg.connect_options())
        .await
        .unwrap();
    qron::migrate(&pool).await.unwrap();
    sqlx::query(qron_tests::fault::EXECUTIONS_TABLE)
        .execute(&pool)
        .await
        .unwrap();
    (std::sync::Arc::new(pg), pool)
}

/// Worker processes for the `postgres` database of a [`durable_server`].
pub fn durable_fleet(pg: &qron::embedded::EmbeddedPostgres) -> qron_tests::fault::Fleet {
    qron_tests::fault::Fleet::on(
        &pg.url(),
        "postgres",
        env!("CARGO_BIN_EXE_qron-test-worker"),
        &[("QRON_TEST_RESCUE_MS", "200")],
    )
}

/// Waits (at most `limit`) until at least `n` executions are recorded.
pub async fn executions_reach(pool: &sqlx::PgPool, n: i64, limit: Duration) -> bool {
    poll_until(limit, || async {
        qron_tests::count(pool, "SELECT count(*) FROM public.executions").await >= n
    })
    .await
}

/// `n` scaled by `QRON_RELIABILITY_SCALE`.
pub fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("QRON_RELIABILITY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64) * scale).round().max(1.0) as usize
}

/// Polls `done` every 20 ms for at most `limit`; whether it held.
pub async fn poll_until<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether every one-off job of the database has left the live table (finished).
pub async fn drained(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM qron.jobs)")
        .fetch_one(pool)
        .await
        .unwrap_or(false)
}

//! The reliability suite (issue 15; what it shows is in RELIABILITY.md): real workers in child
//! processes against a real PostgreSQL, with faults injected, and every handler execution
//! recorded so that each job's fate is counted exactly (`qron_tests::fault`).
//!
//! Sizes follow `QRON_RELIABILITY_SCALE` (default 1; the soak and larger runs set more).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod crash;
mod frozen;
mod poison;
mod restart;
mod shutdown;
mod skew;
mod soak;
mod tenants;

use std::time::Duration;

/// Scenarios load the whole machine: they run one at a time.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

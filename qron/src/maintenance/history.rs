//! History maintenance: keeps day partitions of the history ahead of time and drops those past
//! the retention, once per fleet.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::DbClock;
use crate::db;

/// How long a maintenance step waits for a lock on the history before it gives up until its
/// next try: creating or dropping a partition needs the history to itself for a moment, and
/// while it waits behind a long search every job's finish would wait behind it.
pub(crate) const MAINTENANCE_LOCK_TIMEOUT: &str = "200ms";
/// How often maintenance runs.
pub(crate) const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// How soon maintenance tries again after a step failed or gave up.
pub(crate) const MAINTENANCE_RETRY: Duration = Duration::from_secs(60);

/// Keeps history partitions ahead of time and drops those past the retention, once an hour
/// (sooner again after a step gave up), in one process of the fleet at a time.
pub(crate) async fn maintain(
    pool: sqlx::PgPool,
    retention: Duration,
    clock: Arc<DbClock>,
    stop: CancellationToken,
) {
    loop {
        let wait = match maintain_once(&pool, clock.now(), retention).await {
            Ok(_) => MAINTENANCE_EVERY,
            Err(e) => {
                tracing::warn!(error = %e, "history maintenance did not finish; will try again");
                MAINTENANCE_RETRY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Begins one maintenance step: its own transaction, a lock timeout, and the maintenance lock
/// (`None` when another process holds it: that one does the work).
pub(crate) async fn maintenance_step(
    pool: &sqlx::PgPool,
) -> sqlx::Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>> {
    let mut tx = pool.begin().await?;
    db::lock_timeout_set_local(&mut *tx, MAINTENANCE_LOCK_TIMEOUT).await?;
    if !db::maintenance_try_lock(&mut *tx).await? {
        return Ok(None);
    }
    Ok(Some(tx))
}

/// One maintenance pass; returns the partitions dropped. Each partition is created or dropped
/// in a transaction of its own, which gives up (an error) rather than wait more than
/// [`MAINTENANCE_LOCK_TIMEOUT`] for the history; a step another process is doing is skipped.
pub(crate) async fn maintain_once(
    pool: &sqlx::PgPool,
    now: DateTime<Utc>,
    retention: Duration,
) -> sqlx::Result<Vec<String>> {
    let today = now.date_naive();
    for d in 0..3 {
        let Some(mut tx) = maintenance_step(pool).await? else {
            return Ok(Vec::new());
        };
        db::history_partition_create(&mut *tx, today + chrono::Duration::days(d)).await?;
        tx.commit().await?;
    }
    let keep_days = i64::try_from(retention.as_secs() / 86_400).unwrap_or(i64::MAX);
    let oldest = today - chrono::Duration::days(keep_days);
    let mut dropped = Vec::new();
    for name in db::history_partitions(pool).await? {
        let Some(day) = name
            .strip_prefix("jobs_history_")
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        else {
            continue;
        };
        if day < oldest {
            let Some(mut tx) = maintenance_step(pool).await? else {
                break;
            };
            db::history_partition_drop(&mut *tx, &name).await?;
            tx.commit().await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

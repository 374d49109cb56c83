//! History maintenance: keeps day partitions of the history ahead of time and drops those past
//! the retention, and drops the unique keys whose period is over, once per fleet.

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
/// How long finished one-off jobs stay in the history by default.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// The longest history retention: a hundred years (longer ones are past the calendar's range).
pub(crate) const MAX_HISTORY_RETENTION: Duration = Duration::from_secs(36_525 * 86_400);

/// History maintenance's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How long finished one-off jobs are kept: whole days, at least one (default
    /// [`DEFAULT_HISTORY_RETENTION`]).
    pub retention: Duration,
    /// How often a pass runs (one hour).
    pub every: Duration,
    /// The longest wait before a pass runs again after one failed or gave up (one minute); the
    /// first retry comes after a second, and each further one waits twice as long.
    pub retry: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            retention: DEFAULT_HISTORY_RETENTION,
            every: Duration::from_secs(3600),
            retry: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Refuses a retention under a day (partitions are days) or over [`MAX_HISTORY_RETENTION`].
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::limits::{at_least, at_most};
        let field = "history_retention";
        at_most(
            field,
            self.retention,
            MAX_HISTORY_RETENTION,
            "a hundred years at most",
        )?;
        at_least(
            field,
            self.retention,
            Duration::from_secs(86_400),
            "partitions are days",
        )
    }
}

/// Keeps day partitions of the history ahead of time and drops those past the retention.
pub(crate) struct Maintainer {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) clock: Arc<DbClock>,
    pub(crate) config: Config,
}

impl Maintainer {
    /// A pass every [`Config::every`] (sooner again after one gave up), in one process of the
    /// fleet at a time, until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut failures = 0;
        loop {
            let wait = match self.run_once(self.clock.now()).await {
                Ok(_) => {
                    failures = 0;
                    self.config.every
                }
                Err(e) => {
                    failures += 1;
                    let wait = retry_after(failures, self.config.retry);
                    tracing::warn!(error = %e, ?wait, "history maintenance did not finish; will try again");
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One pass as of `now` (see [`maintain_once`]); returns the partitions dropped.
    pub(crate) async fn run_once(&self, now: DateTime<Utc>) -> sqlx::Result<Vec<String>> {
        maintain_once(&self.pool, now, self.config.retention).await
    }
}

/// The wait after the `failures`-th failed pass in a row: a second, doubled with each failure,
/// up to `longest`. A pass mostly gives up on a lock a long query held for a moment, so the
/// first retry comes soon; a lock held for long is not asked for more than once a `longest`.
fn retry_after(failures: u32, longest: Duration) -> Duration {
    Duration::from_secs(1)
        .checked_mul(1 << failures.saturating_sub(1).min(20))
        .map_or(longest, |wait| wait.min(longest))
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
    // Unique keys whose period is over (no later job has them), rate buckets refilled, the
    // charts' figures past two days, and workflows past the retention with nothing left.
    let retained_from = oldest.and_time(chrono::NaiveTime::MIN).and_utc();
    for (what, before) in [
        (db::Expiring::UniqueClaims, now),
        (db::Expiring::RateBuckets, now),
        (db::Expiring::ExecutorStats, now),
        (db::Expiring::Workflows, retained_from),
    ] {
        loop {
            let Some(mut tx) = maintenance_step(pool).await? else {
                return Ok(dropped);
            };
            let expired = db::rows_expire(&mut *tx, what, before, EXPIRE_BATCH).await?;
            tx.commit().await?;
            if expired < EXPIRE_BATCH.unsigned_abs() {
                break;
            }
        }
    }
    Ok(dropped)
}

/// Expired rows dropped per statement of a maintenance pass.
const EXPIRE_BATCH: i64 = 10_000;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::TestDb;

    #[test]
    fn a_failed_pass_is_retried_after_a_second_then_twice_as_long_up_to_the_longest() {
        let longest = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=8).map(|n| retry_after(n, longest).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_after(u32::MAX, longest), longest);
    }

    #[tokio::test]
    async fn a_pass_drops_the_rate_buckets_refilled_and_the_charts_past_two_days() {
        let db = TestDb::new().await.unwrap();
        sqlx::query(crate::schema::sql(
            "INSERT INTO qron.rate_buckets (executor, key, tat)
             VALUES ('x', 'past', now() - interval '1 second'),
                    ('x', 'ahead', now() + interval '1 hour')",
        ))
        .execute(db.pool())
        .await
        .unwrap();
        sqlx::query(crate::schema::sql(
            "INSERT INTO qron.executor_stats (owner, executor, minute, runs)
             VALUES ('o', 'x', date_trunc('minute', now() - interval '49 hours'), 1),
                    ('o', 'x', date_trunc('minute', now() - interval '47 hours'), 2)",
        ))
        .execute(db.pool())
        .await
        .unwrap();
        maintain_once(db.pool(), Utc::now(), Duration::from_secs(86_400))
            .await
            .unwrap();
        let left: Vec<String> =
            sqlx::query_scalar(crate::schema::sql("SELECT key FROM qron.rate_buckets"))
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(left, ["ahead"]);
        let runs: Vec<i64> =
            sqlx::query_scalar(crate::schema::sql("SELECT runs FROM qron.executor_stats"))
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(runs, [2]);
    }

    #[tokio::test]
    async fn the_edges_and_workflows_of_jobs_past_the_retention_go_with_their_history() {
        let db = TestDb::new().await.unwrap();
        let client = db.client();
        let q = |text: &'static str| sqlx::query(crate::schema::sql(text));
        q("SELECT qron.history_partition_create((now() - interval '40 days')::date)")
            .execute(db.pool())
            .await
            .unwrap();
        let chain = |name: &str| {
            let mut wf = crate::Workflow::new(name);
            wf.add_job("a", crate::NewJob::new("x", "@after 1 hour"));
            wf.add_job("b", crate::NewJob::new("x", "@after 0s"))
                .after(["a"]);
            wf
        };
        let old = chain("old").create(&client).await.unwrap();
        let live = chain("live").create(&client).await.unwrap();
        // The old one ended 40 days ago; both were created then.
        client.cancel_workflow(old.id).await.unwrap();
        q("UPDATE qron.jobs_history SET finished_at = now() - interval '40 days'")
            .execute(db.pool())
            .await
            .unwrap();
        q("UPDATE qron.workflows SET created_at = now() - interval '40 days'")
            .execute(db.pool())
            .await
            .unwrap();
        maintain_once(db.pool(), Utc::now(), Duration::from_secs(30 * 86_400))
            .await
            .unwrap();
        let edges: Vec<(i64, i64)> = sqlx::query_as(crate::schema::sql(
            "SELECT job, dependency FROM qron.job_dependencies",
        ))
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(edges, [(live.job("b").unwrap(), live.job("a").unwrap())]);
        let workflows: Vec<i64> =
            sqlx::query_scalar(crate::schema::sql("SELECT id FROM qron.workflows"))
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(workflows, [live.id]);
        let steps: i64 = sqlx::query_scalar(crate::schema::sql(
            "SELECT count(*) FROM qron.workflow_jobs",
        ))
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(steps, 2);
        assert_eq!(client.workflow(live.id).await.unwrap().steps.len(), 2);
    }

    #[tokio::test]
    async fn a_pass_drops_the_unique_keys_whose_period_is_over() {
        let db = TestDb::new().await.unwrap();
        let hourly = crate::Unique::by_executor().period(Duration::from_secs(3600));
        for owner in ["a", "b"] {
            let job = crate::NewJob::new("report", "@after 0s").unique(hourly.clone());
            db.client().owner(owner).create(job).await.unwrap();
        }
        sqlx::query(crate::schema::sql(
            "UPDATE qron.job_uniques SET until = now() - interval '1 second' WHERE owner = 'a'",
        ))
        .execute(db.pool())
        .await
        .unwrap();
        maintain_once(db.pool(), Utc::now(), Duration::from_secs(86_400))
            .await
            .unwrap();
        let left: Vec<String> =
            sqlx::query_scalar(crate::schema::sql("SELECT owner FROM qron.job_uniques"))
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(left, ["b"]);
    }

    #[tokio::test]
    async fn run_once_keeps_days_ahead_and_drops_those_past_the_retention() {
        let db = TestDb::new().await.unwrap();
        let clock = Arc::new(DbClock::new(Utc::now));
        let config = Config {
            retention: Duration::from_secs(2 * 86_400),
            ..Config::default()
        };
        let maintainer = Maintainer {
            pool: db.pool().clone(),
            clock,
            config,
        };
        let day = |d: &str| format!("jobs_history_{d}");
        let start = "2030-01-10T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        // The migration's partitions (of the day it ran) are past the retention by then.
        let dropped = maintainer.run_once(start).await.unwrap();
        assert!(
            !dropped.iter().any(|p| p.starts_with("jobs_history_2030")),
            "{dropped:?}"
        );
        let parts = db::history_partitions(db.pool()).await.unwrap();
        for d in ["20300110", "20300111", "20300112"] {
            assert!(parts.contains(&day(d)), "{d} missing from {parts:?}");
        }
        // Three days on, with two days kept: the 10th is dropped, the 11th kept.
        let later = start + chrono::Duration::days(3);
        assert_eq!(
            maintainer.run_once(later).await.unwrap(),
            vec![day("20300110")]
        );
        let parts = db::history_partitions(db.pool()).await.unwrap();
        assert!(parts.contains(&day("20300111")) && parts.contains(&day("20300115")));
        assert!(!parts.contains(&day("20300110")));
    }

    #[test]
    fn the_config_refuses_a_retention_under_a_day() {
        assert!(Config::default().validate().is_ok());
        let short = Config {
            retention: Duration::from_secs(3600),
            ..Config::default()
        };
        assert!(matches!(
            short.validate(),
            Err(crate::Error::InvalidArgument {
                field: "history_retention",
                ..
            })
        ));
    }
}

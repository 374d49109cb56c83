//! The overview's charts over time (see `migrations/0020_executor_stats.sql`): the workers'
//! tallies added, and the series read back.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::schema::sql;

/// One owner's runs of one executor that ended since a worker's last flush.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatsCounts {
    pub runs: i64,
    pub failures: i64,
    pub late_ms_sum: i64,
    pub late_ms_max: i64,
}

/// A worker's tally for one owner and executor, and the due jobs it saw waiting under limits.
#[derive(Debug, Clone)]
pub(crate) struct StatsRow {
    pub owner: String,
    pub executor: &'static str,
    pub counts: StatsCounts,
    pub waiting: i64,
}

/// Adds the tallies `$2`… (by owner `$2` and executor `$3`) to the minute of `$1`: the runs,
/// failures and lateness summed, the worst lateness and the most jobs waiting kept.
const EXECUTOR_STATS_ADD: &str = "
    INSERT INTO qron.executor_stats AS s
           (owner, executor, minute, runs, failures, late_ms_sum, late_ms_max, waiting)
    SELECT r.owner, r.executor, date_trunc('minute', $1), r.runs, r.failures, r.late_sum,
           r.late_max, r.waiting
      FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                  $7::bigint[], $8::bigint[])
           AS r(owner, executor, runs, failures, late_sum, late_max, waiting)
    ON CONFLICT (owner, executor, minute) DO UPDATE
       SET runs = s.runs + EXCLUDED.runs, failures = s.failures + EXCLUDED.failures,
           late_ms_sum = s.late_ms_sum + EXCLUDED.late_ms_sum,
           late_ms_max = GREATEST(s.late_ms_max, EXCLUDED.late_ms_max),
           waiting = GREATEST(s.waiting, EXCLUDED.waiting)";

/// Adds `rows` to the minute of `now`.
pub(crate) async fn executor_stats_add<'e>(
    ex: impl PgExecutor<'e>,
    rows: &[StatsRow],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let column = |f: fn(&StatsRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    sqlx::query(sql(EXECUTOR_STATS_ADD))
        .bind(now)
        .bind(rows.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.executor).collect::<Vec<_>>())
        .bind(column(|r| r.counts.runs))
        .bind(column(|r| r.counts.failures))
        .bind(column(|r| r.counts.late_ms_sum))
        .bind(column(|r| r.counts.late_ms_max))
        .bind(column(|r| r.waiting))
        .execute(ex)
        .await?;
    Ok(())
}

/// The due jobs waiting for a lease now, by executor (of `$1`) and owner, among the owners who
/// did not pause it.
const JOBS_WAITING_BY_OWNER: &str = "
    SELECT j.executor, j.owner, count(*)
      FROM qron.jobs j
     WHERE j.executor = ANY($1) AND j.status = 'ready' AND NOT j.scheduled AND j.run_at <= $2
       AND NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                        WHERE p.executor = j.executor AND p.owner = j.owner)
     GROUP BY j.executor, j.owner";

/// The due jobs of `executors` waiting at `now`, by executor and owner.
pub(crate) async fn jobs_waiting_by_owner<'e>(
    ex: impl PgExecutor<'e>,
    executors: &[&str],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(sql(JOBS_WAITING_BY_OWNER))
        .bind(executors)
        .bind(now)
        .fetch_all(ex)
        .await
}

/// One point of a chart: the figures of a bucket of time.
#[cfg(feature = "dashboard")]
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StatsPoint {
    pub executor: String,
    /// The bucket's start.
    pub at: DateTime<Utc>,
    pub runs: i64,
    pub failures: i64,
    pub late_ms_sum: i64,
    pub late_ms_max: i64,
    pub waiting: i64,
}

/// Owner `$1`'s figures from `$2` on, in buckets of `$3` seconds, by executor and bucket.
#[cfg(feature = "dashboard")]
const EXECUTOR_STATS_SERIES: &str = "
    SELECT executor,
           to_timestamp(floor(extract(epoch FROM minute) / $3) * $3) AS at,
           sum(runs)::bigint AS runs, sum(failures)::bigint AS failures,
           sum(late_ms_sum)::bigint AS late_ms_sum, max(late_ms_max) AS late_ms_max,
           max(waiting) AS waiting
      FROM qron.executor_stats
     WHERE owner = $1 AND minute >= $2
     GROUP BY executor, at
     ORDER BY executor, at";

/// `owner`'s figures since `from`, in buckets of `bucket_secs`.
#[cfg(feature = "dashboard")]
pub(crate) async fn executor_stats_series<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    from: DateTime<Utc>,
    bucket_secs: i64,
) -> sqlx::Result<Vec<StatsPoint>> {
    sqlx::query_as(sql(EXECUTOR_STATS_SERIES))
        .bind(owner)
        .bind(from)
        .bind(bucket_secs as f64)
        .fetch_all(ex)
        .await
}

//! Executors' limits: setting, clearing and reading them (see
//! `migrations/0017_limits.sql`; the lease under them is `JOB_LEASE_LIMITED`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::ExecutorLimits;
use crate::schema::sql;

/// The notification channel on which a change of an executor's limits tells the workers.
pub(crate) const LIMITS_CHANNEL: &str = "qron_limits";

/// Sets executor `$1`'s limits (`$2` in all; per key of partition `$3`, with field `$4`, `$5`
/// each; `$7` starts per `$8` ms with a burst of `$9`, per key of partition `$10` with field
/// `$11`) at `$6`. When the partition changes (or the executor had no limits), it keys the jobs
/// leased now by the new partition, so that they count from the start (a lease in flight as
/// the limit is set may not be counted: at most one lease's jobs, once), and writes every
/// waiting job's partition key anew (see `migrations/0030_keyed_queue.sql`); a change of the
/// numbers alone writes no job. Tells the workers on commit. Run after
/// [`super::EXECUTOR_LIMIT_LOCK`].
const EXECUTOR_LIMITS_SET: &str = "
    WITH before AS MATERIALIZED (
        SELECT partition_by, partition_field FROM qron.executor_limits WHERE executor = $1),
    saved AS (
        INSERT INTO qron.executor_limits
               (executor, concurrency, partition_by, partition_field, partition_concurrency,
                updated_at, rate_limit, rate_period_ms, rate_burst, rate_partition_by,
                rate_partition_field)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (executor) DO UPDATE
           SET concurrency = EXCLUDED.concurrency, partition_by = EXCLUDED.partition_by,
               partition_field = EXCLUDED.partition_field,
               partition_concurrency = EXCLUDED.partition_concurrency,
               updated_at = EXCLUDED.updated_at, rate_limit = EXCLUDED.rate_limit,
               rate_period_ms = EXCLUDED.rate_period_ms, rate_burst = EXCLUDED.rate_burst,
               rate_partition_by = EXCLUDED.rate_partition_by,
               rate_partition_field = EXCLUDED.rate_partition_field
        RETURNING 1),
    -- a new rate limit starts with full buckets
    emptied AS (DELETE FROM qron.rate_buckets b WHERE b.executor = $1 RETURNING 1),
    keyed AS (
        UPDATE qron.jobs j
           SET limit_key = CASE WHEN j.lease_expires_at IS NULL THEN j.limit_key
                                ELSE CASE $3::text WHEN 'owner' THEN j.owner
                                                   WHEN 'field'
                                                   THEN qron.limit_key(COALESCE(j.payload ->> $4, ''))
                                                   ELSE '' END END,
               partition_key = CASE $3::text WHEN 'owner' THEN j.owner
                                             WHEN 'field'
                                             THEN qron.limit_key(COALESCE(j.payload ->> $4, ''))
                                             END
         WHERE j.executor = $1
           -- only when the partition changes: a change of the numbers alone writes no job,
           -- and so waits for no row a hand-over locked while it waits for the limit lock
           AND NOT EXISTS (SELECT 1 FROM before b
                            WHERE b.partition_by IS NOT DISTINCT FROM $3
                              AND b.partition_field IS NOT DISTINCT FROM $4)
        RETURNING 1)
    SELECT (SELECT count(*) FROM saved) + (SELECT count(*) FROM keyed)
           + (SELECT count(*) FROM emptied),
           pg_notify('qron_limits', $1) IS NULL";

/// Sets `executor`'s limits (see [`EXECUTOR_LIMITS_SET`]), in the caller's transaction.
pub(crate) async fn executor_limits_set(
    tx: &mut PgConnection,
    executor: &str,
    limits: &ExecutorLimits,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(sql(super::EXECUTOR_LIMIT_LOCK))
        .bind(executor)
        .execute(&mut *tx)
        .await?;
    let (by, field, per_key) = limits.partition_columns();
    let concurrency = limits
        .concurrency
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let rate = limits.rate.as_ref().map(crate::RateLimit::columns);
    sqlx::query(sql(EXECUTOR_LIMITS_SET))
        .bind(executor)
        .bind(concurrency)
        .bind(by)
        .bind(field)
        .bind(per_key)
        .bind(now)
        .bind(rate.map(|r| r.0))
        .bind(rate.map(|r| r.1))
        .bind(rate.map(|r| r.2))
        .bind(rate.and_then(|r| r.3))
        .bind(rate.and_then(|r| r.4))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Clears executor `$1`'s limits and its rate buckets, and tells the workers (and wakes them:
/// the jobs the limits held back are due).
const EXECUTOR_LIMITS_CLEAR: &str = "
    WITH gone AS (DELETE FROM qron.executor_limits WHERE executor = $1 RETURNING 1),
    buckets AS (DELETE FROM qron.rate_buckets WHERE executor = $1 RETURNING 1)
    SELECT (SELECT count(*) FROM gone) > 0 OR (SELECT count(*) FROM buckets) < 0,
           pg_notify('qron_limits', $1) IS NULL AND pg_notify('qron_jobs', $1) IS NULL";

/// Clears `executor`'s limits (see [`EXECUTOR_LIMITS_CLEAR`]): whether it had some.
pub(crate) async fn executor_limits_clear<'e>(
    ex: impl PgExecutor<'e>,
    executor: &str,
) -> sqlx::Result<bool> {
    let (had, _): (bool, bool) = sqlx::query_as(sql(EXECUTOR_LIMITS_CLEAR))
        .bind(executor)
        .fetch_one(ex)
        .await?;
    Ok(had)
}

/// The limits of executors `$1` (every executor's when NULL), each with the places taken under
/// them now and the rate buckets spent (the dashboard's and the executors' list show them).
const EXECUTOR_LIMITS_GET: &str = "
    SELECT l.executor, l.concurrency, l.partition_by, l.partition_field,
           l.partition_concurrency, l.rate_limit, l.rate_period_ms, l.rate_burst,
           l.rate_partition_by, l.rate_partition_field,
           -- places, as `qron.limit_taken` counts them (a job and its successor hold one)
           (SELECT count(*) FILTER (WHERE j.place IS NULL)
           + count(DISTINCT j.place) FILTER (WHERE j.place IS NOT NULL)
              FROM qron.jobs j
             WHERE j.executor = l.executor AND j.limit_key IS NOT NULL
               AND j.lease_expires_at IS NOT NULL AND j.lease_expires_at > now()) AS taken,
           -- the rate buckets with no start left now (see `JOB_LEASE_LIMITED`)
           (SELECT count(*) FROM qron.rate_buckets b
             WHERE b.executor = l.executor AND l.rate_limit IS NOT NULL
               AND extract(epoch FROM b.tat - now())::float8
                   > (l.rate_burst - 1) * (l.rate_period_ms::float8 / 1000 / l.rate_limit))
               AS rate_spent
      FROM qron.executor_limits l
     WHERE $1::text[] IS NULL OR l.executor = ANY($1)
     ORDER BY l.executor";

/// A row of [`EXECUTOR_LIMITS_GET`].
#[derive(sqlx::FromRow)]
struct LimitsRow {
    executor: String,
    concurrency: Option<i32>,
    partition_by: Option<String>,
    partition_field: Option<String>,
    partition_concurrency: Option<i32>,
    rate_limit: Option<i32>,
    rate_period_ms: Option<i64>,
    rate_burst: Option<i32>,
    rate_partition_by: Option<String>,
    rate_partition_field: Option<String>,
    taken: i64,
    rate_spent: i64,
}

/// An executor's limits and how much of them is used now.
#[derive(Debug, Clone)]
pub(crate) struct LimitsNow {
    pub executor: String,
    pub limits: ExecutorLimits,
    /// The places taken: jobs leased under the limits, unexpired.
    pub taken: i64,
    /// The rate buckets with no start left: 1 (or 0) for a rate limit in all; the keys out
    /// of starts for one per key.
    pub rate_spent: i64,
}

impl LimitsRow {
    /// The executor, its limits (`None` for a row no version of qron writes) and their use.
    fn into_limits(self) -> Option<LimitsNow> {
        let rate = match (self.rate_limit, self.rate_period_ms, self.rate_burst) {
            (None, None, None) => None,
            (Some(n), Some(ms), Some(burst)) => Some(crate::RateLimit::from_columns(
                n,
                ms,
                burst,
                self.rate_partition_by.as_deref(),
                self.rate_partition_field,
            )?),
            _ => return None,
        };
        let mut limits = ExecutorLimits::from_columns(
            self.concurrency,
            self.partition_by.as_deref(),
            self.partition_field,
            self.partition_concurrency,
        )?;
        limits.rate = rate;
        Some(LimitsNow {
            executor: self.executor,
            limits,
            taken: self.taken,
            rate_spent: self.rate_spent,
        })
    }
}

/// The limits of each of `executors` (of every executor with `None`) that has some, and their
/// use.
pub(crate) async fn executor_limits_get<'e>(
    ex: impl PgExecutor<'e>,
    executors: Option<&[&str]>,
) -> sqlx::Result<Vec<LimitsNow>> {
    let rows: Vec<LimitsRow> = sqlx::query_as(sql(EXECUTOR_LIMITS_GET))
        .bind(executors)
        .fetch_all(ex)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(LimitsRow::into_limits)
        .collect())
}

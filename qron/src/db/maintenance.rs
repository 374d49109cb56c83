//! The upkeep: the history's day partitions and their retention, the rows that expire, and
//! the leader's lock.

use crate::schema::sql;
use sqlx::PgExecutor;

/// Creates the history partition of `day` (idempotent).
pub(crate) async fn history_partition_create<'e>(
    ex: impl PgExecutor<'e>,
    day: chrono::NaiveDate,
) -> sqlx::Result<String> {
    sqlx::query_scalar(sql("SELECT qron.history_partition_create($1)"))
        .bind(day)
        .fetch_one(ex)
        .await
}

/// The day partitions of the history, by name (`jobs_history_YYYYMMDD`).
pub(crate) async fn history_partitions<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(sql(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'qron.jobs_history'::regclass
            AND c.relname ~ '^jobs_history_[0-9]{8}$'
          ORDER BY 1",
    ))
    .fetch_all(ex)
    .await
}

/// Drops one history partition (a name from [`history_partitions`]).
pub(crate) async fn history_partition_drop<'e>(
    ex: impl PgExecutor<'e>,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query(sql("SELECT qron.history_partition_drop($1)"))
        .bind(name)
        .execute(ex)
        .await
        .map(|_| ())
}

/// Makes the transaction's statements give up waiting for a lock after `timeout` (a
/// PostgreSQL interval such as `200ms`).
pub(crate) async fn lock_timeout_set_local<'e>(
    ex: impl PgExecutor<'e>,
    timeout: &str,
) -> sqlx::Result<()> {
    sqlx::query(sql("SELECT set_config('lock_timeout', $1, true)"))
        .bind(timeout)
        .execute(ex)
        .await
        .map(|_| ())
}

/// Tries to become the maintenance leader for this transaction.
pub(crate) async fn maintenance_try_lock<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<bool> {
    sqlx::query_scalar(sql(
        "SELECT pg_try_advisory_xact_lock(hashtext('qron.maintenance'))",
    ))
    .fetch_one(ex)
    .await
}

/// Rows kept only until a time, dropped by the maintenance pass.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expiring {
    /// Unique claims whose period ended (a later job has another key).
    UniqueClaims,
    /// Rate buckets refilled (a key without a row has its whole burst: the same).
    RateBuckets,
    /// The charts' figures older than two days.
    ExecutorStats,
    /// Workflows created before the time given, with no job left, live or in the history
    /// (their steps go with them).
    Workflows,
}

/// Drops up to `limit` rows of `what` that expired before `now`; how many.
pub(crate) async fn rows_expire<'e>(
    ex: impl PgExecutor<'e>,
    what: Expiring,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> sqlx::Result<u64> {
    let statement = match what {
        Expiring::UniqueClaims => {
            "DELETE FROM qron.job_uniques WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM qron.job_uniques WHERE until < $1 LIMIT $2))"
        }
        Expiring::RateBuckets => {
            "DELETE FROM qron.rate_buckets WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM qron.rate_buckets WHERE tat < $1 LIMIT $2))"
        }
        Expiring::ExecutorStats => {
            "DELETE FROM qron.executor_stats WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM qron.executor_stats
                  WHERE minute < $1 - interval '2 days' LIMIT $2))"
        }
        Expiring::Workflows => {
            "DELETE FROM qron.workflows WHERE id = ANY(ARRAY(
                 SELECT w.id FROM qron.workflows w
                  WHERE w.created_at < $1
                    AND NOT EXISTS (
                        SELECT 1 FROM qron.workflow_jobs s
                         WHERE s.workflow = w.id
                           AND (EXISTS (SELECT 1 FROM qron.jobs j WHERE j.id = s.job)
                                OR EXISTS (SELECT 1 FROM qron.jobs_history h
                                            WHERE h.id = s.job)))
                  LIMIT $2))"
        }
    };
    sqlx::query(sql(statement))
        .bind(now)
        .bind(limit)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
}

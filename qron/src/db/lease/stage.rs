//! Staging: the scheduled jobs due soon enter the lease index (see
//! `migrations/0014_scheduled.sql`).

use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Stages the scheduled ready jobs due by `now() + $1` (see
/// `migrations/0014_scheduled.sql`): a walk of the executors with scheduled jobs, and for each
/// one the range of its index. While one rescuer stages, the others skip it (an advisory lock
/// they do not wait for).
const JOBS_STAGE: &str = "
    WITH RECURSIVE ex (executor) AS (
        (SELECT executor FROM qron.jobs
          WHERE status = 'ready' AND scheduled
            AND pg_try_advisory_xact_lock(hashtext('qron.jobs_stage'))
          ORDER BY executor LIMIT 1)
        UNION ALL
        SELECT (SELECT executor FROM qron.jobs
                 WHERE status = 'ready' AND scheduled AND executor > ex.executor
                 ORDER BY executor LIMIT 1)
          FROM ex WHERE ex.executor IS NOT NULL)
    UPDATE qron.jobs j SET scheduled = false
      FROM ex
     WHERE j.executor = ex.executor AND j.status = 'ready' AND j.scheduled
       AND j.run_at <= now() + $1";

/// Stages the scheduled jobs of every executor due within `ahead` (see [`JOBS_STAGE`]); how
/// many.
pub(crate) async fn jobs_stage<'e>(
    ex: impl PgExecutor<'e>,
    ahead: std::time::Duration,
) -> sqlx::Result<u64> {
    sqlx::query(sql(JOBS_STAGE))
        .bind(crate::db::duration_interval(ahead))
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
}

/// Stages executor `$1`'s scheduled ready jobs due by `$2`.
const JOBS_STAGE_EXECUTOR: &str = "
    UPDATE qron.jobs SET scheduled = false
     WHERE executor = $1 AND status = 'ready' AND scheduled AND run_at <= $2";

/// Stages `executor`'s scheduled jobs due by `by` (a worker that found its next job due but
/// not staged yet does it itself); how many.
pub(crate) async fn jobs_stage_executor<'e>(
    ex: impl PgExecutor<'e>,
    executor: &str,
    by: DateTime<Utc>,
) -> sqlx::Result<u64> {
    sqlx::query(sql(JOBS_STAGE_EXECUTOR))
        .bind(executor)
        .bind(by)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
}

//! An operator's actions: cancel a job, pause and resume an owner's executor, and the
//! executors' figures.

use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::manage::bind_target;
use crate::job::{JobRef, JobRow};

/// The channel on which a cancel tells the worker running the job (payload: its id).
pub(crate) const CANCEL_CHANNEL: &str = "qron_cancel";

/// The channel on which a pause or a resume tells workers (payload: the executor).
pub(crate) const PAUSE_CHANNEL: &str = "qron_pauses";

/// Ends a live job (see [`bind_target`] for `$1`–`$4`) as cancelled at `$5`: it moves to the
/// history, and the worker holding its lease is told (on commit), whose outcome then finds
/// nothing to change.
const JOB_CANCEL: &str = "
    WITH done AS (
        DELETE FROM qron.jobs
         WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4))
        RETURNING *),
    moved AS (
        INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
             run_at, payload, meta, attempt, executions, max_attempts, timeout, revision,
             last_error, last_error_at, created_at, updated_at, start_at, last_run_at,
             finished_at, errors, runs, priority, has_dependents)
        SELECT id, executor, owner, name, expr, recurring, 'cancelled', run_at, payload, meta,
               attempt, executions, max_attempts, timeout, revision + 1, 'cancelled', $5,
               created_at, $5, start_at, last_run_at, $5, errors, runs, priority,
               has_dependents
          FROM done
        RETURNING *)
    SELECT m.*,
           CASE WHEN d.lease_expires_at IS NOT NULL
                THEN pg_notify('qron_cancel', d.id::text) END AS notified
      FROM moved m JOIN done d ON d.id = m.id";

/// Cancels a live job (see [`JOB_CANCEL`]); the cancelled row.
pub(crate) async fn job_cancel<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<JobRow>> {
    bind_target(sqlx::query_as(sql(JOB_CANCEL)), owner, target)
        .bind(now)
        .fetch_optional(ex)
        .await
}

/// Pauses executor `$2` for owner `$1` from `$3` (a second pause keeps the first time), and
/// tells the workers (on commit). One row: the lease skips the owner's jobs (see
/// `db::JOB_LEASE`), so none of them is written.
const EXECUTOR_PAUSE: &str = "
    WITH paused AS (
        INSERT INTO qron.executor_pauses (executor, owner, paused_at) VALUES ($2, $1, $3)
        ON CONFLICT (executor, owner) DO UPDATE SET paused_at = qron.executor_pauses.paused_at
        RETURNING paused_at)
    SELECT (SELECT paused_at FROM paused), pg_notify('qron_pauses', $2) IS NULL AS notified";

/// Pauses an owner's executor (see [`EXECUTOR_PAUSE`]): since when.
pub(crate) async fn executor_pause<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    executor: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<DateTime<Utc>> {
    let (since, _): (DateTime<Utc>, bool) = sqlx::query_as(sql(EXECUTOR_PAUSE))
        .bind(owner)
        .bind(executor)
        .bind(now)
        .fetch_one(ex)
        .await?;
    Ok(since)
}

/// Resumes executor `$2` for owner `$1`: the pause goes, and the workers are told (on commit);
/// whether it was paused.
const EXECUTOR_RESUME: &str = "
    WITH resumed AS (
        DELETE FROM qron.executor_pauses WHERE executor = $2 AND owner = $1 RETURNING 1)
    SELECT (SELECT count(*) FROM resumed) > 0,
           pg_notify('qron_pauses', $2) IS NULL AND pg_notify('qron_jobs', $2) IS NULL";

/// Resumes an owner's executor (see [`EXECUTOR_RESUME`]): whether it was paused.
pub(crate) async fn executor_resume<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    executor: &str,
) -> sqlx::Result<bool> {
    let (was, _): (bool, bool) = sqlx::query_as(sql(EXECUTOR_RESUME))
        .bind(owner)
        .bind(executor)
        .fetch_one(ex)
        .await?;
    Ok(was)
}

/// Which of executors `$1` some owner paused.
const EXECUTORS_PAUSED: &str = "
    SELECT DISTINCT executor FROM qron.executor_pauses WHERE executor = ANY($1)";

/// Which of `executors` some owner paused.
pub(crate) async fn executors_paused<'e>(
    ex: impl PgExecutor<'e>,
    executors: &[&str],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(sql(EXECUTORS_PAUSED))
        .bind(executors)
        .fetch_all(ex)
        .await
}

/// The owners who paused executor `$1`.
const EXECUTOR_PAUSED_OWNERS: &str = "
    SELECT owner FROM qron.executor_pauses WHERE executor = $1";

/// The owners who paused `executor`.
pub(crate) async fn executor_paused_owners<'e>(
    ex: impl PgExecutor<'e>,
    executor: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(sql(EXECUTOR_PAUSED_OWNERS))
        .bind(executor)
        .fetch_all(ex)
        .await
}

/// Owner `$1`'s executors at `$2`: every executor with a live job of the owner, paused by the
/// owner, or served by a live worker; each with its live jobs counted by status, its oldest due
/// ready job, when the owner paused it, and the workers serving it.
const EXECUTORS_LIST: &str = "
    WITH live AS (
        SELECT executor,
               count(*) FILTER (WHERE status = 'ready') AS ready,
               count(*) FILTER (WHERE status = 'ready' AND run_at <= $2) AS due,
               count(*) FILTER (WHERE status = 'running') AS running,
               count(*) FILTER (WHERE status = 'stopped') AS stopped,
               min(run_at) FILTER (WHERE status = 'ready' AND run_at <= $2) AS oldest_due_at
          FROM qron.jobs WHERE owner = $1
         GROUP BY executor),
    pauses AS (
        SELECT executor, paused_at FROM qron.executor_pauses WHERE owner = $1),
    served AS (
        SELECT e AS executor, array_agg(w.id ORDER BY w.id) AS workers
          FROM qron.workers w, unnest(w.executors) AS e
         WHERE w.seen_at + w.ttl >= $2
         GROUP BY e),
    names AS (
        SELECT executor FROM live UNION SELECT executor FROM pauses
        UNION SELECT executor FROM served)
    SELECT n.executor, COALESCE(l.ready, 0) AS ready, COALESCE(l.due, 0) AS due,
           COALESCE(l.running, 0) AS running,
           COALESCE(l.stopped, 0) AS stopped, l.oldest_due_at, p.paused_at,
           COALESCE(s.workers, '{}') AS workers
      FROM names n
      LEFT JOIN live l ON l.executor = n.executor
      LEFT JOIN pauses p ON p.executor = n.executor
      LEFT JOIN served s ON s.executor = n.executor
     ORDER BY n.executor";

/// Owner's executors (see [`EXECUTORS_LIST`]).
pub(crate) async fn executors_list<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<crate::ExecutorInfo>> {
    sqlx::query_as(sql(EXECUTORS_LIST))
        .bind(owner)
        .bind(now)
        .fetch_all(ex)
        .await
}

//! Workflows (see `migrations/0024_workflows.sql`): created, read with their steps' jobs,
//! cancelled.

use super::partition_key_of;
use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Creates workflow `$2` of owner `$1`; its id.
const WORKFLOW_INSERT: &str =
    "INSERT INTO qron.workflows (owner, name) VALUES ($1, $2) RETURNING id";

/// Creates a workflow (see [`WORKFLOW_INSERT`]).
pub(crate) async fn workflow_insert<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    name: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(sql(WORKFLOW_INSERT))
        .bind(owner)
        .bind(name)
        .fetch_one(ex)
        .await
}

/// Workflow `$2` of owner `$1`: its name and creation time.
const WORKFLOW_GET: &str =
    "SELECT name, created_at FROM qron.workflows WHERE owner = $1 AND id = $2";

/// A workflow's name and creation time (see [`WORKFLOW_GET`]).
pub(crate) async fn workflow_get<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    id: i64,
) -> sqlx::Result<Option<(String, DateTime<Utc>)>> {
    sqlx::query_as(sql(WORKFLOW_GET))
        .bind(owner)
        .bind(id)
        .fetch_optional(ex)
        .await
}

/// The steps of workflow `$1`, in the order they were created: each one's job, the job's
/// executor and status, live or finished (none when it was deleted without a trace), and the
/// steps it waits for.
const WORKFLOW_STEPS: &str = "
    SELECT DISTINCT ON (s.job) s.step, s.job, COALESCE(j.executor, h.executor) AS executor,
           COALESCE(j.status::text, h.status::text) AS status,
           ARRAY(SELECT t.step FROM qron.job_dependencies d
                   JOIN qron.workflow_jobs t ON t.workflow = s.workflow AND t.job = d.dependency
                  WHERE d.job = s.job ORDER BY t.step) AS after
      FROM qron.workflow_jobs s
      LEFT JOIN qron.jobs j ON j.id = s.job
      LEFT JOIN qron.jobs_history h ON j.id IS NULL AND h.id = s.job
     WHERE s.workflow = $1
     ORDER BY s.job, h.finished_at DESC NULLS LAST";

/// A step as [`WORKFLOW_STEPS`] reads it: name, job, executor, status, the steps it waits for.
pub(crate) type StepRow = (String, i64, Option<String>, Option<String>, Vec<String>);

/// The steps of a workflow (see [`WORKFLOW_STEPS`]).
pub(crate) async fn workflow_steps<'e>(
    ex: impl PgExecutor<'e>,
    id: i64,
) -> sqlx::Result<Vec<StepRow>> {
    sqlx::query_as(sql(WORKFLOW_STEPS))
        .bind(id)
        .fetch_all(ex)
        .await
}

/// Cancels the live jobs of workflow `$2` of owner `$1` at `$3`: they move to the history, and
/// the workers holding their leases are told (on commit). How many.
const WORKFLOW_CANCEL: &str = concat!(
    "
    WITH done AS (
        DELETE FROM qron.jobs j
         USING qron.workflow_jobs s, qron.workflows w
         WHERE w.owner = $1 AND w.id = $2 AND s.workflow = w.id AND j.id = s.job
        RETURNING j.*),
    moved AS (
        ",
    crate::db::history_columns!(),
    ", runs)
        SELECT id, executor, owner, name, expr, recurring, 'cancelled', run_at, payload, meta,
               attempt, executions, max_attempts, timeout, revision + 1,
               'the workflow was cancelled', $3, created_at, $3, start_at, last_run_at, $3,
               errors, priority, has_dependents, runs
          FROM done
        RETURNING id)
    SELECT count(*) FROM (
        SELECT CASE WHEN d.lease_expires_at IS NOT NULL
                    THEN pg_notify('qron_cancel', d.id::text) END
          FROM done d JOIN moved m ON m.id = d.id) n"
);

/// Cancels a workflow's live jobs (see [`WORKFLOW_CANCEL`]).
pub(crate) async fn workflow_cancel<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    id: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(sql(WORKFLOW_CANCEL))
        .bind(owner)
        .bind(id)
        .bind(now)
        .fetch_one(ex)
        .await
}

/// Locks workflow `$2` of owner `$1` (retries of one workflow go one after another) and the live
/// jobs its steps wait for, so that none ends unseen before the steps revived to wait for it
/// commit (see [`WORKFLOW_RETRY`]). Whether the workflow is there.
const WORKFLOW_RETRY_LOCK: &str = "
    WITH w AS (
        SELECT id FROM qron.workflows WHERE owner = $1 AND id = $2 FOR UPDATE),
    deps AS (
        SELECT j.id FROM qron.jobs j
         WHERE j.id = ANY(ARRAY(
               SELECT d.dependency FROM qron.workflow_jobs s
                 JOIN qron.job_dependencies d ON d.job = s.job
                WHERE s.workflow = (SELECT id FROM w)))
         FOR UPDATE)
    SELECT EXISTS (SELECT 1 FROM w) AND (SELECT count(*) FROM deps) >= 0";

/// Revives the steps of workflow `$2` of owner `$1` that failed or were cancelled (their jobs'
/// last history rows, none live): each moves back to the live jobs with its id, a fresh
/// attempt budget and its step's policy, waiting for those of its jobs that are live or revived
/// with it (ready at `$3` when none is; put back by `$4` microseconds a priority level, as a
/// retry is). A job it waits for that succeeded, or left no trace, is done with. The revived
/// steps' ids.
const WORKFLOW_RETRY: &str = concat!(
    "
    WITH steps AS MATERIALIZED (
        SELECT s.job, s.on_dependency_failure FROM qron.workflow_jobs s
          JOIN qron.workflows w ON w.id = s.workflow
         WHERE w.owner = $1 AND w.id = $2),
    last AS MATERIALIZED (
        SELECT DISTINCT ON (h.id) h.id, h.status FROM qron.jobs_history h
         WHERE h.id = ANY(ARRAY(SELECT job FROM steps)) AND h.owner = $1
           AND NOT EXISTS (SELECT 1 FROM qron.jobs j WHERE j.id = h.id)
         ORDER BY h.id, h.finished_at DESC),
    revived AS MATERIALIZED (
        SELECT l.id, s.on_dependency_failure,
               (SELECT count(*) FROM qron.job_dependencies d
                 WHERE d.job = l.id
                   AND (EXISTS (SELECT 1 FROM qron.jobs j WHERE j.id = d.dependency)
                        OR d.dependency IN (SELECT l2.id FROM last l2
                                             WHERE l2.status IN ('failed', 'cancelled'))))::integer
                   AS waits
          FROM last l JOIN steps s ON s.job = l.id
         WHERE l.status IN ('failed', 'cancelled')),
    moved AS (
        DELETE FROM qron.jobs_history h USING revived r WHERE h.id = r.id RETURNING h.*),
    j AS (
        INSERT INTO qron.jobs (id, executor, owner, name, expr, recurring, status, run_at,
                               slot_at, payload, meta, attempt, executions, max_attempts,
                               timeout, revision, last_error, last_error_at, created_at,
                               updated_at, start_at, last_run_at, errors, bytes, scheduled,
                               priority, priority_delay, waits, has_dependents,
                               on_dependency_failure, partition_key)
        SELECT DISTINCT ON (m.id) m.id, m.executor, m.owner, m.name, m.expr, m.recurring,
               CASE WHEN r.waits > 0 THEN 'waiting' ELSE 'ready' END::qron.job_status, $3, $3,
               m.payload, m.meta, 0, m.executions, m.max_attempts, m.timeout, m.revision + 1,
               m.last_error, m.last_error_at, m.created_at, $3, m.start_at, m.last_run_at,
               m.errors, octet_length(m.payload::text) + octet_length(m.meta::text), false,
               m.priority, m.priority * $4, r.waits, true, r.on_dependency_failure, ",
    partition_key_of!("m.executor", "m.owner", "m.payload"),
    "
          FROM moved m JOIN revived r ON r.id = m.id
         ORDER BY m.id, m.finished_at DESC
        RETURNING id, executor, status)
    SELECT j.id, ",
    "CASE WHEN j.status = 'ready' THEN pg_notify('qron_jobs', j.executor) END IS NULL
      FROM j ORDER BY j.id"
);

/// Retries workflow `id` of `owner` at `now` in the caller's transaction (see
/// [`WORKFLOW_RETRY_LOCK`] and [`WORKFLOW_RETRY`]): the ids of the steps revived, or `None`
/// when the owner has no such workflow.
pub(crate) async fn workflow_retry(
    tx: &mut sqlx::PgConnection,
    owner: &str,
    id: i64,
    now: DateTime<Utc>,
    priority_step: i64,
) -> sqlx::Result<Option<Vec<i64>>> {
    let found: bool = sqlx::query_scalar(sql(WORKFLOW_RETRY_LOCK))
        .bind(owner)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if !found {
        return Ok(None);
    }
    let rows: Vec<(i64, bool)> = sqlx::query_as(sql(WORKFLOW_RETRY))
        .bind(owner)
        .bind(id)
        .bind(now)
        .bind(priority_step)
        .fetch_all(&mut *tx)
        .await?;
    Ok(Some(rows.into_iter().map(|(id, _)| id).collect()))
}

/// A step of workflow `$2` of owner `$1` that a retry would revive but whose name a live job
/// holds: its executor and name.
const WORKFLOW_RETRY_NAME_TAKEN: &str = "
    SELECT h.executor, h.name FROM qron.workflow_jobs s
      JOIN qron.workflows w ON w.id = s.workflow
      JOIN qron.jobs_history h ON h.id = s.job
      JOIN qron.jobs j ON j.owner = h.owner AND j.executor = h.executor AND j.name = h.name
                      AND j.id <> h.id
     WHERE w.owner = $1 AND w.id = $2 AND h.status IN ('failed', 'cancelled')
     LIMIT 1";

/// Which step a retry could not revive for its name (see [`WORKFLOW_RETRY_NAME_TAKEN`]).
pub(crate) async fn workflow_retry_name_taken<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    id: i64,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(sql(WORKFLOW_RETRY_NAME_TAKEN))
        .bind(owner)
        .bind(id)
        .fetch_optional(ex)
        .await
}

/// A page of owner `$1`'s workflows, newest first, with ids under `$2` (all when `NULL`), at
/// most `$3`: each one's id, name, creation time, and status (running while a job of it is live;
/// else failed, cancelled, or succeeded, as `WorkflowStatus::of` decides from its jobs' ends).
const WORKFLOWS_LIST: &str = "
    SELECT w.id, w.name, w.created_at,
           CASE WHEN EXISTS (SELECT 1 FROM qron.workflow_jobs s JOIN qron.jobs j ON j.id = s.job
                              WHERE s.workflow = w.id)
                THEN 'running'
                WHEN EXISTS (SELECT 1 FROM qron.workflow_jobs s
                               JOIN qron.jobs_history h ON h.id = s.job
                              WHERE s.workflow = w.id AND h.status = 'failed')
                THEN 'failed'
                WHEN EXISTS (SELECT 1 FROM qron.workflow_jobs s
                              WHERE s.workflow = w.id
                                AND NOT EXISTS (SELECT 1 FROM qron.jobs_history h
                                                 WHERE h.id = s.job AND h.status = 'succeeded'))
                THEN 'cancelled'
                ELSE 'succeeded' END AS status
      FROM qron.workflows w
     WHERE w.owner = $1 AND ($2::bigint IS NULL OR w.id < $2)
     ORDER BY w.id DESC
     LIMIT $3";

/// A workflow as [`WORKFLOWS_LIST`] reads it: id, name, creation time, status.
pub(crate) type WorkflowRow = (i64, String, DateTime<Utc>, String);

/// A page of an owner's workflows (see [`WORKFLOWS_LIST`]).
pub(crate) async fn workflows_list<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<WorkflowRow>> {
    sqlx::query_as(sql(WORKFLOWS_LIST))
        .bind(owner)
        .bind(before)
        .bind(limit)
        .fetch_all(ex)
        .await
}

/// The workflow job `$2` of owner `$1` is a step of, if any: its id, name, and the step's name.
#[cfg(feature = "dashboard")]
const JOB_WORKFLOW: &str = "
    SELECT w.id, w.name, s.step FROM qron.workflow_jobs s
      JOIN qron.workflows w ON w.id = s.workflow
     WHERE s.job = $2 AND w.owner = $1";

/// The workflow a job is a step of (see [`JOB_WORKFLOW`]).
#[cfg(feature = "dashboard")]
pub(crate) async fn job_workflow<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    job: i64,
) -> sqlx::Result<Option<(i64, String, String)>> {
    sqlx::query_as(sql(JOB_WORKFLOW))
        .bind(owner)
        .bind(job)
        .fetch_optional(ex)
        .await
}

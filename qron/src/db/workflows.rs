//! Workflows (see `migrations/0024_workflows.sql`): created, read with their steps' jobs,
//! cancelled.

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

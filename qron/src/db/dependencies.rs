//! Dependencies (see `migrations/0023_dependencies.sql`): the jobs a new job waits for,
//! claimed when it is created, and what they recorded, read by its handler.

use crate::schema::sql;
use sqlx::PgExecutor;

/// Claims the jobs `$2` of owner `$1` that a new job waits for: each live one is marked as
/// having dependents (its row locked until the transaction ends, so that it cannot end unseen
/// before the new job's edges commit); for the others, how they ended, from the history. A row
/// per job asked for: whether it is live (and recurring), or how it ended, or neither (unknown,
/// another owner's, or ended since the statement's snapshot: the caller asks again).
const DEPENDENCIES_CLAIM: &str = "
    WITH wanted AS (SELECT DISTINCT unnest($2::bigint[]) AS id),
    live AS (
        UPDATE qron.jobs j SET has_dependents = true
          FROM wanted w
         WHERE j.id = w.id AND j.owner = $1
        RETURNING j.id, j.recurring),
    ended AS (
        SELECT DISTINCT ON (h.id) h.id, h.status::text AS status
          FROM qron.jobs_history h JOIN wanted w ON h.id = w.id
         WHERE h.owner = $1
         ORDER BY h.id, h.finished_at DESC)
    SELECT w.id, l.id IS NOT NULL AS live, COALESCE(l.recurring, false) AS recurring,
           CASE WHEN l.id IS NULL THEN e.status END AS ended
      FROM wanted w
      LEFT JOIN live l ON l.id = w.id
      LEFT JOIN ended e ON e.id = w.id
     ORDER BY w.id";

/// A job a new job waits for, as [`dependencies_claim`] found it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub id: i64,
    /// Live: marked, and locked until the transaction ends.
    pub live: bool,
    pub recurring: bool,
    /// How it ended (`succeeded`, `failed`, `cancelled`), when it did.
    pub ended: Option<String>,
}

/// Claims the jobs a new job of `owner` waits for (see [`DEPENDENCIES_CLAIM`]).
pub(crate) async fn dependencies_claim<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    ids: &[i64],
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as(sql(DEPENDENCIES_CLAIM))
        .bind(owner)
        .bind(ids)
        .fetch_all(ex)
        .await
}

/// Job `$1`, just inserted, made to wait: status `$2`, `$3` jobs left to wait for, its policy
/// `$4`, whether a job it waits for already failed `$5`; its edges to the jobs `$6`; and, as
/// step `$8` of workflow `$7` (when not `NULL`), listed in it with its policy (which a retry of
/// the workflow gives it back) and kept in the history when it ends (marked as having
/// dependents).
const JOB_WAIT: &str = "
    WITH j AS (
        UPDATE qron.jobs SET status = $2::qron.job_status, waits = $3,
                             on_dependency_failure = NULLIF($4, 'cancel'), dependency_failed = $5,
                             scheduled = CASE WHEN $2 = 'ready' THEN scheduled ELSE false END,
                             has_dependents = has_dependents OR $7::bigint IS NOT NULL
         WHERE id = $1
        RETURNING id),
    edges AS (
        INSERT INTO qron.job_dependencies (job, dependency)
        SELECT $1, d FROM unnest($6::bigint[]) d
        ON CONFLICT DO NOTHING
        RETURNING 1),
    listed AS (
        INSERT INTO qron.workflow_jobs (workflow, step, job, on_dependency_failure)
        SELECT $7, $8, $1, NULLIF($4, 'cancel') WHERE $7::bigint IS NOT NULL
        RETURNING 1)
    SELECT (SELECT count(*) FROM j) + 0 * (SELECT count(*) FROM edges)
           + 0 * (SELECT count(*) FROM listed)";

/// How a new job waits (see [`JOB_WAIT`]).
pub(crate) struct Wait<'a> {
    pub status: crate::JobStatus,
    pub waits: i32,
    pub policy: crate::OnDependencyFailure,
    pub failed: bool,
    pub on: &'a [i64],
    /// The workflow and step the job is, if any.
    pub workflow: Option<(i64, &'a str)>,
}

/// Makes job `id` wait (see [`JOB_WAIT`]).
pub(crate) async fn job_wait<'e>(
    ex: impl PgExecutor<'e>,
    id: i64,
    wait: &Wait<'_>,
) -> sqlx::Result<()> {
    sqlx::query(sql(JOB_WAIT))
        .bind(id)
        .bind(wait.status.as_str())
        .bind(wait.waits)
        .bind(wait.policy.as_str())
        .bind(wait.failed)
        .bind(wait.on)
        .bind(wait.workflow.map(|w| w.0))
        .bind(wait.workflow.map(|w| w.1))
        .execute(ex)
        .await?;
    Ok(())
}

/// The jobs job `$1` waits for (all, or only `$2`), by id: each one's status (live, or its latest history row; none
/// when it was deleted) and what it recorded.
const JOB_DEPENDENCIES: &str = "
    SELECT DISTINCT ON (d.dependency) d.dependency AS id,
           COALESCE(j.status::text, h.status::text) AS status, h.output::text AS output
      FROM qron.job_dependencies d
      LEFT JOIN qron.jobs j ON j.id = d.dependency
      -- joined, not looked up one by one with a `LIMIT 1` on the finish time, which the planner
      -- may serve by walking the finish-time index back for each job
      LEFT JOIN qron.jobs_history h ON j.id IS NULL AND h.id = d.dependency
     WHERE d.job = $1 AND ($2::bigint IS NULL OR d.dependency = $2)
     ORDER BY d.dependency, h.finished_at DESC NULLS LAST";

/// The jobs job `id` waits for (see [`JOB_DEPENDENCIES`]), or only `only` among them: id,
/// status, output.
pub(crate) async fn job_dependencies<'e>(
    ex: impl PgExecutor<'e>,
    id: i64,
    only: Option<i64>,
) -> sqlx::Result<Vec<(i64, Option<String>, Option<String>)>> {
    sqlx::query_as(sql(JOB_DEPENDENCIES))
        .bind(id)
        .bind(only)
        .fetch_all(ex)
        .await
}

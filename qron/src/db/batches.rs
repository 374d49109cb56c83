//! Batches (see `crate::Batch`): a job added to the batch of a running job, and how a batch's
//! jobs ended. A batch is its callback and the jobs it waits for (`migrations/0023`); its jobs
//! and edges are written with `COPY` (`JobCopy::begin_depended_on`, `dependencies_copy`).

use crate::schema::sql;
use sqlx::PgExecutor;

/// The jobs that wait for job `$1` while it runs under lease `$2`, locked until the
/// transaction ends (so that none is released before the job added to them is counted); the
/// job's own row is locked too (it cannot end meanwhile). `NULL` when the job no longer holds
/// that lease; else the ids, none when nothing waits for it.
const BATCH_ADD_LOCK: &str = "
    WITH me AS (
        SELECT id FROM qron.jobs WHERE id = $1 AND lease_token = $2 AND status = 'running'
           FOR SHARE),
    waiting AS (
        SELECT j.id FROM qron.jobs j
         WHERE j.id = ANY(ARRAY(SELECT d.job FROM qron.job_dependencies d
                                 WHERE d.dependency = $1))
           AND j.waits > 0 AND EXISTS (SELECT 1 FROM me)
           FOR UPDATE)
    SELECT CASE WHEN EXISTS (SELECT 1 FROM me)
                THEN ARRAY(SELECT id FROM waiting ORDER BY id) END";

/// Locks a running job and the jobs that wait for it (see [`BATCH_ADD_LOCK`]).
pub(crate) async fn batch_add_lock<'e>(
    ex: impl PgExecutor<'e>,
    job: i64,
    lease_token: i64,
) -> sqlx::Result<Option<Vec<i64>>> {
    sqlx::query_scalar(sql(BATCH_ADD_LOCK))
        .bind(job)
        .bind(lease_token)
        .fetch_one(ex)
        .await
}

/// Job `$1`, just inserted, joins the batch: the jobs `$2` (locked by [`BATCH_ADD_LOCK`]) wait
/// for it too, one more each, and it is marked as having dependents.
const BATCH_ADD_LINK: &str = "
    WITH marked AS (
        UPDATE qron.jobs SET has_dependents = true WHERE id = $1 RETURNING 1),
    edges AS (
        INSERT INTO qron.job_dependencies (job, dependency)
        SELECT w, $1 FROM unnest($2::bigint[]) w
        RETURNING 1),
    counted AS (
        UPDATE qron.jobs j SET waits = j.waits + 1, revision = j.revision + 1
         WHERE j.id = ANY($2)
        RETURNING 1)
    SELECT (SELECT count(*) FROM marked) + (SELECT count(*) FROM edges)
           + (SELECT count(*) FROM counted)";

/// Links a job added to a batch (see [`BATCH_ADD_LINK`]).
pub(crate) async fn batch_add_link<'e>(
    ex: impl PgExecutor<'e>,
    job: i64,
    waiting: &[i64],
) -> sqlx::Result<()> {
    sqlx::query_scalar::<_, i64>(sql(BATCH_ADD_LINK))
        .bind(job)
        .bind(waiting)
        .fetch_one(ex)
        .await?;
    Ok(())
}

/// How the jobs job `$1` waits for stand, without what they recorded: a row per status (the
/// live ones' own, or their latest history row's; `deleted` for one gone without a trace),
/// with the ids in that status, in order.
const BATCH_RESULTS: &str = "
    SELECT s.status, array_agg(s.id ORDER BY s.id) AS ids
      FROM (SELECT DISTINCT ON (d.dependency) d.dependency AS id,
                   COALESCE(j.status::text, h.status::text, 'deleted') AS status
              FROM qron.job_dependencies d
              LEFT JOIN qron.jobs j ON j.id = d.dependency
              LEFT JOIN qron.jobs_history h ON j.id IS NULL AND h.id = d.dependency
             WHERE d.job = $1
             ORDER BY d.dependency, h.finished_at DESC NULLS LAST) s
     GROUP BY s.status";

/// The jobs job `id` waits for, by status (see [`BATCH_RESULTS`]).
pub(crate) async fn batch_results<'e>(
    ex: impl PgExecutor<'e>,
    id: i64,
) -> sqlx::Result<Vec<(String, Vec<i64>)>> {
    sqlx::query_as(sql(BATCH_RESULTS))
        .bind(id)
        .fetch_all(ex)
        .await
}

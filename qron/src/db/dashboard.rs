//! The dashboard's statements: the overview's one shared count, a keyset page of jobs, and the
//! schedules of the timeline.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::manage::{search_filters, search_query};
use crate::job::{JobRow, Search};
use crate::schema::sql;

/// Every owner's executors at `$1`, for the overview's cache: live jobs by status (and the ready
/// ones on a later attempt), the oldest due ready job, the jobs that ran and failed over the hour
/// before `$1`, and when the owner paused it. One pass over each table, whatever the viewers.
///
/// "Ran" and "failed" share one definition, so that the second never exceeds the first: a job
/// ran when its latest run started in the hour and has ended (finished jobs from the history,
/// recurring and retrying jobs from the live table: `last_run_at` is its latest run's start),
/// and failed when that run failed (a finished job failed, or a live job's latest error came
/// after its latest start). A job counts once, however often it ran.
pub(crate) const OVERVIEW: &str = "
    WITH live AS (
        SELECT owner, executor,
               count(*) FILTER (WHERE status = 'ready') AS ready,
               count(*) FILTER (WHERE status = 'ready' AND attempt > 0) AS retrying,
               count(*) FILTER (WHERE status = 'running') AS running,
               count(*) FILTER (WHERE status = 'stopped') AS stopped,
               min(run_at) FILTER (WHERE status = 'ready' AND run_at <= $1) AS oldest_due_at,
               count(*) FILTER (WHERE status <> 'running' AND last_run_at > $1 - interval '1 hour')
                   AS ran,
               count(*) FILTER (WHERE status <> 'running' AND last_run_at > $1 - interval '1 hour'
                                  AND last_error_at >= last_run_at) AS failed
          FROM qron.jobs
         GROUP BY owner, executor),
    done AS (
        SELECT owner, executor,
               count(*) FILTER (WHERE status IN ('succeeded', 'failed')) AS ran,
               count(*) FILTER (WHERE status = 'failed') AS failed
          FROM qron.jobs_history
         -- a run ends before its job finishes: the first bound only prunes the partitions
         WHERE finished_at > $1 - interval '1 hour' AND last_run_at > $1 - interval '1 hour'
         GROUP BY owner, executor),
    pauses AS (
        SELECT owner, executor, paused_at FROM qron.executor_pauses),
    names AS (
        SELECT owner, executor FROM live UNION SELECT owner, executor FROM done
        UNION SELECT owner, executor FROM pauses)
    SELECT n.owner, n.executor,
           COALESCE(l.ready, 0) AS ready, COALESCE(l.retrying, 0) AS retrying,
           COALESCE(l.running, 0) AS running, COALESCE(l.stopped, 0) AS stopped, l.oldest_due_at,
           COALESCE(d.ran, 0) + COALESCE(l.ran, 0) AS ran_hour,
           COALESCE(d.failed, 0) + COALESCE(l.failed, 0) AS failed_hour,
           p.paused_at
      FROM names n
      LEFT JOIN live l USING (owner, executor)
      LEFT JOIN done d USING (owner, executor)
      LEFT JOIN pauses p USING (owner, executor)
     ORDER BY n.owner, n.executor";

/// One owner's executor in the overview.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct OverviewRow {
    pub(crate) owner: String,
    pub(crate) executor: String,
    /// Ready jobs, retrying ones included.
    pub(crate) ready: i64,
    /// Ready jobs on a later attempt.
    pub(crate) retrying: i64,
    pub(crate) running: i64,
    pub(crate) stopped: i64,
    pub(crate) oldest_due_at: Option<DateTime<Utc>>,
    /// Jobs whose latest run started in the hour and has ended (see [`OVERVIEW`]).
    pub(crate) ran_hour: i64,
    /// Those of them whose latest run failed.
    pub(crate) failed_hour: i64,
    pub(crate) paused_at: Option<DateTime<Utc>>,
}

/// Every owner's executors at `now` (see [`OVERVIEW`]).
pub(crate) async fn overview<'e>(
    ex: impl PgExecutor<'e>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<OverviewRow>> {
    sqlx::query_as(sql(OVERVIEW)).bind(now).fetch_all(ex).await
}

/// The live workers at `$1` and the executors each serves.
const WORKERS_LIVE: &str = "
    SELECT id, executors FROM qron.workers WHERE seen_at + ttl >= $1 ORDER BY id";

/// The live workers at `now`: (id, executors).
pub(crate) async fn workers_live<'e>(
    ex: impl PgExecutor<'e>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, Vec<String>)>> {
    sqlx::query_as(sql(WORKERS_LIVE))
        .bind(now)
        .fetch_all(ex)
        .await
}

/// A page of the owner's jobs matching the search's filters (`$1`–`$10`), newest first: `$12`
/// rows with ids below `$11` (all when `NULL`). Keyset paging: no count, no offset, so a page
/// deep in a large table costs what the first one does.
const JOB_PAGE: &str = concat!(
    "SELECT * FROM qron.jobs_all",
    search_filters!(),
    "
       AND ($11::bigint IS NULL OR id < $11)
     ORDER BY id DESC
     LIMIT $12"
);

/// Up to `limit` of the owner's jobs matching `q`'s filters with ids below `before`, newest
/// first (see [`JOB_PAGE`]).
pub(crate) async fn job_page<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    q: &Search,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    search_query(JOB_PAGE, owner, q)
        .bind(before)
        .bind(limit)
        .try_map(|row| <JobRow as sqlx::FromRow<_>>::from_row(&row))
        .fetch_all(ex)
        .await
}

/// The owner's live jobs that may run before `$2`, in groups that run alike: one-off jobs by
/// executor and minute; recurring ones by executor, expression, next run and (for `@every`,
/// whose slots count from it) the instant the schedule started. Soonest first, at most `$3`
/// groups. One pass over the live jobs, whose result the timeline caches.
const SCHEDULED: &str = "
    SELECT executor, recurring,
           CASE WHEN recurring THEN expr ELSE '' END AS expr,
           CASE WHEN recurring THEN run_at ELSE date_trunc('minute', run_at) END AS run_at,
           CASE WHEN recurring AND expr LIKE '@every%' THEN start_at END AS start_at,
           count(*) AS jobs
      FROM qron.jobs
     WHERE owner = $1 AND status IN ('ready', 'running') AND run_at < $2
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 4
     LIMIT $3";

/// Live jobs that run alike, for the timeline (see [`SCHEDULED`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Scheduled {
    pub(crate) executor: String,
    pub(crate) recurring: bool,
    /// The expression of recurring jobs (empty for one-off ones).
    pub(crate) expr: String,
    pub(crate) run_at: DateTime<Utc>,
    /// When an `@every` schedule started counting.
    pub(crate) start_at: Option<DateTime<Utc>>,
    /// How many jobs.
    pub(crate) jobs: i64,
}

/// The owner's live jobs due before `until`, grouped, at most `limit` groups (see
/// [`SCHEDULED`]).
pub(crate) async fn scheduled<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    until: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Scheduled>> {
    sqlx::query_as(sql(SCHEDULED))
        .bind(owner)
        .bind(until)
        .bind(limit)
        .fetch_all(ex)
        .await
}

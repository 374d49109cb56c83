//! The registry of running workers (`qron.workers`), and the executors no worker serves.

use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Registers worker `$1` serving executors `$2` at `$3`, gone unless seen again within `$4`;
/// seen again when it is registered already.
const WORKER_SEEN: &str = "
    INSERT INTO qron.workers (id, executors, started_at, seen_at, ttl)
    VALUES ($1, $2, $3, $3, $4)
    ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at, ttl = EXCLUDED.ttl";

/// Registers a worker, or records that it was seen again (see [`WORKER_SEEN`]).
pub(crate) async fn worker_seen<'e>(
    ex: impl PgExecutor<'e>,
    id: &str,
    executors: &[&str],
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> sqlx::Result<()> {
    sqlx::query(sql(WORKER_SEEN))
        .bind(id)
        .bind(executors)
        .bind(now)
        .bind(super::duration_interval(ttl))
        .execute(ex)
        .await
        .map(|_| ())
}

/// Removes a worker that stops.
pub(crate) async fn worker_delete<'e>(ex: impl PgExecutor<'e>, id: &str) -> sqlx::Result<()> {
    sqlx::query(sql("DELETE FROM qron.workers WHERE id = $1"))
        .bind(id)
        .execute(ex)
        .await
        .map(|_| ())
}

/// Removes the workers not seen within their time to live as of `$1` (they died).
pub(crate) async fn workers_delete_gone<'e>(
    ex: impl PgExecutor<'e>,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    sqlx::query(sql("DELETE FROM qron.workers WHERE seen_at + ttl < $1"))
        .bind(now)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
}

/// The executors with due jobs that no worker alive at `$1` serves, whose oldest due job has
/// waited longer than `$2`: each with that job's run time and how many are due (counted up to
/// 10,000). Due jobs are staged (the rescuers of every worker stage every executor's), so the
/// executors are found by skipping through the lease index (one probe each, however many jobs
/// wait); an unserved executor's part of it is then read whole (its jobs are not leased).
const EXECUTORS_UNSERVED: &str = "
    WITH RECURSIVE e AS (
        (SELECT executor FROM qron.jobs WHERE status = 'ready' AND NOT scheduled
          ORDER BY executor LIMIT 1)
        UNION ALL
        SELECT (SELECT j.executor FROM qron.jobs j
                 WHERE j.status = 'ready' AND NOT j.scheduled AND j.executor > e.executor
                 ORDER BY j.executor LIMIT 1)
          FROM e WHERE e.executor IS NOT NULL),
    unserved AS (
        SELECT e.executor FROM e
         WHERE e.executor IS NOT NULL
           AND NOT EXISTS (SELECT FROM qron.workers w
                            WHERE e.executor = ANY(w.executors) AND w.seen_at + w.ttl >= $1))
    SELECT u.executor, oldest.run_at AS oldest_due,
           (SELECT count(*) FROM (SELECT FROM qron.jobs j
                                   WHERE j.status = 'ready' AND NOT j.scheduled
                                     AND j.executor = u.executor AND j.run_at <= $1
                                   LIMIT 10000) d) AS due
      FROM unserved u
      CROSS JOIN LATERAL (SELECT min(j.run_at) AS run_at FROM qron.jobs j
                           WHERE j.status = 'ready' AND NOT j.scheduled
                             AND j.executor = u.executor) oldest
     WHERE oldest.run_at < $1 - $2
     ORDER BY u.executor";

/// An executor whose jobs wait with no worker to serve them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Unserved {
    pub executor: String,
    /// The run time of its oldest waiting job.
    pub oldest_due: DateTime<Utc>,
    /// Its jobs due, counted up to 10,000.
    pub due: i64,
}

/// The executors no worker serves whose jobs have waited longer than `after` (see
/// [`EXECUTORS_UNSERVED`]).
pub(crate) async fn executors_unserved<'e>(
    ex: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    after: std::time::Duration,
) -> sqlx::Result<Vec<Unserved>> {
    sqlx::query_as(sql(EXECUTORS_UNSERVED))
        .bind(now)
        .bind(super::duration_interval(after))
        .fetch_all(ex)
        .await
}

/// For each of executors `$1`: its due jobs at `$2` waiting to be leased (not those of an
/// owner who paused it), and the oldest one's run time (an index range of the lease index per
/// executor).
const EXECUTORS_QUEUE: &str = "
    SELECT e.executor, count(j.id), min(j.run_at)
      FROM unnest($1::text[]) AS e(executor)
      LEFT JOIN qron.jobs j
        ON j.executor = e.executor AND j.status = 'ready' AND NOT j.scheduled
       AND j.run_at <= $2
       AND NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                        WHERE p.executor = j.executor AND p.owner = j.owner)
     GROUP BY e.executor";

/// Each executor's queue (see [`EXECUTORS_QUEUE`]): (executor, due jobs, oldest run time).
pub(crate) async fn executors_queue<'e>(
    ex: impl PgExecutor<'e>,
    executors: &[&str],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, i64, Option<DateTime<Utc>>)>> {
    sqlx::query_as(sql(EXECUTORS_QUEUE))
        .bind(executors)
        .bind(now)
        .fetch_all(ex)
        .await
}

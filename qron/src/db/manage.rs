//! The client's reads and changes of existing jobs: get, update, delete, stop, restart, search.

use super::partition_key_of;
use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, PgExecutor};

use crate::job::{JobRef, JobRow, Search};

/// A job by id (`$2`), live or finished, or by executor and name (`$3`, `$4`): the live one,
/// else the last finished. The owner is `$1`.
const JOB_GET: &str = "
    SELECT * FROM qron.jobs_all
     WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4))
     ORDER BY finished_at DESC NULLS FIRST
     LIMIT 1";

/// A job by id or name, live or finished (by name: the live one, else the last finished).
pub(crate) async fn job_get<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<JobRow>> {
    bind_target(sqlx::query_as(sql(JOB_GET)), owner, target)
        .fetch_optional(ex)
        .await
}

/// Binds the owner and the job a statement acts on, as `$1` to `$4`: the owner, then the id,
/// or the executor and the name (the other form's parameters are `NULL`). Each statement finds
/// its job with `(id = $2 OR (executor = $3 AND name = $4))`: one statement serves both forms,
/// and each form reaches its own index.
pub(super) fn bind_target<'q, T>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>,
    owner: &str,
    target: &JobRef,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments> {
    let (id, executor, name) = match target {
        JobRef::Id(id) => (Some(*id), None, None),
        JobRef::Name { executor, name } => (None, Some(executor.clone()), Some(name.clone())),
    };
    q.bind(owner.to_owned()).bind(id).bind(executor).bind(name)
}

/// The changes of an update, validated; `None` leaves a column as it is.
#[derive(Debug, Default)]
pub(crate) struct JobChanges {
    pub expr: Option<String>,
    pub recurring: Option<bool>,
    pub run_at: Option<DateTime<Utc>>,
    /// With a new expression: the instant it counts from.
    pub start_at: Option<DateTime<Utc>>,
    pub payload: Option<String>,
    pub meta: Option<String>,
    pub timeout: Option<PgInterval>,
    pub max_attempts: Option<i32>,
    /// A new priority, and how far it puts the job back in the lease order (microseconds).
    pub priority: Option<(i16, i64)>,
    pub if_revision: Option<i64>,
}

/// Applies changes to a live job (see [`bind_target`] for `$1`–`$4`); `$5`–`$12`, `$14` and
/// `$15` are the changes (`NULL`: unchanged), `$13` the revision the job must have.
const JOB_UPDATE: &str = concat!(
    "
    UPDATE qron.jobs SET
           expr = COALESCE($5, expr), recurring = COALESCE($6, recurring),
           run_at = COALESCE($7, run_at), slot_at = COALESCE($7, slot_at),
           scheduled = COALESCE($7, run_at) > now() + interval '2 seconds',
           payload = COALESCE($8::jsonb, payload), meta = COALESCE($9::jsonb, meta),
           bytes = CASE WHEN $8 IS NULL AND $9 IS NULL THEN bytes
                        ELSE octet_length(COALESCE($8::text, payload::text))
                             + octet_length(COALESCE($9::text, meta::text)) END,
           timeout = COALESCE($10, timeout), max_attempts = COALESCE($11, max_attempts),
           -- a new schedule starts its attempts afresh; a lower limit caps them
           attempt = CASE WHEN $5 IS NOT NULL THEN 0
                          ELSE LEAST(attempt, COALESCE($11, max_attempts)) END,
           start_at = COALESCE($12, start_at),
           priority = COALESCE($14, priority), priority_delay = COALESCE($15, priority_delay),
           -- a new payload moves the job's partition key
           partition_key = CASE WHEN $8 IS NULL THEN partition_key ELSE ",
    partition_key_of!("qron.jobs.executor", "qron.jobs.owner", "$8::jsonb"),
    " END,
           revision = revision + 1, updated_at = now()
     WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4))
       AND ($13::bigint IS NULL OR revision = $13)
       -- a job that waits, or is waited for, runs once (see `job_in_dependencies`)
       AND NOT (COALESCE($6, false) AND (waits > 0 OR has_dependents))
    RETURNING *"
);

/// Whether a live job (see [`bind_target`]) waits for other jobs or is waited for: it runs once
/// (a recurring job never ends, and would hold its dependents forever).
const JOB_IN_DEPENDENCIES: &str = "
    SELECT waits > 0 OR has_dependents FROM qron.jobs
     WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4))";

/// Whether a live job waits for other jobs or is waited for (see [`JOB_IN_DEPENDENCIES`]).
pub(crate) async fn job_in_dependencies<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<bool> {
    let row: Option<(bool,)> = bind_target(sqlx::query_as(sql(JOB_IN_DEPENDENCIES)), owner, target)
        .fetch_optional(ex)
        .await?;
    Ok(row.is_some_and(|r| r.0))
}

/// Applies changes to a live job.
pub(crate) async fn job_update<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
    c: &JobChanges,
) -> sqlx::Result<Option<JobRow>> {
    bind_target(sqlx::query_as(sql(JOB_UPDATE)), owner, target)
        .bind(c.expr.clone())
        .bind(c.recurring)
        .bind(c.run_at)
        .bind(c.payload.clone())
        .bind(c.meta.clone())
        .bind(c.timeout)
        .bind(c.max_attempts)
        .bind(c.start_at)
        .bind(c.if_revision)
        .bind(c.priority.map(|p| p.0))
        .bind(c.priority.map(|p| p.1))
        .fetch_optional(ex)
        .await
}

/// Deletes a live job (see [`bind_target`]); the jobs that wait for it are released as after
/// a failure (see `migrations/0023_dependencies.sql`).
const JOB_DELETE: &str = "
    WITH done AS (
        DELETE FROM qron.jobs
         WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4))
        RETURNING *)
    SELECT d.*, (SELECT count(*) FROM (
                     SELECT qron.dependents_release(ARRAY[d.id], ARRAY['deleted'])
                      WHERE d.has_dependents) r) AS released
      FROM done d";

/// Deletes a finished job, by id.
const JOB_HISTORY_DELETE: &str = "
    DELETE FROM qron.jobs_history WHERE owner = $1 AND id = $2 RETURNING *";

/// Deletes a live job, or by id a finished one.
pub(crate) async fn job_delete(
    conn: &mut PgConnection,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<JobRow>> {
    if let Some(job) = bind_target(sqlx::query_as(sql(JOB_DELETE)), owner, target)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(Some(job));
    }
    match target {
        JobRef::Id(id) => {
            sqlx::query_as(sql(JOB_HISTORY_DELETE))
                .bind(owner)
                .bind(id)
                .fetch_optional(conn)
                .await
        }
        JobRef::Name { .. } => Ok(None),
    }
}

/// Pauses a live job (see [`bind_target`]).
const JOB_STOP: &str = "
    UPDATE qron.jobs SET status = 'stopped', revision = revision + 1, updated_at = now()
     WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4))
    RETURNING *";

/// Pauses a live job.
pub(crate) async fn job_stop<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<JobRow>> {
    bind_target(sqlx::query_as(sql(JOB_STOP)), owner, target)
        .fetch_optional(ex)
        .await
}

/// Locks a live job (see [`bind_target`]) for a read-modify-write.
const JOB_LOCK: &str = "
    SELECT id, expr, recurring, run_at, start_at FROM qron.jobs
     WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4))
       FOR UPDATE";

/// Locks a live job for a read-modify-write: its id, expression, kind, run time and start.
pub(crate) async fn job_lock(
    conn: &mut PgConnection,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<(i64, String, bool, DateTime<Utc>, DateTime<Utc>)>> {
    bind_target(sqlx::query_as(sql(JOB_LOCK)), owner, target)
        .fetch_optional(conn)
        .await
}

/// Makes a locked job ready again (still running if its lease is held; waiting while jobs it
/// waits for have not ended), due at `$3`.
const JOB_RESTART: &str = "
    UPDATE qron.jobs SET
           status = CASE WHEN lease_expires_at IS NOT NULL THEN 'running'
                         WHEN waits > 0 THEN 'waiting'
                         ELSE 'ready' END::qron.job_status,
           run_at = $3, slot_at = $3, scheduled = $3 > now() + interval '2 seconds',
           revision = revision + 1, updated_at = now()
     WHERE owner = $1 AND id = $2
    RETURNING *";

/// Makes a locked job ready again, due at `run_at` (still running if its lease is held).
pub(crate) async fn job_restart(
    conn: &mut PgConnection,
    owner: &str,
    id: i64,
    run_at: DateTime<Utc>,
) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(sql(JOB_RESTART))
        .bind(owner)
        .bind(id)
        .bind(run_at)
        .fetch_optional(conn)
        .await
}

/// Makes a ready live job (see [`bind_target`]) due at `$5`, and wakes idle workers (on commit).
const JOB_RUN_NOW: &str = "
    WITH j AS (
        UPDATE qron.jobs SET run_at = $5, scheduled = false, revision = revision + 1,
               updated_at = $5
         WHERE owner = $1 AND (id = $2 OR (executor = $3 AND name = $4)) AND status = 'ready'
        RETURNING *)
    SELECT j.*, pg_notify('qron_jobs', j.executor) AS notified FROM j";

/// Makes a ready job due at `now` (its slot stays: a recurring job's occurrence runs early,
/// and the next follows the schedule).
pub(crate) async fn job_run_now<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<JobRow>> {
    bind_target(sqlx::query_as(sql(JOB_RUN_NOW)), owner, target)
        .bind(now)
        .fetch_optional(ex)
        .await
}

/// Moves finished job `$2` of owner `$1` from the history back to the live jobs, due at `$3`,
/// with a fresh attempt budget and (when `$4` is not `NULL`) a new payload; its executions and
/// errors stay. Wakes idle workers (on commit).
const JOB_RETRY: &str = concat!(
    "
    WITH moved AS (
        DELETE FROM qron.jobs_history WHERE owner = $1 AND id = $2 RETURNING *),
    j AS (
        INSERT INTO qron.jobs (id, executor, owner, name, expr, recurring, status, run_at,
                               slot_at, payload, meta, attempt, executions, max_attempts,
                               timeout, revision, last_error, last_error_at, created_at,
                               updated_at, start_at, last_run_at, errors, bytes, scheduled,
                               priority, priority_delay, partition_key)
        SELECT id, executor, owner, name, expr, recurring, 'ready', $3, $3,
               COALESCE($4::jsonb, payload), meta, 0, executions, max_attempts, timeout,
               revision + 1, last_error, last_error_at, created_at, $3, start_at, last_run_at,
               errors, octet_length(COALESCE($4::text, payload::text)) + octet_length(meta::text),
               $3 > now() + interval '2 seconds', priority, priority * $5, ",
    partition_key_of!(
        "moved.executor",
        "moved.owner",
        "COALESCE($4::jsonb, moved.payload)"
    ),
    "
          FROM moved
        RETURNING *)
    SELECT j.*, pg_notify('qron_jobs', j.executor) AS notified FROM j"
);

/// Runs a finished job again (see [`JOB_RETRY`]), at its priority, put back by
/// `priority_step` microseconds a level (see `job::priority`).
pub(crate) async fn job_retry<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    id: i64,
    now: DateTime<Utc>,
    payload: Option<String>,
    priority_step: i64,
) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(sql(JOB_RETRY))
        .bind(owner)
        .bind(id)
        .bind(now)
        .bind(payload)
        .bind(priority_step)
        .fetch_optional(ex)
        .await
}

/// The search's filters, `$1`–`$10`: the owner, then each of [`Search`]'s filters, `NULL` (or
/// an empty array) for none.
macro_rules! search_filters {
    () => {
        "
     WHERE owner = $1
       AND ($2::text IS NULL OR executor = $2)
       AND (cardinality($3::text[]) = 0 OR status = ANY($3)
            OR ('retrying' = ANY($3) AND status = 'ready' AND attempt > 0))
       -- the name, or a part of it (`NameMatch::like_pattern`: planned for the pattern, a whole
       -- name is looked up by the (owner, name) index, a part by the trigram index)
       AND ($4::text IS NULL OR name LIKE $4)
       AND ($5::bool IS NULL OR recurring = $5)
       AND ($6::timestamptz IS NULL OR created_at >= $6)
       AND ($7::timestamptz IS NULL OR created_at < $7)
       AND ($8::timestamptz IS NULL OR run_at >= $8)
       AND ($9::timestamptz IS NULL OR run_at < $9)
       AND ($10::jsonb IS NULL OR meta @> $10)"
    };
}
#[cfg(feature = "dashboard")]
pub(crate) use search_filters;

/// The order of a search, `$11`.
macro_rules! search_order {
    () => {
        "
           CASE WHEN $11 = 'created_asc' THEN created_at END ASC,
           CASE WHEN $11 = 'created_desc' THEN created_at END DESC,
           CASE WHEN $11 = 'run_at_asc' THEN run_at END ASC,
           CASE WHEN $11 = 'run_at_desc' THEN run_at END DESC,
           CASE WHEN $11 IN ('created_desc', 'run_at_desc') THEN id END DESC,
           id ASC"
    };
}

/// The order and page of a search: `$11`, `$12` rows from `$13`.
macro_rules! search_page {
    () => {
        concat!(
            "
     ORDER BY",
            search_order!(),
            "
     LIMIT $12 OFFSET $13"
        )
    };
}

/// [`search_filters`] for a search by a whole name (`$4`, the name itself) whose other
/// filters are all in the history's index of names (see `migrations/0029_history_name_covering.sql`):
/// no meta, no jobs waiting to be retried (`$10` and `retrying` unused).
macro_rules! search_named_filters {
    () => {
        "
     WHERE owner = $1 AND name = $4
       AND ($2::text IS NULL OR executor = $2)
       AND (cardinality($3::text[]) = 0 OR status = ANY($3))
       AND ($5::bool IS NULL OR recurring = $5)
       AND ($6::timestamptz IS NULL OR created_at >= $6)
       AND ($7::timestamptz IS NULL OR created_at < $7)
       AND ($8::timestamptz IS NULL OR run_at >= $8)
       AND ($9::timestamptz IS NULL OR run_at < $9)
       AND $10::jsonb IS NULL"
    };
}

/// A search by a whole name (see [`search_named_filters`]) in two steps, with `total` the
/// count (`count(*) OVER ()`, or `0`): the page chosen from the index of names alone (an
/// index-only scan of each day partition of the history), then its rows read, a finished job's
/// from its day's partition by its finish time and id. A name that thousands of finished jobs
/// carry costs a read of their index entries, not of their rows. A prepared statement: its plan
/// holds for any name.
macro_rules! job_search_named {
    ($total:expr) => {
        concat!(
            "
    WITH hits AS MATERIALIZED (
        SELECT id AS hit, finished_at AS hit_finished, ",
            $total,
            " AS total,
               row_number() OVER (ORDER BY",
            search_order!(),
            ") AS nth
          FROM qron.jobs_all",
            search_named_filters!(),
            search_page!(),
            ")
    SELECT a.*, h.total
      FROM hits h
      CROSS JOIN LATERAL (
           SELECT * FROM qron.jobs_all f
            WHERE f.finished_at = h.hit_finished AND f.id = h.hit AND f.owner = $1
           UNION ALL
           SELECT * FROM qron.jobs_all l
            WHERE h.hit_finished IS NULL AND l.finished_at IS NULL AND l.id = h.hit
              AND l.owner = $1) a
     ORDER BY h.nth"
        )
    };
}

/// A page of the owner's jobs (`$1`) matching the filters `$2`–`$10` (`NULL` or empty:
/// any), in the order `$11`, `$12` rows from `$13`, each with how many match in all.
const JOB_SEARCH: &str = concat!(
    "SELECT *, count(*) OVER () AS total FROM qron.jobs_all",
    search_filters!(),
    search_page!()
);

/// [`JOB_SEARCH`] without the count: a page only.
const JOB_SEARCH_PAGE: &str = concat!(
    "SELECT *, 0::bigint AS total FROM qron.jobs_all",
    search_filters!(),
    search_page!()
);

/// [`JOB_SEARCH`] for a search by a whole name (see [`job_search_named`]).
const JOB_SEARCH_NAMED: &str = job_search_named!("count(*) OVER ()");

/// [`JOB_SEARCH_PAGE`] for a search by a whole name (see [`job_search_named`]).
const JOB_SEARCH_NAMED_PAGE: &str = job_search_named!("0::bigint");

/// How many of the owner's jobs match: [`JOB_SEARCH`] without the page, for a page past the
/// end.
const JOB_SEARCH_COUNT: &str = concat!("SELECT count(*) FROM qron.jobs_all", search_filters!());

/// `statement` (which starts with [`search_filters`]' parameters) with the owner and `q`'s
/// filters bound as `$1`–`$10`.
pub(crate) fn search_query<'q>(
    statement: &'static str,
    owner: &str,
    q: &Search,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    // Planned for its values each time (an unnamed statement): a plan for any values reads
    // every row, as `$4 IS NULL OR name LIKE …` can use no index.
    search_bound(
        sqlx::query(sql(statement)).persistent(false),
        owner,
        q,
        q.name.as_ref().map(crate::job::NameMatch::like_pattern),
    )
}

/// Whether `q` is a search by a whole name that [`job_search_named`] serves: a name, and no
/// other filter outside the history's index of names.
fn searches_a_whole_name(q: &Search) -> bool {
    matches!(q.name, Some(crate::job::NameMatch::Exactly(_)))
        && q.meta_contains.is_none()
        && !q.retrying
}

/// `query` with the owner, `q`'s filters and `name` (the name's parameter as the statement
/// takes it) bound as `$1`–`$10`.
fn search_bound<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    owner: &str,
    q: &Search,
    name: Option<String>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut statuses: Vec<String> = q.statuses.iter().map(|s| s.as_str().to_owned()).collect();
    if q.retrying {
        // The jobs waiting to be retried: a filter of its own, not a stored status.
        statuses.push("retrying".to_owned());
    }
    query
        .bind(owner.to_owned())
        .bind(q.executor.clone())
        .bind(statuses)
        .bind(name)
        .bind(q.recurring)
        .bind(q.created.0)
        .bind(q.created.1)
        .bind(q.run.0)
        .bind(q.run.1)
        .bind(q.meta_contains.clone().map(sqlx::types::Json))
}

/// A page of the owner's jobs matching `q`, and how many match in all when `with_total`
/// (else 0); `None` when the page's rows come to more than `max_bytes` (as stored), which are
/// then not all read.
pub(crate) async fn job_search(
    conn: &mut PgConnection,
    owner: &str,
    q: &Search,
    with_total: bool,
    max_bytes: usize,
) -> sqlx::Result<Option<(Vec<JobRow>, i64)>> {
    use futures_util::TryStreamExt as _;
    use sqlx::{Row as _, ValueRef as _};
    let filters = |statement: &'static str| search_query(statement, owner, q);
    let page = match (searches_a_whole_name(q), with_total) {
        (true, total) => search_bound(
            sqlx::query(sql(if total {
                JOB_SEARCH_NAMED
            } else {
                JOB_SEARCH_NAMED_PAGE
            })),
            owner,
            q,
            q.name.as_ref().map(|n| n.text().to_owned()),
        ),
        (false, true) => filters(JOB_SEARCH),
        (false, false) => filters(JOB_SEARCH_PAGE),
    };
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    {
        let mut stream = page
            .bind(q.order.as_str())
            .bind(q.limit)
            .bind(q.offset)
            .fetch(&mut *conn);
        while let Some(row) = stream.try_next().await? {
            for i in 0..row.len() {
                let raw = row.try_get_raw(i)?;
                bytes += if raw.is_null() {
                    0
                } else {
                    raw.as_bytes().map_or(0, <[u8]>::len)
                };
            }
            if bytes > max_bytes {
                return Ok(None);
            }
            rows.push(row);
        }
    }
    let total = match rows.first() {
        _ if !with_total => 0,
        Some(r) => r.try_get("total")?,
        None if q.offset == 0 => 0,
        None => filters(JOB_SEARCH_COUNT)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?,
    };
    let jobs = rows
        .iter()
        .map(<JobRow as sqlx::FromRow<_>>::from_row)
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Some((jobs, total)))
}

#[cfg(test)]
mod tests;

//! The client's reads and changes of existing jobs: get, update, delete, stop, restart, search.

use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, PgExecutor};

use crate::job::{JobRef, JobRow, Search};

const GET_BY_ID: &str = concat!(
    "SELECT ",
    live_columns!(),
    " FROM qron.jobs WHERE owner = $1 AND id = $2
     UNION ALL
     SELECT ",
    history_columns!(),
    " FROM qron.jobs_history WHERE owner = $1 AND id = $2
     LIMIT 1"
);

const GET_BY_NAME: &str = concat!(
    "SELECT * FROM (SELECT ",
    live_columns!(),
    " FROM qron.jobs WHERE owner = $1 AND executor = $2 AND name = $3
     UNION ALL
     SELECT ",
    history_columns!(),
    " FROM qron.jobs_history WHERE owner = $1 AND executor = $2 AND name = $3) j
     ORDER BY finished_at DESC NULLS FIRST
     LIMIT 1"
);

/// A job by id or name, live or finished (by name: the live one, else the last finished).
pub(crate) async fn job_get<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<JobRow>> {
    match target {
        JobRef::Id(id) => {
            sqlx::query_as(GET_BY_ID)
                .bind(owner)
                .bind(id)
                .fetch_optional(ex)
                .await
        }
        JobRef::Name { executor, name } => {
            sqlx::query_as(GET_BY_NAME)
                .bind(owner)
                .bind(executor)
                .bind(name)
                .fetch_optional(ex)
                .await
        }
    }
}

/// A statement on one live job, in two forms: by id and by executor and name. The owner is
/// `$1`, the statement's own parameters come next, and the target last (`$id`, or `$executor`
/// and `$name`), so both forms bind the same values in the same order.
macro_rules! by_ref {
    ($head:expr, $tail:expr, $id:literal, $executor:literal, $name:literal) => {
        (
            concat!($head, " WHERE owner = $1 AND id = ", $id, " ", $tail),
            concat!(
                $head,
                " WHERE owner = $1 AND executor = ",
                $executor,
                " AND name = ",
                $name,
                " ",
                $tail
            ),
        )
    };
}

/// Runs one of the two forms of a [`by_ref!`] statement for `target`: the owner, then what
/// `bind` adds, then the target.
async fn job_by_ref<'e, T>(
    ex: impl PgExecutor<'e>,
    sql: (&'static str, &'static str),
    owner: &str,
    target: &JobRef,
    bind: impl FnOnce(
        sqlx::query::QueryAs<'static, sqlx::Postgres, T, sqlx::postgres::PgArguments>,
    )
        -> sqlx::query::QueryAs<'static, sqlx::Postgres, T, sqlx::postgres::PgArguments>,
) -> sqlx::Result<Option<T>>
where
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let q = match target {
        JobRef::Id(id) => bind(sqlx::query_as(sql.0).bind(owner.to_owned())).bind(*id),
        JobRef::Name { executor, name } => bind(sqlx::query_as(sql.1).bind(owner.to_owned()))
            .bind(executor.clone())
            .bind(name.clone()),
    };
    q.fetch_optional(ex).await
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
    pub if_revision: Option<i64>,
}

/// The changes are `$2`–`$10` (`NULL`: unchanged), the target `$11` (or `$11`, `$12`).
const UPDATE: (&str, &str) = by_ref!(
    "UPDATE qron.jobs SET
       expr = COALESCE($2, expr), recurring = COALESCE($3, recurring),
       run_at = COALESCE($4, run_at), slot_at = COALESCE($4, slot_at),
       payload = COALESCE($5::jsonb, payload),
       meta = COALESCE($6::jsonb, meta), timeout = COALESCE($7, timeout),
       max_attempts = COALESCE($8, max_attempts),
       attempt = CASE WHEN $2 IS NOT NULL THEN 0 ELSE LEAST(attempt, COALESCE($8, max_attempts)) END,
       start_at = COALESCE($10, start_at),
       revision = revision + 1, updated_at = now()",
    concat!(
        "AND ($9::bigint IS NULL OR revision = $9) RETURNING ",
        live_columns!()
    ),
    "$11",
    "$11",
    "$12"
);

/// Applies changes to a live job.
pub(crate) async fn job_update<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
    c: &JobChanges,
) -> sqlx::Result<Option<JobRow>> {
    job_by_ref(ex, UPDATE, owner, target, |q| {
        q.bind(c.expr.clone())
            .bind(c.recurring)
            .bind(c.run_at)
            .bind(c.payload.clone())
            .bind(c.meta.clone())
            .bind(c.timeout)
            .bind(c.max_attempts)
            .bind(c.if_revision)
            .bind(c.start_at)
    })
    .await
}

const DELETE_LIVE: (&str, &str) = by_ref!(
    "DELETE FROM qron.jobs",
    concat!("RETURNING ", live_columns!()),
    "$2",
    "$2",
    "$3"
);

const DELETE_HISTORY: &str = concat!(
    "DELETE FROM qron.jobs_history WHERE owner = $1 AND id = $2 RETURNING ",
    history_columns!()
);

/// Deletes a live job, or by id a finished one.
pub(crate) async fn job_delete(
    conn: &mut PgConnection,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<JobRow>> {
    if let Some(job) = job_by_ref(&mut *conn, DELETE_LIVE, owner, target, |q| q).await? {
        return Ok(Some(job));
    }
    match target {
        JobRef::Id(id) => {
            sqlx::query_as(DELETE_HISTORY)
                .bind(owner)
                .bind(id)
                .fetch_optional(conn)
                .await
        }
        JobRef::Name { .. } => Ok(None),
    }
}

const STOP: (&str, &str) = by_ref!(
    "UPDATE qron.jobs SET status = 'paused', revision = revision + 1, updated_at = now()",
    concat!("RETURNING ", live_columns!()),
    "$2",
    "$2",
    "$3"
);

/// Pauses a live job.
pub(crate) async fn job_stop<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<JobRow>> {
    job_by_ref(ex, STOP, owner, target, |q| q).await
}

const LOCK: (&str, &str) = by_ref!(
    "SELECT id, expr, recurring, run_at, start_at FROM qron.jobs",
    "FOR UPDATE",
    "$2",
    "$2",
    "$3"
);

/// Locks a live job for a read-modify-write: its id, expression, kind, run time and start.
pub(crate) async fn job_lock(
    conn: &mut PgConnection,
    owner: &str,
    target: &JobRef,
) -> sqlx::Result<Option<(i64, String, bool, DateTime<Utc>, DateTime<Utc>)>> {
    job_by_ref(conn, LOCK, owner, target, |q| q).await
}

const RESTART: &str = concat!(
    "UPDATE qron.jobs SET
       status = CASE WHEN lease_expires_at IS NOT NULL THEN 'running' ELSE 'ready' END::qron.job_status,
       run_at = $3, slot_at = $3, revision = revision + 1, updated_at = now()
     WHERE owner = $1 AND id = $2
     RETURNING ",
    live_columns!()
);

/// Makes a locked job ready again, due at `run_at` (still running if its lease is held).
pub(crate) async fn job_restart(
    conn: &mut PgConnection,
    owner: &str,
    id: i64,
    run_at: DateTime<Utc>,
) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(RESTART)
        .bind(owner)
        .bind(id)
        .bind(run_at)
        .fetch_optional(conn)
        .await
}

macro_rules! search_sql {
    ($select:expr) => {
        concat!(
            "WITH j AS (
               SELECT ",
            live_columns!(),
            " FROM qron.jobs WHERE owner = $1
               UNION ALL
               SELECT ",
            history_columns!(),
            " FROM qron.jobs_history WHERE owner = $1)
             SELECT ",
            $select,
            " FROM j
              WHERE ($2::text IS NULL OR executor = $2)
                AND (cardinality($3::text[]) = 0 OR status = ANY($3))
                AND ($4::text IS NULL OR strpos(name, $4) > 0)
                AND ($5::bool IS NULL OR recurring = $5)
                AND ($6::timestamptz IS NULL OR created_at >= $6)
                AND ($7::timestamptz IS NULL OR created_at < $7)
                AND ($8::timestamptz IS NULL OR run_at >= $8)
                AND ($9::timestamptz IS NULL OR run_at < $9)
                AND ($10::jsonb IS NULL OR meta @> $10)"
        )
    };
}

const SEARCH_PAGE: &str = concat!(
    search_sql!("*, count(*) OVER () AS total"),
    " ORDER BY
        CASE WHEN $11 = 'created_asc' THEN created_at END ASC,
        CASE WHEN $11 = 'created_desc' THEN created_at END DESC,
        CASE WHEN $11 = 'run_at_asc' THEN run_at END ASC,
        CASE WHEN $11 = 'run_at_desc' THEN run_at END DESC,
        CASE WHEN $11 IN ('created_desc', 'run_at_desc') THEN id END DESC,
        id ASC
      LIMIT $12 OFFSET $13"
);

const SEARCH_COUNT: &str = search_sql!("count(*)");

/// A page of the owner's jobs matching `q`, and how many match in all.
pub(crate) async fn job_search(
    conn: &mut PgConnection,
    owner: &str,
    q: &Search,
) -> sqlx::Result<(Vec<JobRow>, i64)> {
    use sqlx::Row as _;
    let statuses: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
    let meta = q
        .meta_contains
        .as_ref()
        .map(|m| sqlx::types::Json(m.clone()));
    macro_rules! filters {
        ($sql:expr) => {
            sqlx::query($sql)
                .bind(owner)
                .bind(&q.executor)
                .bind(&statuses)
                .bind(&q.name_contains)
                .bind(q.recurring)
                .bind(q.created.0)
                .bind(q.created.1)
                .bind(q.run.0)
                .bind(q.run.1)
                .bind(&meta)
        };
    }
    let rows = filters!(SEARCH_PAGE)
        .bind(q.order.as_str())
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(&mut *conn)
        .await?;
    let total = match rows.first() {
        Some(r) => r.try_get("total")?,
        None if q.offset == 0 => 0,
        None => filters!(SEARCH_COUNT)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?,
    };
    let jobs = rows
        .iter()
        .map(<JobRow as sqlx::FromRow<_>>::from_row)
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok((jobs, total))
}

// ---------------------------------------------------------------------------------------------
// The worker's statements.

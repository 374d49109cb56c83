//! Every SQL statement of the management API, one function per statement, named noun first.

use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, PgExecutor};

use crate::job::{JobRef, JobRow, OnConflict, Search};

/// The columns of a job, for `RETURNING` and `SELECT` on the live table.
macro_rules! live_columns {
    () => {
        "id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload, \
         meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at, \
         created_at, updated_at, start_at, last_run_at, NULL::timestamptz AS finished_at"
    };
}

/// The same columns on the history table.
macro_rules! history_columns {
    () => {
        "id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload, \
         meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at, \
         created_at, updated_at, start_at, last_run_at, finished_at"
    };
}

/// A validated job, ready to insert.
#[derive(Debug, Clone)]
pub(crate) struct InsertRow {
    pub executor: String,
    pub name: Option<String>,
    pub expr: String,
    pub recurring: bool,
    pub run_at: DateTime<Utc>,
    pub payload: String,
    pub meta: String,
    pub max_attempts: i32,
    pub timeout: PgInterval,
    pub start_at: DateTime<Utc>,
}

/// One job's `INSERT`, with what follows it on conflict; it wakes idle workers (on commit)
/// when the job is due within a second.
macro_rules! insert_one {
    ($conflict:literal) => {
        concat!(
            "WITH j AS (
               INSERT INTO qron.jobs (executor, owner, name, expr, recurring, run_at, slot_at,
                   payload, meta, max_attempts, timeout, start_at)
               VALUES ($1, $2, $3, $4, $5, $6, $6, $7::jsonb, $8::jsonb, $9, $10, $11) ",
            $conflict,
            " RETURNING ",
            live_columns!(),
            ")
             SELECT j.*, CASE WHEN j.status = 'ready' AND j.run_at <= now() + interval '1 second'
                              THEN pg_notify('qron_jobs', j.executor) END AS notified
               FROM j"
        )
    };
}

const INSERT_ERROR: &str = insert_one!("");

const INSERT_KEEP: &str =
    insert_one!("ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO NOTHING");

const INSERT_REPLACE: &str = insert_one!(
    "ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO UPDATE SET
       expr = EXCLUDED.expr, recurring = EXCLUDED.recurring, run_at = EXCLUDED.run_at,
       slot_at = EXCLUDED.slot_at,
       payload = EXCLUDED.payload, meta = EXCLUDED.meta, max_attempts = EXCLUDED.max_attempts,
       timeout = EXCLUDED.timeout, start_at = EXCLUDED.start_at, attempt = 0,
       revision = qron.jobs.revision + 1, updated_at = now()"
);

/// Inserts one job; `None` when the name was taken and the policy is to keep the other job.
pub(crate) async fn job_insert<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    row: &InsertRow,
    policy: OnConflict,
) -> sqlx::Result<Option<JobRow>> {
    let sql = match policy {
        OnConflict::Error => INSERT_ERROR,
        OnConflict::Keep => INSERT_KEEP,
        OnConflict::Replace => INSERT_REPLACE,
    };
    sqlx::query_as(sql)
        .bind(&row.executor)
        .bind(owner)
        .bind(&row.name)
        .bind(&row.expr)
        .bind(row.recurring)
        .bind(row.run_at)
        .bind(&row.payload)
        .bind(&row.meta)
        .bind(row.max_attempts)
        .bind(row.timeout)
        .bind(row.start_at)
        .fetch_optional(ex)
        .await
}

macro_rules! insert_many {
    ($conflict:literal) => {
        concat!(
            "INSERT INTO qron.jobs (executor, owner, name, expr, recurring, run_at, slot_at, \
               payload, meta, max_attempts, timeout, start_at)
             SELECT executor, $1, name, expr, recurring, run_at, run_at, payload::jsonb, meta::jsonb,
                    max_attempts, timeout, start_at
               FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                           $7::text[], $8::text[], $9::int[], $10::interval[], $11::timestamptz[])
                    WITH ORDINALITY
                    AS t(executor, name, expr, recurring, run_at, payload, meta, max_attempts,
                         timeout, start_at, ord)
              ORDER BY ord ",
            $conflict,
            " RETURNING id, executor, name"
        )
    };
}

const INSERT_MANY_ERROR: &str = insert_many!("");
const INSERT_MANY_KEEP: &str =
    insert_many!("ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO NOTHING");
const INSERT_MANY_REPLACE: &str = insert_many!(
    "ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO UPDATE SET
       expr = EXCLUDED.expr, recurring = EXCLUDED.recurring, run_at = EXCLUDED.run_at,
       slot_at = EXCLUDED.slot_at,
       payload = EXCLUDED.payload, meta = EXCLUDED.meta, max_attempts = EXCLUDED.max_attempts,
       timeout = EXCLUDED.timeout, start_at = EXCLUDED.start_at, attempt = 0,
       revision = qron.jobs.revision + 1, updated_at = now()"
);

/// Inserts many jobs in one statement. Returns, in input order, the id of each row written (or
/// replaced); `None` for a named row kept out by [`OnConflict::Keep`].
pub(crate) async fn job_insert_many(
    conn: &mut PgConnection,
    owner: &str,
    rows: &[&InsertRow],
    policy: OnConflict,
) -> sqlx::Result<Vec<Option<i64>>> {
    let sql = match policy {
        OnConflict::Error => INSERT_MANY_ERROR,
        OnConflict::Keep => INSERT_MANY_KEEP,
        OnConflict::Replace => INSERT_MANY_REPLACE,
    };
    let col = |f: fn(&InsertRow) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let names: Vec<Option<&str>> = rows.iter().map(|r| r.name.as_deref()).collect();
    let returned: Vec<(i64, String, Option<String>)> = sqlx::query_as(sql)
        .persistent(false)
        .bind(owner)
        .bind(col(|r| &r.executor))
        .bind(&names)
        .bind(col(|r| &r.expr))
        .bind(rows.iter().map(|r| r.recurring).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.run_at).collect::<Vec<_>>())
        .bind(col(|r| &r.payload))
        .bind(col(|r| &r.meta))
        .bind(rows.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.timeout).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.start_at).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    // RETURNING follows the insertion order (`ORDER BY ord`); rows kept out are missing.
    let mut out = Vec::with_capacity(rows.len());
    let mut it = returned.into_iter().peekable();
    for row in rows {
        match it.peek() {
            Some((_, executor, name)) if *executor == row.executor && *name == row.name => {
                out.push(it.next().map(|r| r.0));
            }
            _ => out.push(None),
        }
    }
    Ok(out)
}

const COPY_IN: &str = "COPY qron.jobs (executor, owner, expr, recurring, run_at, slot_at, \
     payload, meta, max_attempts, timeout, start_at) FROM STDIN (FORMAT binary)";

/// Bytes of COPY data sent per message: the server works on one while the next is encoded.
const COPY_MESSAGE: usize = 256 * 1024;

/// Unnamed jobs (no conflict is possible) streamed into the table with `COPY`, the server's
/// bulk path. Rows are sent in messages of [`COPY_MESSAGE`] bytes, so the server stores one
/// while the caller prepares the next. Dropped without [`JobCopy::finish`], it writes nothing.
///
/// The table's identity gives the ids, in input order (the server evaluates each row's default
/// as it reads the row): [`job_copied_ids`] reads them back.
pub(crate) struct JobCopy<'c> {
    copy: sqlx::postgres::PgCopyIn<&'c mut PgConnection>,
    buf: Vec<u8>,
    copied: Copied,
}

/// Where the ids of a [`JobCopy`]'s rows are: after `after`, `count` of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copied {
    after: i64,
    count: i64,
}

impl<'c> JobCopy<'c> {
    /// Starts the `COPY`, after drawing one id that every id of its rows will follow.
    pub(crate) async fn begin(conn: &'c mut PgConnection) -> sqlx::Result<Self> {
        let after: i64 = sqlx::query_scalar("SELECT nextval('qron.jobs_id_seq')")
            .fetch_one(&mut *conn)
            .await?;
        let copy = conn.copy_in_raw(COPY_IN).await?;
        Ok(Self {
            copy,
            buf: copy_binary::header(),
            copied: Copied { after, count: 0 },
        })
    }

    /// Adds a row.
    pub(crate) async fn push(&mut self, owner: &str, row: &InsertRow) -> sqlx::Result<()> {
        copy_binary::row(&mut self.buf, owner, row);
        self.copied.count += 1;
        if self.buf.len() >= COPY_MESSAGE {
            self.copy.send(std::mem::take(&mut self.buf)).await?;
        }
        Ok(())
    }

    /// Sends the rest and ends the `COPY`.
    pub(crate) async fn finish(mut self) -> sqlx::Result<Copied> {
        copy_binary::trailer(&mut self.buf);
        self.copy.send(std::mem::take(&mut self.buf)).await?;
        self.copy.finish().await?;
        Ok(self.copied)
    }

    /// Ends the `COPY` without storing anything.
    pub(crate) async fn abort(self) -> sqlx::Result<()> {
        self.copy.abort("the batch holds an invalid job").await
    }
}

/// The ids of a finished [`JobCopy`]'s rows, in input order. The last one is the session's
/// `currval`; when no other session drew ids meanwhile they are exactly the ones after
/// `after`, otherwise they are the rows of that range this transaction wrote (their `xmin`,
/// read from the last one), in id order.
pub(crate) async fn job_copied_ids(conn: &mut PgConnection, c: Copied) -> sqlx::Result<Vec<i64>> {
    if c.count == 0 {
        return Ok(Vec::new());
    }
    let (last, xmin): (i64, String) = sqlx::query_as(
        // currval in a subquery: evaluated once, so the primary key finds the row.
        "SELECT id, xmin::text FROM qron.jobs WHERE id = (SELECT currval('qron.jobs_id_seq'))",
    )
    .fetch_one(&mut *conn)
    .await?;
    if last - c.after == c.count {
        return Ok((c.after + 1..=last).collect());
    }
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM qron.jobs WHERE id > $1 AND id <= $2 AND xmin::text = $3 ORDER BY id",
    )
    .bind(c.after)
    .bind(last)
    .bind(xmin)
    .fetch_all(&mut *conn)
    .await?;
    if i64::try_from(ids.len()) != Ok(c.count) {
        return Err(sqlx::Error::Protocol(format!(
            "{} jobs copied, {} found in ids {}..={last}",
            c.count,
            ids.len(),
            c.after + 1
        )));
    }
    Ok(ids)
}

/// Wakes idle workers of these executors, when the transaction commits.
pub(crate) async fn jobs_notify<'e>(
    ex: impl PgExecutor<'e>,
    executors: &[&str],
) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify('qron_jobs', e) FROM unnest($1::text[]) AS e")
        .bind(executors)
        .execute(ex)
        .await
        .map(|_| ())
}

/// PostgreSQL's binary `COPY` format for [`COPY_IN`]'s columns.
mod copy_binary {
    use chrono::{DateTime, Utc};
    use sqlx::postgres::types::PgInterval;

    use super::InsertRow;

    /// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
    const COLUMNS: i16 = 11;

    pub(super) fn header() -> Vec<u8> {
        let mut b = Vec::with_capacity(super::COPY_MESSAGE + 4096);
        b.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        b.extend_from_slice(&0i32.to_be_bytes()); // flags
        b.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        b
    }

    pub(super) fn trailer(b: &mut Vec<u8>) {
        b.extend_from_slice(&(-1i16).to_be_bytes());
    }

    pub(super) fn row(b: &mut Vec<u8>, owner: &str, r: &InsertRow) {
        b.extend_from_slice(&COLUMNS.to_be_bytes());
        field(b, r.executor.as_bytes());
        field(b, owner.as_bytes());
        field(b, r.expr.as_bytes());
        field(b, &[u8::from(r.recurring)]);
        timestamp(b, r.run_at);
        timestamp(b, r.run_at);
        jsonb(b, &r.payload);
        jsonb(b, &r.meta);
        field(b, &r.max_attempts.to_be_bytes());
        interval(b, &r.timeout);
        timestamp(b, r.start_at);
    }

    fn field(b: &mut Vec<u8>, data: &[u8]) {
        // Every value here is far below 2 GiB: texts are checked against their limits first.
        let len = i32::try_from(data.len()).unwrap_or(i32::MAX);
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(data);
    }

    fn timestamp(b: &mut Vec<u8>, t: DateTime<Utc>) {
        field(b, &(t.timestamp_micros() - PG_EPOCH_MICROS).to_be_bytes());
    }

    fn jsonb(b: &mut Vec<u8>, text: &str) {
        let len = i32::try_from(text.len() + 1).unwrap_or(i32::MAX);
        b.extend_from_slice(&len.to_be_bytes());
        b.push(1); // jsonb's binary format version
        b.extend_from_slice(text.as_bytes());
    }

    fn interval(b: &mut Vec<u8>, i: &PgInterval) {
        b.extend_from_slice(&16i32.to_be_bytes());
        b.extend_from_slice(&i.microseconds.to_be_bytes());
        b.extend_from_slice(&i.days.to_be_bytes());
        b.extend_from_slice(&i.months.to_be_bytes());
    }
}

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

/// A statement on one live job, in two forms: by id (`$2`) and by executor and name (`$2`, `$3`).
macro_rules! by_ref {
    ($head:expr, $tail:expr) => {
        (
            concat!($head, " WHERE owner = $1 AND id = $2 ", $tail),
            concat!(
                $head,
                " WHERE owner = $1 AND executor = $2 AND name = $3 ",
                $tail
            ),
        )
    };
}

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
        JobRef::Id(id) => sqlx::query_as(sql.0).bind(owner.to_owned()).bind(*id),
        JobRef::Name { executor, name } => sqlx::query_as(sql.1)
            .bind(owner.to_owned())
            .bind(executor.clone())
            .bind(name.clone()),
    };
    bind(q).fetch_optional(ex).await
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

// The changes are bound after the target: from $3 by id, from $4 by name.
const UPDATE_BY_ID: &str = concat!(
    "UPDATE qron.jobs SET
       expr = COALESCE($3, expr), recurring = COALESCE($4, recurring),
       run_at = COALESCE($5, run_at), slot_at = COALESCE($5, slot_at),
       payload = COALESCE($6::jsonb, payload),
       meta = COALESCE($7::jsonb, meta), timeout = COALESCE($8, timeout),
       max_attempts = COALESCE($9, max_attempts),
       attempt = CASE WHEN $3 IS NOT NULL THEN 0 ELSE LEAST(attempt, COALESCE($9, max_attempts)) END,
       start_at = COALESCE($11, start_at),
       revision = revision + 1, updated_at = now()
     WHERE owner = $1 AND id = $2 AND ($10::bigint IS NULL OR revision = $10)
     RETURNING ",
    live_columns!()
);

const UPDATE_BY_NAME: &str = concat!(
    "UPDATE qron.jobs SET
       expr = COALESCE($4, expr), recurring = COALESCE($5, recurring),
       run_at = COALESCE($6, run_at), slot_at = COALESCE($6, slot_at),
       payload = COALESCE($7::jsonb, payload),
       meta = COALESCE($8::jsonb, meta), timeout = COALESCE($9, timeout),
       max_attempts = COALESCE($10, max_attempts),
       attempt = CASE WHEN $4 IS NOT NULL THEN 0 ELSE LEAST(attempt, COALESCE($10, max_attempts)) END,
       start_at = COALESCE($12, start_at),
       revision = revision + 1, updated_at = now()
     WHERE owner = $1 AND executor = $2 AND name = $3 AND ($11::bigint IS NULL OR revision = $11)
     RETURNING ",
    live_columns!()
);

/// Applies changes to a live job.
pub(crate) async fn job_update<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    target: &JobRef,
    c: &JobChanges,
) -> sqlx::Result<Option<JobRow>> {
    job_by_ref(ex, (UPDATE_BY_ID, UPDATE_BY_NAME), owner, target, |q| {
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
    concat!("RETURNING ", live_columns!())
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
    concat!("RETURNING ", live_columns!())
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
    "FOR UPDATE"
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

/// A job handed to a worker.
#[derive(Debug, Clone)]
pub(crate) struct LeasedJob {
    pub id: i64,
    pub owner: String,
    pub name: Option<String>,
    pub expr: String,
    pub recurring: bool,
    pub run_at: DateTime<Utc>,
    pub slot_at: DateTime<Utc>,
    /// JSON text, the handler decodes its typed payload straight from it; `None` for JSON
    /// `null` (the payload of every job without input: nothing to allocate).
    pub payload: Option<String>,
    /// JSON text, decoded by the execution (one row that does not decode fails its own job,
    /// not the lease); `None` for `{}`.
    pub meta: Option<String>,
    pub attempt: i32,
    pub executions: i64,
    pub max_attempts: i32,
    pub timeout: PgInterval,
    pub lease_token: i64,
    pub revision: i64,
    /// The instant the schedule counts from.
    pub start_at: DateTime<Utc>,
}

/// The lease's `RETURNING` list, by name, in order: [`LeasedJob`] is decoded by these
/// positions (a lease returns up to a batch of rows, and looking each column up by name was a
/// noticeable part of a worker's time). A test checks that the statement's list is this one.
const LEASED_COLUMNS: [&str; 16] = [
    "id",
    "owner",
    "name",
    "expr",
    "recurring",
    "run_at",
    "slot_at",
    "payload",
    "meta",
    "attempt",
    "executions",
    "max_attempts",
    "timeout",
    "lease_token",
    "revision",
    "start_at",
];

/// The position of `column` in [`LEASED_COLUMNS`] (evaluated at compile time: a name not in
/// the list does not compile).
const fn leased(column: &str) -> usize {
    let mut i = 0;
    while i < LEASED_COLUMNS.len() {
        if str_eq(LEASED_COLUMNS[i], column) {
            return i;
        }
        i += 1;
    }
    panic!("not a column of the lease's RETURNING list")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for LeasedJob {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row as _;
        Ok(Self {
            id: row.try_get_unchecked(const { leased("id") })?,
            owner: row.try_get_unchecked(const { leased("owner") })?,
            name: row.try_get_unchecked(const { leased("name") })?,
            expr: row.try_get_unchecked(const { leased("expr") })?,
            recurring: row.try_get_unchecked(const { leased("recurring") })?,
            run_at: row.try_get_unchecked(const { leased("run_at") })?,
            slot_at: row.try_get_unchecked(const { leased("slot_at") })?,
            payload: row.try_get_unchecked(const { leased("payload") })?,
            meta: row.try_get_unchecked(const { leased("meta") })?,
            attempt: row.try_get_unchecked(const { leased("attempt") })?,
            executions: row.try_get_unchecked(const { leased("executions") })?,
            max_attempts: row.try_get_unchecked(const { leased("max_attempts") })?,
            timeout: row.try_get_unchecked(const { leased("timeout") })?,
            lease_token: row.try_get_unchecked(const { leased("lease_token") })?,
            revision: row.try_get_unchecked(const { leased("revision") })?,
            start_at: row.try_get_unchecked(const { leased("start_at") })?,
        })
    }
}

/// Time a lease outlives the handler's timeout, for the worker to write the outcome itself:
/// the rescuer only takes over from a worker that is gone.
const LEASE_SLACK: PgInterval = PgInterval {
    months: 0,
    days: 0,
    microseconds: 2_000_000,
};

macro_rules! lease {
    ($after:literal) => {
        concat!(
            "UPDATE qron.jobs j
               SET status = 'running', executions = j.executions + 1,
                   -- never past the limit, even for a job whose limit was lowered below the
                   -- attempts it had made: that would break the row's check, and the
                   -- statement with it, for every job of the executor
                   attempt = LEAST(j.attempt + 1, j.max_attempts),
                   lease_owner = $4, lease_expires_at = GREATEST(j.run_at, $2) + j.timeout + $5,
                   lease_token = j.lease_token + 1, last_run_at = GREATEST(j.run_at, $2),
                   updated_at = $2
             WHERE j.id = ANY(ARRAY(
                SELECT id FROM qron.jobs
                 WHERE status = 'ready' AND executor = $1 AND run_at <= $6 ",
            $after,
            " ORDER BY run_at, id
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED))
            RETURNING j.id, j.owner, j.name, j.expr, j.recurring, j.run_at, j.slot_at,
                      NULLIF(j.payload, 'null')::text AS payload,
                      NULLIF(j.meta, '{}')::text AS meta, j.attempt, j.executions,
                      j.max_attempts, j.timeout, j.lease_token, j.revision, j.start_at"
        )
    };
}

pub(crate) const LEASE: &str = lease!("");
const LEASE_AFTER: &str = lease!("AND (run_at, id) > ($7, $8)");

/// Leases up to `limit` jobs of `executor` due by `due_by` (at most a little after `now`: a
/// job leased before its run time waits for it in the worker, and its lease counts from then),
/// oldest run time first.
///
/// With `after`, only jobs past that (run time, id) in the lease order: the index entries
/// before it are mostly of jobs already leased, which a long transaction elsewhere keeps from
/// being cleaned up, and which a scan from the start would step over one by one.
///
/// A prepared statement: the worker runs it on connections that plan it for its values each
/// time (see `worker::lease_pool`), since a generic plan can be far worse.
pub(crate) async fn job_lease<'e>(
    ex: impl PgExecutor<'e>,
    p: &Lease<'_>,
) -> sqlx::Result<Vec<LeasedJob>> {
    let slack = PgInterval {
        months: 0,
        days: 0,
        microseconds: LEASE_SLACK.microseconds
            + i64::try_from(p.buffer_wait.as_micros()).unwrap_or(i64::MAX / 2),
    };
    let q = sqlx::query_as(if p.after.is_some() {
        LEASE_AFTER
    } else {
        LEASE
    })
    .bind(p.executor)
    .bind(p.now)
    .bind(p.limit)
    .bind(p.worker_id)
    .bind(slack)
    .bind(p.due_by);
    match p.after {
        Some((run_at, id)) => q.bind(run_at).bind(id),
        None => q,
    }
    .fetch_all(ex)
    .await
}

/// The parameters of [`job_lease`].
#[derive(Debug, Clone)]
pub(crate) struct Lease<'a> {
    pub executor: &'a str,
    pub worker_id: &'a str,
    pub limit: i64,
    pub now: DateTime<Utc>,
    pub due_by: DateTime<Utc>,
    pub after: Option<(DateTime<Utc>, i64)>,
    /// How long a leased job may wait in the worker before it starts: the lease is longer by
    /// that much.
    pub buffer_wait: std::time::Duration,
}

/// Hands leased jobs back unstarted: ready again (unless an edit paused them meanwhile), the
/// lease's attempt and execution uncounted, other workers woken.
const JOB_RELEASE: &str = "
    WITH released AS (
        UPDATE qron.jobs j
           SET status = CASE WHEN j.status = 'running' THEN 'ready' ELSE j.status END,
               -- an edit made since the lease set the attempt itself
               attempt = CASE WHEN j.revision = u.revision THEN GREATEST(j.attempt - 1, 0)
                              ELSE j.attempt END,
               executions = GREATEST(j.executions - 1, 0),
               lease_owner = NULL, lease_expires_at = NULL, lease_token = j.lease_token + 1,
               updated_at = $4
          FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, token, revision)
         WHERE j.id = u.id AND j.lease_token = u.token
        RETURNING j.executor, j.status),
    woken AS (
        SELECT pg_notify('qron_jobs', e.executor)
          FROM (SELECT DISTINCT executor FROM released WHERE status = 'ready') e)
    SELECT (SELECT count(*) FROM released) + 0 * (SELECT count(*) FROM woken)";

/// Hands `jobs` back unstarted (see [`JOB_RELEASE`]); returns how many leases were still
/// held.
pub(crate) async fn job_release<'e>(
    ex: impl PgExecutor<'e>,
    jobs: &[&LeasedJob],
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let tokens: Vec<i64> = jobs.iter().map(|j| j.lease_token).collect();
    let revisions: Vec<i64> = jobs.iter().map(|j| j.revision).collect();
    sqlx::query_scalar(JOB_RELEASE)
        .bind(ids)
        .bind(tokens)
        .bind(revisions)
        .bind(now)
        .fetch_one(ex)
        .await
}

/// When the next ready job of `executor` is due, if it is due by `before`.
///
/// The bound keeps the statement to the part of the lease index a lease would read: a generic
/// plan made while the statistics said the table was empty reads every row it matches and
/// sorts them (see `job_lease`), and without the bound that would be every job scheduled for
/// later, at every idle poll, until the next `ANALYZE`.
pub(crate) async fn job_next_due<'e>(
    ex: impl PgExecutor<'e>,
    executor: &str,
    before: DateTime<Utc>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT run_at FROM qron.jobs WHERE status = 'ready' AND executor = $1 AND run_at <= $2
          ORDER BY run_at LIMIT 1",
    )
    .bind(executor)
    .bind(before)
    .fetch_optional(ex)
    .await
}

/// An outcome that keeps the job live: ready again (next slot or retry), or paused.
///
/// An edit made while the job ran wins over the outcome: a new payload over the handler's, a
/// new schedule (the run time an edit of the expression sets) over the outcome's run time.
/// The job's run time at the lease tells whether the schedule was edited: only an edit of the
/// expression (or a restart) moves it while the job runs.
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub id: i64,
    pub token: i64,
    pub revision: i64,
    /// The job's run time when it was leased.
    pub lease_run_at: DateTime<Utc>,
    /// A one-off job (as leased): when its outcome cannot be stored, it fails.
    pub one_off: bool,
    /// What its executor's history keeps (for that failure).
    pub history: crate::History,
    /// `ready` or `paused`.
    pub status: &'static str,
    pub run_at: DateTime<Utc>,
    /// A new slot for the occurrence (`None`: unchanged, as for a retry).
    pub slot_at: Option<DateTime<Utc>>,
    pub reset_attempt: bool,
    pub payload: Option<String>,
    /// A new schedule the handler asked for, the instant it counts from, and whether it
    /// repeats.
    pub expr: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub recurring: bool,
    pub error: Option<String>,
}

const COMPLETE_MANY: &str = "
    WITH done AS (
    UPDATE qron.jobs j SET
        status = CASE WHEN j.status = 'paused' THEN 'paused' ELSE u.status END::qron.job_status,
        -- the schedule, unless an edit made while the job ran changed it (see `Completion`)
        run_at = CASE WHEN j.run_at = u.lease_run_at THEN u.run_at ELSE j.run_at END,
        slot_at = CASE WHEN j.run_at = u.lease_run_at AND u.slot_at IS NOT NULL
                       THEN u.slot_at ELSE j.slot_at END,
        attempt = CASE WHEN u.reset_attempt OR j.run_at <> u.lease_run_at THEN 0
                       ELSE j.attempt END,
        expr = CASE WHEN j.run_at = u.lease_run_at AND u.expr IS NOT NULL
                    THEN u.expr ELSE j.expr END,
        recurring = CASE WHEN j.run_at = u.lease_run_at AND u.expr IS NOT NULL
                         THEN u.recurring ELSE j.recurring END,
        -- a handler's new schedule counts from the run that set it
        start_at = CASE WHEN j.run_at = u.lease_run_at AND u.expr IS NOT NULL
                        THEN u.start_at ELSE j.start_at END,
        -- the payload, unless an edit made while the job ran changed it
        payload = CASE WHEN j.revision = u.revision AND u.payload IS NOT NULL
                       THEN u.payload::jsonb ELSE j.payload END,
        last_error = COALESCE(u.error, j.last_error),
        last_error_at = CASE WHEN u.error IS NULL THEN j.last_error_at ELSE $12 END,
        lease_owner = NULL, lease_expires_at = NULL, lease_token = j.lease_token + 1,
        updated_at = $12
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[],
                $6::bool[], $7::text[], $8::text[], $9::bool[], $10::text[], $11::timestamptz[],
                $13::timestamptz[], $14::timestamptz[])
         AS u(id, token, revision, status, run_at, reset_attempt, payload, expr, recurring, error,
              slot_at, lease_run_at, start_at)
    WHERE j.id = u.id AND j.lease_token = u.token
    RETURNING j.executor, j.status),
    -- No one else announces a job made ready again (a recurring job's next slot, a retry, a
    -- reschedule, a rescued lease): wake idle workers of its executor (on commit), once per
    -- executor, whenever it is due; they look for the next due job themselves.
    woken AS (
        SELECT pg_notify('qron_jobs', e.executor)
          FROM (SELECT DISTINCT executor FROM done WHERE status = 'ready') e)
    SELECT (SELECT count(*) FROM done) + 0 * (SELECT count(*) FROM woken)";

/// Applies live outcomes in one statement; returns how many leases still held (a count, not
/// a row per job: rows cost both sides more than the count). Writing an
/// outcome moves the lease token on, so a second outcome for the same lease changes nothing.
/// (No condition here names `lease_expires_at`: statistics taken while nothing was leased would
/// lead the planner to its small partial index instead of the primary key.)
pub(crate) async fn job_complete_many<'e>(
    ex: impl PgExecutor<'e>,
    rows: &[&Completion],
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    // Planned anew each time (an unnamed statement): a cached generic plan cannot see the
    // arrays' lengths and may rescan them once per row.
    let n: i64 = sqlx::query_scalar(COMPLETE_MANY)
        .persistent(false)
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.token).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.revision).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.run_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reset_attempt).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.payload.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.expr.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.recurring).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.slot_at).collect::<Vec<_>>())
        .bind(now)
        .bind(rows.iter().map(|r| r.lease_run_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.start_at).collect::<Vec<_>>())
        .fetch_one(ex)
        .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// A one-off job's end: it moves to the history.
///
/// The lease and the job's run time at the lease select the row: an edit of payload or meta
/// made while the job ran does not keep it from finishing (this occurrence ran; the edited
/// values go to the history), while a job paused, or given a new schedule, while it ran stays
/// live (the caller completes it instead).
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub id: i64,
    pub token: i64,
    pub revision: i64,
    /// The job's run time when it was leased.
    pub lease_run_at: DateTime<Utc>,
    /// What its executor's history keeps.
    pub history: crate::History,
    /// `succeeded` or `failed`.
    pub status: &'static str,
    pub payload: Option<String>,
    pub error: Option<String>,
}

/// The history's columns, in the order the finish statements fill them.
macro_rules! history_insert {
    () => {
        "INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
             run_at, payload, meta, attempt, executions, max_attempts, timeout, revision,
             last_error, last_error_at, created_at, updated_at, start_at, last_run_at,
             finished_at)
"
    };
}

const FINISH_MANY: &str = concat!(
    "
    WITH u AS (
        SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::bigint[],
                             $5::text[], $6::text[], $7::text[])
               AS u(id, token, run_at, revision, status, payload, error)),
    done AS (
        -- A semi-join on the key: index lookups driven by the batch, whatever the statistics
        -- say about how many jobs run.
        DELETE FROM qron.jobs j
         WHERE (j.id, j.lease_token, j.run_at) IN (SELECT id, token, run_at FROM u)
           AND j.status = 'running'
        RETURNING j.*),
    moved AS (
",
    history_insert!(),
    "    SELECT d.id, d.executor, d.owner, d.name, d.expr, d.recurring, u.status::qron.job_status,
           d.run_at,
           -- the handler's payload, unless an edit made while it ran changed it
           CASE WHEN d.revision = u.revision THEN COALESCE(u.payload::jsonb, d.payload)
                ELSE d.payload END,
           d.meta, d.attempt, d.executions,
           d.max_attempts, d.timeout, d.revision, COALESCE(u.error, d.last_error),
           CASE WHEN u.error IS NULL THEN d.last_error_at ELSE $8 END,
           d.created_at, $8, d.start_at, d.last_run_at, $8
      FROM done d JOIN u ON u.id = d.id
    RETURNING id)
    -- the leases taken, from the rows deleted (the insert runs whether or not it is read)
    SELECT COALESCE(array_agg(id), '{}'), COALESCE(array_agg(lease_token), '{}') FROM done"
);

/// The common case, successes that change neither payload nor error: only the leases travel,
/// and the history rows come from the deleted ones alone (a third less server time per job
/// than `FINISH_MANY`, which unpacks six arrays and joins them back).
const FINISH_SUCCEEDED: &str = concat!(
    "
    WITH done AS (
        DELETE FROM qron.jobs j
         WHERE (j.id, j.lease_token, j.run_at) IN
               (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]))
           AND j.status = 'running'
        RETURNING j.*),
    moved AS (
",
    history_insert!(),
    "    SELECT id, executor, owner, name, expr, recurring, 'succeeded', run_at, payload, meta,
           attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
           created_at, $4, start_at, last_run_at, $4
      FROM done
    RETURNING id)
    -- the leases taken, from the rows deleted (the insert runs whether or not it is read)
    SELECT COALESCE(array_agg(id), '{}'), COALESCE(array_agg(lease_token), '{}') FROM done"
);

/// The end of jobs the history does not keep (see [`crate::History`]): only the leases
/// travel, and the rows are deleted, which costs what a queue without a history pays.
const FINISH_DELETED: &str = "
    WITH done AS (
        DELETE FROM qron.jobs j
         WHERE (j.id, j.lease_token, j.run_at) IN
               (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]))
           AND j.status = 'running'
        RETURNING j.id, j.lease_token)
    SELECT COALESCE(array_agg(id), '{}'), COALESCE(array_agg(lease_token), '{}') FROM done";

/// Which statement ends a one-off job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinishKind {
    /// Not kept by its executor's history: [`FINISH_DELETED`].
    Deleted,
    /// A success that changes neither payload nor error: [`FINISH_SUCCEEDED`].
    PlainSuccess,
    /// The rest: [`FINISH_MANY`].
    Other,
}

impl FinishKind {
    /// Every kind, in the order a batch writes them.
    pub(crate) const ALL: [FinishKind; 3] = [
        FinishKind::Deleted,
        FinishKind::PlainSuccess,
        FinishKind::Other,
    ];
}

impl Finish {
    /// The statement that ends this job.
    pub(crate) fn kind(&self) -> FinishKind {
        if !self.history.keeps(self.status) {
            FinishKind::Deleted
        } else if self.status == "succeeded" && self.payload.is_none() && self.error.is_none() {
            FinishKind::PlainSuccess
        } else {
            FinishKind::Other
        }
    }

    /// The outcome for a one-off job that stays live after all (paused or given a new
    /// schedule while it ran: see [`Finish`]).
    pub(crate) fn kept_live(&self) -> Completion {
        Completion {
            id: self.id,
            token: self.token,
            revision: self.revision,
            lease_run_at: self.lease_run_at,
            one_off: true,
            history: self.history,
            status: "ready",
            run_at: self.lease_run_at,
            slot_at: None,
            reset_attempt: true,
            payload: self.payload.clone(),
            expr: None,
            start_at: None,
            recurring: false,
            error: self.error.clone(),
        }
    }
}

/// Ends one-off jobs of one [`FinishKind`]: deleted, or moved to the history (plain successes
/// with a statement that sends only the leases, the others with one that sends their status,
/// payload and error too). Returns the leases (id, token) of the jobs ended (a job paused or
/// given a new schedule while it ran stays live: the caller completes it instead).
pub(crate) async fn job_finish_many(
    pool: &sqlx::PgPool,
    kind: FinishKind,
    rows: &[&Finish],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(i64, i64)>> {
    // Every statement takes the leases first; they come back as two arrays (a row per job
    // costs both sides more).
    let q = sqlx::query_as::<_, (Vec<i64>, Vec<i64>)>(match kind {
        FinishKind::Deleted => FINISH_DELETED,
        FinishKind::PlainSuccess => FINISH_SUCCEEDED,
        FinishKind::Other => FINISH_MANY,
    })
    .persistent(false)
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.token).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.lease_run_at).collect::<Vec<_>>());
    let q = match kind {
        FinishKind::Deleted => {
            let (ids, tokens) = q.fetch_one(pool).await?;
            return Ok(ids.into_iter().zip(tokens).collect());
        }
        FinishKind::PlainSuccess => q,
        FinishKind::Other => q
            .bind(rows.iter().map(|r| r.revision).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.payload.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>()),
    };
    let (ids, tokens) = q.bind(now).fetch_one(pool).await?;
    Ok(ids.into_iter().zip(tokens).collect())
}

/// A lease that ran out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ExpiredLease {
    pub id: i64,
    pub executor: String,
    pub expr: String,
    pub recurring: bool,
    pub run_at: DateTime<Utc>,
    pub slot_at: DateTime<Utc>,
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease_token: i64,
    pub revision: i64,
    pub start_at: DateTime<Utc>,
}

/// Up to `limit` jobs whose lease ran out before `now`.
pub(crate) async fn job_expired_leases<'e>(
    ex: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<ExpiredLease>> {
    sqlx::query_as(
        "SELECT id, executor, expr, recurring, run_at, slot_at, attempt, max_attempts, lease_token,
                revision, start_at
           FROM qron.jobs
          WHERE lease_expires_at IS NOT NULL AND lease_expires_at < $1
          ORDER BY lease_expires_at
          LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(ex)
    .await
}

/// Creates the history partition of `day` (idempotent).
pub(crate) async fn history_partition_create<'e>(
    ex: impl PgExecutor<'e>,
    day: chrono::NaiveDate,
) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT qron.history_partition_create($1)")
        .bind(day)
        .fetch_one(ex)
        .await
}

/// The day partitions of the history, by name (`jobs_history_YYYYMMDD`).
pub(crate) async fn history_partitions<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'qron.jobs_history'::regclass
            AND c.relname ~ '^jobs_history_[0-9]{8}$'
          ORDER BY 1",
    )
    .fetch_all(ex)
    .await
}

/// Drops one history partition (a name from [`history_partitions`]).
pub(crate) async fn history_partition_drop<'e>(
    ex: impl PgExecutor<'e>,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query("SELECT qron.history_partition_drop($1)")
        .bind(name)
        .execute(ex)
        .await
        .map(|_| ())
}

/// The database server's time now (`clock_timestamp()`: not the transaction's start).
pub(crate) async fn server_now<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(ex)
        .await
}

/// Makes the transaction's statements give up waiting for a lock after `timeout` (a
/// PostgreSQL interval such as `200ms`).
pub(crate) async fn lock_timeout_set_local<'e>(
    ex: impl PgExecutor<'e>,
    timeout: &str,
) -> sqlx::Result<()> {
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(timeout)
        .execute(ex)
        .await
        .map(|_| ())
}

/// Tries to become the maintenance leader for this transaction.
pub(crate) async fn maintenance_try_lock<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('qron.maintenance'))")
        .fetch_one(ex)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_returns_the_columns_its_row_is_decoded_by() {
        // The name each item of the RETURNING list gets: its alias, or its column.
        let list = LEASE
            .rsplit_once("RETURNING")
            .map(|(_, l)| l)
            .unwrap_or_default();
        // Items are separated by the commas outside parentheses.
        let mut items = Vec::new();
        let (mut depth, mut from) = (0, 0);
        for (i, c) in list.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&list[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        items.push(&list[from..]);
        let names: Vec<&str> = items
            .into_iter()
            .map(|item| {
                let item = item.trim();
                match item.rsplit_once(" AS ") {
                    Some((_, alias)) => alias.trim(),
                    None => item.trim_start_matches("j."),
                }
            })
            .collect();
        assert_eq!(names, LEASED_COLUMNS);
    }
}

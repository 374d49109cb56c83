//! Creating jobs: one, many in one statement, or many through `COPY`.

use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, PgExecutor};

use crate::job::{JobRow, OnConflict};

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
    /// Due more than [`STAGE_AHEAD`] after it was written: out of the lease index until staged
    /// (see `migrations/0014_scheduled.sql`).
    pub scheduled: bool,
    /// 0 (highest) to 9.
    pub priority: i16,
    /// How far the priority puts the job back in the lease order, in microseconds.
    pub priority_delay: i64,
    /// A unique job's claim on its key (see `db::unique`).
    pub unique: Option<crate::job::UniqueClaim>,
}

/// How far ahead of its run time a job is in the lease index: one written for later is
/// `scheduled`, and a rescuer's pass stages it (see `jobs_stage`) before it is due.
pub(crate) const STAGE_AHEAD: std::time::Duration = std::time::Duration::from_secs(2);

impl InsertRow {
    /// The size of its payload and meta as JSON text (the `bytes` column, which a worker's
    /// lease sums against its memory budget).
    pub(crate) fn bytes(&self) -> i32 {
        json_bytes(&self.payload, &self.meta)
    }
}

/// The `bytes` column of a job with this payload and meta text (each within its limit, so the
/// sum fits).
pub(crate) fn json_bytes(payload: &str, meta: &str) -> i32 {
    i32::try_from(payload.len().saturating_add(meta.len())).unwrap_or(i32::MAX)
}

/// The statement that inserts one job (`$1`–`$15`), with `$on_conflict` for a name taken;
/// it wakes idle workers (on commit) when the job is due within a second.
macro_rules! insert_one {
    ($on_conflict:expr) => {
        insert_one!($on_conflict, "j.*")
    };
    ($on_conflict:expr, $returned:expr) => {
        concat!(
            "
    WITH j AS (
        INSERT INTO qron.jobs (executor, owner, name, expr, recurring, run_at, slot_at, payload,
                               meta, max_attempts, timeout, start_at, bytes, scheduled,
                               priority, priority_delay)
        VALUES ($1, $2, $3, $4, $5, $6, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14,
                $15)
        ",
            $on_conflict,
            "
        RETURNING *)
    SELECT ",
            $returned,
            ", CASE WHEN j.status = 'ready'
                      AND j.run_at <= now() + interval '1 second'
                     THEN pg_notify('qron_jobs', j.executor) END AS notified
      FROM j"
        )
    };
}

/// What a name taken makes of an insert that replaces the other job: its schedule, payload
/// and settings are the new ones, and its attempts start afresh.
macro_rules! replace_named {
    () => {
        "ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO UPDATE SET
               expr = EXCLUDED.expr, recurring = EXCLUDED.recurring, run_at = EXCLUDED.run_at,
               slot_at = EXCLUDED.slot_at, payload = EXCLUDED.payload, meta = EXCLUDED.meta,
               bytes = EXCLUDED.bytes, max_attempts = EXCLUDED.max_attempts,
               timeout = EXCLUDED.timeout, start_at = EXCLUDED.start_at, attempt = 0,
               scheduled = EXCLUDED.scheduled, priority = EXCLUDED.priority,
               priority_delay = EXCLUDED.priority_delay,
               revision = qron.jobs.revision + 1, updated_at = now()"
    };
}

/// Inserts one job. A name taken is an error (a unique violation).
const JOB_INSERT: &str = insert_one!("");

/// As [`JOB_INSERT`], returning only what the server decides of a new row: its id and times
/// (the rest is what was sent, or the columns' defaults: see [`job_insert_new`]).
const JOB_INSERT_NEW: &str = insert_one!("", "j.id, j.created_at, j.updated_at");

/// Inserts one job (a name taken is an error) and returns its id and its creation and update
/// times: a new row's other columns are those of `row` as stored, or their defaults (ready, no
/// attempt, revision 0, no error), which `Scope::create_on` fills in without reading them back.
pub(crate) async fn job_insert_new<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    row: &InsertRow,
) -> sqlx::Result<(i64, DateTime<Utc>, DateTime<Utc>)> {
    // The wake-up's column (`void`) is not read.
    bind_one(sqlx::query_as(sql(JOB_INSERT_NEW)), owner, row)
        .fetch_one(ex)
        .await
}

/// As [`JOB_INSERT`], keeping the other job when the name is taken (no row comes back).
const JOB_INSERT_KEEP: &str =
    insert_one!("ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO NOTHING");

/// As [`JOB_INSERT`], replacing the other job when the name is taken (see `replace_named`).
const JOB_INSERT_REPLACE: &str = insert_one!(replace_named!());

/// Inserts one job; `None` when the name was taken and the policy is to keep the other job.
pub(crate) async fn job_insert<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    row: &InsertRow,
    policy: OnConflict,
) -> sqlx::Result<Option<JobRow>> {
    let statement = match policy {
        OnConflict::Error => JOB_INSERT,
        OnConflict::Keep => JOB_INSERT_KEEP,
        OnConflict::Replace => JOB_INSERT_REPLACE,
    };
    bind_one(sqlx::query_as(sql(statement)), owner, row)
        .fetch_optional(ex)
        .await
}

/// Binds many jobs' columns as arrays `$2`–`$15` after the owner `$1`, in the order of
/// `insert_many`'s `unnest`.
pub(super) fn bind_many<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    owner: &'q str,
    rows: &[&'q InsertRow],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let col = |f: fn(&'q InsertRow) -> &'q str| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let names: Vec<Option<&str>> = rows.iter().map(|r| r.name.as_deref()).collect();
    q.persistent(false)
        .bind(owner)
        .bind(col(|r| &r.executor))
        .bind(names)
        .bind(col(|r| &r.expr))
        .bind(rows.iter().map(|r| r.recurring).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.run_at).collect::<Vec<_>>())
        .bind(col(|r| &r.payload))
        .bind(col(|r| &r.meta))
        .bind(rows.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.timeout).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.start_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.bytes()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.scheduled).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.priority_delay).collect::<Vec<_>>())
}

/// Binds one job's columns as `$1`–`$15`, in the order of `insert_one`'s `VALUES`.
pub(super) fn bind_one<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    owner: &'q str,
    row: &'q InsertRow,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(&row.executor)
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
        .bind(row.bytes())
        .bind(row.scheduled)
        .bind(row.priority)
        .bind(row.priority_delay)
}

/// The statement that inserts many jobs in one statement, for owner `$1`, from arrays of their
/// columns (`$2`–`$15`), in input order, with `$on_conflict` for a name taken; it returns the
/// id, executor and name of each row written.
macro_rules! insert_many {
    ($on_conflict:expr) => {
        concat!(
            "
    INSERT INTO qron.jobs (executor, owner, name, expr, recurring, run_at, slot_at, payload,
                           meta, max_attempts, timeout, start_at, bytes, scheduled, priority,
                           priority_delay)
    SELECT executor, $1, name, expr, recurring, run_at, run_at, payload::jsonb, meta::jsonb,
           max_attempts, timeout, start_at, bytes, scheduled, priority, priority_delay
      FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                  $7::text[], $8::text[], $9::int[], $10::interval[], $11::timestamptz[],
                  $12::int[], $13::bool[], $14::smallint[], $15::bigint[])
           WITH ORDINALITY
           AS t(executor, name, expr, recurring, run_at, payload, meta, max_attempts, timeout,
                start_at, bytes, scheduled, priority, priority_delay, ord)
     ORDER BY ord
    ",
            $on_conflict,
            "
    RETURNING id, executor, name"
        )
    };
}

/// Inserts many jobs in one statement. A name taken is an error (a unique violation).
const JOB_INSERT_MANY: &str = insert_many!("");

/// As [`JOB_INSERT_MANY`], leaving out the rows whose name is taken.
const JOB_INSERT_MANY_KEEP: &str =
    insert_many!("ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO NOTHING");

/// As [`JOB_INSERT_MANY`], replacing the jobs whose name is taken (see `replace_named`).
const JOB_INSERT_MANY_REPLACE: &str = insert_many!(replace_named!());

/// Inserts many jobs in one statement. Returns, in input order, the id of each row written (or
/// replaced); `None` for a named row kept out by [`OnConflict::Keep`].
pub(crate) async fn job_insert_many(
    conn: &mut PgConnection,
    owner: &str,
    rows: &[&InsertRow],
    policy: OnConflict,
) -> sqlx::Result<Vec<Option<i64>>> {
    let statement = match policy {
        OnConflict::Error => JOB_INSERT_MANY,
        OnConflict::Keep => JOB_INSERT_MANY_KEEP,
        OnConflict::Replace => JOB_INSERT_MANY_REPLACE,
    };
    let returned: Vec<(i64, String, Option<String>)> =
        bind_many(sqlx::query_as(sql(statement)), owner, rows)
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
     payload, meta, max_attempts, timeout, start_at, bytes, scheduled, priority, priority_delay) \
     FROM STDIN (FORMAT binary)";

/// [`COPY_IN`] for the jobs of a batch, which its callback waits for: marked as having
/// dependents.
const COPY_IN_DEPENDED_ON: &str = "COPY qron.jobs (executor, owner, expr, recurring, run_at, \
     slot_at, payload, meta, max_attempts, timeout, start_at, bytes, scheduled, priority, \
     priority_delay, has_dependents) FROM STDIN (FORMAT binary)";

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
    /// Whether the rows are marked as having dependents (a batch's jobs).
    depended_on: bool,
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
        Self::begin_as(conn, false).await
    }

    /// [`JobCopy::begin`] for jobs others will wait for (a batch's): marked as having
    /// dependents, so that their ends are kept in the history and release the waiting job.
    pub(crate) async fn begin_depended_on(conn: &'c mut PgConnection) -> sqlx::Result<Self> {
        Self::begin_as(conn, true).await
    }

    async fn begin_as(conn: &'c mut PgConnection, depended_on: bool) -> sqlx::Result<Self> {
        let after: i64 = sqlx::query_scalar(sql("SELECT nextval('qron.jobs_id_seq')"))
            .fetch_one(&mut *conn)
            .await?;
        let statement = if depended_on {
            COPY_IN_DEPENDED_ON
        } else {
            COPY_IN
        };
        let copy = conn.copy_in_raw(sql(statement)).await?;
        Ok(Self {
            copy,
            buf: copy_binary::header(),
            copied: Copied { after, count: 0 },
            depended_on,
        })
    }

    /// Adds a row.
    pub(crate) async fn push(&mut self, owner: &str, row: &InsertRow) -> sqlx::Result<()> {
        copy_binary::row(&mut self.buf, owner, row, self.depended_on);
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
        sql("SELECT id, xmin::text FROM qron.jobs WHERE id = (SELECT currval('qron.jobs_id_seq'))"),
    )
    .fetch_one(&mut *conn)
    .await?;
    if last - c.after == c.count {
        return Ok((c.after + 1..=last).collect());
    }
    let ids: Vec<i64> = sqlx::query_scalar(sql(
        "SELECT id FROM qron.jobs WHERE id > $1 AND id <= $2 AND xmin::text = $3 ORDER BY id",
    ))
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

/// The edges of job `job` to the jobs `on` it waits for, streamed into
/// `qron.job_dependencies` with `COPY` (a batch's callback and its jobs).
pub(crate) async fn dependencies_copy(
    conn: &mut PgConnection,
    job: i64,
    on: &[i64],
) -> sqlx::Result<()> {
    let mut copy = conn
        .copy_in_raw(sql(
            "COPY qron.job_dependencies (job, dependency) FROM STDIN (FORMAT binary)",
        ))
        .await?;
    let mut buf = copy_binary::header();
    for &dependency in on {
        copy_binary::edge(&mut buf, job, dependency);
        if buf.len() >= COPY_MESSAGE {
            copy.send(std::mem::take(&mut buf)).await?;
        }
    }
    copy_binary::trailer(&mut buf);
    copy.send(buf).await?;
    copy.finish().await?;
    Ok(())
}

/// Wakes idle workers of these executors, when the transaction commits.
pub(crate) async fn jobs_notify<'e>(
    ex: impl PgExecutor<'e>,
    executors: &[&str],
) -> sqlx::Result<()> {
    sqlx::query(sql(
        "SELECT pg_notify('qron_jobs', e) FROM unnest($1::text[]) AS e",
    ))
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
    const COLUMNS: i16 = 15;

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

    /// A job's row; with `has_dependents` last when `depended_on` (see `COPY_IN_DEPENDED_ON`).
    pub(super) fn row(b: &mut Vec<u8>, owner: &str, r: &InsertRow, depended_on: bool) {
        let columns = if depended_on { COLUMNS + 1 } else { COLUMNS };
        b.extend_from_slice(&columns.to_be_bytes());
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
        field(b, &r.bytes().to_be_bytes());
        field(b, &[u8::from(r.scheduled)]);
        field(b, &r.priority.to_be_bytes());
        field(b, &r.priority_delay.to_be_bytes());
        if depended_on {
            field(b, &[1]);
        }
    }

    /// An edge of `qron.job_dependencies`: the job, and the job it waits for.
    pub(super) fn edge(b: &mut Vec<u8>, job: i64, dependency: i64) {
        b.extend_from_slice(&2i16.to_be_bytes());
        field(b, &job.to_be_bytes());
        field(b, &dependency.to_be_bytes());
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

//! Creating jobs: one, or many in one statement (many unnamed ones through `COPY`: `copy`).

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
    /// Whether the server looks up the job's partition key (see `partition_key_of!`); false
    /// where the executor is known to have no limit per key, which spares a one-job insert
    /// that look-up.
    pub keyed: bool,
}

impl InsertRow {
    /// Of a statement's two forms (without the partition key, and with it looked up), the
    /// one this row needs.
    pub(crate) fn statement(&self, forms: [&'static str; 2]) -> &'static str {
        forms[usize::from(self.keyed)]
    }
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

/// A job's partition key (see `migrations/0030_keyed_queue.sql`): under a limit of executor
/// `$executor` per key, the job's owner or its payload's field, as a limited lease counts it;
/// otherwise none.
macro_rules! partition_key_of {
    ($executor:expr, $owner:expr, $payload:expr) => {
        concat!(
            "(SELECT ",
            $crate::db::partition_key_from!($owner, $payload),
            "
        FROM qron.executor_limits l
       WHERE l.executor = ",
            $executor,
            " AND l.partition_by IS NOT NULL)"
        )
    };
}

/// [`partition_key_of!`] from executor limits `l` already joined (`NULL` columns: no key).
/// A payload's key goes through `qron.limit_key`, as the lease's keys do (see
/// `migrations/0030_keyed_queue.sql`).
macro_rules! partition_key_from {
    ($owner:expr, $payload:expr) => {
        concat!(
            "CASE l.partition_by WHEN 'owner' THEN ",
            $owner,
            "
                    WHEN 'field' THEN qron.limit_key(COALESCE((",
            $payload,
            ") ->> l.partition_field, '')) END"
        )
    };
}

/// The longest payload key `qron.limit_key` keeps as it is, in bytes; a longer one becomes
/// its digest, which `COPY` leaves to the server (no key: see `copy::Partition::key`).
pub(crate) const MAX_PLAIN_KEY: usize = 1024;
pub(crate) use partition_key_from;
pub(crate) use partition_key_of;

/// The statements that insert one job (`$1`–`$15`), with `$on_conflict` for a name taken, and
/// return `$returned`: without its partition key, and with it looked up (see [`InsertRow::keyed`];
/// a statement that only names the executors' limits costs a one-job insert 7–10%, their
/// table and index locked and opened at each run). They wake idle workers (on commit) when
/// the job is due within a second.
macro_rules! insert_one {
    ($on_conflict:expr) => {
        insert_one!($on_conflict, "j.*")
    };
    ($on_conflict:expr, $returned:expr) => {
        [
            insert_one!($on_conflict, $returned, "NULL"),
            insert_one!(
                $on_conflict,
                $returned,
                partition_key_of!("$1", "$2", "$7::jsonb")
            ),
        ]
    };
    ($on_conflict:expr, $returned:expr, $key:expr) => {
        concat!(
            "
    WITH j AS (
        INSERT INTO qron.jobs (executor, owner, name, expr, recurring, run_at, slot_at, payload,
                               meta, max_attempts, timeout, start_at, bytes, scheduled,
                               priority, priority_delay, partition_key)
        VALUES ($1, $2, $3, $4, $5, $6, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14,
                $15, ",
            $key,
            ")
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
               partition_key = EXCLUDED.partition_key,
               revision = qron.jobs.revision + 1, updated_at = now()"
    };
}

/// Inserts one job. A name taken is an error (a unique violation).
const JOB_INSERT: [&str; 2] = insert_one!("");

/// As [`JOB_INSERT`], returning only what the server decides of a new row: its id and times
/// (the rest is what was sent, or the columns' defaults: see [`job_insert_new`]).
const JOB_INSERT_NEW: [&str; 2] = insert_one!("", "j.id, j.created_at, j.updated_at");

/// Inserts one job (a name taken is an error) and returns its id and its creation and update
/// times: a new row's other columns are those of `row` as stored, or their defaults (ready, no
/// attempt, revision 0, no error), which `Scope::create_on` fills in without reading them back.
pub(crate) async fn job_insert_new<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    row: &InsertRow,
) -> sqlx::Result<(i64, DateTime<Utc>, DateTime<Utc>)> {
    // The wake-up's column (`void`) is not read.
    bind_one(
        sqlx::query_as(sql(row.statement(JOB_INSERT_NEW))),
        owner,
        row,
    )
    .fetch_one(ex)
    .await
}

/// As [`JOB_INSERT`], keeping the other job when the name is taken (no row comes back).
const JOB_INSERT_KEEP: [&str; 2] =
    insert_one!("ON CONFLICT (owner, executor, name) WHERE name IS NOT NULL DO NOTHING");

/// As [`JOB_INSERT`], replacing the other job when the name is taken (see `replace_named`).
const JOB_INSERT_REPLACE: [&str; 2] = insert_one!(replace_named!());

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
    bind_one(sqlx::query_as(sql(row.statement(statement))), owner, row)
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
                           priority_delay, partition_key)
    SELECT t.executor, $1, name, expr, recurring, run_at, run_at, payload::jsonb, meta::jsonb,
           max_attempts, timeout, start_at, bytes, scheduled, priority, priority_delay, ",
            partition_key_from!("$1", "t.payload::jsonb"),
            "
      FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                  $7::text[], $8::text[], $9::int[], $10::interval[], $11::timestamptz[],
                  $12::int[], $13::bool[], $14::smallint[], $15::bigint[])
           WITH ORDINALITY
           AS t(executor, name, expr, recurring, run_at, payload, meta, max_attempts, timeout,
                start_at, bytes, scheduled, priority, priority_delay, ord)
      LEFT JOIN qron.executor_limits l
             ON l.executor = t.executor AND l.partition_by IS NOT NULL
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

mod copy;
pub(crate) use copy::*;

//! Creating many unnamed jobs through `COPY`, the server's bulk path, and their edges to a
//! batch's callback.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::InsertRow;
use crate::schema::sql;

const COPY_IN: &str = "COPY qron.jobs (executor, owner, expr, recurring, run_at, slot_at, \
     payload, meta, max_attempts, timeout, start_at, bytes, scheduled, priority, priority_delay, \
     partition_key) FROM STDIN (FORMAT binary)";

/// [`COPY_IN`] for the jobs of a batch, which its callback waits for: marked as having
/// dependents.
const COPY_IN_DEPENDED_ON: &str = "COPY qron.jobs (executor, owner, expr, recurring, run_at, \
     slot_at, payload, meta, max_attempts, timeout, start_at, bytes, scheduled, priority, \
     priority_delay, partition_key, has_dependents) FROM STDIN (FORMAT binary)";

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
    /// The executors limited per key, and their partitions (see [`Partition`]).
    partitions: HashMap<String, Partition>,
}

/// How a limit per key partitions an executor's jobs (`executor_limits.partition_by`).
enum Partition {
    Owner,
    Field(String),
}

impl Partition {
    /// The key a job of `owner` with `payload` (JSON text) is counted by, as
    /// `partition_key_of!` computes it on the server: `None` where the server's text of the value
    /// is not known here (a fraction, an object, an array, a long value's digest), which the
    /// server writes after the `COPY` (see [`job_copied_ids`]).
    fn key(&self, owner: &str, payload: &str) -> Option<String> {
        let field = match self {
            Self::Owner => return Some(owner.to_owned()),
            Self::Field(field) => field,
        };
        let value = match serde_json::from_str::<serde_json::Value>(payload) {
            Ok(serde_json::Value::Object(mut o)) => o.remove(field),
            Ok(_) => None,
            Err(_) => return None,
        };
        match value {
            None | Some(serde_json::Value::Null) => Some(String::new()),
            // a longer one is stored as its digest (see `qron.limit_key`), left to the server
            Some(serde_json::Value::String(s)) if s.len() > super::MAX_PLAIN_KEY => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
            Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            Some(_) => None,
        }
    }
}

/// Where the ids of a [`JobCopy`]'s rows are: after `after`, `count` of them; `unkeyed`: some
/// were written without the partition key their executor's limit asks for (see
/// [`Partition::key`]), which [`job_copied_ids`] then writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copied {
    after: i64,
    count: i64,
    unkeyed: bool,
}

/// Writes the partition key of the waiting jobs with ids in `$1 < id <= $2` that have none while
/// their executor is limited per key: the rows a `COPY` wrote without it, where the key's text
/// is the server's to make (a fraction, an object, a long value's digest).
const KEY_COPIED: &str = concat!(
    "
    UPDATE qron.jobs j
       SET partition_key = ",
    crate::db::partition_key_from!("j.owner", "j.payload"),
    "
      FROM qron.executor_limits l
     WHERE j.id > $1 AND j.id <= $2 AND j.partition_key IS NULL AND j.status = 'ready'
       AND l.executor = j.executor AND l.partition_by IS NOT NULL"
);

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
        let (after, executors, fields): (i64, Vec<String>, Vec<Option<String>>) =
            sqlx::query_as(sql("SELECT nextval('qron.jobs_id_seq'),
                        COALESCE(array_agg(executor) FILTER (WHERE partition_by IS NOT NULL), '{}'),
                        COALESCE(array_agg(partition_field) FILTER (WHERE partition_by IS NOT NULL),
                                 '{}')
                   FROM qron.executor_limits"))
            .fetch_one(&mut *conn)
            .await?;
        let partitions = executors
            .into_iter()
            .zip(fields)
            .map(|(e, f)| (e, f.map_or(Partition::Owner, Partition::Field)))
            .collect();
        let statement = if depended_on {
            COPY_IN_DEPENDED_ON
        } else {
            COPY_IN
        };
        let copy = conn.copy_in_raw(sql(statement)).await?;
        Ok(Self {
            copy,
            buf: copy_binary::header(),
            copied: Copied {
                after,
                count: 0,
                unkeyed: false,
            },
            depended_on,
            partitions,
        })
    }

    /// Adds a row.
    pub(crate) async fn push(&mut self, owner: &str, row: &InsertRow) -> sqlx::Result<()> {
        let partition = self.partitions.get(&row.executor);
        let key = partition.and_then(|p| p.key(owner, &row.payload));
        self.copied.unkeyed |= partition.is_some() && key.is_none();
        copy_binary::row(&mut self.buf, owner, row, key.as_deref(), self.depended_on);
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

/// The ids of a finished [`JobCopy`]'s rows, in input order, once the rows written without
/// their partition key have it (see [`Copied`]). The last one is the session's
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
    if c.unkeyed {
        sqlx::query(sql(KEY_COPIED))
            .bind(c.after)
            .bind(last)
            .execute(&mut *conn)
            .await?;
    }
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

/// PostgreSQL's binary `COPY` format for [`COPY_IN`]'s columns.
mod copy_binary {
    use chrono::{DateTime, Utc};
    use sqlx::postgres::types::PgInterval;

    use super::InsertRow;

    /// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
    const COLUMNS: i16 = 16;

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

    /// A job's row, with its partition key (`None`: `NULL`); with `has_dependents` last when
    /// `depended_on` (see `COPY_IN_DEPENDED_ON`).
    pub(super) fn row(
        b: &mut Vec<u8>,
        owner: &str,
        r: &InsertRow,
        key: Option<&str>,
        depended_on: bool,
    ) {
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
        match key {
            Some(key) => field(b, key.as_bytes()),
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
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

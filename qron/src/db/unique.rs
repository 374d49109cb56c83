//! Creating unique jobs: the job and its key's claim in one statement (see
//! `migrations/0015_unique.sql`), one job or many; the holder of a key; the upkeep of claims.

use crate::job::JobRow;
use crate::schema::sql;
use sqlx::{PgConnection, PgExecutor};

use super::{InsertRow, partition_key_from, partition_key_of};

/// Claims key `$16` (states `$17`, until `$18`) of owner `$2`'s executor `$1` for a new job id,
/// or takes over a claim whose job no longer holds it; and inserts the job (`$1`–`$15` as
/// `insert_one`, with partition key `$key`) when the claim is its. No row when another job
/// holds the key.
macro_rules! insert_unique {
    ($key:expr) => {
        concat!(
            "
    WITH c AS (
        INSERT INTO qron.job_uniques AS u (owner, executor, key, job_id, states, until)
        VALUES ($2, $1, sha256(convert_to($16, 'UTF8')), nextval('qron.jobs_id_seq'), $17, $18)
        ON CONFLICT (owner, executor, key) DO UPDATE
           SET job_id = EXCLUDED.job_id, states = EXCLUDED.states, until = EXCLUDED.until
         WHERE NOT qron.unique_holds(u.job_id, u.states)
        RETURNING job_id),
    j AS (
        INSERT INTO qron.jobs (id, executor, owner, name, expr, recurring, run_at, slot_at,
                               payload, meta, max_attempts, timeout, start_at, bytes, scheduled,
                               priority, priority_delay, partition_key)
        SELECT c.job_id, $1, $2, $3, $4, $5, $6, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12,
               $13, $14, $15, ",
            $key,
            "
          FROM c
        RETURNING *)
    SELECT j.*, CASE WHEN j.status = 'ready' AND j.run_at <= now() + interval '1 second'
                     THEN pg_notify('qron_jobs', j.executor) END AS notified
      FROM j"
        )
    };
}

/// [`insert_unique!`] without the partition key, and with it looked up (see `insert_one!`).
const JOB_INSERT_UNIQUE: [&str; 2] = [
    insert_unique!("NULL"),
    insert_unique!(partition_key_of!("$1", "$2", "$7::jsonb")),
];

/// Inserts a unique job (`row.unique` is set); `None` when another job holds its key (see
/// [`job_unique_holder`]).
pub(crate) async fn job_insert_unique<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    row: &InsertRow,
) -> sqlx::Result<Option<JobRow>> {
    let Some(claim) = &row.unique else {
        return Err(sqlx::Error::Protocol(
            "a unique insert of a job without a key".into(),
        ));
    };
    super::insert::bind_one(
        sqlx::query_as(sql(row.statement(JOB_INSERT_UNIQUE))),
        owner,
        row,
    )
    .bind(&claim.key)
    .bind(claim.states)
    .bind(claim.until)
    .fetch_optional(ex)
    .await
}

/// As [`JOB_INSERT_UNIQUE`] for many jobs of owner `$1`, from arrays of their columns (as
/// `insert_many`'s, the names unused) and keys `$16`–`$18`, with
/// distinct keys: the claims are taken in key order (two batches sharing keys wait for each
/// other rather than deadlock). Returns the place (from 1) and id of each job created.
const JOB_INSERT_UNIQUE_MANY: &str = concat!(
    "
    WITH n AS MATERIALIZED (
        SELECT t.*, sha256(convert_to(t.key, 'UTF8')) AS hash, nextval('qron.jobs_id_seq') AS id
          FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                      $7::text[], $8::text[], $9::int[], $10::interval[], $11::timestamptz[],
                      $12::int[], $13::bool[], $14::smallint[], $15::bigint[], $16::text[],
                      $17::smallint[], $18::timestamptz[])
               WITH ORDINALITY
               AS t(executor, name, expr, recurring, run_at, payload, meta, max_attempts,
                    timeout, start_at, bytes, scheduled, priority, priority_delay, key, states,
                    until, ord)),
    c AS (
        INSERT INTO qron.job_uniques AS u (owner, executor, key, job_id, states, until)
        SELECT $1, executor, hash, id, states, until FROM n ORDER BY executor, hash
        ON CONFLICT (owner, executor, key) DO UPDATE
           SET job_id = EXCLUDED.job_id, states = EXCLUDED.states, until = EXCLUDED.until
         WHERE NOT qron.unique_holds(u.job_id, u.states)
        RETURNING job_id),
    j AS (
        INSERT INTO qron.jobs (id, executor, owner, expr, recurring, run_at, slot_at, payload,
                               meta, max_attempts, timeout, start_at, bytes, scheduled,
                               priority, priority_delay, partition_key)
        SELECT n.id, n.executor, $1, expr, recurring, run_at, run_at, payload::jsonb,
               meta::jsonb, max_attempts, timeout, start_at, bytes, scheduled, priority,
               priority_delay, ",
    partition_key_from!("$1", "n.payload::jsonb"),
    "
          FROM n JOIN c ON c.job_id = n.id
          LEFT JOIN qron.executor_limits l
                 ON l.executor = n.executor AND l.partition_by IS NOT NULL
         ORDER BY ord
        RETURNING id)
    SELECT n.ord, n.id FROM n JOIN j ON j.id = n.id"
);

/// Inserts many unique jobs of `owner` with distinct (executor, key) pairs; for each, in input
/// order, the id of the job created, or `None` when another job holds its key.
pub(crate) async fn job_insert_unique_many(
    conn: &mut PgConnection,
    owner: &str,
    rows: &[&InsertRow],
) -> sqlx::Result<Vec<Option<i64>>> {
    let claims = rows
        .iter()
        .map(|r| r.unique.as_ref())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| sqlx::Error::Protocol("a unique insert of a job without a key".into()))?;
    let created: Vec<(i64, i64)> =
        super::insert::bind_many(sqlx::query_as(sql(JOB_INSERT_UNIQUE_MANY)), owner, rows)
            .bind(claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
            .bind(claims.iter().map(|c| c.states).collect::<Vec<_>>())
            .bind(claims.iter().map(|c| c.until).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
    let mut out = vec![None; rows.len()];
    for (ord, id) in created {
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| out.get_mut(i)) {
            *slot = Some(id);
        }
    }
    Ok(out)
}

/// The jobs that hold owner `owner`'s keys (their texts) of these executors, as committed now;
/// `None` for a key no job claims.
pub(crate) async fn job_unique_holders<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    executors: &[&str],
    keys: &[&str],
) -> sqlx::Result<Vec<Option<i64>>> {
    sqlx::query_scalar(sql("SELECT u.job_id
           FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(executor, key, ord)
           LEFT JOIN qron.job_uniques u
                  ON u.owner = $1 AND u.executor = k.executor
                 AND u.key = sha256(convert_to(k.key, 'UTF8'))
          ORDER BY k.ord"))
    .bind(owner)
    .bind(executors)
    .bind(keys)
    .fetch_all(ex)
    .await
}

//! Every SQL statement, one function per statement, named noun first (`job_lease`,
//! `history_partition_drop`), grouped by who runs it: [`insert`] and [`manage`] for the client,
//! [`lease`] for the producer and the rescuer, [`outcome`] for the completer, [`maintenance`]
//! for the history's upkeep.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// The columns of a job, for `RETURNING` and `SELECT` on the live table.
macro_rules! live_columns {
    () => {
        "id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload, \
         meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at, \
         created_at, updated_at, start_at, last_run_at, NULL::timestamptz AS finished_at, errors"
    };
}

/// The same columns on the history table.
macro_rules! history_columns {
    () => {
        "id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload, \
         meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at, \
         created_at, updated_at, start_at, last_run_at, finished_at, errors"
    };
}

mod insert;
mod lease;
mod maintenance;
mod manage;
mod outcome;

pub(crate) use insert::*;
pub(crate) use lease::*;
pub(crate) use maintenance::*;
pub(crate) use manage::*;
pub(crate) use outcome::*;

/// The database server's time now (`clock_timestamp()`: not the transaction's start).
pub(crate) async fn server_now<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(ex)
        .await
}

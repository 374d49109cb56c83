//! Every SQL statement, one function per statement, named noun first (`job_lease`,
//! `history_partition_drop`), grouped by who runs it: [`insert`], [`manage`] and [`operate`] for the client,
//! [`lease`] for the producer and the rescuer, [`outcome`] for the completer, [`maintenance`]
//! for the history's upkeep.

use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

mod batches;
#[cfg(feature = "dashboard")]
mod dashboard;
mod dependencies;
mod executor_limits;
mod held;
mod insert;
mod lease;
mod leased;
mod maintenance;
mod manage;
mod operate;
mod outcome;
mod owners;
mod stats;
mod unique;
mod workers;
mod workflows;

pub(crate) use batches::*;
#[cfg(feature = "dashboard")]
pub(crate) use dashboard::*;
pub(crate) use dependencies::*;
pub(crate) use executor_limits::*;
pub(crate) use held::*;
pub(crate) use insert::*;
pub(crate) use lease::*;
pub(crate) use leased::*;
pub(crate) use maintenance::*;
pub(crate) use manage::*;
pub(crate) use operate::*;
pub(crate) use outcome::*;
pub(crate) use owners::*;
pub(crate) use stats::*;
pub(crate) use unique::*;
pub(crate) use workers::*;
pub(crate) use workflows::*;

/// The database server's time now (`clock_timestamp()`: not the transaction's start).
pub(crate) async fn server_now<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar(sql("SELECT clock_timestamp()"))
        .fetch_one(ex)
        .await
}

/// A duration as a PostgreSQL interval (in microseconds; a duration beyond the interval's range,
/// which no setting reaches, saturates).
pub(crate) fn duration_interval(d: std::time::Duration) -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2),
    }
}

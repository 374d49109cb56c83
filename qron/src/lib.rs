//! Background jobs and scheduling on PostgreSQL: cron, intervals and one-off jobs, leased with
//! `FOR UPDATE SKIP LOCKED` and written back in batches.
//!
//! qron keeps its jobs in a schema of its own (`qron`) in the database your application already
//! has. Many worker processes on many hosts share one database: that is how it scales out.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn demo() -> qron::Result<()> {
//! let pool = sqlx::PgPool::connect("postgres://localhost/app").await?;
//! qron::migrate(&pool).await?; // idempotent: call it at every start-up
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | flag | default | what it gives |
//! |---|---|---|
//! | `embedded` | on | [`embedded`]: a throwaway PostgreSQL started from the machine's server binaries, for examples and tests |

mod client;
mod db;
mod error;
mod expr;
mod job;
mod migrate;

#[cfg(feature = "embedded")]
pub mod embedded;

pub use client::{
    Client, ClientBuilder, DEFAULT_MAX_JSON_BYTES, DEFAULT_OWNER, Validation, client, init,
    validate,
};
pub use error::{Error, Result};
pub use expr::{ExprError, ExprErrorKind, Interval, IntervalError, Schedule};
pub use job::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, JobRef, JobRow, JobStatus, JobUpdate,
    MAX_ATTEMPTS_LIMIT, MAX_NAME_LEN, MAX_PAGE, NewJob, OnConflict, Order, Page, Search,
};
pub use migrate::{SCHEMA, migrate, migrator};
#[doc(inline)]
pub use qron_macros::job;

//! Background jobs and scheduling on PostgreSQL: cron, intervals and one-off jobs, leased with
//! `FOR UPDATE SKIP LOCKED` and written back in batches.
//!
//! qron keeps its jobs in a schema of its own (`qron`) in the database your application already
//! has. Many worker processes on many hosts share one database: that is how it scales out.
//!
//! # Quick start
//!
//! A job is an `async fn` over a serde payload; enqueueing is typed; a worker runs every
//! declared job:
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Welcome { user_id: i64 }
//!
//! #[qron::job(executor = "email", max_attempts = 5, timeout = "30s")]
//! async fn email(ctx: qron::Context, msg: Welcome) -> Result<(), qron::JobError> {
//!     tracing::info!(user = msg.user_id, attempt = ctx.attempt(), "sending the welcome");
//!     Ok(()) // any error retries with back-off; JobError::fail gives up at once
//! }
//!
//! #[tokio::main]
//! async fn main() -> qron::Result<()> {
//!     let client = qron::Client::connect("postgres://localhost/app").await?;
//!     client.migrate().await?; // idempotent: at every start-up
//!     qron::init(client); // the default client, used by typed enqueues
//!
//!     Email::schedule("@after 1 hour", Welcome { user_id: 7 }).await?; // typed enqueue
//!     qron::Worker::run_all().await // every declared job, until Ctrl-C or SIGTERM
//! }
//! ```
//!
//! Schedules are text: `@at <time>`, `@after <interval>`, `@every <interval>`, crontab and its
//! aliases; [`Schedule`] has the whole grammar. The [`guide`] covers delivery guarantees, state
//! between runs, testing, and running in production.
//!
//! # Feature flags
//!
//! | flag | default | what it gives |
//! |---|---|---|
//! | `embedded` | off | `embedded`: a throwaway PostgreSQL started from the machine's server binaries, for examples and tests (never in a production binary unless asked for) |
//! | `tls-rustls` | off | TLS to the database with rustls (sqlx's `tls-rustls`) |
//! | `tls-native-tls` | off | TLS to the database with the platform's TLS (sqlx's `tls-native-tls`) |
//! | `http` | off | `http`: the management API over HTTP (GraphQL, GraphiQL, remote workers) as an axum `Router`, refusing every request until the application chooses an access policy |
//! | `dashboard` | off | the web dashboard (turns on `http`): overview, jobs, upcoming runs, expression playground; see the [dashboard guide](guide::dashboard) |
//! | `http-executor` | off | [`HttpExecutor`]-style jobs: executor `http` sends each job to the URL in its meta |
//! | `opentelemetry` | off | the enqueuing trace carried to the job's executions (see `telemetry`) |
//! | `testing` | off | `testing`: a fresh database per test, and assertions on enqueued jobs (turns on `embedded`) |

#![warn(missing_docs)]

mod batch;
mod cancel;
mod client;
mod clock;
mod completer;
mod context;
mod db;
mod enqueue;
mod error;
mod executor_limits;
mod expr;
pub mod guide;
mod handler;
mod job;
mod job_error;
mod limits;
mod maintenance;
mod metrics;
mod migrate;
mod outcome;
mod rate_limit;
mod registry;
mod schema;
mod state;
pub mod telemetry;
mod worker;
mod workflow;

#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http-executor")]
mod http_executor;
#[cfg(feature = "http-executor")]
pub use http_executor::{DEFAULT_MAX_REPLY, HTTP_EXECUTOR, HttpExecutor};
#[cfg(feature = "testing")]
pub mod testing;

pub use batch::{Batch, BatchCreated, BatchInfo, BatchResults};
pub use client::{
    CONNECT_TIMEOUT, Client, ClientBuilder, DEFAULT_MAX_JSON_BYTES, DEFAULT_OWNER, ExecutorInfo,
    MAX_LEASE_BYTES, MAX_OWNER_WEIGHT, MAX_REMOTE_BATCH, RemoteJob, RemoteOutcome, RemoteResult,
    Reported, Validation, client, init, validate,
};
pub use clock::HostClock;
pub use context::Context;
pub use enqueue::{Enqueue, Via};
pub use error::{Error, Result};
pub use executor_limits::{ExecutorLimits, MAX_EXECUTOR_LIMIT, Partition};
pub use expr::{
    ExprError, ExprErrorKind, Interval, IntervalError, MAX_EXPR_LEN, MIN_EVERY, Schedule,
};
pub use handler::{Backoff, DEFAULT_CONCURRENCY, History, Job, JobOptions};
pub use job::{
    AttemptError, Created, DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, DEFAULT_PRIORITY_AGING,
    DEFAULT_TIMEOUT, DEFAULT_UNIQUE_STATES, Dependency, JobId, JobRef, JobRow, JobRun, JobStatus,
    JobUpdate, LOWEST_PRIORITY, MAX_ATTEMPTS_LIMIT, MAX_DEPENDENCIES, MAX_ERRORS_KEPT,
    MAX_NAME_LEN, MAX_OFFSET, MAX_PAGE, MAX_RUNS_KEPT, MIN_UNIQUE_PERIOD, NewJob, OnConflict,
    OnDependencyFailure, Order, Page, Search, Unique,
};
pub use job_error::{BoxError, JobError};
pub use limits::{MAX_ERROR_LEN, MAX_JSON_DEPTH, MAX_TIMEOUT};
pub use metrics::{LEASE_TIMES_KEPT, Metrics};
pub use rate_limit::RateLimit;

/// The sqlx qron is built on (0.9): its pools, connections and transactions are what
/// [`Client::new`] and `schedule_with` take; use this one to be sure the versions match.
pub use sqlx;

/// The chrono qron's times are in.
pub use chrono;

pub use migrate::{migrate, migrator};
/// Declares a typed job on an `async fn`.
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Welcome { user_id: i64 }
///
/// #[qron::job(executor = "email", max_attempts = 3, timeout = "30s")]
/// async fn email(ctx: qron::Context, msg: Welcome) -> Result<(), qron::JobError> {
///     tracing::info!(user = msg.user_id, attempt = ctx.attempt(), "sending");
///     Ok(())
/// }
///
/// # async fn demo() -> qron::Result<()> {
/// Email::schedule("@after 1 hour", Welcome { user_id: 7 }).await?; // typed enqueue
/// # Ok(()) }
/// ```
///
/// The function stays as written (call it directly in unit tests, with
/// [`Context::detached`]); beside it the attribute adds a unit type named after it in
/// UpperCamelCase (`email` → `Email`), implementing [`Job`], and registers the handler so that
/// `Worker::run_all()` finds it. The type has the function's visibility: write `pub async fn
/// email` to enqueue `Email` from another module or crate (your `main.rs` beside a `lib.rs`). The function takes an optional [`Context`], any
/// [`State<T>`](State)s, and one payload (`Serialize + DeserializeOwned + Send + 'static`), in
/// any order, and returns `Result<(), E>` with `E: Into<JobError>` (any `std::error::Error`
/// retries). An argument is the context or a state by its type, written `Context` /
/// `State<T>` or `qron::Context` / `qron::State<T>`; any other type is the payload, including
/// the application's own types named so (`State` without a type, `app::State<Step>`).
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `executor = "…"` | the queue name, stored with every job (required) | — |
/// | `max_attempts = n` | attempts per occurrence, 1–1000 | 5 |
/// | `timeout = "…"` | lease length, such as `"30s"`, `"5m"`, `"1h 30m"` | 5 minutes |
/// | `concurrency = n` | executions at once per worker process | 10 |
/// | `backoff(base = "…", max = "…")` | retry delays, exponential with jitter | 1 s to 1 h |
/// | `history = "…"` | what the history keeps of finished jobs: `"all"`, `"failed"` or `"none"` ([`History`]) | `"all"` |
/// | `name = "…"` | the generated type's name | the function's, in UpperCamelCase |
/// | `crate = "…"` | the path of the qron crate, when renamed | `::qron` |
pub use qron_macros::job;
pub use registry::{Registration, registered_jobs};
pub use schema::{SCHEMA, schema, set_schema};
/// The serde_json qron's payloads and meta are in.
pub use serde_json;
pub use state::State;
pub use worker::{
    DEFAULT_FLUSH_TIMEOUT, DEFAULT_HISTORY_RETENTION, DEFAULT_LEASE_AHEAD, DEFAULT_LEASE_TIME,
    DEFAULT_MEMORY_BUDGET, DEFAULT_POLL_INTERVAL, DEFAULT_PREFETCH, DEFAULT_RESCUE_INTERVAL,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_UNSERVED_AFTER, Stopper, Worker, WorkerBuilder,
};
pub use workflow::{
    StepBuilder, Workflow, WorkflowCreated, WorkflowInfo, WorkflowStatus, WorkflowStep,
    WorkflowSummary,
};

/// What the code `#[qron::job]` generates refers to. Not a public API: it may change in any
/// release.
#[doc(hidden)]
pub mod __private {
    pub use crate::enqueue::{schedule, schedule_many, schedule_with};
    pub use crate::handler::HandlerFuture;
    pub use crate::registry::{Registration, decode};
    pub use crate::state::StateType;

    /// Fails to compile unless `T` can be application state.
    pub const fn assert_state<T: Clone + Send + Sync + 'static>() {}

    /// The state of type `T` from an execution's context.
    ///
    /// # Errors
    /// [`crate::JobError::Fail`] naming the type when the context has none (a context made
    /// with [`crate::Context::detached`] without it).
    pub fn state<T: Clone + Send + Sync + 'static>(
        ctx: &crate::Context,
    ) -> Result<crate::State<T>, crate::JobError> {
        ctx.state::<T>().map(crate::State).ok_or_else(|| {
            crate::JobError::fail(format!(
                "the handler takes `State<{}>` and the context has none: give the worker one with `.state(value)`",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The lease statement, for the test that checks its plan uses the lease index.
    pub const LEASE_SQL: &str = crate::db::JOB_LEASE;
    pub use inventory;
    pub use serde::Serialize;
    pub use serde::de::DeserializeOwned;
    pub use std::boxed::Box;
    pub use std::time::Duration;

    /// Fails to compile unless `T` can be a job payload.
    pub const fn assert_payload<T: Serialize + DeserializeOwned + Send + 'static>() {}

    /// Turns a handler's error into a [`crate::JobError`].
    pub fn into_job_error<E: Into<crate::JobError>>(e: E) -> crate::JobError {
        e.into()
    }
}

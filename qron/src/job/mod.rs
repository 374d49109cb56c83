//! Jobs as stored, and the inputs that create, find and change them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use sqlx::postgres::types::PgInterval;

/// The setters of a job's run-time limit and attempts, which creating a job and changing one
/// share: `$made` is an expression that makes the builder, for the examples; `$unset` says what
/// holds when a setter is not called.
macro_rules! limit_setters {
    (made: $made:literal, unset: $unset:literal) => {
        #[doc = concat!(
            "The run-time limit: past it the handler is told to stop and the attempt fails; a \
             lease never outlives it (at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)). ",
            $unset,
            "\n\n```\nlet job = ",
            $made,
            ".timeout(std::time::Duration::from_secs(3600));\n```"
        )]
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.timeout = Some(timeout);
            self
        }

        #[doc = concat!(
            "Attempts per occurrence, 1 to 1000. ",
            $unset,
            "\n\n```\nlet job = ",
            $made,
            ".max_attempts(10);\n```"
        )]
        pub fn max_attempts(mut self, attempts: i32) -> Self {
            self.max_attempts = Some(attempts);
            self
        }
    };
}

mod dependency;
mod job_ref;
mod new_job;
mod priority;
mod search;
mod unique;
mod update;

pub use dependency::{Dependency, JobId, MAX_DEPENDENCIES, OnDependencyFailure};
pub use job_ref::JobRef;
pub use new_job::{Created, NewJob, OnConflict};
pub use priority::{DEFAULT_PRIORITY, DEFAULT_PRIORITY_AGING, LOWEST_PRIORITY};
pub(crate) use priority::{check_priority, priority_step};
pub(crate) use search::NameMatch;
pub use search::{MAX_OFFSET, MAX_PAGE, Order, Page, Search};
pub(crate) use unique::UniqueClaim;
pub use unique::{DEFAULT_UNIQUE_STATES, MIN_UNIQUE_PERIOD, Unique};
pub use update::JobUpdate;

/// Attempts per occurrence when a job does not say otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;
/// The most attempts a job may allow.
pub const MAX_ATTEMPTS_LIMIT: i32 = 1000;
/// Lease length when a job does not say otherwise: a running job whose worker is silent this long
/// is handed out again.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The longest executor, name or owner, in characters.
pub const MAX_NAME_LEN: usize = 255;

/// Where a job is in its life.
///
/// ```
/// assert_eq!(qron::JobStatus::Stopped.as_str(), "stopped");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "http", derive(async_graphql::Enum))]
#[cfg_attr(feature = "http", graphql(name = "Status"))]
pub enum JobStatus {
    /// Waiting for its run time.
    Ready,
    /// Waiting for jobs it depends on to end (see [`NewJob::after`](crate::NewJob::after)):
    /// no worker takes it until then.
    Waiting,
    /// Leased by a worker.
    Running,
    /// Stopped by an operator ([`Client::stop`](crate::Client::stop)); `restart` makes it
    /// ready again. (Pausing is what an owner does to an executor.)
    Stopped,
    /// A one-off job that ran successfully (kept in the history).
    Succeeded,
    /// A one-off job that failed for good (kept in the history).
    Failed,
    /// A job an operator cancelled (kept in the history): see
    /// [`Client::cancel`](crate::Client::cancel).
    Cancelled,
}

impl JobStatus {
    /// The status as stored (`ready`, `running`, …).
    ///
    /// ```
    /// assert_eq!(qron::JobStatus::Ready.as_str(), "ready");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ready => "ready",
            JobStatus::Waiting => "waiting",
            JobStatus::Running => "running",
            JobStatus::Stopped => "stopped",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub(crate) fn from_db(s: &str) -> Option<Self> {
        Some(match s {
            "ready" => JobStatus::Ready,
            "waiting" => JobStatus::Waiting,
            "running" => JobStatus::Running,
            // the word before 0.2
            "stopped" | "paused" => JobStatus::Stopped,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }
}

/// A duration as a number of seconds, as the API and the `qron` command show it.
fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A stored job.
#[cfg_attr(
    any(doc, doctest),
    doc = r#"
```no_run
# async fn demo(client: qron::Client) -> qron::Result<()> {
let job = client.get(42).await?;
println!("{} runs `{}` next at {}", job.id, job.expr, job.run_at);
# Ok(()) }
```
"#
)]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
// The GraphQL API's `Job` (its `meta`, `timeoutSeconds` and `retrying` are resolved in
// `http::schema::types`).
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "http", graphql(name = "Job", complex))]
pub struct JobRow {
    /// Unique among all jobs.
    pub id: i64,
    /// The queue/handler the job belongs to.
    pub executor: String,
    /// The tenant the job belongs to.
    pub owner: String,
    /// Unique per (owner, executor) among live jobs, when set.
    pub name: Option<String>,
    /// The schedule, in canonical form.
    pub expr: String,
    /// Whether the schedule repeats.
    pub recurring: bool,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// When it is (or was last) due.
    pub run_at: DateTime<Utc>,
    /// The handler's input, replaced by the handler when it keeps state between executions.
    pub payload: Value,
    /// Free-form JSON object.
    #[cfg_attr(feature = "http", graphql(skip))]
    pub meta: Value,
    /// Executions of the current occurrence.
    pub attempt: i32,
    /// Executions over the job's whole life.
    pub executions: i64,
    /// Attempts allowed per occurrence.
    pub max_attempts: i32,
    /// 0 (the highest) to 9: see [`NewJob::priority`].
    pub priority: u8,
    /// The run-time limit: past it the handler is stopped and the attempt fails (serialized as
    /// `timeout_seconds`, a number).
    #[serde(rename = "timeout_seconds", serialize_with = "as_seconds")]
    #[cfg_attr(feature = "http", graphql(skip))]
    pub timeout: Duration,
    /// Bumped by every management change (an update can require it: `if_revision`).
    pub revision: i64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
    /// When the job last changed.
    pub updated_at: DateTime<Utc>,
    /// The instant its schedule counts from.
    pub start_at: DateTime<Utc>,
    /// When it last ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When a one-off job finished (`Succeeded` or `Failed`).
    pub finished_at: Option<DateTime<Utc>>,
    /// The errors of its last attempts, oldest first: at most 20 (`MAX_ERRORS_KEPT`).
    pub errors: Vec<AttemptError>,
    /// A recurring job's last runs, oldest first: at most 20 (`MAX_RUNS_KEPT`; none for a
    /// one-off job).
    pub runs: Vec<JobRun>,
    /// What a finished job's handler recorded ([`Context::record`](crate::Context::record)).
    pub output: Option<Value>,
    /// Whether an enqueue returned this job instead of creating one: another job held the
    /// new one's [`Unique`] key, or its name under [`OnConflict::Keep`]. Always `false` when
    /// the job was read any other way.
    pub duplicate: bool,
}

impl JobRow {
    /// Whether it waits to be retried: ready, after a failed attempt of its occurrence (its
    /// [`errors`](JobRow::errors) say why; it runs again at [`run_at`](JobRow::run_at)).
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.get(42).await?;
    /// if job.is_retrying() {
    ///     println!("attempt {} of {} failed: {:?}", job.attempt, job.max_attempts, job.last_error);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_retrying(&self) -> bool {
        self.status == JobStatus::Ready && self.attempt > 0
    }
}

/// How many runs a recurring job keeps ([`JobRow::runs`]).
pub const MAX_RUNS_KEPT: usize = 20;

/// One run of a recurring job, as it keeps it (in its `runs`).
#[cfg_attr(
    any(doc, doctest),
    doc = r#"
```no_run
# async fn demo(client: qron::Client) -> qron::Result<()> {
for run in client.get(42).await?.runs {
    println!("{} for the slot of {}: {}", run.at, run.slot, run.outcome);
}
# Ok(()) }
```
"#
)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
pub struct JobRun {
    /// The slot it ran for (its due time).
    pub slot: DateTime<Utc>,
    /// When its outcome was written (by the database's clock).
    pub at: DateTime<Utc>,
    /// The worker that ran it (`None` if it was not recorded).
    #[serde(default)]
    pub worker: Option<String>,
    /// `succeeded`, `failed` (a retry follows while attempts remain) or `snoozed`.
    pub outcome: String,
    /// The error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// How many attempts' errors a job keeps ([`JobRow::errors`]).
pub const MAX_ERRORS_KEPT: usize = 20;

/// One failed attempt, as a job keeps it (in its `errors`).
#[cfg_attr(
    any(doc, doctest),
    doc = r#"
```no_run
# async fn demo(client: qron::Client) -> qron::Result<()> {
for e in client.get(42).await?.errors {
    println!("attempt {} on {:?} at {}: {}", e.attempt, e.worker, e.at, e.error);
}
# Ok(()) }
```
"#
)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
pub struct AttemptError {
    /// The attempt at its occurrence, from 1.
    pub attempt: i32,
    /// When the attempt ended (by the database's clock).
    pub at: DateTime<Utc>,
    /// The worker that ran it (`None` if it was not recorded).
    pub worker: Option<String>,
    /// The error, with its causes (cut at 8 KiB, `MAX_ERROR_LEN`).
    pub error: String,
}

/// The entries of a stored `errors` or `runs` array; entries edited by hand into another shape
/// are left out rather than failing the read.
fn entries<T: serde::de::DeserializeOwned>(v: Value) -> Vec<T> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|e| serde_json::from_value(e).ok())
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn interval_to_duration(i: &PgInterval) -> Duration {
    let micros = i64::from(i.days) * 86_400_000_000
        + i64::from(i.months) * 30 * 86_400_000_000
        + i.microseconds;
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

impl<'r> sqlx::FromRow<'r, PgRow> for JobRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        // Text in `jobs_all`, the enum in a table's own rows (`RETURNING *`): an enum's value
        // travels as its label either way.
        let status: String = row.try_get_unchecked("status")?;
        let status = JobStatus::from_db(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "status".to_owned(),
            source: format!("unknown job status `{status}`").into(),
        })?;
        let timeout: PgInterval = row.try_get("timeout")?;
        Ok(JobRow {
            id: row.try_get("id")?,
            executor: row.try_get("executor")?,
            owner: row.try_get("owner")?,
            name: row.try_get("name")?,
            expr: row.try_get("expr")?,
            recurring: row.try_get("recurring")?,
            status,
            run_at: row.try_get("run_at")?,
            payload: row.try_get("payload")?,
            meta: row.try_get("meta")?,
            attempt: row.try_get("attempt")?,
            executions: row.try_get("executions")?,
            max_attempts: row.try_get("max_attempts")?,
            priority: match row.try_get::<i16, _>("priority") {
                Err(sqlx::Error::ColumnNotFound(_)) => DEFAULT_PRIORITY,
                other => u8::try_from(other?).unwrap_or(DEFAULT_PRIORITY),
            },
            timeout: interval_to_duration(&timeout),
            revision: row.try_get("revision")?,
            last_error: row.try_get("last_error")?,
            last_error_at: row.try_get("last_error_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            start_at: row.try_get("start_at")?,
            last_run_at: row.try_get("last_run_at")?,
            // Only finished jobs have the column (`jobs_all` gives every row one).
            finished_at: match row.try_get("finished_at") {
                Err(sqlx::Error::ColumnNotFound(_)) => None,
                other => other?,
            },
            errors: entries(row.try_get("errors")?),
            runs: match row.try_get("runs") {
                Err(sqlx::Error::ColumnNotFound(_)) => Vec::new(),
                other => entries(other?),
            },
            output: match row.try_get("output") {
                Err(sqlx::Error::ColumnNotFound(_)) => None,
                other => other?,
            },
            duplicate: false,
        })
    }
}

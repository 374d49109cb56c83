//! The GraphQL output types: a job, its attempts and runs, a page of jobs, an executor, an
//! expression's validation.

use async_graphql::{Enum, Json, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;
use crate::JobRow;

/// A job's status.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(remote = "crate::JobStatus")]
pub enum Status {
    /// Waiting for its run time.
    Ready,
    /// Leased by a worker.
    Running,
    /// Stopped by an operator.
    Paused,
    /// Finished successfully.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

/// One attempt's error.
#[derive(SimpleObject, Debug)]
pub struct AttemptError {
    /// The attempt it ended.
    pub attempt: i32,
    /// When.
    pub at: DateTime<Utc>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// The error.
    pub error: String,
}

/// One run of a recurring job.
#[derive(SimpleObject, Debug)]
pub struct JobRun {
    /// The slot it ran for.
    pub slot: DateTime<Utc>,
    /// When its outcome was written.
    pub at: DateTime<Utc>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// `succeeded`, `failed` or `snoozed`.
    pub outcome: String,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// A job, live or finished.
#[derive(SimpleObject, Debug)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// Its executor (queue).
    pub executor: String,
    /// Its owner.
    pub owner: String,
    /// Its unique name among the owner's live jobs of the executor, if it has one.
    pub name: Option<String>,
    /// Its schedule, canonical.
    pub expr: String,
    /// Whether it repeats.
    pub recurring: bool,
    /// Where it is in its life.
    pub status: Status,
    /// Whether it waits to be retried: ready, after a failed attempt of its occurrence.
    pub retrying: bool,
    /// When it runs next (or ran last, when finished).
    pub run_at: DateTime<Utc>,
    /// Its payload.
    pub payload: Json<Value>,
    /// Its meta.
    pub meta: Json<Value>,
    /// The attempt of the current occurrence.
    pub attempt: i32,
    /// Executions over its whole life.
    pub executions: i64,
    /// Attempts allowed per occurrence.
    pub max_attempts: i32,
    /// Its run-time limit, in seconds.
    pub timeout_seconds: f64,
    /// Bumped by every change.
    pub revision: i64,
    /// The last error.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The instant its schedule counts from.
    pub start_at: DateTime<Utc>,
    /// When it last started.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When it finished, for a finished job.
    pub finished_at: Option<DateTime<Utc>>,
    /// The errors of its last attempts, oldest first.
    pub errors: Vec<AttemptError>,
    /// A recurring job's last runs, oldest first.
    pub runs: Vec<JobRun>,
}

impl Job {
    /// About how many bytes of JSON it makes: its payload, meta and errors (the rest is small).
    pub(super) fn size(&self) -> usize {
        let json = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
        json(&self.payload.0)
            + json(&self.meta.0)
            + self.errors.iter().map(|e| e.error.len()).sum::<usize>()
            + self
                .runs
                .iter()
                .map(|r| r.error.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + 512
    }
}

/// What is left of a request's answer, in bytes: every job read charges it, and a request
/// that would go past it gets an error instead of the jobs.
pub(crate) struct Budget {
    left: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            left: std::sync::atomic::AtomicUsize::new(limit),
            limit,
        }
    }

    pub(super) fn left(&self) -> usize {
        self.left.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn exhausted(&self) -> async_graphql::Error {
        async_graphql::Error::new(format!(
            "the answer would be over {} bytes: ask for fewer jobs (a smaller limit), fewer \
             fields, or fewer queries in one request",
            self.limit
        ))
        .extend_with(|_, ext| ext.set("code", "TOO_LARGE"))
    }

    pub(super) fn charge(&self, bytes: usize) -> Result<()> {
        use std::sync::atomic::Ordering;
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .map(|_| ())
            .map_err(|_| self.exhausted())
    }
}

/// `meta` as shown over the API and on the dashboard: an `http` job's request headers may hold
/// credentials, so their values are replaced.
pub(crate) fn shown_meta(executor: &str, mut meta: Value) -> Value {
    if executor == "http"
        && let Some(Value::Object(headers)) = meta.get_mut("headers")
    {
        for value in headers.values_mut() {
            *value = Value::String("[redacted]".to_owned());
        }
    }
    meta
}

impl From<JobRow> for Job {
    fn from(j: JobRow) -> Self {
        let meta = shown_meta(&j.executor, j.meta.clone());
        let retrying = j.is_retrying();
        Self {
            retrying,
            id: j.id,
            executor: j.executor,
            owner: j.owner,
            name: j.name,
            expr: j.expr,
            recurring: j.recurring,
            status: j.status.into(),
            run_at: j.run_at,
            payload: Json(j.payload),
            meta: Json(meta),
            attempt: j.attempt,
            executions: j.executions,
            max_attempts: j.max_attempts,
            timeout_seconds: j.timeout.as_secs_f64(),
            revision: j.revision,
            last_error: j.last_error,
            last_error_at: j.last_error_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
            start_at: j.start_at,
            last_run_at: j.last_run_at,
            finished_at: j.finished_at,
            errors: j
                .errors
                .into_iter()
                .map(|e| AttemptError {
                    attempt: e.attempt,
                    at: e.at,
                    worker: e.worker,
                    error: e.error,
                })
                .collect(),
            runs: j
                .runs
                .into_iter()
                .map(|r| JobRun {
                    slot: r.slot,
                    at: r.at,
                    worker: r.worker,
                    outcome: r.outcome,
                    error: r.error,
                })
                .collect(),
        }
    }
}

/// A page of jobs.
#[derive(SimpleObject, Debug)]
pub struct JobPage {
    /// The jobs of the page.
    pub jobs: Vec<Job>,
    /// How many match in all.
    pub total: i64,
}

/// An executor as the owner sees it.
#[derive(SimpleObject, Debug)]
pub struct Executor {
    /// Its name.
    pub executor: String,
    /// Live jobs waiting (held ones included).
    pub ready: i64,
    /// Jobs a worker holds.
    pub running: i64,
    /// Jobs stopped one by one.
    pub paused: i64,
    /// The run time of the oldest due job not yet leased.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// How late that job is, in seconds.
    pub lateness_seconds: Option<f64>,
    /// When the owner paused the executor.
    pub paused_at: Option<DateTime<Utc>>,
    /// The running workers serving it.
    pub workers: Vec<String>,
}

/// What [`Query::validate`] says of an expression.
#[derive(SimpleObject, Debug, Default)]
pub struct Validation {
    /// Whether it parses.
    pub valid: bool,
    /// The error, when it does not.
    pub error: Option<String>,
    /// Where in the text, in characters.
    pub position: Option<i32>,
    /// The canonical form (what is stored).
    pub canonical: Option<String>,
    /// The schedule in words.
    pub description: Option<String>,
    /// Whether it repeats.
    pub recurring: Option<bool>,
    /// Its next runs.
    pub next_runs: Vec<DateTime<Utc>>,
}

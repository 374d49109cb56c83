//! The GraphQL output types: a job, its attempts and runs, a page of jobs, an executor, an
//! expression's validation.

use async_graphql::{Json, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;
use crate::JobRow;

/// The GraphQL API's `Job` is [`JobRow`] itself; these are its fields that are not columns.
#[async_graphql::ComplexObject]
impl JobRow {
    /// Free-form JSON object (an `http` job's header values are redacted).
    async fn meta(&self) -> Json<Value> {
        Json(shown_meta(&self.executor, self.meta.clone()))
    }

    /// The run-time limit, in seconds.
    async fn timeout_seconds(&self) -> f64 {
        self.timeout.as_secs_f64()
    }

    /// Whether it waits to be retried: ready, after a failed attempt of its occurrence.
    async fn retrying(&self) -> bool {
        self.is_retrying()
    }
}

/// A job as the API shows it.
pub type Job = JobRow;

/// About how many bytes of JSON `job` makes: its payload, meta and errors (the rest is small).
pub(super) fn size(job: &Job) -> usize {
    let json = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    json(&job.payload)
        + json(&job.meta)
        + job.errors.iter().map(|e| e.error.len()).sum::<usize>()
        + job
            .runs
            .iter()
            .map(|r| r.error.as_ref().map_or(0, String::len))
            .sum::<usize>()
        + 512
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
    /// Live jobs waiting (a paused owner's included).
    pub ready: i64,
    /// Jobs a worker holds.
    pub running: i64,
    /// Jobs stopped one by one.
    pub stopped: i64,
    /// The run time of the oldest due job not yet leased.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// How late that job is, in seconds.
    pub lateness_seconds: Option<f64>,
    /// When the owner paused the executor.
    pub paused_at: Option<DateTime<Utc>>,
    /// The running workers serving it.
    pub workers: Vec<String>,
    /// Of the ready jobs, those due now.
    pub due: i64,
    /// Its limits across every worker, if any.
    pub limits: Option<ExecutorLimits>,
    /// The places its limits count as taken now (every owner's jobs leased under them).
    pub limit_taken: i64,
    /// Whether its concurrency limit is fully used: due jobs wait for places.
    pub at_limit: bool,
    /// Under a rate limit, the buckets with no start left now (1 for a limit in all; the keys
    /// out of starts for one per key).
    pub rate_spent: i64,
    /// The owner's own cap on its jobs of the executor, if it set one.
    pub owner_cap: Option<u32>,
    /// The owner's jobs leased under that cap now.
    pub owner_cap_taken: i64,
}

/// An owner's weight in the leases' shares.
#[derive(SimpleObject, Debug)]
pub struct OwnerWeight {
    /// The owner.
    pub owner: String,
    /// Its weight (the owners not listed have 1).
    pub weight: u32,
}

/// An executor's limits across every worker.
#[derive(SimpleObject, Debug)]
pub struct ExecutorLimits {
    /// At most this many of its jobs at once, in all.
    pub concurrency: Option<u32>,
    /// What the per-key limit counts by: `owner`, or `field`.
    pub partition_by: Option<String>,
    /// The payload's field, when by field.
    pub partition_field: Option<String>,
    /// At most this many at once per key.
    pub partition_concurrency: Option<u32>,
    /// At most so many starts per period.
    pub rate: Option<RateLimit>,
    /// The limits in words: `20 at once, 2 per customer_id, 100 per minute`.
    pub text: String,
}

/// A rate limit: at most `limit` starts per `periodSeconds`, up to `burst` at once.
#[derive(SimpleObject, Debug)]
pub struct RateLimit {
    /// At most this many starts per period.
    pub limit: u32,
    /// The period, in seconds.
    pub period_seconds: f64,
    /// Starts at once after a quiet spell.
    pub burst: u32,
    /// What the limit counts by, when per key: `owner`, or `field`.
    pub partition_by: Option<String>,
    /// The payload's field, when by field.
    pub partition_field: Option<String>,
}

impl From<&crate::RateLimit> for RateLimit {
    fn from(r: &crate::RateLimit) -> Self {
        let (by, field) = match r.partition() {
            None => (None, None),
            Some(crate::Partition::Owner) => (Some("owner".to_owned()), None),
            Some(crate::Partition::Field(f)) => (Some("field".to_owned()), Some(f.clone())),
        };
        Self {
            limit: r.starts(),
            period_seconds: r.period().as_secs_f64(),
            burst: r.burst_size(),
            partition_by: by,
            partition_field: field,
        }
    }
}

impl From<&crate::ExecutorLimits> for ExecutorLimits {
    fn from(l: &crate::ExecutorLimits) -> Self {
        let (by, field, per_key) = match l.partition() {
            None => (None, None, None),
            Some((crate::Partition::Owner, n)) => (Some("owner"), None, Some(n)),
            Some((crate::Partition::Field(f), n)) => (Some("field"), Some(f.clone()), Some(n)),
        };
        Self {
            concurrency: l.concurrency_limit(),
            partition_by: by.map(str::to_owned),
            partition_field: field,
            partition_concurrency: per_key,
            rate: l.rate_limit().map(RateLimit::from),
            text: l.to_string(),
        }
    }
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

//! A job to create, and what to do when its name is taken.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What to do when a job's name is already taken among the owner's live jobs of that executor.
///
/// ```
/// let job = qron::NewJob::new("backup", "@daily")
///     .name("nightly")
///     .on_conflict(qron::OnConflict::Keep); // schedule once, from every start-up
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Fail with [`Error::AlreadyExists`](crate::Error::AlreadyExists) (the default).
    #[default]
    Error,
    /// Keep the existing job and return it unchanged.
    Keep,
    /// Replace the existing job's expression, payload, meta, timeout and attempts.
    Replace,
}

/// A job to create. Built with [`NewJob::new`] and its setters.
///
/// ```
/// use serde_json::json;
/// let job = qron::NewJob::new("email", "@after 1 hour")
///     .payload(json!({ "user_id": 7 }))
///     .name("welcome-7")
///     .meta(json!({ "source": "signup" }))
///     .max_attempts(3)
///     .timeout(std::time::Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub(crate) executor: String,
    pub(crate) expr: String,
    pub(crate) payload: Value,
    pub(crate) name: Option<String>,
    pub(crate) meta: Value,
    pub(crate) start_at: Option<DateTime<Utc>>,
    /// `None`: the executor's declared one (see [`NewJob::new`]).
    pub(crate) timeout: Option<Duration>,
    /// `None`: the executor's declared one.
    pub(crate) max_attempts: Option<i32>,
    pub(crate) on_conflict: OnConflict,
}

impl NewJob {
    /// A job for `executor` on schedule `expr`, with a `null` payload. Its run-time limit and
    /// attempts are those its executor's `#[qron::job]` declares, when the job type is
    /// registered in this process (the defaults, [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT) and
    /// [`DEFAULT_MAX_ATTEMPTS`](crate::DEFAULT_MAX_ATTEMPTS), otherwise), unless set here.
    ///
    /// ```
    /// let job = qron::NewJob::new("backup", "0 0 * * *");
    /// ```
    pub fn new(executor: impl Into<String>, expr: impl Into<String>) -> Self {
        Self {
            executor: executor.into(),
            expr: expr.into(),
            payload: Value::Null,
            name: None,
            meta: Value::Object(Default::default()),
            start_at: None,
            timeout: None,
            max_attempts: None,
            on_conflict: OnConflict::Error,
        }
    }

    /// The handler's input.
    ///
    /// ```
    /// let job = qron::NewJob::new("counter", "@every 10s").payload(serde_json::json!({ "count": 0 }));
    /// ```
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }

    /// A name, unique per (owner, executor) among live jobs.
    ///
    /// ```
    /// let job = qron::NewJob::new("backup", "@daily").name("nightly");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Free-form metadata: a JSON object, searchable by containment.
    ///
    /// ```
    /// let job = qron::NewJob::new("email", "@after 1s").meta(serde_json::json!({ "team": "growth" }));
    /// ```
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = meta;
        self
    }

    /// The instant the schedule counts from (default: now). `@after 10 minutes` with a start in
    /// one hour runs in 70 minutes.
    ///
    /// ```
    /// let later = chrono::Utc::now() + chrono::Duration::hours(1);
    /// let job = qron::NewJob::new("email", "@after 10 minutes").start_at(later);
    /// ```
    pub fn start_at(mut self, start: DateTime<Utc>) -> Self {
        self.start_at = Some(start);
        self
    }

    limit_setters!(
        made: "qron::NewJob::new(\"report\", \"@daily\")",
        unset: "Unset: what the executor declares (`#[qron::job(timeout = …, max_attempts = …)]`) \
                when it is registered in this process, else 5 minutes and 5 attempts."
    );

    /// What to do when the name is taken (default: [`OnConflict::Error`]).
    ///
    /// ```
    /// let job = qron::NewJob::new("backup", "@daily").name("nightly").on_conflict(qron::OnConflict::Replace);
    /// ```
    pub fn on_conflict(mut self, policy: OnConflict) -> Self {
        self.on_conflict = policy;
        self
    }
}

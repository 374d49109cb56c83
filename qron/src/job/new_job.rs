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
    pub(crate) unique: Option<super::Unique>,
    /// `None`: the executor's declared one.
    pub(crate) priority: Option<u8>,
    /// The jobs it waits for (see [`NewJob::after`]).
    pub(crate) after: Vec<i64>,
    pub(crate) on_dependency_failure: super::OnDependencyFailure,
    /// The workflow and step it is created as (see [`Workflow`](crate::Workflow)).
    pub(crate) workflow: Option<(i64, String)>,
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
            unique: None,
            priority: None,
            after: Vec::new(),
            on_dependency_failure: super::OnDependencyFailure::Cancel,
            workflow: None,
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

    /// Its priority: 0 (the highest) to [`LOWEST_PRIORITY`](crate::LOWEST_PRIORITY) (9); unset,
    /// what the executor declares (`#[qron::job(priority = …)]`), else
    /// [`DEFAULT_PRIORITY`](crate::DEFAULT_PRIORITY) (5). Among an owner's due jobs of the
    /// executor, a worker takes higher priorities first; a job is passed over only by jobs due
    /// less than the client's [aging bound](crate::ClientBuilder::priority_aging) after it.
    ///
    /// ```
    /// let job = qron::NewJob::new("email", "@after 0s").priority(0);
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Makes the job unique by its executor, payload or payload fields, and period (see
    /// [`Unique`](crate::Unique)): when another job holds the same key, none is created and
    /// the enqueue returns that job, flagged [`duplicate`](crate::JobRow::duplicate). A named
    /// job is unique by its name already: a job has a name or a unique key, not both.
    ///
    /// ```
    /// let job = qron::NewJob::new("sync", "@after 0s")
    ///     .payload(serde_json::json!({ "customer_id": 7 }))
    ///     .unique(qron::Unique::by_keys(["customer_id"]));
    /// ```
    pub fn unique(mut self, unique: super::Unique) -> Self {
        self.unique = Some(unique);
        self
    }

    /// Makes the job wait for other jobs of its owner (ids, or what their enqueues returned):
    /// it is [`Waiting`](crate::JobStatus::Waiting), and no worker takes it, until each of them
    /// has ended; then it runs at its schedule's time (at once when that has passed). A job
    /// that waits runs once: its expression is a one-off (`@after`, `@at`). The jobs it waits
    /// for are kept in the history when they end, whatever their executor's
    /// [`History`](crate::History), and its handler reads what they recorded
    /// ([`Context::output`](crate::Context::output)).
    ///
    /// What it does when one of them does not succeed: see
    /// [`on_dependency_failure`](NewJob::on_dependency_failure). A job that does not exist, or
    /// is another owner's, is refused with
    /// [`Error::UnknownDependency`](crate::Error::UnknownDependency), and nothing is written.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let fetch = client.create(qron::NewJob::new("fetch", "@after 0s")).await?;
    /// let merge = client
    ///     .create(qron::NewJob::new("merge", "@after 0s").after([&fetch]))
    ///     .await?;
    /// assert_eq!(merge.status, qron::JobStatus::Waiting);
    /// # Ok(()) }
    /// ```
    pub fn after<I>(mut self, jobs: I) -> Self
    where
        I: IntoIterator,
        I::Item: super::JobId,
    {
        self.after
            .extend(jobs.into_iter().map(|j| super::JobId::job_id(&j)));
        self
    }

    /// What the job does when a job it waits for fails, is cancelled or is deleted (default:
    /// [`OnDependencyFailure::Cancel`](super::OnDependencyFailure::Cancel)).
    ///
    /// ```
    /// let job = qron::NewJob::new("notify", "@after 0s")
    ///     .after([7])
    ///     .on_dependency_failure(qron::OnDependencyFailure::Run);
    /// ```
    pub fn on_dependency_failure(mut self, policy: super::OnDependencyFailure) -> Self {
        self.on_dependency_failure = policy;
        self
    }
}

/// What [`Client::create_many_report`](crate::Client::create_many_report) did with one job of a
/// batch: the id of the job created, or of the job that held its [`Unique`](crate::Unique) key
/// (or its name, under [`OnConflict::Keep`]) and stays.
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let jobs = [7, 7, 8].map(|c| {
///     qron::NewJob::new("sync", "@after 0s")
///         .payload(serde_json::json!({ "customer_id": c }))
///         .unique(qron::Unique::by_keys(["customer_id"]))
/// });
/// let created = client.create_many_report(jobs).await?;
/// assert!(created[1].duplicate && created[1].id == created[0].id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Created {
    /// The job's id.
    pub id: i64,
    /// Whether an existing job was returned instead of creating one.
    pub duplicate: bool,
}

impl From<&super::JobRow> for Created {
    /// What a single enqueue did: the job's id, and whether it was a
    /// [`duplicate`](super::JobRow::duplicate).
    fn from(job: &super::JobRow) -> Self {
        Self {
            id: job.id,
            duplicate: job.duplicate,
        }
    }
}

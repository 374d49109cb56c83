//! Jobs as stored, and the inputs that create, find and change them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use sqlx::postgres::types::PgInterval;

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
/// assert_eq!(qron::JobStatus::Paused.as_str(), "paused");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for its run time.
    Ready,
    /// Leased by a worker.
    Running,
    /// Stopped by an operator; `restart` makes it ready again.
    Paused,
    /// A one-off job that ran successfully (kept in the history).
    Succeeded,
    /// A one-off job that failed for good (kept in the history).
    Failed,
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
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    fn from_db(s: &str) -> Option<Self> {
        Some(match s {
            "ready" => JobStatus::Ready,
            "running" => JobStatus::Running,
            "paused" => JobStatus::Paused,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }
}

/// A stored job.
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let job = client.get(42).await?;
/// println!("{} runs `{}` next at {}", job.id, job.expr, job.run_at);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
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
    pub meta: Value,
    /// Executions of the current occurrence.
    pub attempt: i32,
    /// Executions over the job's whole life.
    pub executions: i64,
    /// Attempts allowed per occurrence.
    pub max_attempts: i32,
    /// Lease length.
    pub timeout: Duration,
    /// Bumped by every management change; see [`JobUpdate::if_revision`].
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
}

pub(crate) fn interval_to_duration(i: &PgInterval) -> Duration {
    let micros = i64::from(i.days) * 86_400_000_000
        + i64::from(i.months) * 30 * 86_400_000_000
        + i.microseconds;
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

impl<'r> sqlx::FromRow<'r, PgRow> for JobRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
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
            timeout: interval_to_duration(&timeout),
            revision: row.try_get("revision")?,
            last_error: row.try_get("last_error")?,
            last_error_at: row.try_get("last_error_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            start_at: row.try_get("start_at")?,
            last_run_at: row.try_get("last_run_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

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
    pub(crate) timeout: Duration,
    pub(crate) max_attempts: i32,
    pub(crate) on_conflict: OnConflict,
}

impl NewJob {
    /// A job for `executor` on schedule `expr`, with a `null` payload and the defaults.
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
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
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

    /// Lease length: how long a worker may hold the job before it is handed out again
    /// (default 5 minutes).
    ///
    /// ```
    /// let job = qron::NewJob::new("report", "@daily").timeout(std::time::Duration::from_secs(3600));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per occurrence, 1 to 1000 (default 5).
    ///
    /// ```
    /// let job = qron::NewJob::new("email", "@after 1s").max_attempts(10);
    /// ```
    pub fn max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = attempts;
        self
    }

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

/// A job, by id or by (executor, name).
///
/// ```
/// let by_id: qron::JobRef = 42.into();
/// let by_name = qron::JobRef::named("backup", "nightly");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    /// By id.
    Id(i64),
    /// By name among the live jobs of an executor.
    Name {
        /// The executor.
        executor: String,
        /// The name.
        name: String,
    },
}

impl JobRef {
    /// The live job named `name` of `executor`.
    ///
    /// ```
    /// let r = qron::JobRef::named("backup", "nightly");
    /// ```
    pub fn named(executor: impl Into<String>, name: impl Into<String>) -> Self {
        JobRef::Name {
            executor: executor.into(),
            name: name.into(),
        }
    }
}

impl From<i64> for JobRef {
    fn from(id: i64) -> Self {
        JobRef::Id(id)
    }
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobRef::Id(id) => write!(f, "job {id}"),
            JobRef::Name { executor, name } => {
                write!(f, "job named `{name}` of executor `{executor}`")
            }
        }
    }
}

/// Changes to a job; fields left unset stay as they are. An empty update changes nothing.
///
/// ```
/// let change = qron::JobUpdate::new().expr("@every 5 minutes").payload(serde_json::json!({ "v": 2 }));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobUpdate {
    pub(crate) expr: Option<String>,
    pub(crate) payload: Option<Value>,
    pub(crate) meta: Option<Value>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_attempts: Option<i32>,
    pub(crate) if_revision: Option<i64>,
}

impl JobUpdate {
    /// An update that changes nothing yet.
    ///
    /// ```
    /// assert!(qron::JobUpdate::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A new schedule; the run time is recomputed from now.
    ///
    /// ```
    /// let u = qron::JobUpdate::new().expr("0 9 * * *");
    /// ```
    pub fn expr(mut self, expr: impl Into<String>) -> Self {
        self.expr = Some(expr.into());
        self
    }

    /// A new payload.
    ///
    /// ```
    /// let u = qron::JobUpdate::new().payload(serde_json::json!([1, 2]));
    /// ```
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// New metadata (a JSON object).
    ///
    /// ```
    /// let u = qron::JobUpdate::new().meta(serde_json::json!({ "team": "ops" }));
    /// ```
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = Some(meta);
        self
    }

    /// A new lease length.
    ///
    /// ```
    /// let u = qron::JobUpdate::new().timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A new attempt limit.
    ///
    /// ```
    /// let u = qron::JobUpdate::new().max_attempts(2);
    /// ```
    pub fn max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Applies the update only if the job's [`revision`](JobRow::revision) is still `revision`:
    /// an edit based on a stale read fails with [`Error::RevisionMismatch`](crate::Error::RevisionMismatch)
    /// instead of overwriting someone else's change.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.get(42).await?;
    /// let change = qron::JobUpdate::new().max_attempts(9).if_revision(job.revision);
    /// client.update(job.id, change).await?;
    /// # Ok(()) }
    /// ```
    pub fn if_revision(mut self, revision: i64) -> Self {
        self.if_revision = Some(revision);
        self
    }

    /// Whether no change is set (a revision condition alone changes nothing).
    ///
    /// ```
    /// assert!(!qron::JobUpdate::new().max_attempts(2).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        Self {
            if_revision: None,
            ..self.clone()
        } == Self::default()
    }
}

/// Sort order of a search; ties are broken by id.
///
/// ```
/// let q = qron::Search::new().order(qron::Order::CreatedDesc);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    CreatedAsc,
    /// Newest first.
    CreatedDesc,
    /// Soonest due first.
    RunAtAsc,
    /// Latest due first.
    RunAtDesc,
}

impl Order {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Order::CreatedAsc => "created_asc",
            Order::CreatedDesc => "created_desc",
            Order::RunAtAsc => "run_at_asc",
            Order::RunAtDesc => "run_at_desc",
        }
    }
}

/// The largest page a search returns.
pub const MAX_PAGE: i64 = 1000;

/// What to look for among the owner's jobs, live and finished. Every filter is optional.
///
/// ```
/// let q = qron::Search::new()
///     .executor("email")
///     .status(qron::JobStatus::Failed)
///     .name_contains("welcome")
///     .limit(10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub(crate) executor: Option<String>,
    pub(crate) statuses: Vec<JobStatus>,
    pub(crate) name_contains: Option<String>,
    pub(crate) recurring: Option<bool>,
    pub(crate) created: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub(crate) run: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub(crate) meta_contains: Option<Value>,
    pub(crate) order: Order,
    pub(crate) limit: i64,
    pub(crate) offset: i64,
}

impl Default for Search {
    fn default() -> Self {
        Self {
            executor: None,
            statuses: Vec::new(),
            name_contains: None,
            recurring: None,
            created: (None, None),
            run: (None, None),
            meta_contains: None,
            order: Order::default(),
            limit: 50,
            offset: 0,
        }
    }
}

impl Search {
    /// Everything, oldest first, 50 per page.
    ///
    /// ```
    /// let q = qron::Search::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this executor's jobs.
    ///
    /// ```
    /// let q = qron::Search::new().executor("email");
    /// ```
    pub fn executor(mut self, executor: impl Into<String>) -> Self {
        self.executor = Some(executor.into());
        self
    }

    /// Only jobs in this status (call again to accept several).
    ///
    /// ```
    /// let q = qron::Search::new().status(qron::JobStatus::Ready).status(qron::JobStatus::Paused);
    /// ```
    pub fn status(mut self, status: JobStatus) -> Self {
        self.statuses.push(status);
        self
    }

    /// Only jobs whose name contains `text` (taken literally: `%` and `_` are plain characters).
    ///
    /// ```
    /// let q = qron::Search::new().name_contains("100%");
    /// ```
    pub fn name_contains(mut self, text: impl Into<String>) -> Self {
        self.name_contains = Some(text.into());
        self
    }

    /// Only recurring (`true`) or only one-off (`false`) jobs.
    ///
    /// ```
    /// let q = qron::Search::new().recurring(true);
    /// ```
    pub fn recurring(mut self, recurring: bool) -> Self {
        self.recurring = Some(recurring);
        self
    }

    /// Only jobs created in `[from, to)`; either end may be open.
    ///
    /// ```
    /// let q = qron::Search::new().created_between(Some(chrono::Utc::now() - chrono::Duration::days(1)), None);
    /// ```
    pub fn created_between(
        mut self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Self {
        self.created = (from, to);
        self
    }

    /// Only jobs due (or last due) in `[from, to)`; either end may be open.
    ///
    /// ```
    /// let q = qron::Search::new().run_between(None, Some(chrono::Utc::now()));
    /// ```
    pub fn run_between(mut self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Self {
        self.run = (from, to);
        self
    }

    /// Only jobs whose meta contains this JSON (PostgreSQL's `@>`).
    ///
    /// ```
    /// let q = qron::Search::new().meta_contains(serde_json::json!({ "team": "growth" }));
    /// ```
    pub fn meta_contains(mut self, meta: Value) -> Self {
        self.meta_contains = Some(meta);
        self
    }

    /// The order (default: oldest first).
    ///
    /// ```
    /// let q = qron::Search::new().order(qron::Order::RunAtAsc);
    /// ```
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Page size, 1 to 1000 (default 50).
    ///
    /// ```
    /// let q = qron::Search::new().limit(10);
    /// ```
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Rows to skip.
    ///
    /// ```
    /// let second_page = qron::Search::new().limit(10).offset(10);
    /// ```
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

/// One page of search results and the number of matching jobs.
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let page: qron::Page = client.search(&qron::Search::new().limit(10)).await?;
/// println!("showing {} of {}", page.jobs.len(), page.total);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Page {
    /// The jobs of this page, in the search's order.
    pub jobs: Vec<JobRow>,
    /// How many jobs match the search in all.
    pub total: i64,
}

//! Enqueue and manage jobs: [`Client`].

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use serde_json::Value;
use sqlx::postgres::types::PgInterval;
use sqlx::{Acquire, PgConnection, PgPool, Postgres};

use crate::clock::{DbClock, HostClock};
use crate::db::{self, InsertRow, JobChanges};
use crate::error::{Error, Result};
use crate::job::{
    JobRef, JobRow, JobUpdate, MAX_ATTEMPTS_LIMIT, MAX_NAME_LEN, MAX_PAGE, NewJob, Page, Search,
};
use crate::limits;
use crate::{ExprError, Schedule};

/// The largest payload or meta, serialized as JSON, unless the client says otherwise.
pub const DEFAULT_MAX_JSON_BYTES: usize = 1024 * 1024;
/// The owner of jobs created without one.
pub const DEFAULT_OWNER: &str = "default";
/// Rows per statement in bulk creates.
const INSERT_CHUNK: usize = 10_000;

#[derive(Debug)]
struct Config {
    max_json_bytes: usize,
    /// The database's time: a job's start, and so its first run, count from it.
    clock: DbClock,
}

/// The handle to qron's jobs: create, find, change and delete them. Cheap to clone; every clone
/// shares the pool.
///
/// Every operation is scoped to one owner (tenant): [`Client::owner`] gives a handle for another
/// one, and the plain client acts for owner `"default"`. An owner never sees, changes or deletes
/// another owner's jobs, whatever id or name it asks for.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// use serde_json::json;
/// let client = qron::Client::connect("postgres://localhost/app").await?;
/// client.migrate().await?;
/// let job = client
///     .create(qron::NewJob::new("email", "@after 1 hour").payload(json!({ "user_id": 7 })))
///     .await?;
/// let acme = client.owner("acme");
/// assert!(acme.get(job.id).await.is_err()); // another owner's job
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pool: PgPool,
    owner: Arc<str>,
    config: Arc<Config>,
}

/// Options of a [`Client`].
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) {
/// let client = qron::Client::builder(pool).max_json_bytes(64 * 1024).build();
/// # }
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    pool: PgPool,
    owner: String,
    max_json_bytes: usize,
    host_clock: HostClock,
}

impl ClientBuilder {
    /// The largest payload or meta accepted, serialized as JSON (default 1 MiB).
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).max_json_bytes(16 * 1024).build();
    /// # }
    /// ```
    pub fn max_json_bytes(mut self, bytes: usize) -> Self {
        self.max_json_bytes = bytes;
        self
    }

    /// The owner the client acts for (default `"default"`).
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).owner("acme").build();
    /// # }
    /// ```
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The host's clock the client reads (default [`Utc::now`]). Jobs created without a start
    /// count from the database server's time, not the host's: the client corrects this clock
    /// to the server's (measured when it first needs it, then every 30 s). For tests that make
    /// a host whose clock is wrong.
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// fn two_minutes_fast() -> chrono::DateTime<chrono::Utc> {
    ///     chrono::Utc::now() + chrono::Duration::minutes(2)
    /// }
    /// let client = qron::Client::builder(pool).host_clock(two_minutes_fast).build();
    /// # }
    /// ```
    pub fn host_clock(mut self, clock: HostClock) -> Self {
        self.host_clock = clock;
        self
    }

    /// The client.
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).build();
    /// # }
    /// ```
    pub fn build(self) -> Client {
        Client {
            pool: self.pool,
            owner: self.owner.into(),
            config: Arc::new(Config {
                max_json_bytes: self.max_json_bytes,
                clock: DbClock::new(self.host_clock),
            }),
        }
    }
}

/// An expression checked by [`validate`]: its canonical text, description and next runs.
///
/// ```
/// let v: qron::Validation = qron::validate("@daily", chrono::Utc::now(), 2)?;
/// assert!(v.recurring);
/// # Ok::<(), qron::ExprError>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Validation {
    /// The canonical text (what is stored).
    pub canonical: String,
    /// The schedule in words.
    pub description: String,
    /// Whether it repeats.
    pub recurring: bool,
    /// The first runs from the given instant (one for a one-off schedule).
    pub next_runs: Vec<DateTime<Utc>>,
}

/// Checks an expression without touching the database: its canonical form, its description and
/// its next `count` runs after `from`.
///
/// # Errors
/// The parser's [`ExprError`].
///
/// ```
/// let v = qron::validate("@every 90 minutes", chrono::Utc::now(), 3)?;
/// assert_eq!(v.canonical, "@every 1 hour 30 minutes");
/// assert_eq!(v.next_runs.len(), 3);
/// # Ok::<(), qron::ExprError>(())
/// ```
pub fn validate(
    expr: &str,
    from: DateTime<Utc>,
    count: usize,
) -> std::result::Result<Validation, ExprError> {
    let s = Schedule::parse(expr)?;
    let mut next_runs = Vec::new();
    let mut at = s.first_run(from);
    while let Some(t) = at {
        if next_runs.len() >= count {
            break;
        }
        next_runs.push(t);
        at = s.next_run(from, t, t);
    }
    Ok(Validation {
        canonical: s.to_string(),
        description: s.describe(),
        recurring: s.is_recurring(),
        next_runs,
    })
}

static DEFAULT_CLIENT: OnceLock<Client> = OnceLock::new();

/// Installs the process-wide default client, used by typed enqueue (`Email::schedule(...)`) and
/// `Worker::run_all()`. The first call wins; later calls return `false` and change nothing.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// let client = qron::Client::connect("postgres://localhost/app").await?;
/// qron::init(client);
/// # Ok(()) }
/// ```
pub fn init(client: Client) -> bool {
    DEFAULT_CLIENT.set(client).is_ok()
}

/// The default client installed by [`init`].
///
/// # Errors
/// [`Error::NotInitialized`] before [`init`].
///
/// ```
/// // Before qron::init, there is none:
/// assert!(matches!(qron::client(), Err(qron::Error::NotInitialized)));
/// ```
pub fn client() -> Result<Client> {
    DEFAULT_CLIENT.get().cloned().ok_or(Error::NotInitialized)
}

/// Refuses a text PostgreSQL cannot take as a parameter (a NUL character).
pub(crate) fn check_text(field: &'static str, value: &str) -> Result<()> {
    match limits::text_problem(value) {
        Some(reason) => Err(Error::InvalidArgument {
            field,
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Refuses a job reference whose executor or name PostgreSQL cannot take.
fn check_ref(target: &JobRef) -> Result<()> {
    match target {
        JobRef::Id(_) => Ok(()),
        JobRef::Name { executor, name } => {
            check_text("executor", executor)?;
            check_text("name", name)
        }
    }
}

/// Refuses an instant outside the range jobs are scheduled in (years 1 to 9999).
pub(crate) fn check_time(field: &'static str, t: DateTime<Utc>) -> Result<()> {
    match limits::time_problem(t) {
        Some(reason) => Err(Error::InvalidArgument { field, reason }),
        None => Ok(()),
    }
}

fn check_name(field: &'static str, value: &str) -> Result<()> {
    check_text(field, value)?;
    if value.is_empty() {
        return Err(Error::InvalidArgument {
            field,
            reason: "must not be empty".to_owned(),
        });
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(Error::InvalidArgument {
            field,
            reason: format!("is {chars} characters long, over the limit of {MAX_NAME_LEN}"),
        });
    }
    Ok(())
}

fn check_max_attempts(n: i32) -> Result<()> {
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&n) {
        return Err(Error::InvalidArgument {
            field: "max_attempts",
            reason: format!("{n} is outside 1..={MAX_ATTEMPTS_LIMIT}"),
        });
    }
    Ok(())
}

fn timeout_interval(t: Duration) -> Result<PgInterval> {
    let micros = i64::try_from(t.as_micros()).unwrap_or(i64::MAX);
    if micros <= 0 {
        return Err(Error::InvalidArgument {
            field: "timeout",
            reason: "must be at least one microsecond".to_owned(),
        });
    }
    if t > limits::MAX_TIMEOUT {
        return Err(Error::InvalidArgument {
            field: "timeout",
            reason: format!(
                "{t:?} is over the limit of {:?} (7 days)",
                limits::MAX_TIMEOUT
            ),
        });
    }
    Ok(PgInterval {
        months: 0,
        days: 0,
        microseconds: micros,
    })
}

/// A parsed expression's first run from one start, kept for the next job of a batch.
pub(crate) struct FirstRun {
    text: String,
    start_at: DateTime<Utc>,
    canonical: String,
    recurring: bool,
    run_at: DateTime<Utc>,
}

/// An owner and the limits its operations apply, borrowed from a [`Client`] (or made for a bare
/// connection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub owner: &'a str,
    pub max_json_bytes: usize,
}

impl Scope<'_> {
    pub(crate) fn json(&self, field: &'static str, value: &Value) -> Result<String> {
        let text = serde_json::to_string(value)?;
        if text.len() > self.max_json_bytes {
            return Err(Error::TooLarge {
                field,
                size: text.len(),
                limit: self.max_json_bytes,
            });
        }
        if let Some(reason) = limits::json_problem(&text) {
            return Err(Error::InvalidArgument { field, reason });
        }
        Ok(text)
    }

    /// Refuses an owner that could not be stored (every operation checks it: the owner is
    /// bound into each statement).
    pub(crate) fn check_owner(&self) -> Result<()> {
        check_name("owner", self.owner)
    }

    pub(crate) fn meta_json(&self, meta: &Value) -> Result<String> {
        if !meta.is_object() {
            return Err(Error::InvalidArgument {
                field: "meta",
                reason: "must be a JSON object".to_owned(),
            });
        }
        self.json("meta", meta)
    }

    /// Validates a new job and computes its first run.
    pub(crate) fn prepare(&self, job: &NewJob, now: DateTime<Utc>) -> Result<InsertRow> {
        self.prepare_with(job, now, &mut None)
    }

    /// [`Scope::prepare`], reusing the schedule of the previous job when it has the same
    /// expression and start (most batches schedule one expression many times).
    pub(crate) fn prepare_with(
        &self,
        job: &NewJob,
        now: DateTime<Utc>,
        last: &mut Option<FirstRun>,
    ) -> Result<InsertRow> {
        self.check_owner()?;
        check_name("executor", &job.executor)?;
        if let Some(name) = &job.name {
            check_name("name", name)?;
        }
        check_max_attempts(job.max_attempts)?;
        let timeout = timeout_interval(job.timeout)?;
        // PostgreSQL keeps microseconds: compute from what will be stored.
        let start_at = job.start_at.unwrap_or(now).trunc_subsecs(6);
        check_time("start_at", start_at)?;
        let first = match last.take() {
            Some(f) if f.text == job.expr && f.start_at == start_at => f,
            _ => {
                let schedule = Schedule::parse(&job.expr)?;
                let run_at =
                    schedule
                        .first_run(start_at)
                        .ok_or_else(|| Error::InvalidArgument {
                            field: "expr",
                            reason: format!("`{}` has no run time after {start_at}", job.expr),
                        })?;
                FirstRun {
                    text: job.expr.clone(),
                    start_at,
                    canonical: schedule.to_string(),
                    recurring: schedule.is_recurring(),
                    run_at,
                }
            }
        };
        check_time("expr", first.run_at)?;
        let row = InsertRow {
            executor: job.executor.clone(),
            name: job.name.clone(),
            expr: first.canonical.clone(),
            recurring: first.recurring,
            run_at: first.run_at,
            payload: self.json("payload", &job.payload)?,
            meta: self.meta_json(&job.meta)?,
            max_attempts: job.max_attempts,
            timeout,
            start_at,
        };
        *last = Some(first);
        Ok(row)
    }

    pub(crate) fn already_exists(e: sqlx::Error, executor: &str, name: Option<&str>) -> Error {
        let unique = e
            .as_database_error()
            .is_some_and(|d| d.constraint() == Some("jobs_owner_executor_name"));
        if unique {
            // The database's detail names the row: `Key (owner, executor, name)=(…)`.
            let name = name.map(str::to_owned).unwrap_or_else(|| {
                e.as_database_error()
                    .and_then(|d| {
                        d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                            .and_then(|pg| pg.detail().map(str::to_owned))
                    })
                    .unwrap_or_default()
            });
            Error::AlreadyExists {
                executor: executor.to_owned(),
                name,
            }
        } else {
            Error::Database(e)
        }
    }

    pub(crate) fn not_found(&self, target: &JobRef) -> Error {
        Error::NotFound {
            what: target.to_string(),
            owner: self.owner.to_owned(),
        }
    }

    /// Validates and inserts one job through `conn`.
    pub(crate) async fn create_on(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
        now: DateTime<Utc>,
    ) -> Result<JobRow> {
        let row = self.prepare(&job, now)?;
        let inserted = db::job_insert(&mut *conn, self.owner, &row, job.on_conflict)
            .await
            .map_err(|e| Self::already_exists(e, &row.executor, row.name.as_deref()))?;
        if let Some(job) = inserted {
            return Ok(job);
        }
        // Kept out by OnConflict::Keep: return the job that holds the name.
        let target = JobRef::Name {
            executor: row.executor.clone(),
            name: row.name.clone().unwrap_or_default(),
        };
        db::job_get(&mut *conn, self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))
    }
}

impl Client {
    /// A client over `pool`, acting for owner `"default"`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sqlx::Error> {
    /// let pool = sqlx::PgPool::connect("postgres://localhost/app").await?;
    /// let client = qron::Client::new(pool);
    /// # Ok(()) }
    /// ```
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool).build()
    }

    /// A [`ClientBuilder`] over `pool`.
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).build();
    /// # }
    /// ```
    pub fn builder(pool: PgPool) -> ClientBuilder {
        ClientBuilder {
            pool,
            owner: DEFAULT_OWNER.to_owned(),
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            host_clock: Utc::now,
        }
    }

    /// Connects a pool to `url` and wraps it.
    ///
    /// # Errors
    /// [`Error::Database`] when the server cannot be reached.
    ///
    /// ```no_run
    /// # async fn demo() -> qron::Result<()> {
    /// let client = qron::Client::connect("postgres://localhost/app").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(Self::new(PgPool::connect(url).await?))
    }

    /// Applies qron's migrations (see [`crate::migrate`]).
    ///
    /// # Errors
    /// As [`crate::migrate`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<()> {
        crate::migrate(&self.pool).await
    }

    /// The same client acting for another owner.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let acme = client.owner("acme");
    /// let page = acme.search(&qron::Search::new()).await?; // only acme's jobs
    /// # Ok(()) }
    /// ```
    pub fn owner(&self, owner: impl Into<String>) -> Client {
        let owner: String = owner.into();
        Client {
            pool: self.pool.clone(),
            owner: owner.into(),
            config: self.config.clone(),
        }
    }

    /// The owner this client acts for.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// assert_eq!(client.owner_name(), "default");
    /// # }
    /// ```
    pub fn owner_name(&self) -> &str {
        &self.owner
    }

    /// The pool the client uses.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let pool: &sqlx::PgPool = client.pool();
    /// # }
    /// ```
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database server's time now (see [`DbClock`]).
    pub(crate) async fn now(&self) -> DateTime<Utc> {
        self.config.clock.now_synced(&self.pool).await
    }

    /// The owner and limits that every operation applies.
    pub(crate) fn scope(&self) -> Scope<'_> {
        Scope {
            owner: &self.owner,
            max_json_bytes: self.config.max_json_bytes,
        }
    }

    fn not_found(&self, target: &JobRef) -> Error {
        self.scope().not_found(target)
    }

    /// Creates a job and returns it as stored.
    ///
    /// # Errors
    /// [`Error::InvalidExpression`], [`Error::InvalidArgument`] or [`Error::TooLarge`] for bad
    /// input (nothing is written); [`Error::AlreadyExists`] when the name is taken and the
    /// policy is [`OnConflict::Error`](crate::OnConflict::Error); [`Error::Database`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.create(qron::NewJob::new("backup", "0 0 * * *").name("nightly")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, job: NewJob) -> Result<JobRow> {
        self.create_with(&self.pool, job).await
    }

    /// Creates a job through `conn`, which may be a transaction: the job exists, and workers
    /// see it, only once the transaction commits.
    ///
    /// # Errors
    /// As [`Client::create`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let mut tx = client.pool().begin().await?;
    /// // ... the application's own writes ...
    /// client.create_with(&mut *tx, qron::NewJob::new("email", "@after 1s")).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    #[allow(clippy::manual_async_fn)] // the `Send` bound is the point: see the body
    pub fn create_with<'c, A>(
        &'c self,
        conn: A,
        job: NewJob,
    ) -> impl Future<Output = Result<JobRow>> + Send + 'c
    where
        A: Acquire<'c, Database = Postgres> + Send + 'c,
    {
        // Written out (not `async fn`) so that the future is `Send` for every `A`, checked here:
        // inferred at the call site instead, `&mut *tx` in a spawned task fails to prove it.
        async move {
            let now = self.now().await;
            let mut conn = conn.acquire().await?;
            self.scope().create_on(&mut conn, job, now).await
        }
    }

    /// Creates many jobs in one transaction and returns their ids in input order. Unnamed jobs
    /// are streamed through one binary `COPY` (the server's bulk path: as fast as an
    /// `INSERT … SELECT` of the same rows generated by the server itself); named jobs go in
    /// statements of 10,000 rows that apply their conflict policy. With
    /// [`OnConflict::Keep`](crate::OnConflict::Keep), a row whose name is taken gets the id of
    /// the job that holds it.
    ///
    /// # Errors
    /// As [`Client::create`], for the first bad row (its index is in the message); nothing is
    /// written. Two rows with the same executor and name are an [`Error::InvalidArgument`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let jobs = (0..1000).map(|i| qron::NewJob::new("email", "@after 1s").payload(i.into()));
    /// let ids = client.create_many(jobs).await?;
    /// assert_eq!(ids.len(), 1000);
    /// # Ok(()) }
    /// ```
    pub async fn create_many(&self, jobs: impl IntoIterator<Item = NewJob>) -> Result<Vec<i64>> {
        self.create_many_with(&self.pool, jobs).await
    }

    /// [`Client::create_many`] through `conn`, which may be a transaction.
    ///
    /// # Errors
    /// As [`Client::create_many`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let mut tx = client.pool().begin().await?;
    /// client.create_many_with(&mut *tx, vec![qron::NewJob::new("email", "@after 1s")]).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_many_with<'c, A>(
        &self,
        conn: A,
        jobs: impl IntoIterator<Item = NewJob>,
    ) -> Result<Vec<i64>>
    where
        A: Acquire<'c, Database = Postgres>,
    {
        let now = self.now().await;
        let jobs: Vec<NewJob> = jobs.into_iter().collect();
        let in_batch = |i: usize| {
            move |e: Error| match e {
                Error::InvalidArgument { field, reason } => Error::InvalidArgument {
                    field,
                    reason: format!("{reason} (job {i} of the batch)"),
                },
                other => other,
            }
        };
        // Named jobs are checked before anything is written.
        let mut last = None;
        let mut named = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, job) in jobs.iter().enumerate() {
            let Some(name) = &job.name else { continue };
            let row = self
                .scope()
                .prepare_with(job, now, &mut last)
                .map_err(in_batch(i))?;
            if !names.insert((job.executor.as_str(), name.as_str())) {
                return Err(Error::InvalidArgument {
                    field: "name",
                    reason: format!(
                        "`{name}` of executor `{}` appears twice in the batch (job {i})",
                        job.executor
                    ),
                });
            }
            named.push((i, row));
        }
        let mut ids = vec![0; jobs.len()];
        let mut due = std::collections::BTreeSet::new();
        let soon = now + chrono::Duration::seconds(1);
        let mut tx = conn.begin().await?;
        // Unnamed jobs cannot conflict: they are streamed through one COPY as they are checked
        // (an invalid one aborts it, and the transaction writes nothing).
        let unnamed = jobs.len() - named.len();
        if unnamed > 0 {
            let mut copy = db::JobCopy::begin(&mut tx).await?;
            let mut order = Vec::with_capacity(unnamed);
            for (i, job) in jobs.iter().enumerate().filter(|(_, j)| j.name.is_none()) {
                let row = match self.scope().prepare_with(job, now, &mut last) {
                    Ok(row) => row,
                    Err(e) => {
                        copy.abort().await?;
                        return Err(in_batch(i)(e));
                    }
                };
                if row.run_at <= soon && !due.contains(row.executor.as_str()) {
                    due.insert(row.executor.clone());
                }
                copy.push(&self.owner, &row).await?;
                order.push(i);
            }
            let copied = copy.finish().await?;
            for (i, id) in order
                .into_iter()
                .zip(db::job_copied_ids(&mut tx, copied).await?)
            {
                ids[i] = id;
            }
        }
        // Named jobs: one statement per run of jobs with the same conflict policy.
        for run in named.chunk_by(|a, b| jobs[a.0].on_conflict == jobs[b.0].on_conflict) {
            for chunk in run.chunks(INSERT_CHUNK) {
                let rows: Vec<&InsertRow> = chunk.iter().map(|(_, r)| r).collect();
                let policy = jobs[chunk[0].0].on_conflict;
                let got = db::job_insert_many(&mut tx, &self.owner, &rows, policy)
                    .await
                    .map_err(|e| Scope::already_exists(e, &rows[0].executor, None))?;
                for ((i, row), id) in chunk.iter().zip(got) {
                    ids[*i] = match id {
                        Some(id) => id,
                        None => {
                            let target = JobRef::Name {
                                executor: row.executor.clone(),
                                name: row.name.clone().unwrap_or_default(),
                            };
                            db::job_get(&mut *tx, &self.owner, &target)
                                .await?
                                .ok_or_else(|| self.not_found(&target))?
                                .id
                        }
                    };
                    if row.run_at <= soon && !due.contains(row.executor.as_str()) {
                        due.insert(row.executor.clone());
                    }
                }
            }
        }
        if !due.is_empty() {
            let due: Vec<&str> = due.iter().map(String::as_str).collect();
            db::jobs_notify(&mut *tx, &due).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// A job by id or name, live or finished.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let by_id = client.get(42).await?;
    /// let by_name = client.get(qron::JobRef::named("backup", "nightly")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        db::job_get(&self.pool, &self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))
    }

    /// A page of the owner's jobs, live and finished, with the number that match in all.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a limit outside 1..=1000, a negative offset or meta that
    /// is not an object; [`Error::Database`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let page = client.search(&qron::Search::new().executor("email").limit(10)).await?;
    /// println!("{} of {}", page.jobs.len(), page.total);
    /// # Ok(()) }
    /// ```
    pub async fn search(&self, q: &Search) -> Result<Page> {
        if !(1..=MAX_PAGE).contains(&q.limit) {
            return Err(Error::InvalidArgument {
                field: "limit",
                reason: format!("{} is outside 1..={MAX_PAGE}", q.limit),
            });
        }
        if q.offset < 0 {
            return Err(Error::InvalidArgument {
                field: "offset",
                reason: "must not be negative".to_owned(),
            });
        }
        if let Some(meta) = &q.meta_contains {
            self.scope().meta_json(meta)?;
        }
        self.scope().check_owner()?;
        if let Some(e) = &q.executor {
            check_text("executor", e)?;
        }
        if let Some(n) = &q.name_contains {
            check_text("name_contains", n)?;
        }
        // Bounds beyond the years jobs live in select what the range's ends select.
        let clamp = |(a, b): (Option<DateTime<Utc>>, Option<DateTime<Utc>>)| {
            (a.map(limits::clamp_time), b.map(limits::clamp_time))
        };
        let q = &Search {
            created: clamp(q.created),
            run: clamp(q.run),
            ..q.clone()
        };
        let mut conn = self.pool.acquire().await?;
        let (jobs, total) = db::job_search(&mut conn, &self.owner, q).await?;
        Ok(Page { jobs, total })
    }

    /// Changes a live job; the run time is recomputed from now when the expression changes (and
    /// an `@every` schedule counts from now). An empty update changes nothing and returns the
    /// job.
    ///
    /// An edit made while the job runs is kept, and never makes it run again: the running
    /// execution's outcome still applies to the occurrence it ran (a one-off job finishes, with
    /// the edited payload and meta kept in the history; a recurring job goes on to its next
    /// slot), except that the edited payload wins over one the handler set, and an edited
    /// expression wins over the outcome's next run (the job stays live, on its new schedule).
    ///
    /// # Errors
    /// As [`Client::create`] for bad input; [`Error::NotFound`] when the owner has no such live
    /// job; [`Error::RevisionMismatch`] when [`JobUpdate::if_revision`] no longer holds.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.update(42, qron::JobUpdate::new().expr("@every 5 minutes")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(&self, target: impl Into<JobRef>, change: JobUpdate) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        if change.is_empty() {
            let job = self.get(target).await?;
            return match change.if_revision {
                Some(expected) if expected != job.revision => Err(Error::RevisionMismatch {
                    id: job.id,
                    expected,
                    actual: job.revision,
                }),
                _ => Ok(job),
            };
        }
        let mut c = JobChanges {
            if_revision: change.if_revision,
            ..JobChanges::default()
        };
        if let Some(expr) = &change.expr {
            let schedule = Schedule::parse(expr)?;
            // PostgreSQL keeps microseconds: count from what will be stored.
            let now = self.now().await.trunc_subsecs(6);
            let run_at = schedule
                .first_run(now)
                .ok_or_else(|| Error::InvalidArgument {
                    field: "expr",
                    reason: format!("`{expr}` has no run time after {now}"),
                })?;
            check_time("expr", run_at)?;
            c.run_at = Some(run_at);
            c.start_at = Some(now);
            c.expr = Some(schedule.to_string());
            c.recurring = Some(schedule.is_recurring());
        }
        if let Some(payload) = &change.payload {
            c.payload = Some(self.scope().json("payload", payload)?);
        }
        if let Some(meta) = &change.meta {
            c.meta = Some(self.scope().meta_json(meta)?);
        }
        if let Some(t) = change.timeout {
            c.timeout = Some(timeout_interval(t)?);
        }
        if let Some(n) = change.max_attempts {
            check_max_attempts(n)?;
            c.max_attempts = Some(n);
        }
        if let Some(job) = db::job_update(&self.pool, &self.owner, &target, &c).await? {
            if due_soon(&job, self.config.clock.now()) {
                db::jobs_notify(&self.pool, &[&job.executor]).await?;
            }
            return Ok(job);
        }
        // No row: the job is gone, or its revision moved on.
        match (
            change.if_revision,
            db::job_get(&self.pool, &self.owner, &target).await?,
        ) {
            (Some(expected), Some(job)) if job.finished_at.is_none() => {
                Err(Error::RevisionMismatch {
                    id: job.id,
                    expected,
                    actual: job.revision,
                })
            }
            _ => Err(self.not_found(&target)),
        }
    }

    /// Deletes a job (a live one, or by id a finished one) and returns it. An outcome that a
    /// worker reports for it later changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.delete(qron::JobRef::named("backup", "nightly")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        let mut conn = self.pool.acquire().await?;
        db::job_delete(&mut conn, &self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))
    }

    /// Pauses a live job. A running execution finishes and its outcome is recorded; the job
    /// stays paused.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such live job.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.stop(42).await?;
    /// assert_eq!(job.status, qron::JobStatus::Paused);
    /// # Ok(()) }
    /// ```
    pub async fn stop(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        db::job_stop(&self.pool, &self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))
    }

    /// Makes a paused job ready again. A run time in the past becomes now for a one-off job and
    /// the next slot for a recurring one. A job due now wakes idle workers (on commit).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such live job.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.restart(42).await?;
    /// # Ok(()) }
    /// ```
    pub async fn restart(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        let now = self.now().await;
        let mut tx = self.pool.begin().await?;
        let Some((id, expr, recurring, run_at, start_at)) =
            db::job_lock(&mut tx, &self.owner, &target).await?
        else {
            return Err(self.not_found(&target));
        };
        let run_at = if run_at >= now {
            run_at
        } else if recurring {
            Schedule::parse(&expr)?
                .next_run(start_at, run_at, now)
                .unwrap_or(now)
        } else {
            now
        };
        let job = db::job_restart(&mut tx, &self.owner, id, run_at)
            .await?
            .ok_or_else(|| self.not_found(&target))?;
        if due_soon(&job, now) {
            db::jobs_notify(&mut *tx, &[&job.executor]).await?;
        }
        tx.commit().await?;
        Ok(job)
    }
}

/// Whether idle workers should hear of `job` now: ready and due within a second (as for a
/// created job).
fn due_soon(job: &JobRow, now: DateTime<Utc>) -> bool {
    job.status == crate::JobStatus::Ready && job.run_at <= now + chrono::Duration::seconds(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn client_is_send_sync_and_clone() {
        assert_send_sync::<Client>();
    }
}

//! Typed enqueue: the builder that `Email::schedule(...)` returns.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use crate::handler::Job;
use crate::{Client, JobRow, NewJob, OnConflict};

/// Where a typed enqueue goes: the default client, a client, or a connection (a transaction).
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let via: qron::Via = (&client).into();
/// let mut tx = client.pool().begin().await?;
/// let via: qron::Via = (&mut *tx).into();
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Via<'a> {
    /// The client installed by [`crate::init`].
    Default,
    /// This client.
    Client(&'a Client),
    /// This connection, typically a transaction (`&mut *tx` or `&mut tx`), with the default
    /// client's owner and settings (or the defaults, owner `"default"`, when there is none)
    /// unless the builder names another owner.
    Conn(&'a mut PgConnection),
    /// A connection of this pool, with the default client's owner and settings, as
    /// [`Via::Conn`].
    Pool(&'a sqlx::PgPool),
}

impl<'a, 't> From<&'a mut sqlx::Transaction<'t, sqlx::Postgres>> for Via<'a> {
    fn from(tx: &'a mut sqlx::Transaction<'t, sqlx::Postgres>) -> Self {
        Via::Conn(tx)
    }
}

impl<'a> From<&'a sqlx::PgPool> for Via<'a> {
    fn from(pool: &'a sqlx::PgPool) -> Self {
        Via::Pool(pool)
    }
}

impl<'a> From<&'a Client> for Via<'a> {
    fn from(c: &'a Client) -> Self {
        Via::Client(c)
    }
}

impl<'a> From<&'a mut PgConnection> for Via<'a> {
    fn from(c: &'a mut PgConnection) -> Self {
        Via::Conn(c)
    }
}

/// A typed job about to be enqueued: set what you need, then `.await` it.
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Welcome { user_id: i64 }
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo() -> qron::Result<()> {
/// let job = Email::schedule("@after 1 hour", Welcome { user_id: 7 })
///     .name("welcome-7")
///     .meta(serde_json::json!({ "source": "signup" }))
///     .owner("acme")
///     .on_conflict(qron::OnConflict::Keep)
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "an enqueue does nothing until it is awaited"]
pub struct Enqueue<'a, J: Job> {
    via: Via<'a>,
    job: crate::Result<NewJob>,
    owner: Option<String>,
    _job: PhantomData<fn() -> J>,
}

impl<J: Job> std::fmt::Debug for Enqueue<'_, J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueue")
            .field("executor", &J::EXECUTOR)
            .field("job", &self.job)
            .field("owner", &self.owner)
            .finish()
    }
}

impl<'a, J: Job> Enqueue<'a, J> {
    pub(crate) fn new(via: Via<'a>, expr: &str, payload: J::Payload) -> Self {
        Self {
            via,
            job: new_job::<J>(expr, &payload),
            owner: None,
            _job: PhantomData,
        }
    }

    fn map(mut self, f: impl FnOnce(NewJob) -> NewJob) -> Self {
        self.job = self.job.map(f);
        self
    }

    /// A name, unique per (owner, executor) among live jobs.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "e")] async fn e(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// E::schedule("@daily", P).name("nightly").await?;
    /// # Ok(()) }
    /// ```
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.map(|j| j.name(name))
    }

    /// Free-form metadata (a JSON object).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "e")] async fn e(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// E::schedule("@daily", P).meta(serde_json::json!({ "team": "ops" })).await?;
    /// # Ok(()) }
    /// ```
    pub fn meta(self, meta: Value) -> Self {
        self.map(|j| j.meta(meta))
    }

    /// The instant the schedule counts from (default: now).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "e")] async fn e(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// E::schedule("@after 1 hour", P).start_at(chrono::Utc::now() + chrono::Duration::days(1)).await?;
    /// # Ok(()) }
    /// ```
    pub fn start_at(self, start: DateTime<Utc>) -> Self {
        self.map(|j| j.start_at(start))
    }

    /// The owner (tenant) of the job (default: the client's).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "e")] async fn e(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// E::schedule("@daily", P).owner("acme").await?;
    /// # Ok(()) }
    /// ```
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// What to do when the name is taken (default: an error).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "e")] async fn e(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// E::schedule("@daily", P).name("nightly").on_conflict(qron::OnConflict::Keep).await?;
    /// # Ok(()) }
    /// ```
    pub fn on_conflict(self, policy: OnConflict) -> Self {
        self.map(|j| j.on_conflict(policy))
    }

    /// Overrides the job type's priority for this job: 0 (the highest) to 9 (see
    /// [`NewJob::priority`]).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "e")] async fn e(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// E::schedule("@after 0s", P).priority(0).await?;
    /// # Ok(()) }
    /// ```
    pub fn priority(self, priority: u8) -> Self {
        self.map(|j| j.priority(priority))
    }

    /// Makes the job unique (see [`Unique`](crate::Unique)): when another job holds its key,
    /// none is created and the enqueue returns that job, [`duplicate`](JobRow::duplicate).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Customer { customer_id: i64 }
    /// # #[qron::job(executor = "sync")] async fn sync_customer(p: Customer) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// let job = SyncCustomer::schedule("@after 0s", Customer { customer_id: 7 })
    ///     .unique(qron::Unique::by_keys(["customer_id"]))
    ///     .await?;
    /// if job.duplicate {
    ///     // a sync of this customer is already waiting or running
    /// }
    /// # Ok(()) }
    /// ```
    pub fn unique(self, unique: crate::Unique) -> Self {
        self.map(|j| j.unique(unique))
    }

    /// Makes the job wait for other jobs of its owner (see [`NewJob::after`]): ids, or what
    /// their enqueues returned.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Page { n: u32 }
    /// # #[derive(Serialize, Deserialize)] struct Pages;
    /// # #[qron::job(executor = "fetch")] async fn fetch(p: Page) -> Result<(), qron::JobError> { Ok(()) }
    /// # #[qron::job(executor = "merge")] async fn merge(p: Pages) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// let a = Fetch::schedule("@after 0s", Page { n: 1 }).await?;
    /// let b = Fetch::schedule("@after 0s", Page { n: 2 }).await?;
    /// Merge::schedule("@after 0s", Pages).after([&a, &b]).await?;
    /// # Ok(()) }
    /// ```
    pub fn after<I>(self, jobs: I) -> Self
    where
        I: IntoIterator,
        I::Item: crate::JobId,
    {
        self.map(|j| j.after(jobs))
    }

    /// What the job does when a job it waits for does not succeed (see
    /// [`NewJob::on_dependency_failure`]).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "notify")] async fn notify(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo(report: i64) -> qron::Result<()> {
    /// Notify::schedule("@after 0s", P)
    ///     .after([report])
    ///     .on_dependency_failure(qron::OnDependencyFailure::Run)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_dependency_failure(self, policy: crate::OnDependencyFailure) -> Self {
        self.map(|j| j.on_dependency_failure(policy))
    }

    /// Overrides the job type's attempt limit for this job.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "e")] async fn e(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo() -> qron::Result<()> {
    /// E::schedule("@daily", P).max_attempts(1).await?;
    /// # Ok(()) }
    /// ```
    pub fn max_attempts(self, attempts: i32) -> Self {
        self.map(|j| j.max_attempts(attempts))
    }

    async fn run(self) -> crate::Result<JobRow> {
        let job = self.job?;
        match self.via {
            Via::Default => {
                let client = crate::client()?;
                let client = match self.owner {
                    Some(o) => client.owner(o),
                    None => client,
                };
                client.create(job).await
            }
            Via::Client(c) => match self.owner {
                Some(o) => c.owner(o).create(job).await,
                None => c.create(job).await,
            },
            Via::Conn(conn) => create_on(conn, self.owner.as_deref(), job).await,
            Via::Pool(pool) => {
                let mut conn = pool.acquire().await?;
                create_on(&mut conn, self.owner.as_deref(), job).await
            }
        }
    }
}

/// Creates `job` through `conn` for `owner`, or the default client's (`"default"` without
/// one), with the default client's limits and clock.
async fn create_on(
    conn: &mut PgConnection,
    owner: Option<&str>,
    job: crate::NewJob,
) -> crate::Result<JobRow> {
    let default = crate::client().ok();
    let owner = match (owner, &default) {
        (Some(o), _) => o,
        (None, Some(c)) => c.owner_name(),
        (None, None) => crate::DEFAULT_OWNER,
    };
    // The default client's view of the executors limited per key (a way in for the workers'
    // leases, never a rule: see `client::Partitions`).
    let partitions = default.as_ref().and_then(|c| c.scope().partitions);
    let (max_json_bytes, priority_aging) = default.as_ref().map_or(
        (crate::DEFAULT_MAX_JSON_BYTES, crate::DEFAULT_PRIORITY_AGING),
        |c| (c.scope().max_json_bytes, c.scope().priority_aging),
    );
    let now = match &default {
        Some(c) => c.now().await,
        None => crate::clock::process_clock().now_synced(&mut *conn).await,
    };
    let scope = crate::client::Scope {
        owner,
        max_json_bytes,
        priority_aging,
        partitions,
    };
    scope.create_on(conn, job, now).await
}

impl<'a, J: Job> IntoFuture for Enqueue<'a, J> {
    type Output = crate::Result<JobRow>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A [`crate::NewJob`] for a typed job, with its options.
pub(crate) fn new_job<J: Job>(expr: &str, payload: &J::Payload) -> crate::Result<crate::NewJob> {
    Ok(crate::NewJob::new(J::EXECUTOR, expr)
        .payload(serde_json::to_value(payload)?)
        .max_attempts(J::OPTIONS.max_attempts)
        .timeout(J::OPTIONS.timeout)
        .priority(J::OPTIONS.priority))
}

/// `J::schedule(expr, payload)`, generated by `#[qron::job]` on the job's type.
pub fn schedule<J: Job>(expr: &str, payload: J::Payload) -> Enqueue<'static, J> {
    Enqueue::new(Via::Default, expr, payload)
}

/// `J::schedule_with(via, expr, payload)`, generated by `#[qron::job]` on the job's type.
pub fn schedule_with<'a, J: Job>(
    via: impl Into<Via<'a>>,
    expr: &str,
    payload: J::Payload,
) -> Enqueue<'a, J> {
    Enqueue::new(via.into(), expr, payload)
}

/// `J::schedule_many(items)`, generated by `#[qron::job]` on the job's type.
pub fn schedule_many<'e, J: Job, I>(
    items: I,
) -> impl Future<Output = crate::Result<Vec<i64>>> + Send
where
    I: IntoIterator<Item = (&'e str, J::Payload)>,
{
    let jobs: crate::Result<Vec<NewJob>> = items
        .into_iter()
        .map(|(expr, payload)| new_job::<J>(expr, &payload))
        .collect();
    async move { crate::client()?.create_many(jobs?).await }
}

//! Batches: many jobs and a callback that runs once when every one of them has ended, with how
//! each ended ([`Batch`]); jobs added to a batch from inside it ([`Context::add_to_batch`]).
//!
//! [`Context::add_to_batch`]: crate::Context::add_to_batch

use crate::Job;
use crate::error::{Error, Result};
use crate::job::{MAX_DEPENDENCIES, NewJob};

/// Jobs enqueued together with a callback job that runs once, when every one of them has ended
/// (succeeded, failed, been cancelled or deleted): Sidekiq's batches, River's and Oban's
/// workflows' fan-in. The jobs are written with `COPY` (100,000 in about a second), their edges
/// to the callback too, in one transaction. The callback reads how they ended with
/// [`Context::batch_results`](crate::Context::batch_results) (or, with what each recorded,
/// [`Context::dependencies`](crate::Context::dependencies)); a job of the batch can add more
/// jobs to it while it runs ([`Context::add_to_batch`](crate::Context::add_to_batch)).
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Row { n: u64 }
/// # #[derive(Serialize, Deserialize)] struct Import { file: String }
/// # #[qron::job(executor = "import_row")] async fn import_row(r: Row) -> Result<(), qron::JobError> { Ok(()) }
/// #[qron::job(executor = "import_done")]
/// async fn import_done(ctx: qron::Context, import: Import) -> Result<(), qron::JobError> {
///     let results = ctx.batch_results().await?;
///     tracing::info!(succeeded = results.succeeded.len(), failed = results.failed.len(), "imported");
///     Ok(())
/// }
///
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let mut batch = qron::Batch::new();
/// for n in 0..100_000 {
///     batch.add::<ImportRow>(Row { n });
/// }
/// batch.on_finish::<ImportDone>(Import { file: "rows.csv".into() });
/// let created = batch.create(&client).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Batch {
    jobs: Vec<Result<NewJob>>,
    callback: Option<Result<NewJob>>,
}

/// What [`Batch::create`] made: the callback's id (the batch's, for
/// [`Client::batch`](crate::Client::batch)) and the jobs' ids, in the order they were added.
///
/// ```no_run
/// # async fn demo(client: qron::Client, batch: qron::Batch) -> qron::Result<()> {
/// let created = batch.create(&client).await?;
/// let first_job = created.jobs[0];
/// let progress = client.batch(created.callback).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchCreated {
    /// The callback job's id, which names the batch.
    pub callback: i64,
    /// The jobs' ids, in the order they were added.
    pub jobs: Vec<i64>,
}

/// How the jobs of a batch (the jobs a job waits for) stand, by status: ids in order
/// ([`Context::batch_results`](crate::Context::batch_results),
/// [`Client::batch`](crate::Client::batch)).
///
/// ```no_run
/// # async fn callback(ctx: qron::Context) -> Result<(), qron::JobError> {
/// let r = ctx.batch_results().await?;
/// tracing::info!(done = r.succeeded.len(), failed = r.failed.len(), of = r.total(), "batch");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
pub struct BatchResults {
    /// The jobs that succeeded.
    pub succeeded: Vec<i64>,
    /// The jobs that failed.
    pub failed: Vec<i64>,
    /// The jobs that were cancelled.
    pub cancelled: Vec<i64>,
    /// The jobs deleted without a trace.
    pub deleted: Vec<i64>,
    /// The jobs not ended yet (waiting, ready, running or stopped).
    pub live: Vec<i64>,
}

impl BatchResults {
    /// How many jobs in all.
    ///
    /// ```
    /// assert_eq!(qron::BatchResults::default().total(), 0);
    /// ```
    pub fn total(&self) -> usize {
        self.succeeded.len()
            + self.failed.len()
            + self.cancelled.len()
            + self.deleted.len()
            + self.live.len()
    }

    /// The results from rows of (status, ids).
    pub(crate) fn from_rows(rows: Vec<(String, Vec<i64>)>) -> Self {
        let mut r = Self::default();
        for (status, ids) in rows {
            let list = match status.as_str() {
                "succeeded" => &mut r.succeeded,
                "failed" => &mut r.failed,
                "cancelled" => &mut r.cancelled,
                "deleted" => &mut r.deleted,
                _ => &mut r.live,
            };
            list.extend(ids);
        }
        r.live.sort_unstable();
        r
    }
}

/// A batch as it is now ([`Client::batch`](crate::Client::batch)).
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let batch = client.batch(42).await?;
/// if batch.callback_status == qron::JobStatus::Waiting {
///     println!("{} jobs left", batch.jobs.live.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "http", graphql(name = "Batch"))]
pub struct BatchInfo {
    /// The callback's id, which names the batch.
    pub callback: i64,
    /// The callback's status: `waiting` until every job has ended.
    pub callback_status: crate::JobStatus,
    /// The batch's jobs, by status.
    pub jobs: BatchResults,
}

impl Batch {
    /// An empty batch.
    ///
    /// ```
    /// let batch = qron::Batch::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job of type `J` with `payload`, due at once with `J`'s options.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Row { n: u64 }
    /// # #[qron::job(executor = "import_row")] async fn import_row(r: Row) -> Result<(), qron::JobError> { Ok(()) }
    /// let mut batch = qron::Batch::new();
    /// batch.add::<ImportRow>(Row { n: 1 });
    /// ```
    pub fn add<J: Job>(&mut self, payload: J::Payload) -> &mut Self {
        self.jobs
            .push(crate::enqueue::new_job::<J>(AT_ONCE, &payload));
        self
    }

    /// Adds `job`: a one-off job, without a name, uniqueness or jobs of its own to wait for.
    ///
    /// ```
    /// let mut batch = qron::Batch::new();
    /// batch.add_job(qron::NewJob::new("import_row", "@after 0s"));
    /// ```
    pub fn add_job(&mut self, job: NewJob) -> &mut Self {
        self.jobs.push(Ok(job));
        self
    }

    /// The callback: a job of type `J` with `payload`, run once every job of the batch has
    /// ended, whether they succeeded or not.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Import { file: String }
    /// # #[qron::job(executor = "import_done")] async fn import_done(i: Import) -> Result<(), qron::JobError> { Ok(()) }
    /// let mut batch = qron::Batch::new();
    /// batch.on_finish::<ImportDone>(Import { file: "rows.csv".into() });
    /// ```
    pub fn on_finish<J: Job>(&mut self, payload: J::Payload) -> &mut Self {
        self.callback = Some(crate::enqueue::new_job::<J>(AT_ONCE, &payload));
        self
    }

    /// The callback as `job` (a one-off job; its expression says how long after the batch's
    /// end it runs at the earliest, from its creation).
    ///
    /// ```
    /// let mut batch = qron::Batch::new();
    /// batch.on_finish_job(qron::NewJob::new("import_done", "@after 0s"));
    /// ```
    pub fn on_finish_job(&mut self, job: NewJob) -> &mut Self {
        self.callback = Some(Ok(job));
        self
    }

    /// Creates the batch in one transaction: its jobs and their edges to the callback with
    /// `COPY`, and the callback, waiting for them.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a batch without a callback (`callback`), without jobs or
    /// with more than [`MAX_DEPENDENCIES`] (`jobs`), or with a job that repeats (`expr`), has a
    /// name (`name`), is unique (`unique`) or waits for others (`after`); and what creating a
    /// job returns ([`Client::create`](crate::Client::create)). Nothing is written then.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let mut batch = qron::Batch::new();
    /// batch.add_job(qron::NewJob::new("import_row", "@after 0s"));
    /// batch.on_finish_job(qron::NewJob::new("import_done", "@after 0s"));
    /// let created = batch.create(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(self, client: &crate::Client) -> Result<BatchCreated> {
        let mut tx = client.pool().begin().await?;
        let created = self.create_with(client, &mut tx).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// [`Batch::create`] through `conn`, which may be the application's transaction.
    ///
    /// # Errors
    /// As [`Batch::create`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let mut tx = client.pool().begin().await?;
    /// let mut batch = qron::Batch::new();
    /// batch.add_job(qron::NewJob::new("import_row", "@after 0s"));
    /// batch.on_finish_job(qron::NewJob::new("import_done", "@after 0s"));
    /// batch.create_with(&client, &mut tx).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_with(
        self,
        client: &crate::Client,
        conn: &mut sqlx::PgConnection,
    ) -> Result<BatchCreated> {
        let callback = self.callback.ok_or_else(|| Error::InvalidArgument {
            field: "callback",
            reason: "a batch needs a callback: `Batch::on_finish`".to_owned(),
        })??;
        if self.jobs.is_empty() || self.jobs.len() > MAX_DEPENDENCIES {
            return Err(Error::InvalidArgument {
                field: "jobs",
                reason: format!(
                    "a batch holds 1 to {MAX_DEPENDENCIES} jobs, not {}",
                    self.jobs.len()
                ),
            });
        }
        let jobs = self
            .jobs
            .into_iter()
            .enumerate()
            .map(|(i, j)| j.map_err(crate::client::in_batch(i)))
            .collect::<Result<Vec<NewJob>>>()?;
        client.create_batch(conn, jobs, callback).await
    }
}

/// The expression of jobs added by type: due at once.
const AT_ONCE: &str = "@after 0 seconds";

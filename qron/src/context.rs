//! The job being executed, as its handler sees it ([`Context`]), and what the handler asks of
//! it, applied with its outcome.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::{ExprError, JobError, Schedule};

/// What a handler asked for through its [`Context`], applied with its outcome.
#[derive(Debug, Default, Clone)]
pub(crate) struct Requests {
    /// The payload for the next execution, as JSON text.
    pub payload: Option<String>,
    /// A new schedule for the job, in canonical form.
    pub reschedule: Option<Schedule>,
    /// Pause the job after this execution.
    pub stop: bool,
    /// What the handler recorded, as JSON text (kept with a one-off job's history row).
    pub output: Option<String>,
}

/// The job being executed, and what its handler may ask of it.
///
/// ```
/// # async fn handler(ctx: qron::Context) -> Result<(), qron::JobError> {
/// tracing::info!(id = ctx.id(), attempt = ctx.attempt(), "running");
/// ctx.set_payload(&serde_json::json!({ "step": 2 }))?; // state for the next execution
/// ctx.reschedule("@after 10 minutes")?;              // when that is
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) id: i64,
    pub(crate) executor: Arc<str>,
    pub(crate) owner: String,
    pub(crate) name: Option<String>,
    pub(crate) attempt: i32,
    pub(crate) executions: i64,
    pub(crate) meta: Value,
    pub(crate) scheduled_at: DateTime<Utc>,
    pub(crate) due_at: DateTime<Utc>,
    pub(crate) requests: Arc<Mutex<Requests>>,
    pub(crate) states: Arc<crate::state::States>,
    pub(crate) cancel: crate::cancel::Cancellation,
    /// The worker's client, for what the jobs this one waited for recorded and for the jobs it
    /// adds to its batch (none when detached).
    pub(crate) client: Option<crate::Client>,
    /// The execution's lease (0 when detached): what it writes is fenced by it.
    pub(crate) lease_token: i64,
}

impl Context {
    /// A context for calling a handler directly, in a unit test: job id 0, attempt 1.
    ///
    /// ```
    /// let ctx = qron::Context::detached("email");
    /// assert_eq!(ctx.executor(), "email");
    /// ```
    pub fn detached(executor: &str) -> Self {
        let now = Utc::now();
        Self {
            id: 0,
            executor: executor.into(),
            owner: crate::DEFAULT_OWNER.to_owned(),
            name: None,
            attempt: 1,
            executions: 1,
            meta: Value::Object(Default::default()),
            scheduled_at: now,
            due_at: now,
            requests: Arc::default(),
            states: Arc::default(),
            cancel: crate::cancel::Cancellation::default(),
            client: None,
            lease_token: 0,
        }
    }

    /// The same context, already cancelled: for a unit test of what a handler does when told
    /// to wrap up (see [`Context::cancelled`]).
    ///
    /// ```
    /// let ctx = qron::Context::detached("export").already_cancelled();
    /// assert!(ctx.is_cancelled());
    /// ```
    pub fn already_cancelled(mut self) -> Self {
        self.cancel = crate::cancel::Cancellation::fired();
        self
    }

    /// Completes when the handler should wrap up: the worker is stopping (a soft stop: the
    /// handler has the shutdown grace to finish), the run-time limit is near (a tenth of the
    /// job's `timeout` before it, at most 30 s before), or the job's lease was lost (the
    /// database could not be reached to renew it for a lease time, and another worker may
    /// take the job over). Never completes for a [`Context::detached`] one.
    ///
    /// A long handler selects on it to checkpoint: it saves its progress with
    /// [`Context::set_payload`] and returns [`JobError::retry_in`], which runs the job again
    /// from there without counting an attempt.
    ///
    /// ```
    /// # async fn next_batch(from: u64) -> u64 { from + 1000 }
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Export { done: u64, total: u64 }
    ///
    /// async fn export(ctx: qron::Context, mut job: Export) -> Result<(), qron::JobError> {
    ///     while job.done < job.total {
    ///         tokio::select! {
    ///             done = next_batch(job.done) => job.done = done,
    ///             () = ctx.cancelled() => {
    ///                 ctx.set_payload(&job)?; // resume from here
    ///                 return Err(qron::JobError::retry_in(std::time::Duration::ZERO));
    ///             }
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether [`Context::cancelled`] has completed: for handlers that check between steps.
    ///
    /// ```
    /// assert!(!qron::Context::detached("e").is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The same context with application state of type `T`, for a handler called directly in
    /// a unit test (see [`State`](crate::State)).
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct Mailer;
    /// let ctx = qron::Context::detached("email").with_state(Mailer);
    /// assert!(ctx.state::<Mailer>().is_some());
    /// ```
    pub fn with_state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.states).insert(value);
        self
    }

    /// The application state of type `T` the worker was given, if any (handlers usually take
    /// it as a [`State<T>`](crate::State) argument instead).
    ///
    /// ```
    /// assert_eq!(qron::Context::detached("e").with_state(7u8).state::<u8>(), Some(7));
    /// assert_eq!(qron::Context::detached("e").state::<u8>(), None);
    /// ```
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.states.get::<T>()
    }

    /// The job's id.
    ///
    /// ```
    /// assert_eq!(qron::Context::detached("e").id(), 0);
    /// ```
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The job's executor.
    ///
    /// ```
    /// assert_eq!(qron::Context::detached("e").executor(), "e");
    /// ```
    pub fn executor(&self) -> &str {
        &self.executor
    }

    /// The job's owner.
    ///
    /// ```
    /// assert_eq!(qron::Context::detached("e").owner(), "default");
    /// ```
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The job's name, if it has one.
    ///
    /// ```
    /// assert_eq!(qron::Context::detached("e").name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// This execution's attempt at the current occurrence, from 1.
    ///
    /// ```
    /// assert_eq!(qron::Context::detached("e").attempt(), 1);
    /// ```
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Executions over the job's life, this one included.
    ///
    /// ```
    /// assert_eq!(qron::Context::detached("e").executions(), 1);
    /// ```
    pub fn executions(&self) -> i64 {
        self.executions
    }

    /// The job's meta.
    ///
    /// ```
    /// assert!(qron::Context::detached("e").meta().is_object());
    /// ```
    pub fn meta(&self) -> &Value {
        &self.meta
    }

    /// The slot this execution serves (its due time).
    ///
    /// ```
    /// let t = qron::Context::detached("e").scheduled_at();
    /// ```
    pub fn scheduled_at(&self) -> DateTime<Utc> {
        self.scheduled_at
    }

    /// When this execution was due: its slot, or for a retry the end of its back-off (by the
    /// database's clock). How late it started is the time since.
    ///
    /// ```
    /// let ctx = qron::Context::detached("e");
    /// let late = chrono::Utc::now() - ctx.due_at();
    /// ```
    pub fn due_at(&self) -> DateTime<Utc> {
        self.due_at
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the job's payload for its next execution (the state of a resumable workflow).
    /// Applied when the execution ends, whatever its outcome.
    ///
    /// # Errors
    /// [`JobError::Fail`] when the value cannot be serialized, or could not be stored: a NUL
    /// character in a string, or nesting deeper than [`MAX_JSON_DEPTH`](crate::MAX_JSON_DEPTH).
    /// The payload is then left as it was.
    ///
    /// ```
    /// let ctx = qron::Context::detached("counter");
    /// ctx.set_payload(&serde_json::json!({ "count": 1 }))?;
    /// # Ok::<(), qron::JobError>(())
    /// ```
    pub fn set_payload<T: Serialize + ?Sized>(&self, payload: &T) -> Result<(), JobError> {
        let text = serde_json::to_string(payload)
            .map_err(|e| JobError::fail(format!("the new payload does not serialize: {e}")))?;
        if let Some(problem) = crate::limits::json_problem(&text) {
            return Err(JobError::fail(format!("the new payload {problem}")));
        }
        self.requests().payload = Some(text);
        Ok(())
    }

    /// Gives the job a new schedule once this execution ends (for example `@after 10 minutes`
    /// for a workflow's next step). A one-off job given a new schedule runs again instead of
    /// finishing.
    ///
    /// # Errors
    /// The parser's [`ExprError`] for an invalid expression.
    ///
    /// ```
    /// let ctx = qron::Context::detached("workflow");
    /// ctx.reschedule("@after 10 minutes")?;
    /// # Ok::<(), qron::ExprError>(())
    /// ```
    pub fn reschedule(&self, expr: &str) -> Result<(), ExprError> {
        let s = Schedule::parse(expr)?;
        self.requests().reschedule = Some(s);
        Ok(())
    }

    /// Records this execution's output: any serde value, kept with the job's history row when
    /// it ends (a one-off job; a recurring job's output is not kept), where the jobs that wait
    /// for it read it ([`Context::output`]) and the API shows it. A second call replaces the
    /// first.
    ///
    /// # Errors
    /// [`JobError::Fail`] when the value cannot be serialized, is larger than
    /// [`DEFAULT_MAX_JSON_BYTES`](crate::DEFAULT_MAX_JSON_BYTES), or could not be stored (a NUL
    /// character in a string, or nesting deeper than [`MAX_JSON_DEPTH`](crate::MAX_JSON_DEPTH)).
    /// Nothing is recorded then.
    ///
    /// ```
    /// let ctx = qron::Context::detached("fetch");
    /// ctx.record(&serde_json::json!({ "pages": 12 }))?;
    /// # Ok::<(), qron::JobError>(())
    /// ```
    pub fn record<T: Serialize + ?Sized>(&self, output: &T) -> Result<(), JobError> {
        let text = serde_json::to_string(output)
            .map_err(|e| JobError::fail(format!("the output does not serialize: {e}")))?;
        if text.len() > crate::DEFAULT_MAX_JSON_BYTES {
            return Err(JobError::fail(format!(
                "the output is {} bytes, more than the {} a job can record",
                text.len(),
                crate::DEFAULT_MAX_JSON_BYTES
            )));
        }
        if let Some(problem) = crate::limits::json_problem(&text) {
            return Err(JobError::fail(format!("the output {problem}")));
        }
        self.requests().output = Some(text);
        Ok(())
    }

    /// The jobs this one waited for ([`NewJob::after`](crate::NewJob::after)), in id order:
    /// how each ended and what it recorded. A callback counts them:
    ///
    /// ```no_run
    /// # async fn callback(ctx: qron::Context) -> Result<(), qron::JobError> {
    /// let done = ctx.dependencies().await?;
    /// let failed = done.iter().filter(|d| d.status != Some(qron::JobStatus::Succeeded)).count();
    /// tracing::info!(jobs = done.len(), failed, "batch finished");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) when they cannot be read.
    pub async fn dependencies(&self) -> crate::Result<Vec<crate::Dependency>> {
        self.dependencies_of(None).await
    }

    /// [`Context::dependencies`], or only job `only` among them.
    async fn dependencies_of(&self, only: Option<i64>) -> crate::Result<Vec<crate::Dependency>> {
        let Some(client) = &self.client else {
            return Ok(Vec::new());
        };
        let pool = client.pool();
        let mut out = Vec::new();
        for (id, status, output) in crate::db::job_dependencies(pool, self.id, only).await? {
            out.push(crate::Dependency {
                id,
                status: status.as_deref().and_then(crate::JobStatus::from_db),
                output: match output {
                    Some(t) => Some(serde_json::from_str(&t)?),
                    None => None,
                },
            });
        }
        Ok(out)
    }

    /// How the jobs this one waited for ended, without what they recorded: a batch's callback
    /// reads the counts (and ids) of the jobs that succeeded and failed.
    ///
    /// ```no_run
    /// # async fn callback(ctx: qron::Context) -> Result<(), qron::JobError> {
    /// let results = ctx.batch_results().await?;
    /// if !results.failed.is_empty() {
    ///     tracing::warn!(failed = ?results.failed, "some rows did not import");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) when they cannot be read.
    pub async fn batch_results(&self) -> crate::Result<crate::BatchResults> {
        let Some(client) = &self.client else {
            return Ok(crate::BatchResults::default());
        };
        let rows = crate::db::batch_results(client.pool(), self.id).await?;
        Ok(crate::BatchResults::from_rows(rows))
    }

    /// Creates `job` in this job's batch: every job that waits for this one (a batch's
    /// callback, a workflow's next steps) waits for `job` too. Called while this job runs, so
    /// the batch cannot have ended; written at once (not with the outcome). Returns the new
    /// job's id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming `batch` when nothing
    /// waits for this job (or the context is detached), and as
    /// [`Batch::add_job`](crate::Batch::add_job) refuses a job; [`Error::WrongStatus`](crate::Error::WrongStatus)
    /// when this execution no longer holds the job's lease.
    ///
    /// ```no_run
    /// # async fn import_page(ctx: qron::Context) -> Result<(), qron::JobError> {
    /// // A page that links to another: the import's callback waits for that one too.
    /// ctx.add_to_batch(qron::NewJob::new("import_page", "@after 0s")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_to_batch(&self, job: crate::NewJob) -> crate::Result<i64> {
        let Some(client) = &self.client else {
            return Err(crate::Error::InvalidArgument {
                field: "batch",
                reason: "a detached context is in no batch".to_owned(),
            });
        };
        client
            .owner(&self.owner)
            .add_to_batch_of(self.id, self.lease_token, job)
            .await
    }

    /// What the jobs this one waited for recorded ([`Context::record`]), by job id, in id
    /// order: `None` for a job that recorded nothing. For a job that waits for jobs of
    /// different kinds, read it as [`serde_json::Value`], or use [`Context::output_of`].
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) when it cannot be read;
    /// [`Error::Json`](crate::Error::Json) when an output does not decode as `T`.
    ///
    /// ```no_run
    /// # async fn merge(ctx: qron::Context) -> Result<(), qron::JobError> {
    /// let pages: Vec<(i64, Option<u32>)> = ctx.output().await?;
    /// let total: u32 = pages.iter().filter_map(|(_, n)| *n).sum();
    /// # Ok(()) }
    /// ```
    pub async fn output<T: serde::de::DeserializeOwned>(
        &self,
    ) -> crate::Result<Vec<(i64, Option<T>)>> {
        let mut out = Vec::new();
        for d in self.dependencies().await? {
            let value = match d.output {
                Some(v) => Some(serde_json::from_value(v)?),
                None => None,
            };
            out.push((d.id, value));
        }
        Ok(out)
    }

    /// What job `job`, one this one waited for, recorded: `None` when it recorded nothing or
    /// is not one this job waited for.
    ///
    /// # Errors
    /// As [`Context::output`].
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize)] struct Page { words: u64 }
    /// # async fn merge(ctx: qron::Context, fetch_id: i64) -> Result<(), qron::JobError> {
    /// let page: Option<Page> = ctx.output_of(fetch_id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn output_of<T: serde::de::DeserializeOwned>(
        &self,
        job: impl crate::JobId,
    ) -> crate::Result<Option<T>> {
        let id = job.job_id();
        match self.dependencies_of(Some(id)).await?.into_iter().next() {
            Some(crate::Dependency {
                output: Some(v), ..
            }) => Ok(Some(serde_json::from_value(v)?)),
            _ => Ok(None),
        }
    }

    /// Pauses the job once this execution ends (a recurring job stops recurring until an
    /// operator restarts it).
    ///
    /// ```
    /// qron::Context::detached("poller").stop();
    /// ```
    pub fn stop(&self) {
        self.requests().stop = true;
    }

    /// The same context, listening to `cancel`.
    pub(crate) fn with_cancellation(mut self, cancel: crate::cancel::Cancellation) -> Self {
        self.cancel = cancel;
        self
    }

    /// What the handler asked for, from a handle kept while the context itself is with the
    /// handler.
    pub(crate) fn requests_handle(&self) -> Arc<Mutex<Requests>> {
        self.requests.clone()
    }
}

impl Requests {
    /// Takes what a handler asked for through its context.
    pub(crate) fn take_from(handle: &Mutex<Requests>) -> Self {
        std::mem::take(
            &mut *handle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

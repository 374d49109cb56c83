//! An operator's actions: on one job (run it now, run a finished one again, cancel it), and on
//! an executor (pause it, resume it, and its figures).

use chrono::{DateTime, Utc};

use super::Client;
use super::checks::{check_name, check_ref};
use crate::db;
use crate::job::{JobRef, JobRow};
use crate::{Error, ExecutorLimits, Result};

impl Client {
    /// Makes a waiting (ready) job due now, and wakes idle workers. A recurring job's waiting
    /// occurrence runs now instead of at its time; the next one follows the schedule.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job; [`Error::WrongStatus`] when it is
    /// paused (restart it), running, or finished (retry it).
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.run_now(qron::JobRef::named("backup", "nightly")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run_now(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        let now = self.now().await;
        match db::job_run_now(&self.pool, &self.owner, &target, now).await? {
            Some(job) => Ok(job),
            None => Err(self
                .not_applicable(&target, "it can run now once it is ready")
                .await),
        }
    }

    /// Runs a finished job (one-off, succeeded or failed) again: it moves from the history back
    /// to the live jobs, due now, with a fresh attempt budget, its id, executions and error
    /// history kept. By name, the last finished job of that name.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job; [`Error::WrongStatus`] when it has
    /// not finished; [`Error::AlreadyExists`] when a live job has taken its name since.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.retry(42).await?;
    /// assert_eq!(job.status, qron::JobStatus::Ready);
    /// # Ok(()) }
    /// ```
    pub async fn retry(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        self.retry_as(target.into(), None).await
    }

    /// As [`Client::retry`], with a new payload (checked as [`Client::create`] checks one).
    ///
    /// # Errors
    /// As [`Client::retry`], and as [`Client::create`] for a bad payload.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.retry_with_payload(42, serde_json::json!({ "user_id": 8 })).await?;
    /// # Ok(()) }
    /// ```
    pub async fn retry_with_payload(
        &self,
        target: impl Into<JobRef>,
        payload: serde_json::Value,
    ) -> Result<JobRow> {
        let payload = self.scope().json("payload", &payload)?;
        self.retry_as(target.into(), Some(payload)).await
    }

    async fn retry_as(&self, target: JobRef, payload: Option<String>) -> Result<JobRow> {
        self.scope().check_owner()?;
        check_ref(&target)?;
        let job = db::job_get(&self.pool, &self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))?;
        if job.finished_at.is_none() {
            return Err(Error::WrongStatus {
                id: job.id,
                status: job.status.as_str().to_owned(),
                hint: "only a finished job can be retried".to_owned(),
            });
        }
        let now = self.now().await;
        let step = crate::job::priority_step(self.scope().priority_aging)?;
        db::job_retry(&self.pool, &self.owner, job.id, now, payload, step)
            .await
            .map_err(|e| {
                super::scope::Scope::already_exists(e, &job.executor, job.name.as_deref())
            })?
            // Retried or deleted by someone else meanwhile.
            .ok_or_else(|| self.not_found(&target))
    }

    /// Cancels a live job: it ends at once as [`JobStatus::Cancelled`](crate::JobStatus),
    /// kept in the history (a recurring job ends too: [`Client::stop`] pauses one instead).
    ///
    /// A running job's worker is told (through `LISTEN/NOTIFY`, within moments): the handler's
    /// [`Context::cancelled`](crate::Context::cancelled) fires, and whatever it returns then
    /// changes nothing. A job whose outcome was written first has finished, and is not
    /// cancelled: [`Error::WrongStatus`].
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job; [`Error::WrongStatus`] when it has
    /// finished.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.cancel(42).await?;
    /// assert_eq!(job.status, qron::JobStatus::Cancelled);
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        let now = self.now().await;
        match db::job_cancel(&self.pool, &self.owner, &target, now).await? {
            Some(job) => Ok(job),
            None => Err(self.not_applicable(&target, "").await),
        }
    }

    /// Pauses an executor for this client's owner: no worker leases the owner's jobs of it
    /// (within a second, on every worker) until [`Client::resume_executor`]. Stored in the
    /// database: the pause holds across restarts of workers and of the application. Jobs can
    /// still be created; they wait. Running jobs finish; jobs a worker had already leased may
    /// still start. Other owners' jobs of the executor run as before, at the same speed.
    /// Pausing a paused executor changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or overlong name, or one with a NUL byte.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.pause_executor("email").await?; // the provider is down
    /// // …
    /// client.resume_executor("email").await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause_executor(&self, executor: &str) -> Result<()> {
        self.scope().check_owner()?;
        check_name("executor", executor)?;
        let now = self.now().await;
        let since = db::executor_pause(&self.pool, &self.owner, executor, now).await?;
        tracing::info!(owner = %self.owner, executor, %since, "executor paused");
        Ok(())
    }

    /// Resumes an executor this client's owner paused: its jobs are leased again, the due
    /// ones at once. Resuming an executor that is not paused changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or overlong name, or one with a NUL byte.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.resume_executor("email").await?;
    /// # Ok(()) }
    /// ```
    pub async fn resume_executor(&self, executor: &str) -> Result<()> {
        self.scope().check_owner()?;
        check_name("executor", executor)?;
        if db::executor_resume(&self.pool, &self.owner, executor).await? {
            tracing::info!(owner = %self.owner, executor, "executor resumed");
        }
        Ok(())
    }

    /// Sets an executor's limits across every worker on the database (see
    /// [`ExecutorLimits`]), replacing any it had. They are the operator's, shared by every
    /// owner: not scoped to this client's owner. Workers are told at once and apply them from
    /// their next lease; jobs already leased count against them.
    ///
    /// A new partition (a limit per key where there was none, or by another field) also
    /// writes each waiting job's key, which lets a worker find a key's next job without
    /// reading the queue: on a large backlog, this call then takes as long as an update of
    /// those rows, and the executor's leases wait for it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field: a bad executor name, a limit of 0 or over
    /// [`MAX_EXECUTOR_LIMIT`](crate::MAX_EXECUTOR_LIMIT), a payload field name that cannot be
    /// stored, or limits that limit nothing. Nothing is written then.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// use qron::ExecutorLimits;
    /// // The provider allows 20 connections, and 2 per customer.
    /// client
    ///     .set_executor_limits("sync", ExecutorLimits::new().concurrency(20).per_field("customer_id", 2))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_executor_limits(&self, executor: &str, limits: ExecutorLimits) -> Result<()> {
        check_name("executor", executor)?;
        limits.check()?;
        let now = self.now().await;
        let mut tx = self.pool.begin().await?;
        db::executor_limits_set(&mut tx, executor, &limits, now).await?;
        tx.commit().await?;
        self.config.partitions.forget();
        tracing::info!(executor, ?limits, "executor limits set");
        Ok(())
    }

    /// Clears an executor's limits: its jobs are leased as fast as workers take them again.
    /// Returns whether it had limits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad executor name.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.clear_executor_limits("sync").await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear_executor_limits(&self, executor: &str) -> Result<bool> {
        check_name("executor", executor)?;
        let had = db::executor_limits_clear(&self.pool, executor).await?;
        self.config.partitions.forget();
        if had {
            tracing::info!(executor, "executor limits cleared");
        }
        Ok(had)
    }

    /// An executor's limits, if it has some.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad executor name.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// if let Some(limits) = client.executor_limits("sync").await? {
    ///     println!("at most {:?} at once", limits.concurrency_limit());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn executor_limits(&self, executor: &str) -> Result<Option<ExecutorLimits>> {
        check_name("executor", executor)?;
        let mut found = db::executor_limits_get(&self.pool, Some(&[executor])).await?;
        Ok(found.pop().map(|l| l.limits))
    }

    /// This owner's executors: each one with a live job of the owner, paused by the owner, or
    /// served by a running worker, with its live jobs counted by status, how late its oldest
    /// due job is, whether it is paused, and the workers serving it. Ordered by name.
    ///
    /// The counts are read from the live jobs at each call (finished jobs are in the history
    /// and not counted): cheap while the live table is small, which is what it is for; do not
    /// poll it many times a second.
    ///
    /// # Errors
    /// [`Error::Database`] when the query fails.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// for e in client.executors().await? {
    ///     println!("{}: {} ready, paused: {}, late by {:?}", e.executor, e.ready, e.is_paused(), e.lateness);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn executors(&self) -> Result<Vec<ExecutorInfo>> {
        self.scope().check_owner()?;
        let now = self.now().await;
        let mut list = db::executors_list(&self.pool, &self.owner, now).await?;
        let names: Vec<&str> = list.iter().map(|e| e.executor.as_str()).collect();
        let mut limits: std::collections::HashMap<String, db::LimitsNow> =
            db::executor_limits_get(&self.pool, Some(&names))
                .await?
                .into_iter()
                .map(|l| (l.executor.clone(), l))
                .collect();
        let caps = db::owner_caps(&self.pool, Some(&self.owner)).await?;
        for e in &mut list {
            e.lateness = e.oldest_due_at.and_then(|t| (now - t).to_std().ok());
            if let Some(cap) = caps.iter().find(|c| c.executor == e.executor) {
                e.owner_cap = u32::try_from(cap.concurrency).ok();
                e.owner_cap_taken = cap.taken;
            }
            if let Some(l) = limits.remove(&e.executor) {
                e.limits = Some(l.limits);
                e.limit_taken = l.taken;
                e.rate_spent = l.rate_spent;
            }
        }
        Ok(list)
    }

    /// Why an operation found no live job to act on: [`Error::WrongStatus`] naming the status
    /// when the job exists (finished, or not in the state the operation needs), else
    /// [`Error::NotFound`].
    pub(crate) async fn not_applicable(&self, target: &JobRef, live_hint: &str) -> Error {
        match db::job_get(&self.pool, &self.owner, target).await {
            Ok(Some(job)) => Error::WrongStatus {
                id: job.id,
                status: job.status.as_str().to_owned(),
                hint: if job.finished_at.is_some() {
                    "it has finished; use retry to run it again".to_owned()
                } else {
                    live_hint.to_owned()
                },
            },
            Ok(None) => self.not_found(target),
            Err(e) => Error::Database(e),
        }
    }
}

/// An executor as an owner sees it: see [`Client::executors`].
///
/// ```
/// let e = qron::ExecutorInfo::default();
/// assert!(!e.is_paused());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
#[non_exhaustive]
pub struct ExecutorInfo {
    /// The executor's name.
    pub executor: String,
    /// Live jobs waiting for their run time, or due and not yet leased (a paused owner's
    /// included).
    pub ready: i64,
    /// Of those, the jobs due now.
    pub due: i64,
    /// Jobs a worker holds.
    pub running: i64,
    /// Jobs stopped one by one ([`Client::stop`]).
    pub stopped: i64,
    /// The run time of the oldest due job not yet leased.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// How late that job is now.
    #[sqlx(skip)]
    pub lateness: Option<std::time::Duration>,
    /// When the owner paused the executor ([`Client::pause_executor`]); `None` when it runs.
    pub paused_at: Option<DateTime<Utc>>,
    /// The running workers that serve it (their ids: host, process and a random part).
    pub workers: Vec<String>,
    /// Its limits across every worker ([`Client::set_executor_limits`]), if any.
    #[sqlx(skip)]
    pub limits: Option<ExecutorLimits>,
    /// The places its limits count as taken now: jobs leased under them, every owner's.
    #[sqlx(skip)]
    pub limit_taken: i64,
    /// Under a rate limit, the buckets with no start left now: 1 for a limit in all whose
    /// due jobs wait for the rate, the keys out of starts for one per key.
    #[sqlx(skip)]
    pub rate_spent: i64,
    /// This owner's own cap on its jobs of the executor
    /// ([`Client::set_owner_cap`]), if any.
    #[sqlx(skip)]
    pub owner_cap: Option<u32>,
    /// This owner's jobs leased under that cap now.
    #[sqlx(skip)]
    pub owner_cap_taken: i64,
}

impl ExecutorInfo {
    /// Whether the owner paused it.
    ///
    /// ```
    /// assert!(!qron::ExecutorInfo::default().is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Whether its concurrency limit is fully used: its due jobs wait for places.
    ///
    /// ```
    /// assert!(!qron::ExecutorInfo::default().is_at_limit());
    /// ```
    pub fn is_at_limit(&self) -> bool {
        self.limits
            .as_ref()
            .and_then(ExecutorLimits::concurrency_limit)
            .is_some_and(|n| self.limit_taken >= i64::from(n))
    }
}

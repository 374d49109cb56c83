//! An operator's actions on one job: run it now, run a finished one again.

use super::Client;
use super::checks::check_ref;
use crate::db;
use crate::job::{JobRef, JobRow};
use crate::{Error, Result};

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
        db::job_retry(&self.pool, &self.owner, job.id, now, payload)
            .await
            .map_err(|e| {
                super::scope::Scope::already_exists(e, &job.executor, job.name.as_deref())
            })?
            // Retried or deleted by someone else meanwhile.
            .ok_or_else(|| self.not_found(&target))
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

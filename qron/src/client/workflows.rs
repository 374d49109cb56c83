//! Following and cancelling [`Workflow`](crate::Workflow)s.

use super::Client;
use crate::db;
use crate::error::{Error, Result};
use crate::workflow::{WorkflowInfo, WorkflowStatus, WorkflowStep, WorkflowSummary};

/// The most workflows [`Client::workflows`] lists at once.
const MAX_WORKFLOWS_PAGE: usize = 1000;

impl Client {
    /// A page of this client's owner's workflows, newest first: up to `limit` (1 to 1,000),
    /// with ids below `before` when given (the next page starts below the last one's id).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `limit` when it is outside 1..=1000.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let newest = client.workflows(None, 20).await?;
    /// if let Some(last) = newest.last() {
    ///     let older = client.workflows(Some(last.id), 20).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn workflows(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<WorkflowSummary>> {
        self.scope().check_owner()?;
        if !(1..=MAX_WORKFLOWS_PAGE).contains(&limit) {
            return Err(Error::InvalidArgument {
                field: "limit",
                reason: format!("{limit} is outside 1..={MAX_WORKFLOWS_PAGE}"),
            });
        }
        let rows = db::workflows_list(
            &self.pool,
            &self.owner,
            before,
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at, status)| WorkflowSummary {
                id,
                name,
                created_at,
                status: WorkflowStatus::from_db(&status).unwrap_or(WorkflowStatus::Running),
            })
            .collect())
    }

    /// Workflow `id` of this client's owner as it is now: its status, and each step's job and
    /// status (see [`WorkflowInfo::progress`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such workflow.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let wf = client.workflow(7).await?;
    /// if wf.status == qron::WorkflowStatus::Failed {
    ///     let failed: Vec<_> = wf
    ///         .steps
    ///         .iter()
    ///         .filter(|s| s.status == Some(qron::JobStatus::Failed))
    ///         .collect();
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn workflow(&self, id: i64) -> Result<WorkflowInfo> {
        self.scope().check_owner()?;
        let Some((name, created_at)) = db::workflow_get(&self.pool, &self.owner, id).await? else {
            return Err(self.workflow_not_found(id));
        };
        let mut steps = Vec::new();
        for (step, job, executor, status, after) in db::workflow_steps(&self.pool, id).await? {
            steps.push(WorkflowStep {
                step,
                job,
                executor,
                status: status.as_deref().and_then(crate::JobStatus::from_db),
                after,
            });
        }
        Ok(WorkflowInfo {
            id,
            name,
            owner: self.owner.to_string(),
            created_at,
            status: WorkflowStatus::of(steps.iter().map(|s| s.status)),
            steps,
        })
    }

    /// Cancels every live job of workflow `id` (waiting, ready, running or stopped): they are
    /// kept in the history as cancelled, and the workers running some are told, as
    /// [`Client::cancel`] does. Returns how many were cancelled (none when every job had
    /// ended). No job of it is left waiting.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such workflow.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let cancelled = client.cancel_workflow(7).await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel_workflow(&self, id: i64) -> Result<u64> {
        self.scope().check_owner()?;
        if db::workflow_get(&self.pool, &self.owner, id)
            .await?
            .is_none()
        {
            return Err(self.workflow_not_found(id));
        }
        let now = self.now().await;
        let n = db::workflow_cancel(&self.pool, &self.owner, id, now).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Retries workflow `id`: every step that failed or was cancelled runs again, and the rest
    /// continue. Each such step moves back from the history to the live jobs with its id and a
    /// fresh attempt budget, as [`Client::retry`] does. It waits again for its jobs that are
    /// live or revived with it, under the policy it was created with; with none left, it is
    /// due now. Steps that succeeded are not run again, and their outputs stay for the steps
    /// that read them. Returns the ids of the jobs revived, in order (none when no step had
    /// failed or been cancelled). A step held for an operator
    /// ([`OnDependencyFailure::Hold`](crate::OnDependencyFailure::Hold)) is live, so it stays
    /// held: restart it once the steps it waited for have run again. A step that waits for a job
    /// outside the workflow that did not succeed no longer waits for that job.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such workflow; [`Error::AlreadyExists`] when
    /// a live job has taken a revived step's name since (nothing is revived then).
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let wf = client.workflow(7).await?;
    /// if wf.status == qron::WorkflowStatus::Failed {
    ///     let revived = client.retry_workflow(wf.id).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn retry_workflow(&self, id: i64) -> Result<Vec<i64>> {
        self.scope().check_owner()?;
        let now = self.now().await;
        let step = crate::job::priority_step(self.scope().priority_aging)?;
        let mut tx = self.pool.begin().await?;
        let revived = match db::workflow_retry(&mut tx, &self.owner, id, now, step).await {
            Ok(revived) => revived.ok_or_else(|| self.workflow_not_found(id))?,
            Err(e) => {
                drop(tx);
                // A step's name taken by a live job: which one.
                return Err(
                    match db::workflow_retry_name_taken(&self.pool, &self.owner, id).await? {
                        Some((executor, name)) => {
                            super::scope::Scope::already_exists(e, &executor, Some(&name))
                        }
                        None => e.into(),
                    },
                );
            }
        };
        tx.commit().await?;
        Ok(revived)
    }

    fn workflow_not_found(&self, id: i64) -> Error {
        Error::NotFound {
            what: format!("workflow {id}"),
            owner: self.owner.to_string(),
        }
    }
}

//! The client's mutations.

use async_graphql::{Context, Json, Object};
use serde_json::Value;

use super::*;

/// The mutations (refused when the API is read-only): the client's, and the remote workers'.
#[derive(async_graphql::MergedObject, Debug, Default)]
pub struct Mutation(ManageMutation, RemoteMutation);

/// The client's mutations (merged into [`Mutation`]).
#[derive(Debug, Default)]
pub struct ManageMutation;

#[Object]
impl ManageMutation {
    /// Creates a job.
    async fn create_job(&self, ctx: &Context<'_>, job: NewJobInput) -> Result<Job> {
        let c = writer(ctx)?;
        c.create(job.into_new_job()?).await.map_err(gql)
    }

    /// Creates many jobs in one transaction (all or none); their ids, in order.
    async fn create_jobs(&self, ctx: &Context<'_>, jobs: Vec<NewJobInput>) -> Result<Vec<i64>> {
        let c = writer(ctx)?;
        let jobs = jobs
            .into_iter()
            .map(NewJobInput::into_new_job)
            .collect::<Result<Vec<_>>>()?;
        c.create_many(jobs).await.map_err(gql)
    }

    /// Changes a live job.
    async fn update_job(
        &self,
        ctx: &Context<'_>,
        target: JobTarget,
        changes: JobChanges,
    ) -> Result<Job> {
        let c = writer(ctx)?;
        c.update(target.into_ref()?, changes.into_update()?)
            .await
            .map_err(gql)
    }

    /// Deletes a job.
    async fn delete_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        c.delete(target.into_ref()?).await.map_err(gql)
    }

    /// Pauses a job.
    async fn stop_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        c.stop(target.into_ref()?).await.map_err(gql)
    }

    /// Makes a stopped job ready again.
    async fn restart_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        c.restart(target.into_ref()?).await.map_err(gql)
    }

    /// Runs a finished job again, with a fresh attempt budget (and a new payload, if given).
    async fn retry_job(
        &self,
        ctx: &Context<'_>,
        target: JobTarget,
        payload: Option<Json<Value>>,
    ) -> Result<Job> {
        let c = writer(ctx)?;
        let t = target.into_ref()?;
        let job = match payload {
            Some(Json(p)) => c.retry_with_payload(t, p).await,
            None => c.retry(t).await,
        };
        job.map_err(gql)
    }

    /// Cancels a job (a running one's handler is told).
    async fn cancel_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        c.cancel(target.into_ref()?).await.map_err(gql)
    }

    /// Cancels what is left of a workflow; how many jobs were cancelled.
    async fn cancel_workflow(&self, ctx: &Context<'_>, id: i64) -> Result<u64> {
        writer(ctx)?.cancel_workflow(id).await.map_err(gql)
    }

    /// Runs a workflow's failed and cancelled steps again, the rest continuing; the ids of the
    /// jobs revived.
    async fn retry_workflow(&self, ctx: &Context<'_>, id: i64) -> Result<Vec<i64>> {
        writer(ctx)?.retry_workflow(id).await.map_err(gql)
    }

    /// Makes a waiting job due now.
    async fn run_job_now(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        c.run_now(target.into_ref()?).await.map_err(gql)
    }

    /// Pauses an executor for the owner.
    async fn pause_executor(&self, ctx: &Context<'_>, executor: String) -> Result<bool> {
        writer(ctx)?.pause_executor(&executor).await.map_err(gql)?;
        Ok(true)
    }

    /// Resumes an executor the owner paused.
    async fn resume_executor(&self, ctx: &Context<'_>, executor: String) -> Result<bool> {
        writer(ctx)?.resume_executor(&executor).await.map_err(gql)?;
        Ok(true)
    }

    /// Sets an executor's limits across every worker, replacing any it had. They bind every
    /// owner's jobs: the `admin` scope only.
    async fn set_executor_limits(
        &self,
        ctx: &Context<'_>,
        executor: String,
        limits: ExecutorLimitsInput,
    ) -> Result<bool> {
        let client = admin(ctx)?;
        client
            .set_executor_limits(&executor, limits.into_limits()?)
            .await
            .map_err(gql)?;
        Ok(true)
    }

    /// Sets an owner's weight in every lease's shares (1 to 1,000; 1 by default). It decides
    /// between tenants: the `admin` scope only.
    async fn set_owner_weight(
        &self,
        ctx: &Context<'_>,
        owner: String,
        weight: u32,
    ) -> Result<bool> {
        admin(ctx)?
            .set_owner_weight(&owner, weight)
            .await
            .map_err(gql)?;
        Ok(true)
    }

    /// Clears an owner's weight, back to 1 (the `admin` scope only); whether it had one.
    async fn clear_owner_weight(&self, ctx: &Context<'_>, owner: String) -> Result<bool> {
        admin(ctx)?.clear_owner_weight(&owner).await.map_err(gql)
    }

    /// Caps the owner's own jobs of an executor: at most `concurrency` at once across every
    /// worker (1 to 1,000,000).
    async fn set_owner_cap(
        &self,
        ctx: &Context<'_>,
        executor: String,
        concurrency: u32,
    ) -> Result<bool> {
        writer(ctx)?
            .set_owner_cap(&executor, concurrency)
            .await
            .map_err(gql)?;
        Ok(true)
    }

    /// Clears the owner's cap on an executor; whether it had one.
    async fn clear_owner_cap(&self, ctx: &Context<'_>, executor: String) -> Result<bool> {
        writer(ctx)?.clear_owner_cap(&executor).await.map_err(gql)
    }

    /// Clears an executor's limits (the `admin` scope only); whether it had some.
    async fn clear_executor_limits(&self, ctx: &Context<'_>, executor: String) -> Result<bool> {
        admin(ctx)?
            .clear_executor_limits(&executor)
            .await
            .map_err(gql)
    }
}

//! The queries.

use async_graphql::{Context, Json, Object};
use chrono::{DateTime, Utc};

use super::*;
use crate::Search;

/// The queries.
#[derive(Debug, Default)]
pub struct Query;

#[Object]
impl Query {
    /// A job by id, or by executor and name (the live one, else the last finished).
    async fn job(
        &self,
        ctx: &Context<'_>,
        id: Option<i64>,
        executor: Option<String>,
        name: Option<String>,
    ) -> Result<Job> {
        let t = target(id, executor, name)?;
        let job = reader(ctx)?.get(t).await.map_err(gql)?;
        ctx.data::<Budget>()?.charge(size(&job))?;
        Ok(job)
    }

    /// A workflow of the owner: its status and each step's job (see `qron::Workflow`).
    #[graphql(complexity = "100 * child_complexity + 1")]
    async fn workflow(&self, ctx: &Context<'_>, id: i64) -> Result<crate::WorkflowInfo> {
        let info = reader(ctx)?.workflow(id).await.map_err(gql)?;
        // The answer's size: a line a step, its name and the names it waits for.
        let bytes = info
            .steps
            .iter()
            .map(|s| 64 + s.step.len() + s.after.iter().map(|a| a.len() + 4).sum::<usize>())
            .sum();
        ctx.data::<Budget>()?.charge(bytes)?;
        Ok(info)
    }

    /// A batch of the owner's, named by its callback job's id: the callback's status and how
    /// its jobs stand, by status (see `qron::Batch`).
    async fn batch(&self, ctx: &Context<'_>, id: i64) -> Result<crate::BatchInfo> {
        let info = reader(ctx)?.batch(id).await.map_err(gql)?;
        // The answer's size: an id a job.
        ctx.data::<Budget>()?.charge(64 + 24 * info.jobs.total())?;
        Ok(info)
    }

    /// A page of the owner's workflows, newest first: up to `limit` (1 to 1,000, default 50),
    /// with ids below `before` (the next page starts below the last one's id).
    #[graphql(
        complexity = "usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000) * child_complexity + 1"
    )]
    async fn workflows(
        &self,
        ctx: &Context<'_>,
        before: Option<i64>,
        #[graphql(default = 50)] limit: i32,
    ) -> Result<Vec<crate::WorkflowSummary>> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let list = reader(ctx)?.workflows(before, limit).await.map_err(gql)?;
        ctx.data::<Budget>()?
            .charge(list.iter().map(|w| 64 + w.name.len()).sum())?;
        Ok(list)
    }

    /// A page of the owner's jobs (at most 1,000, from at most 100,000 in), with how many
    /// match in all when `total` is asked for.
    #[graphql(
        complexity = "usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000) * child_complexity + 1"
    )]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        filter: Option<JobFilter>,
        order: Option<JobOrder>,
        #[graphql(default = 50)] limit: i64,
        #[graphql(default = 0)] offset: i64,
    ) -> Result<JobPage> {
        let f = filter.unwrap_or_default();
        let mut q = Search::new().limit(limit).offset(offset);
        if let Some(e) = f.executor {
            q = q.executor(e);
        }
        for s in f.status.unwrap_or_default() {
            q = q.status(s);
        }
        if f.retrying == Some(true) {
            q = q.retrying();
        }
        if let Some(n) = f.name_contains {
            q = q.name_contains(n);
        }
        if let Some(n) = f.name {
            q = q.name(n);
        }
        if let Some(r) = f.recurring {
            q = q.recurring(r);
        }
        if f.created_from.is_some() || f.created_to.is_some() {
            q = q.created_between(f.created_from, f.created_to);
        }
        if f.run_from.is_some() || f.run_to.is_some() {
            q = q.run_between(f.run_from, f.run_to);
        }
        if let Some(Json(m)) = f.meta_contains {
            q = q.meta_contains(m);
        }
        if let Some(o) = order {
            q = q.order(o.into());
        }
        let with_total = ctx.look_ahead().field("total").exists();
        let budget = ctx.data::<Budget>()?;
        let page = reader(ctx)?
            .search_within(&q, with_total, budget.left())
            .await
            .map_err(gql)?
            .ok_or_else(|| budget.exhausted())?;
        let jobs = page.jobs;
        budget.charge(jobs.iter().map(size).sum())?;
        Ok(JobPage {
            jobs,
            total: page.total,
        })
    }

    /// Checks an expression: valid or the error with its position, the canonical form, the
    /// description and the next `count` runs (at most 100) after `from` (now).
    async fn validate(
        &self,
        expr: String,
        #[graphql(default = 5)] count: i32,
        from: Option<DateTime<Utc>>,
    ) -> Validation {
        let count = usize::try_from(count.clamp(0, 100)).unwrap_or(0);
        match crate::validate(&expr, from.unwrap_or_else(Utc::now), count) {
            Ok(v) => Validation {
                valid: true,
                canonical: Some(v.canonical),
                description: Some(v.description),
                recurring: Some(v.recurring),
                next_runs: v.next_runs,
                ..Validation::default()
            },
            Err(e) => Validation {
                valid: false,
                position: i32::try_from(e.position()).ok(),
                error: Some(e.to_string()),
                ..Validation::default()
            },
        }
    }

    /// The owners' weights that are set (the others have 1): the `admin` scope only (it names
    /// tenants).
    async fn owner_weights(&self, ctx: &Context<'_>) -> Result<Vec<OwnerWeight>> {
        let weights = admin(ctx)?.owner_weights().await.map_err(gql)?;
        Ok(weights
            .into_iter()
            .map(|(owner, weight)| OwnerWeight { owner, weight })
            .collect())
    }

    /// The owner's executors, with their live jobs by status, lateness, pause and workers.
    async fn executors(&self, ctx: &Context<'_>) -> Result<Vec<Executor>> {
        let list = reader(ctx)?.executors().await.map_err(gql)?;
        Ok(list
            .into_iter()
            .map(|e| Executor {
                at_limit: e.is_at_limit(),
                limits: e.limits.as_ref().map(Into::into),
                limit_taken: e.limit_taken,
                rate_spent: e.rate_spent,
                owner_cap: e.owner_cap,
                owner_cap_taken: e.owner_cap_taken,
                due: e.due,
                executor: e.executor,
                ready: e.ready,
                running: e.running,
                stopped: e.stopped,
                oldest_due_at: e.oldest_due_at,
                lateness_seconds: e.lateness.map(|d| d.as_secs_f64()),
                paused_at: e.paused_at,
                workers: e.workers,
            })
            .collect())
    }
}

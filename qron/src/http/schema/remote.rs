//! The remote workers' mutations and their types: lease, report, renew.

use async_graphql::{Context, Enum, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;

/// A job leased by a remote worker.
#[derive(SimpleObject, Debug)]
pub struct LeasedJob {
    /// The job's id.
    pub id: i64,
    /// The lease, to report the outcome with.
    pub token: String,
    /// The executor.
    pub executor: String,
    /// The job's unique name, if it has one.
    pub name: Option<String>,
    /// The schedule.
    pub expr: String,
    /// Whether it repeats.
    pub recurring: bool,
    /// This execution's attempt, from 1.
    pub attempt: i32,
    /// Attempts allowed per occurrence.
    pub max_attempts: i32,
    /// The payload.
    pub payload: Json<Value>,
    /// The meta.
    pub meta: Json<Value>,
    /// When it was due.
    pub run_at: DateTime<Utc>,
}

/// What became of a remotely run job.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutcomeKind {
    /// It succeeded.
    Commit,
    /// Run it again (counts an attempt).
    Retry,
    /// It failed for good.
    Fail,
}

/// An outcome a remote worker reports.
#[derive(InputObject, Debug)]
pub struct OutcomeReport {
    /// The job.
    pub id: i64,
    /// Its lease's token, as leased.
    pub token: String,
    /// What became of it.
    pub result: OutcomeKind,
    /// Why, for a retry or a failure.
    pub error: Option<String>,
    /// For a retry: when to run it again, in seconds (the back-off when absent).
    pub delay_seconds: Option<f64>,
    /// A new payload for its next execution.
    pub payload: Option<Json<Value>>,
}

/// Whether a reported outcome was applied (`false`: stale, nothing changed).
#[derive(SimpleObject, Debug)]
pub struct OutcomeApplied {
    /// The job.
    pub id: i64,
    /// Whether it was applied.
    pub applied: bool,
}

/// A lease to renew.
#[derive(InputObject, Debug)]
pub struct LeaseRef {
    /// The job.
    pub id: i64,
    /// Its lease's token.
    pub token: String,
}

#[Object]
impl RemoteMutation {
    /// Leases up to `limit` due jobs of `executor` of the owner for `leaseSeconds` (a remote
    /// worker's first call).
    async fn lease(
        &self,
        ctx: &Context<'_>,
        executor: String,
        #[graphql(default = 10)] limit: i32,
        #[graphql(default = 60.0)] lease_seconds: f64,
        #[graphql(default = "remote")] worker: String,
    ) -> Result<Vec<LeasedJob>> {
        let a = access(ctx)?;
        let c = a.worker().map_err(forbidden)?;
        a.may_work_on(&executor).map_err(forbidden)?;
        let jobs = c
            .lease(
                &executor,
                usize::try_from(limit).unwrap_or(0),
                seconds("lease_time", lease_seconds)?,
                &worker,
            )
            .await
            .map_err(gql)?;
        Ok(jobs
            .into_iter()
            .map(|j| LeasedJob {
                id: j.id,
                token: j.token,
                executor: j.executor,
                name: j.name,
                expr: j.expr,
                recurring: j.recurring,
                attempt: j.attempt,
                max_attempts: j.max_attempts,
                payload: Json(j.payload),
                meta: Json(j.meta),
                run_at: j.run_at,
            })
            .collect())
    }

    /// Reports outcomes, each guarded by its lease; a stale one changes nothing.
    async fn complete(
        &self,
        ctx: &Context<'_>,
        outcomes: Vec<OutcomeReport>,
    ) -> Result<Vec<OutcomeApplied>> {
        let a = access(ctx)?;
        let c = a.worker().map_err(forbidden)?;
        let outcomes = outcomes
            .into_iter()
            .map(|o| crate::RemoteOutcome {
                id: o.id,
                token: o.token,
                result: match o.result {
                    OutcomeKind::Commit => crate::RemoteResult::Commit,
                    OutcomeKind::Retry => crate::RemoteResult::Retry {
                        error: o.error,
                        delay_seconds: o.delay_seconds,
                    },
                    OutcomeKind::Fail => crate::RemoteResult::Fail { error: o.error },
                },
                payload: o.payload.map(|Json(p)| p),
            })
            .collect();
        Ok(c.complete_limited(outcomes, a.executors())
            .await
            .map_err(gql)?
            .into_iter()
            .map(|r| OutcomeApplied {
                id: r.id,
                applied: r.applied,
            })
            .collect())
    }

    /// Renews leases for `leaseSeconds`; the ids renewed (a missing one is lost).
    async fn heartbeat(
        &self,
        ctx: &Context<'_>,
        leases: Vec<LeaseRef>,
        #[graphql(default = 60.0)] lease_seconds: f64,
    ) -> Result<Vec<i64>> {
        let a = access(ctx)?;
        let c = a.worker().map_err(forbidden)?;
        let leases: Vec<(i64, String)> = leases.into_iter().map(|l| (l.id, l.token)).collect();
        c.renew_leases_limited(
            &leases,
            seconds("lease_time", lease_seconds)?,
            a.executors(),
        )
        .await
        .map_err(gql)
    }
}

/// The remote workers' mutations (merged into [`Mutation`]).
#[derive(Debug, Default)]
pub struct RemoteMutation;

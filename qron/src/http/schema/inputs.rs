//! The GraphQL input types: which job, a new job, a job's changes, the search's filter and
//! order.

use async_graphql::{Enum, InputObject, Json};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;
use crate::{JobRef, JobUpdate, NewJob};

/// A job by id, or by executor and name.
#[derive(InputObject, Debug)]
pub struct JobTarget {
    /// Its id.
    pub id: Option<i64>,
    /// Its executor (with `name`).
    pub executor: Option<String>,
    /// Its name (with `executor`).
    pub name: Option<String>,
}

pub(super) fn target(
    id: Option<i64>,
    executor: Option<String>,
    name: Option<String>,
) -> Result<JobRef> {
    match (id, executor, name) {
        (Some(id), None, None) => Ok(JobRef::Id(id)),
        (None, Some(executor), Some(name)) => Ok(JobRef::Name { executor, name }),
        _ => Err(
            async_graphql::Error::new("name a job by `id`, or by `executor` and `name`")
                .extend_with(|_, e| {
                    e.set("code", "INVALID_ARGUMENT");
                    e.set("field", "target");
                }),
        ),
    }
}

impl JobTarget {
    pub(super) fn into_ref(self) -> Result<JobRef> {
        target(self.id, self.executor, self.name)
    }
}

/// What to do when a job of that name exists.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(remote = "crate::OnConflict")]
pub enum Conflict {
    /// Refuse (`ALREADY_EXISTS`).
    Error,
    /// Keep the existing job.
    Keep,
    /// Replace it.
    Replace,
}

/// A job to create.
#[derive(InputObject, Debug)]
pub struct NewJobInput {
    /// Its executor.
    pub executor: String,
    /// Its schedule.
    pub expr: String,
    /// Its payload (JSON `null` when absent).
    pub payload: Option<Json<Value>>,
    /// Its meta (a JSON object).
    pub meta: Option<Json<Value>>,
    /// A unique name among the owner's live jobs of the executor.
    pub name: Option<String>,
    /// The instant its schedule counts from (now when absent).
    pub start_at: Option<DateTime<Utc>>,
    /// Its run-time limit in seconds (the executor's declared one when absent).
    pub timeout_seconds: Option<f64>,
    /// Attempts per occurrence (the executor's declared number when absent).
    pub max_attempts: Option<i32>,
    /// When the name is taken.
    pub on_conflict: Option<Conflict>,
    /// 0 (the highest) to 9 (the executor's declared priority, else 5, when absent).
    pub priority: Option<u8>,
    /// What makes it unique (none of this owner's jobs of the executor holds the same key):
    /// when another does, none is created and that one is returned, with `duplicate` true.
    pub unique: Option<UniqueInput>,
}

/// What a unique job's key is made of.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum UniqueBy {
    /// The executor alone: one such job at a time.
    Executor,
    /// All of the payload.
    Payload,
    /// The payload's fields named in `keys`.
    Keys,
}

/// A unique job's key and how long it holds (see the Rust API's `Unique`).
#[derive(InputObject, Debug)]
pub struct UniqueInput {
    /// What the key is made of.
    pub by: UniqueBy,
    /// The payload's fields, with `by: KEYS`.
    pub keys: Option<Vec<String>>,
    /// Unique within each period of this many seconds (at least 1).
    pub period_seconds: Option<f64>,
    /// The statuses in which the job holds its key (ready, running, stopped and succeeded
    /// when absent).
    pub states: Option<Vec<crate::JobStatus>>,
}

impl UniqueInput {
    fn into_unique(self) -> Result<crate::Unique> {
        let keys = self.keys.unwrap_or_default();
        let mut u = match self.by {
            UniqueBy::Executor | UniqueBy::Payload if !keys.is_empty() => {
                return Err(gql(crate::Error::InvalidArgument {
                    field: "unique.keys",
                    reason: "name fields only with `by: KEYS`".to_owned(),
                }));
            }
            UniqueBy::Executor => crate::Unique::by_executor(),
            UniqueBy::Payload => crate::Unique::by_payload(),
            UniqueBy::Keys => crate::Unique::by_keys(keys),
        };
        if let Some(p) = self.period_seconds {
            let period = std::time::Duration::try_from_secs_f64(p).map_err(|_| {
                gql(crate::Error::InvalidArgument {
                    field: "unique.period",
                    reason: format!("{p} is not a number of seconds"),
                })
            })?;
            u = u.period(period);
        }
        if let Some(states) = self.states {
            u = u.states(states);
        }
        Ok(u)
    }
}

pub(super) fn seconds(field: &'static str, s: f64) -> Result<std::time::Duration> {
    crate::client::checks::seconds(field, s).map_err(gql)
}

impl NewJobInput {
    pub(super) fn into_new_job(self) -> Result<NewJob> {
        let mut job = NewJob::new(self.executor, self.expr);
        if let Some(Json(p)) = self.payload {
            job = job.payload(p);
        }
        if let Some(Json(m)) = self.meta {
            job = job.meta(m);
        }
        if let Some(n) = self.name {
            job = job.name(n);
        }
        if let Some(t) = self.start_at {
            job = job.start_at(t);
        }
        if let Some(s) = self.timeout_seconds {
            job = job.timeout(seconds("timeout", s)?);
        }
        if let Some(n) = self.max_attempts {
            job = job.max_attempts(n);
        }
        if let Some(c) = self.on_conflict {
            job = job.on_conflict(c.into());
        }
        if let Some(p) = self.priority {
            job = job.priority(p);
        }
        if let Some(u) = self.unique {
            job = job.unique(u.into_unique()?);
        }
        Ok(job)
    }
}

/// Changes to a live job; absent fields stay as they are.
#[derive(InputObject, Debug, Default)]
pub struct JobChanges {
    /// A new schedule.
    pub expr: Option<String>,
    /// A new payload.
    pub payload: Option<Json<Value>>,
    /// A new meta.
    pub meta: Option<Json<Value>>,
    /// A new run-time limit, in seconds.
    pub timeout_seconds: Option<f64>,
    /// A new number of attempts per occurrence.
    pub max_attempts: Option<i32>,
    /// A new priority: 0 (the highest) to 9.
    pub priority: Option<u8>,
    /// Apply only if the job still has this revision.
    pub if_revision: Option<i64>,
}

impl JobChanges {
    pub(super) fn into_update(self) -> Result<JobUpdate> {
        let mut u = JobUpdate::new();
        if let Some(e) = self.expr {
            u = u.expr(e);
        }
        if let Some(Json(p)) = self.payload {
            u = u.payload(p);
        }
        if let Some(Json(m)) = self.meta {
            u = u.meta(m);
        }
        if let Some(s) = self.timeout_seconds {
            u = u.timeout(seconds("timeout", s)?);
        }
        if let Some(n) = self.max_attempts {
            u = u.max_attempts(n);
        }
        if let Some(p) = self.priority {
            u = u.priority(p);
        }
        if let Some(r) = self.if_revision {
            u = u.if_revision(r);
        }
        Ok(u)
    }
}

/// Which jobs a search returns; absent fields match any job.
#[derive(InputObject, Debug, Default)]
pub struct JobFilter {
    /// Of this executor.
    pub executor: Option<String>,
    /// In one of these statuses.
    pub status: Option<Vec<crate::JobStatus>>,
    /// Also (alone: only) the jobs waiting to be retried: ready after a failed attempt.
    pub retrying: Option<bool>,
    /// Whose name contains this text.
    pub name_contains: Option<String>,
    /// Named exactly this (found by an index however large the history; beside
    /// `nameContains`, this one counts).
    pub name: Option<String>,
    /// Recurring (or one-off).
    pub recurring: Option<bool>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Due at or after.
    pub run_from: Option<DateTime<Utc>>,
    /// Due before.
    pub run_to: Option<DateTime<Utc>>,
    /// Whose meta contains this JSON (`@>`).
    pub meta_contains: Option<Json<Value>>,
}

/// The order of a search.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(remote = "crate::Order")]
pub enum JobOrder {
    /// Oldest first.
    CreatedAsc,
    /// Newest first.
    CreatedDesc,
    /// Soonest due first.
    RunAtAsc,
    /// Latest due first.
    RunAtDesc,
}

/// What a per-key limit counts by.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PartitionBy {
    /// The job's owner.
    Owner,
    /// A top-level field of the payload, named in `partitionField`.
    Field,
}

/// An executor's limits across every worker (see the Rust API's `ExecutorLimits`): at most
/// `concurrency` of its jobs at once, at most `partitionConcurrency` per key of
/// `partitionBy`, and at most `rate` starts per period. Each limit is 1 to 1,000,000.
#[derive(InputObject, Debug)]
pub struct ExecutorLimitsInput {
    /// At most this many of its jobs at once, in all.
    pub concurrency: Option<u32>,
    /// What a per-key limit counts by (with `partitionConcurrency`).
    pub partition_by: Option<PartitionBy>,
    /// The payload's field, with `partitionBy: FIELD`.
    pub partition_field: Option<String>,
    /// At most this many at once per key.
    pub partition_concurrency: Option<u32>,
    /// At most so many starts per period.
    pub rate: Option<RateLimitInput>,
}

/// A rate limit (see the Rust API's `RateLimit`): at most `limit` starts per `periodSeconds`
/// (1 second to 366 days), in all or per key of its own `partitionBy`.
#[derive(InputObject, Debug)]
pub struct RateLimitInput {
    /// At most this many starts per period (1 to 1,000,000).
    pub limit: u32,
    /// The period, in seconds.
    pub period_seconds: f64,
    /// Starts at once after a quiet spell (1 to `limit`; a twentieth of it by default).
    pub burst: Option<u32>,
    /// Per key of this, when given.
    pub partition_by: Option<PartitionBy>,
    /// The payload's field, with `partitionBy: FIELD`.
    pub partition_field: Option<String>,
}

impl RateLimitInput {
    fn into_rate(self) -> Result<crate::RateLimit> {
        let period = std::time::Duration::try_from_secs_f64(self.period_seconds).map_err(|_| {
            gql(crate::Error::InvalidArgument {
                field: "rate_period",
                reason: format!("is {} seconds, not a length of time", self.period_seconds),
            })
        })?;
        let mut rate = crate::RateLimit::new(self.limit, period);
        if let Some(b) = self.burst {
            rate = rate.burst(b);
        }
        if let Some(p) = partition(
            self.partition_by,
            self.partition_field,
            "rate_partition_field",
        )? {
            rate = rate.per(p);
        }
        Ok(rate)
    }
}

/// The partition a `partitionBy` and a `partitionField` name; a field without `FIELD`, or
/// `FIELD` without a field, is refused naming `field`.
fn partition(
    by: Option<PartitionBy>,
    field: Option<String>,
    name: &'static str,
) -> Result<Option<crate::Partition>> {
    match (by, field) {
        (None, None) => Ok(None),
        (Some(PartitionBy::Owner), None) => Ok(Some(crate::Partition::Owner)),
        (Some(PartitionBy::Field), Some(f)) => Ok(Some(crate::Partition::Field(f))),
        (Some(PartitionBy::Owner), Some(_)) | (None, Some(_)) => {
            Err(gql(crate::Error::InvalidArgument {
                field: name,
                reason: "name a field only with `partitionBy: FIELD`".to_owned(),
            }))
        }
        (Some(PartitionBy::Field), None) => Err(gql(crate::Error::InvalidArgument {
            field: name,
            reason: "`partitionBy: FIELD` needs the payload's field".to_owned(),
        })),
    }
}

impl ExecutorLimitsInput {
    pub(super) fn into_limits(self) -> Result<crate::ExecutorLimits> {
        let mut limits = crate::ExecutorLimits::new();
        if let Some(n) = self.concurrency {
            limits = limits.concurrency(n);
        }
        if let Some(rate) = self.rate {
            limits = limits.rate(rate.into_rate()?);
        }
        let partition = partition(self.partition_by, self.partition_field, "partition_field")?;
        match (partition, self.partition_concurrency) {
            (Some(p), Some(n)) => limits = limits.per(p, n),
            (None, None) => {}
            (Some(_), None) => {
                return Err(gql(crate::Error::InvalidArgument {
                    field: "partition_concurrency",
                    reason: "a partition needs its limit per key".to_owned(),
                }));
            }
            (None, Some(_)) => {
                return Err(gql(crate::Error::InvalidArgument {
                    field: "partition_by",
                    reason: "a limit per key needs what the keys are".to_owned(),
                }));
            }
        }
        Ok(limits)
    }
}

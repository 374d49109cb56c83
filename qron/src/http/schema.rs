//! The GraphQL schema: [`Client`]'s operations as queries and mutations, each acting for the
//! request's owner.

use async_graphql::{
    Context, EmptySubscription, Enum, ErrorExtensions as _, InputObject, Json, Object, Schema,
    SimpleObject,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::access::{Access, Forbidden};
use crate::{Client, Error, JobRef, JobRow, JobStatus, JobUpdate, NewJob, Search};

/// The GraphQL schema of the management API (for tests and tools: its SDL, or running a
/// request without HTTP).
///
/// ```no_run
/// let sdl = qron::http::schema().sdl();
/// assert!(sdl.contains("type Job"));
/// ```
pub type QronSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema, with its limits.
pub(super) fn build() -> QronSchema {
    Schema::build(Query, Mutation::default(), EmptySubscription)
        .limit_depth(super::MAX_DEPTH)
        .limit_complexity(super::MAX_COMPLEXITY)
        .finish()
}

type Result<T> = async_graphql::Result<T>;

fn access<'a>(ctx: &'a Context<'_>) -> Result<&'a Access> {
    ctx.data::<Access>()
}

/// A refusal by scope, as a GraphQL error with the code `FORBIDDEN`.
fn forbidden(e: Forbidden) -> async_graphql::Error {
    async_graphql::Error::new(e.0).extend_with(|_, ext| ext.set("code", "FORBIDDEN"))
}

/// The client, for a request that may read.
fn reader<'a>(ctx: &'a Context<'_>) -> Result<&'a Client> {
    access(ctx)?.reader().map_err(forbidden)
}

/// The client, for a request that may change jobs.
fn writer<'a>(ctx: &'a Context<'_>) -> Result<&'a Client> {
    access(ctx)?.operator().map_err(forbidden)
}

/// A client error as a GraphQL error: its message, and a `code` (with the field, the job or
/// its status where there is one) that a program can act on. A database error's details stay
/// in the server's log.
fn gql(e: Error) -> async_graphql::Error {
    let code = match &e {
        Error::NotFound { .. } => "NOT_FOUND",
        Error::InvalidArgument { .. } | Error::InvalidExpression(_) | Error::Json(_) => {
            "INVALID_ARGUMENT"
        }
        Error::TooLarge { .. } => "TOO_LARGE",
        Error::AlreadyExists { .. } => "ALREADY_EXISTS",
        Error::WrongStatus { .. } => "WRONG_STATUS",
        Error::RevisionMismatch { .. } => "REVISION_MISMATCH",
        _ if super::busy(&e) => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let message = if code == "UNAVAILABLE" {
        super::BUSY.to_owned()
    } else if code == "INTERNAL" {
        tracing::error!(error = %e, "management API: request failed");
        "internal error: see the server's log".to_owned()
    } else {
        e.to_string()
    };
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        match &e {
            Error::InvalidArgument { field, .. } | Error::TooLarge { field, .. } => {
                ext.set("field", *field);
            }
            Error::InvalidExpression(x) => {
                ext.set("field", "expr");
                ext.set("position", x.position() as u64);
            }
            Error::WrongStatus { id, status, .. } => {
                ext.set("id", *id);
                ext.set("status", status.as_str());
            }
            _ => {}
        }
    })
}

/// A job's status.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(remote = "crate::JobStatus")]
pub enum Status {
    /// Waiting for its run time.
    Ready,
    /// Leased by a worker.
    Running,
    /// Stopped by an operator.
    Paused,
    /// Finished successfully.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

/// One attempt's error.
#[derive(SimpleObject, Debug)]
pub struct AttemptError {
    /// The attempt it ended.
    pub attempt: i32,
    /// When.
    pub at: DateTime<Utc>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// The error.
    pub error: String,
}

/// One run of a recurring job.
#[derive(SimpleObject, Debug)]
pub struct JobRun {
    /// The slot it ran for.
    pub slot: DateTime<Utc>,
    /// When its outcome was written.
    pub at: DateTime<Utc>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// `succeeded`, `failed` or `snoozed`.
    pub outcome: String,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// A job, live or finished.
#[derive(SimpleObject, Debug)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// Its executor (queue).
    pub executor: String,
    /// Its owner.
    pub owner: String,
    /// Its unique name among the owner's live jobs of the executor, if it has one.
    pub name: Option<String>,
    /// Its schedule, canonical.
    pub expr: String,
    /// Whether it repeats.
    pub recurring: bool,
    /// Where it is in its life.
    pub status: Status,
    /// Whether it waits to be retried: ready, after a failed attempt of its occurrence.
    pub retrying: bool,
    /// When it runs next (or ran last, when finished).
    pub run_at: DateTime<Utc>,
    /// Its payload.
    pub payload: Json<Value>,
    /// Its meta.
    pub meta: Json<Value>,
    /// The attempt of the current occurrence.
    pub attempt: i32,
    /// Executions over its whole life.
    pub executions: i64,
    /// Attempts allowed per occurrence.
    pub max_attempts: i32,
    /// Its run-time limit, in seconds.
    pub timeout_seconds: f64,
    /// Bumped by every change.
    pub revision: i64,
    /// The last error.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The instant its schedule counts from.
    pub start_at: DateTime<Utc>,
    /// When it last started.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When it finished, for a finished job.
    pub finished_at: Option<DateTime<Utc>>,
    /// The errors of its last attempts, oldest first.
    pub errors: Vec<AttemptError>,
    /// A recurring job's last runs, oldest first.
    pub runs: Vec<JobRun>,
}

impl Job {
    /// About how many bytes of JSON it makes: its payload, meta and errors (the rest is small).
    fn size(&self) -> usize {
        let json = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
        json(&self.payload.0)
            + json(&self.meta.0)
            + self.errors.iter().map(|e| e.error.len()).sum::<usize>()
            + self
                .runs
                .iter()
                .map(|r| r.error.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + 512
    }
}

/// What is left of a request's answer, in bytes: every job read charges it, and a request
/// that would go past it gets an error instead of the jobs.
pub(crate) struct Budget {
    left: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            left: std::sync::atomic::AtomicUsize::new(limit),
            limit,
        }
    }

    fn left(&self) -> usize {
        self.left.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn exhausted(&self) -> async_graphql::Error {
        async_graphql::Error::new(format!(
            "the answer would be over {} bytes: ask for fewer jobs (a smaller limit), fewer \
             fields, or fewer queries in one request",
            self.limit
        ))
        .extend_with(|_, ext| ext.set("code", "TOO_LARGE"))
    }

    fn charge(&self, bytes: usize) -> Result<()> {
        use std::sync::atomic::Ordering;
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .map(|_| ())
            .map_err(|_| self.exhausted())
    }
}

/// `meta` as shown over the API and on the dashboard: an `http` job's request headers may hold
/// credentials, so their values are replaced.
pub(crate) fn shown_meta(executor: &str, mut meta: Value) -> Value {
    if executor == "http"
        && let Some(Value::Object(headers)) = meta.get_mut("headers")
    {
        for value in headers.values_mut() {
            *value = Value::String("[redacted]".to_owned());
        }
    }
    meta
}

impl From<JobRow> for Job {
    fn from(j: JobRow) -> Self {
        let meta = shown_meta(&j.executor, j.meta.clone());
        let retrying = j.is_retrying();
        Self {
            retrying,
            id: j.id,
            executor: j.executor,
            owner: j.owner,
            name: j.name,
            expr: j.expr,
            recurring: j.recurring,
            status: j.status.into(),
            run_at: j.run_at,
            payload: Json(j.payload),
            meta: Json(meta),
            attempt: j.attempt,
            executions: j.executions,
            max_attempts: j.max_attempts,
            timeout_seconds: j.timeout.as_secs_f64(),
            revision: j.revision,
            last_error: j.last_error,
            last_error_at: j.last_error_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
            start_at: j.start_at,
            last_run_at: j.last_run_at,
            finished_at: j.finished_at,
            errors: j
                .errors
                .into_iter()
                .map(|e| AttemptError {
                    attempt: e.attempt,
                    at: e.at,
                    worker: e.worker,
                    error: e.error,
                })
                .collect(),
            runs: j
                .runs
                .into_iter()
                .map(|r| JobRun {
                    slot: r.slot,
                    at: r.at,
                    worker: r.worker,
                    outcome: r.outcome,
                    error: r.error,
                })
                .collect(),
        }
    }
}

/// A page of jobs.
#[derive(SimpleObject, Debug)]
pub struct JobPage {
    /// The jobs of the page.
    pub jobs: Vec<Job>,
    /// How many match in all.
    pub total: i64,
}

/// An executor as the owner sees it.
#[derive(SimpleObject, Debug)]
pub struct Executor {
    /// Its name.
    pub executor: String,
    /// Live jobs waiting (held ones included).
    pub ready: i64,
    /// Jobs a worker holds.
    pub running: i64,
    /// Jobs stopped one by one.
    pub paused: i64,
    /// The run time of the oldest due job not yet leased.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// How late that job is, in seconds.
    pub lateness_seconds: Option<f64>,
    /// When the owner paused the executor.
    pub paused_at: Option<DateTime<Utc>>,
    /// The running workers serving it.
    pub workers: Vec<String>,
}

/// What [`Query::validate`] says of an expression.
#[derive(SimpleObject, Debug, Default)]
pub struct Validation {
    /// Whether it parses.
    pub valid: bool,
    /// The error, when it does not.
    pub error: Option<String>,
    /// Where in the text, in characters.
    pub position: Option<i32>,
    /// The canonical form (what is stored).
    pub canonical: Option<String>,
    /// The schedule in words.
    pub description: Option<String>,
    /// Whether it repeats.
    pub recurring: Option<bool>,
    /// Its next runs.
    pub next_runs: Vec<DateTime<Utc>>,
}

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

fn target(id: Option<i64>, executor: Option<String>, name: Option<String>) -> Result<JobRef> {
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
    fn into_ref(self) -> Result<JobRef> {
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
}

fn seconds(field: &'static str, s: f64) -> Result<std::time::Duration> {
    crate::client::checks::seconds(field, s).map_err(gql)
}

impl NewJobInput {
    fn into_new_job(self) -> Result<NewJob> {
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
    /// Apply only if the job still has this revision.
    pub if_revision: Option<i64>,
}

impl JobChanges {
    fn into_update(self) -> Result<JobUpdate> {
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
    pub status: Option<Vec<Status>>,
    /// Also (alone: only) the jobs waiting to be retried: ready after a failed attempt.
    pub retrying: Option<bool>,
    /// Whose name contains this text.
    pub name_contains: Option<String>,
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
        let job = Job::from(reader(ctx)?.get(t).await.map_err(gql)?);
        ctx.data::<Budget>()?.charge(job.size())?;
        Ok(job)
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
            q = q.status(JobStatus::from(s));
        }
        if f.retrying == Some(true) {
            q = q.retrying();
        }
        if let Some(n) = f.name_contains {
            q = q.name_contains(n);
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
        let jobs: Vec<Job> = page.jobs.into_iter().map(Job::from).collect();
        budget.charge(jobs.iter().map(Job::size).sum())?;
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

    /// The owner's executors, with their live jobs by status, lateness, pause and workers.
    async fn executors(&self, ctx: &Context<'_>) -> Result<Vec<Executor>> {
        let list = reader(ctx)?.executors().await.map_err(gql)?;
        Ok(list
            .into_iter()
            .map(|e| Executor {
                executor: e.executor,
                ready: e.ready,
                running: e.running,
                paused: e.paused,
                oldest_due_at: e.oldest_due_at,
                lateness_seconds: e.lateness.map(|d| d.as_secs_f64()),
                paused_at: e.paused_at,
                workers: e.workers,
            })
            .collect())
    }
}

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
        Ok(c.create(job.into_new_job()?).await.map_err(gql)?.into())
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
        Ok(c.update(target.into_ref()?, changes.into_update()?)
            .await
            .map_err(gql)?
            .into())
    }

    /// Deletes a job.
    async fn delete_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        Ok(c.delete(target.into_ref()?).await.map_err(gql)?.into())
    }

    /// Pauses a job.
    async fn stop_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        Ok(c.stop(target.into_ref()?).await.map_err(gql)?.into())
    }

    /// Makes a paused job ready again.
    async fn restart_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        Ok(c.restart(target.into_ref()?).await.map_err(gql)?.into())
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
        Ok(job.map_err(gql)?.into())
    }

    /// Cancels a job (a running one's handler is told).
    async fn cancel_job(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        Ok(c.cancel(target.into_ref()?).await.map_err(gql)?.into())
    }

    /// Makes a waiting job due now.
    async fn run_job_now(&self, ctx: &Context<'_>, target: JobTarget) -> Result<Job> {
        let c = writer(ctx)?;
        Ok(c.run_now(target.into_ref()?).await.map_err(gql)?.into())
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
}

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

/// The management API's GraphQL schema (to print its SDL, or to run a request without HTTP).
///
/// ```
/// assert!(qron::http::schema().sdl().contains("createJob"));
/// ```
pub fn schema() -> QronSchema {
    build()
}

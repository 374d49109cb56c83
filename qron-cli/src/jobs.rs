//! `qron jobs`: the owner's jobs, listed, shown, created and changed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use qron::{JobRef, JobRow, JobStatus, JobUpdate, NewJob, OnConflict, Order, Search, Unique};
use serde_json::Value;

use crate::output::{Cell, Style, cut, duration, parse_duration, parse_json};
use crate::{Failure, Global};

#[derive(Subcommand)]
pub(crate) enum Jobs {
    /// Lists jobs, live and finished, oldest first, with the client's search filters.
    List(ListArgs),
    /// Shows one job: its schedule, payload, meta, attempts and errors.
    Show(Target),
    /// Creates a job.
    Create(CreateArgs),
    /// Changes a live job's expression, payload, meta, timeout or attempts.
    Update(UpdateArgs),
    /// Stops a live job: it keeps its place but does not run until restarted.
    Stop(Target),
    /// Makes a stopped job ready again.
    Restart(Target),
    /// Deletes a job, live or finished.
    Delete(Target),
    /// Runs a finished one-off job again, with a fresh attempt budget.
    Retry {
        #[command(flatten)]
        target: Target,
        /// Run it with this payload (JSON) instead of its last one.
        #[arg(long, value_parser = parse_json)]
        payload: Option<Value>,
    },
    /// Cancels a live job: it ends as `cancelled`; a running handler is told to stop.
    Cancel(Target),
    /// Makes a waiting job due now.
    RunNow(Target),
}

/// A job, by id or by executor and name.
#[derive(Args)]
pub(crate) struct Target {
    /// The job's id.
    #[arg(required_unless_present = "name", conflicts_with = "name")]
    id: Option<i64>,
    /// Or the job's name (with `--executor`).
    #[arg(long, requires = "executor")]
    name: Option<String>,
    /// The executor of the named job.
    #[arg(long, requires = "name")]
    executor: Option<String>,
}

impl Target {
    fn job_ref(&self) -> JobRef {
        match (self.id, &self.name, &self.executor) {
            (Some(id), _, _) => JobRef::Id(id),
            (None, Some(name), Some(executor)) => JobRef::named(executor, name),
            // clap requires an id or a name with its executor.
            _ => JobRef::named("", ""),
        }
    }
}

#[derive(Args)]
pub(crate) struct ListArgs {
    /// Only this executor's jobs.
    #[arg(long)]
    executor: Option<String>,
    /// Only jobs in this status (repeat to accept several).
    #[arg(long, value_enum)]
    status: Vec<Status>,
    /// Only jobs whose name contains this text.
    #[arg(long, conflicts_with = "name")]
    name_contains: Option<String>,
    /// Only jobs named exactly this.
    #[arg(long)]
    name: Option<String>,
    /// Only recurring jobs.
    #[arg(long, conflicts_with = "one_off")]
    recurring: bool,
    /// Only one-off jobs.
    #[arg(long)]
    one_off: bool,
    /// Only jobs created at or after this instant (RFC 3339).
    #[arg(long)]
    created_after: Option<DateTime<Utc>>,
    /// Only jobs created before this instant (RFC 3339).
    #[arg(long)]
    created_before: Option<DateTime<Utc>>,
    /// Only jobs due (or last due) at or after this instant (RFC 3339).
    #[arg(long)]
    run_after: Option<DateTime<Utc>>,
    /// Only jobs due (or last due) before this instant (RFC 3339).
    #[arg(long)]
    run_before: Option<DateTime<Utc>>,
    /// Only jobs whose meta contains this JSON object.
    #[arg(long, value_parser = parse_json)]
    meta: Option<Value>,
    /// The order.
    #[arg(long, value_enum, default_value = "created")]
    order: ListOrder,
    /// Jobs per page (1 to 1000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Jobs to skip.
    #[arg(long, default_value_t = 0)]
    offset: i64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Status {
    Ready,
    Running,
    /// Stopped by an operator (`qron jobs stop`).
    #[value(alias = "paused")]
    Stopped,
    /// Waiting for the jobs it depends on.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
    /// Ready after a failed attempt: waiting to be retried.
    Retrying,
}

impl From<Status> for JobStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Ready => JobStatus::Ready,
            Status::Running => JobStatus::Running,
            Status::Stopped => JobStatus::Stopped,
            Status::Waiting => JobStatus::Waiting,
            Status::Succeeded => JobStatus::Succeeded,
            Status::Failed => JobStatus::Failed,
            Status::Cancelled => JobStatus::Cancelled,
            // A filter of its own: ready jobs waiting to be retried.
            Status::Retrying => JobStatus::Ready,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ListOrder {
    /// Oldest first.
    Created,
    /// Newest first.
    CreatedDesc,
    /// Soonest due first.
    RunAt,
    /// Latest due first.
    RunAtDesc,
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    /// The executor that runs it.
    executor: String,
    /// When it runs: '@after 1 hour', '@every 5 minutes', '0 9 * * MON-FRI', …
    expr: String,
    /// The payload (JSON; default null).
    #[arg(long, value_parser = parse_json)]
    payload: Option<Value>,
    /// A name, unique among the executor's live jobs.
    #[arg(long)]
    name: Option<String>,
    /// Meta (a JSON object).
    #[arg(long, value_parser = parse_json)]
    meta: Option<Value>,
    /// When its schedule starts counting (RFC 3339; default: now).
    #[arg(long)]
    start_at: Option<DateTime<Utc>>,
    /// Lease length: 30s, 5m, 2h, …
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Attempts per occurrence.
    #[arg(long)]
    max_attempts: Option<i32>,
    /// What to do when a live job has the name already.
    #[arg(long, value_enum, default_value = "error")]
    on_conflict: Conflict,
    /// Priority: 0 (the highest) to 9 (default: the executor's, else 5).
    #[arg(long)]
    priority: Option<u8>,
    /// Unique by this: no job is created while another of the executor holds the same key
    /// (that one is shown, as "exists").
    #[arg(long, value_enum)]
    unique: Option<UniqueBy>,
    /// The payload's fields that make the key, with `--unique keys` (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "unique")]
    unique_keys: Vec<String>,
    /// Unique within each period of this length: 1h, 1d, …
    #[arg(long, value_parser = parse_duration, requires = "unique")]
    unique_period: Option<Duration>,
}

#[derive(Clone, Copy, ValueEnum)]
enum UniqueBy {
    /// One job of the executor.
    Executor,
    /// One job per payload.
    Payload,
    /// One job per value of the fields in --unique-keys.
    Keys,
}

impl CreateArgs {
    fn unique(&self) -> Option<Unique> {
        let u = match self.unique? {
            UniqueBy::Executor => Unique::by_executor(),
            UniqueBy::Payload => Unique::by_payload(),
            UniqueBy::Keys => Unique::by_keys(self.unique_keys.iter().cloned()),
        };
        Some(match self.unique_period {
            Some(p) => u.period(p),
            None => u,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Conflict {
    /// Fail.
    Error,
    /// Keep the existing job.
    Keep,
    /// Replace the existing job's settings.
    Replace,
}

#[derive(Args)]
pub(crate) struct UpdateArgs {
    #[command(flatten)]
    target: Target,
    /// A new expression.
    #[arg(long)]
    expr: Option<String>,
    /// A new payload (JSON).
    #[arg(long, value_parser = parse_json)]
    payload: Option<Value>,
    /// New meta (a JSON object).
    #[arg(long, value_parser = parse_json)]
    meta: Option<Value>,
    /// A new lease length: 30s, 5m, 2h, …
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// New attempts per occurrence.
    #[arg(long)]
    max_attempts: Option<i32>,
    /// A new priority: 0 (the highest) to 9.
    #[arg(long)]
    priority: Option<u8>,
    /// Change it only if its revision is still this one.
    #[arg(long)]
    if_revision: Option<i64>,
}

pub(crate) async fn run(global: &Global, cmd: Jobs) -> Result<(), Failure> {
    let client = crate::client(global).await?;
    let out = &global.out;
    let (verb, job) = match cmd {
        Jobs::List(args) => return list(&client, out, args).await,
        Jobs::Show(target) => return show(&client, out, &target).await,
        Jobs::Create(a) => {
            let unique = a.unique();
            let mut job = NewJob::new(a.executor, a.expr).on_conflict(match a.on_conflict {
                Conflict::Error => OnConflict::Error,
                Conflict::Keep => OnConflict::Keep,
                Conflict::Replace => OnConflict::Replace,
            });
            if let Some(p) = a.payload {
                job = job.payload(p);
            }
            if let Some(n) = a.name {
                job = job.name(n);
            }
            if let Some(m) = a.meta {
                job = job.meta(m);
            }
            if let Some(t) = a.start_at {
                job = job.start_at(t);
            }
            if let Some(t) = a.timeout {
                job = job.timeout(t);
            }
            if let Some(n) = a.max_attempts {
                job = job.max_attempts(n);
            }
            if let Some(p) = a.priority {
                job = job.priority(p);
            }
            if let Some(u) = unique {
                job = job.unique(u);
            }
            let job = client.create(job).await?;
            (if job.duplicate { "exists" } else { "created" }, job)
        }
        Jobs::Update(a) => {
            let mut change = JobUpdate::new();
            if let Some(e) = a.expr {
                change = change.expr(e);
            }
            if let Some(p) = a.payload {
                change = change.payload(p);
            }
            if let Some(m) = a.meta {
                change = change.meta(m);
            }
            if let Some(t) = a.timeout {
                change = change.timeout(t);
            }
            if let Some(n) = a.max_attempts {
                change = change.max_attempts(n);
            }
            if let Some(p) = a.priority {
                change = change.priority(p);
            }
            if let Some(r) = a.if_revision {
                change = change.if_revision(r);
            }
            ("updated", client.update(a.target.job_ref(), change).await?)
        }
        Jobs::Stop(t) => ("stopped", client.stop(t.job_ref()).await?),
        Jobs::Restart(t) => ("restarted", client.restart(t.job_ref()).await?),
        Jobs::Delete(t) => ("deleted", client.delete(t.job_ref()).await?),
        Jobs::Retry { target, payload } => (
            "retried",
            match payload {
                Some(p) => client.retry_with_payload(target.job_ref(), p).await?,
                None => client.retry(target.job_ref()).await?,
            },
        ),
        Jobs::Cancel(t) => ("cancelled", client.cancel(t.job_ref()).await?),
        Jobs::RunNow(t) => ("due now", client.run_now(t.job_ref()).await?),
    };
    if out.json {
        out.json_line(&job);
    } else {
        println!("job {} {verb}", job.id);
        table(out, std::slice::from_ref(&job));
    }
    Ok(())
}

async fn list(client: &qron::Client, out: &Style, a: ListArgs) -> Result<(), Failure> {
    let mut q = Search::new()
        .order(match a.order {
            ListOrder::Created => Order::CreatedAsc,
            ListOrder::CreatedDesc => Order::CreatedDesc,
            ListOrder::RunAt => Order::RunAtAsc,
            ListOrder::RunAtDesc => Order::RunAtDesc,
        })
        .limit(a.limit)
        .offset(a.offset)
        .created_between(a.created_after, a.created_before)
        .run_between(a.run_after, a.run_before);
    if let Some(e) = a.executor {
        q = q.executor(e);
    }
    for s in a.status {
        q = match s {
            Status::Retrying => q.retrying(),
            s => q.status(s.into()),
        };
    }
    if let Some(n) = a.name_contains {
        q = q.name_contains(n);
    }
    if let Some(n) = a.name {
        q = q.name(n);
    }
    if a.recurring || a.one_off {
        q = q.recurring(a.recurring);
    }
    if let Some(m) = a.meta {
        q = q.meta_contains(m);
    }
    let page = client.search(&q).await?;
    if out.json {
        for job in &page.jobs {
            out.json_line(job);
        }
        return Ok(());
    }
    table(out, &page.jobs);
    let shown = page.jobs.len() as i64;
    if shown == 0 && page.total == 0 {
        println!("no job matches");
    } else if shown == 0 {
        println!(
            "no jobs past {}: {} match in all (lower --offset)",
            a.offset, page.total
        );
    } else {
        println!(
            "jobs {}–{} of {}",
            a.offset + 1,
            a.offset + shown,
            page.total
        );
    }
    Ok(())
}

/// Jobs as a table, one row each.
fn table(out: &Style, jobs: &[JobRow]) {
    let rows = jobs
        .iter()
        .map(|j| {
            vec![
                Cell::from(j.id.to_string()),
                Cell::from(cut(&j.executor, 24)),
                Cell::from(cut(j.name.as_deref().unwrap_or("-"), 24)),
                out.job_status(j),
                Cell::from(cut(&j.expr, 28)),
                Cell::from(out.time(j.run_at)),
                Cell::from(format!("{}/{}", j.attempt, j.max_attempts)),
                // A succeeded job's errors are history: a later attempt fixed them.
                Cell::from(match (&j.last_error, j.status) {
                    (Some(e), JobStatus::Succeeded) => format!("resolved: {}", cut(e, 30)),
                    (e, _) => cut(e.as_deref().unwrap_or(""), 40),
                }),
            ]
        })
        .collect();
    out.table(
        &[
            "ID",
            "EXECUTOR",
            "NAME",
            "STATUS",
            "EXPR",
            "RUN AT",
            "ATTEMPT",
            "LAST ERROR",
        ],
        rows,
    );
}

async fn show(client: &qron::Client, out: &Style, target: &Target) -> Result<(), Failure> {
    let job = client.get(target.job_ref()).await?;
    if out.json {
        out.json_line(&job);
        return Ok(());
    }
    let field = |name: &str, value: String| println!("{name:<13}{}", crate::output::clean(&value));
    println!(
        "job {} of executor {} (owner {})",
        job.id,
        crate::output::clean(&job.executor),
        crate::output::clean(&job.owner)
    );
    field("name", job.name.clone().unwrap_or_else(|| "-".to_owned()));
    field(
        "status",
        if job.is_retrying() {
            format!(
                "retrying (attempt {} of {} failed)",
                job.attempt, job.max_attempts
            )
        } else {
            job.status.as_str().to_owned()
        },
    );
    field("expr", job.expr.clone());
    if let Ok(v) = qron::validate(&job.expr, job.run_at, 2) {
        field("description", v.description);
        if job.recurring && job.finished_at.is_none() {
            // The run it waits for, then the ones after it.
            let next: Vec<String> = std::iter::once(job.run_at)
                .chain(v.next_runs)
                .map(|t| out.time(t))
                .collect();
            field("next runs", next.join(", "));
        }
    }
    field("run at", out.time(job.run_at));
    field(
        "attempt",
        format!(
            "{} of {} ({} executions in all)",
            job.attempt, job.max_attempts, job.executions
        ),
    );
    field("timeout", duration(job.timeout));
    field("priority", job.priority.to_string());
    field("revision", job.revision.to_string());
    field("created", out.time(job.created_at));
    field("updated", out.time(job.updated_at));
    field("last run", out.maybe_time(job.last_run_at));
    field("finished", out.maybe_time(job.finished_at));
    println!("payload");
    print_json(&job.payload);
    println!("meta");
    print_json(&job.meta);
    if !job.runs.is_empty() {
        println!("runs");
        for r in &job.runs {
            println!(
                "  {} for the slot of {}: {}{}",
                out.time(r.at),
                out.time(r.slot),
                crate::output::clean(&r.outcome),
                r.error
                    .as_deref()
                    .map(|e| format!(" ({})", crate::output::clean(e)))
                    .unwrap_or_default()
            );
        }
    }
    if !job.errors.is_empty() {
        println!("errors");
        for e in &job.errors {
            println!(
                "  attempt {} at {}: {}",
                e.attempt,
                out.time(e.at),
                crate::output::clean(&e.error)
            );
        }
    }
    Ok(())
}

/// Pretty JSON, indented under its heading.
fn print_json(v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    for line in text.lines() {
        println!("  {}", crate::output::clean(line));
    }
}

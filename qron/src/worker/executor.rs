//! The executor: runs leased jobs in a slot, each handler under its timeout and catching its
//! panics, and hands each outcome to the completer.

use std::future::Future as _;
use std::task::Poll;
use std::time::Instant;

use super::buffer::Buffered;
use super::buffer::hand_back;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{ExecutorState, Shared};
use crate::JobError;
use crate::cancel::Registered;
use crate::context::{Context, Requests};
use crate::db::LeasedJob;
use crate::job::interval_to_duration;
use crate::outcome::Outcome;
use crate::outcome::{Kind, OutcomeInput, decide};
use crate::registry::Registration;

/// Runs buffered jobs in one slot, one after another, until the buffer is empty or the worker
/// stops: a busy executor starts a job without a task switch to the producer.
pub(crate) async fn run_slot(
    first: Buffered,
    exec: Arc<ExecutorState>,
    shared: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    // The job to run next, and whether it holds a place already (a successor, see
    // `migrations/0028_places.sql`): only a job that holds one is looked up in the places.
    let mut next = Some((first, false));
    let mut expired = Vec::new();
    while let Some((b, successor)) = next.take() {
        let started = Instant::now();
        let id = b.job.id;
        if b.start_by.is_none_or(|by| started > by) {
            expired.push(b.job);
            // A successor that came for it goes the same way (checked in its turn).
            if successor && let Some(s) = exec.buffer.end_place(id) {
                shared.metrics.add_buffered(-1);
                next = Some((s, true));
                continue;
            }
        } else {
            // Handed back now, not when the slot idles: their leases could run out first.
            if !expired.is_empty() {
                let (jobs, shared) = (std::mem::take(&mut expired), shared.clone());
                tokio::spawn(async move {
                    hand_back(shared.pool(), &shared.clock, &shared.metrics, jobs).await;
                });
            }
            // Its bytes stay held in the memory budget until it ends.
            let Buffered { job, held, .. } = b;
            let placed = successor || exec.counts_places();
            if placed {
                exec.buffer.hold_place(id, job.lease_token);
            }
            execute(job, &exec, &shared).await;
            drop(held);
            exec.buffer.record(started.elapsed());
            // Its successor takes its place in this slot at once; its own outcome went to
            // the next lease.
            if placed && let Some(s) = exec.buffer.end_place(id) {
                shared.metrics.add_buffered(-1);
                if shared.soft.is_cancelled() {
                    // Not started: its place goes with it, and any successor it had.
                    let mut s = Some(s);
                    while let Some(b) = s.take() {
                        s = exec.buffer.end_place(b.job.id);
                        if s.is_some() {
                            shared.metrics.add_buffered(-1);
                        }
                        expired.push(b.job);
                    }
                } else {
                    next = Some((s, true));
                    continue;
                }
            }
        }
        if shared.soft.is_cancelled() {
            break;
        }
        if let Some((b, left)) = exec.buffer.pop() {
            shared.metrics.add_buffered(-1);
            if left <= exec.buffer.target(exec.capacity as usize) / 2 {
                exec.ask_refill();
            }
            next = Some((b, false));
        }
    }
    drop(permit);
    exec.ask_refill();
    if !expired.is_empty() {
        tracing::debug!(
            executor = exec.registration.executor,
            jobs = expired.len(),
            "jobs came or waited too long to start within their leases: handing them back"
        );
        hand_back(shared.pool(), &shared.clock, &shared.metrics, expired).await;
    }
}

/// Runs one leased job and hands its outcome to the completer: waits until it is due, runs its
/// handler, and reports what came of it.
pub(crate) async fn execute(mut job: LeasedJob, exec: &ExecutorState, shared: &Shared) {
    shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let reg = &exec.registration;
    let span = job_span(&job, reg.executor);
    // For the log line of a failure (the context takes the job's own).
    let (owner, name) = (job.owner.clone(), job.name.clone());
    let (ctx, bad_meta) = context(&mut job, exec, shared, &span);
    let requests = ctx.requests_handle();
    // The job's own signal: its lease was lost, or an operator cancelled it.
    let token = CancellationToken::new();
    let waited = wait_until_due(&job, shared, &token).await;
    let started = Instant::now();
    // How late it started: from when it was due (its slot, or the end of a back-off).
    let lateness = waited.is_ok().then(|| {
        (shared.clock.now() - job.run_at)
            .to_std()
            .unwrap_or(std::time::Duration::ZERO)
    });
    if let Some(late) = lateness {
        span.record("lateness_ms", late.as_millis() as u64);
    }
    let result = match (bad_meta, waited) {
        (Some(e), _) => Ok(Err(e)),
        (None, Ok(registered)) => {
            run_handler(&mut job, reg, ctx, shared, &token, registered, &span)
                .await
                .ok_or(Unstarted::HardStop)
        }
        (None, Err(why)) => Err(why),
    };
    match result {
        Ok(result) => {
            let requests = Requests::take_from(&requests);
            let took = started.elapsed();
            let done = Done {
                job: &job,
                reg,
                shared,
                exec,
                span: &span,
                owner: &owner,
                name: name.as_deref(),
            };
            done.report(result, requests, took, lateness).await;
        }
        Err(Unstarted::SoftStop) => {
            tracing::debug!(parent: &span, "the worker stops before the job's run time: handed back unstarted");
            hand_back(shared.pool(), &shared.clock, &shared.metrics, vec![job]).await;
        }
        Err(Unstarted::Cancelled) => {
            tracing::debug!(parent: &span, "cancelled before its run time");
        }
        Err(Unstarted::HardStop) => {
            tracing::info!(parent: &span, "cancelled by a hard stop: the job comes back when its lease expires");
        }
    }
    shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
}

/// The `qron.job` span of one execution.
fn job_span(job: &LeasedJob, executor: &'static str) -> tracing::Span {
    tracing::info_span!(
        "qron.job",
        messaging.system = "qron",
        messaging.operation.type = "process",
        messaging.destination.name = executor,
        job.id = job.id,
        executor,
        attempt = job.attempt,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        lateness_ms = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

/// The handler's context, taking the job's owner, name and meta; and the failure of a meta
/// that does not decode (written around the client's checks), which fails this job alone.
fn context(
    job: &mut LeasedJob,
    exec: &ExecutorState,
    shared: &Shared,
    span: &tracing::Span,
) -> (Context, Option<JobError>) {
    let (meta, bad_meta) = match job.meta.take().map(|t| serde_json::from_str(&t)) {
        None => (serde_json::Value::Object(Default::default()), None),
        Some(Ok(meta)) => (meta, None),
        Some(Err(e)) => (
            serde_json::Value::Null,
            Some(JobError::fail(format!(
                "the job's meta does not decode: {e}"
            ))),
        ),
    };
    // The trace that enqueued the job, when it carries one.
    crate::telemetry::link(span, &meta);
    let ctx = Context {
        id: job.id,
        executor: exec.executor.clone(),
        owner: std::mem::take(&mut job.owner),
        name: job.name.take(),
        attempt: job.attempt,
        executions: job.executions,
        meta,
        scheduled_at: job.slot_at,
        due_at: job.run_at,
        requests: Arc::default(),
        states: shared.states.clone(),
        cancel: Default::default(),
        client: Some(shared.client.clone()),
        lease_token: job.lease_token,
    };
    (ctx, bad_meta)
}

/// Holds a job leased ahead of its run time until then: due, with its registration for
/// cancels, or why it will not start. A soft stop meanwhile starts nothing new (the job goes
/// back unstarted); a hard stop leaves it to its lease, as for a running one; an operator's
/// cancel has ended it. A job already due returns at once, unregistered.
async fn wait_until_due(
    job: &LeasedJob,
    shared: &Shared,
    token: &CancellationToken,
) -> Result<Option<Registered>, Unstarted> {
    let Ok(early) = (job.run_at - shared.clock.now()).to_std() else {
        return Ok(None);
    };
    let registered = shared
        .cancels
        .register(job.id, job.lease_token, token.clone());
    tokio::select! {
        () = tokio::time::sleep(early) => Ok(Some(registered)),
        () = shared.hard.cancelled() => Err(Unstarted::HardStop),
        () = shared.soft.cancelled() => Err(Unstarted::SoftStop),
        () = token.cancelled() => Err(Unstarted::Cancelled),
    }
}

/// Runs the handler in this task under its time limit, catching its panic; `None` when a hard
/// stop dropped (cancelled) it. A job that may run longer than a lease has its lease renewed
/// once it has run for a third of one (a short job costs the heartbeat nothing), until it ends.
async fn run_handler(
    job: &mut LeasedJob,
    reg: &Registration,
    ctx: Context,
    shared: &Shared,
    token: &CancellationToken,
    registered: Option<Registered>,
    span: &tracing::Span,
) -> Option<std::result::Result<(), JobError>> {
    let timeout = interval_to_duration(&job.timeout);
    let long = timeout > shared.lease_time;
    let mut held = false;
    let ctx = ctx.with_cancellation(crate::cancel::Cancellation::new(
        shared.soft.clone(),
        Some(token.clone()),
        tokio::time::Instant::now()
            .checked_add(timeout.saturating_sub(crate::cancel::warning_before(timeout))),
    ));
    let run =
        std::panic::AssertUnwindSafe((reg.run)(ctx, job.payload.take()).instrument(span.clone()))
            .catch_unwind();
    let (id, lease) = (job.id, job.lease_token);
    let run = async {
        let mut run = std::pin::pin!(run);
        // The handler's first poll, before anything says it started: a handler that finishes
        // on it cannot be cancelled, and is not registered for it (the common short job costs
        // nothing there), and its outcome says it ran.
        let first = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await;
        if let Poll::Ready(r) = first {
            return Ok(r);
        }
        let _registered = match registered {
            Some(r) => r,
            None => shared.cancels.register(id, lease, token.clone()),
        };
        // Started: said with the completer's next batch, and only now that the handler has
        // run (a job leased ahead was registered for cancels while it waited, and was marked
        // before its handler ever ran: a crash just then charged an attempt never made).
        shared.completer.started(id, lease).await;
        if long {
            let first = shared.lease_time / 3;
            if let Ok(r) = tokio::time::timeout(first, &mut run).await {
                return Ok(r);
            }
            shared.running.hold(id, lease, token.clone());
            held = true;
            tokio::time::timeout(timeout.saturating_sub(first), run).await
        } else {
            tokio::time::timeout(timeout, run).await
        }
    };
    let result = tokio::select! {
        biased;
        r = run => Some(match r {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => Err(JobError::retry(format!("the handler panicked: {}", crate::job_error::panic_message(panic)))),
            Err(_) => Err(JobError::retry(format!("the handler timed out after {timeout:?}"))),
        }),
        () = shared.hard.cancelled() => None,
    };
    // Released before the outcome is sent: from then on the lease may change hands.
    if held {
        shared.running.release(id, lease);
    }
    result
}

/// An execution that ended, for its report.
struct Done<'a> {
    job: &'a LeasedJob,
    reg: &'a Registration,
    shared: &'a Shared,
    exec: &'a ExecutorState,
    span: &'a tracing::Span,
    owner: &'a str,
    name: Option<&'a str>,
}

impl Done<'_> {
    /// Decides the outcome of `result`, counts and logs it, and hands it to the completer.
    async fn report(
        &self,
        result: std::result::Result<(), JobError>,
        requests: Requests,
        took: std::time::Duration,
        lateness: Option<std::time::Duration>,
    ) {
        let (job, reg, shared, span) = (self.job, self.reg, self.shared, self.span);
        let error = match &result {
            Err(e @ (JobError::Retry(_) | JobError::Fail(_) | JobError::RetryAfter(..))) => {
                Some(e.reason().to_owned())
            }
            _ => None,
        };
        let (outcome, kind) = decide(
            &OutcomeInput::leased(job),
            result,
            requests,
            shared.clock.now(),
            // One-off jobs have no next slot to compute.
            job.recurring
                .then(|| shared.schedule(&job.expr))
                .flatten()
                .as_ref(),
            reg.options.backoff,
            reg.options.history,
        );
        span.record("outcome", kind.as_str());
        span.record("duration_ms", took.as_millis() as u64);
        crate::telemetry::executed(reg.executor, kind.as_str(), took, lateness);
        let counter = match kind {
            Kind::Succeeded | Kind::Stopped | Kind::Rescheduled => &shared.metrics.succeeded,
            Kind::Retry => &shared.metrics.retried,
            Kind::Snoozed => &shared.metrics.snoozed,
            Kind::Failed => &shared.metrics.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let failed = matches!(kind, Kind::Retry | Kind::Failed);
        shared
            .tally
            .record(self.owner, reg.executor, failed, lateness);
        tracing::debug!(parent: span, outcome = kind.as_str(), "job finished");
        if let Some(error) = error {
            span.record("error", error.as_str());
            let failure = Failure {
                job,
                executor: reg.executor,
                owner: self.owner,
                name: self.name,
                error: &error,
            };
            failure.log(kind, &outcome);
        }
        // Under limits, the outcome goes with the executor's next lease, which takes the
        // place it frees (see `producer::hand_over`); otherwise, to the completer's batches.
        let outcome = if self.exec.at_limit() {
            match self.exec.hand_off(outcome) {
                None => return,
                Some(outcome) => outcome,
            }
        } else {
            outcome
        };
        if !shared.completer.send(outcome).await {
            tracing::error!(
                job.id = job.id,
                "the completer is gone: the job will come back when its lease expires"
            );
        }
    }
}

/// Why a job did not start (or its handler was dropped by a hard stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unstarted {
    /// The worker stops softly: the job is handed back.
    SoftStop,
    /// An operator cancelled it.
    Cancelled,
    /// The worker stops hard: its lease brings it back.
    HardStop,
}

/// A failed execution, for its log line.
struct Failure<'a> {
    job: &'a LeasedJob,
    executor: &'a str,
    owner: &'a str,
    name: Option<&'a str>,
    error: &'a str,
}

impl Failure<'_> {
    /// A retry at `warn`, a failure for good at `error`, with what an operator needs to find
    /// the job and judge the failure.
    fn log(&self, kind: Kind, outcome: &Outcome) {
        let next_run = match outcome {
            Outcome::Complete(c) if c.status == crate::JobStatus::Ready => Some(c.run_at),
            _ => None,
        };
        let next_run = next_run.map(|t| t.to_rfc3339());
        let (id, attempt, max_attempts) = (self.job.id, self.job.attempt, self.job.max_attempts);
        let (executor, owner, name, error) = (self.executor, self.owner, self.name, self.error);
        // One event, at the level the outcome calls for (a level must be a constant).
        macro_rules! failed {
            ($level:expr, $message:literal) => {
                tracing::event!(
                    $level,
                    job.id = id,
                    executor,
                    owner,
                    name,
                    attempt,
                    max_attempts,
                    next_run,
                    error,
                    $message
                )
            };
        }
        if kind == Kind::Retry {
            failed!(tracing::Level::WARN, "job failed; will retry");
        } else {
            failed!(tracing::Level::ERROR, "job failed for good");
        }
    }
}

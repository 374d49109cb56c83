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
use crate::db::LeasedJob;
use crate::handler::{Context, Requests};
use crate::job::interval_to_duration;
use crate::outcome::Outcome;
use crate::outcome::{OutcomeInput, decide};

/// Runs buffered jobs in one slot, one after another, until the buffer is empty or the worker
/// stops: a busy executor starts a job without a task switch to the producer.
pub(crate) async fn run_slot(
    first: Buffered,
    exec: Arc<ExecutorState>,
    shared: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut next = Some(first);
    let mut expired = Vec::new();
    while let Some(b) = next.take() {
        let started = Instant::now();
        if b.expired(started) {
            expired.push(b.job);
        } else {
            // Handed back now, not when the slot idles: their leases could run out first.
            if !expired.is_empty() {
                let (jobs, shared) = (std::mem::take(&mut expired), shared.clone());
                tokio::spawn(async move {
                    hand_back(&shared.pool, &shared.clock, &shared.metrics, jobs).await;
                });
            }
            execute(b.job, &exec, &shared).await;
            exec.buffer.record(started.elapsed());
        }
        if shared.soft.is_cancelled() {
            break;
        }
        if let Some((b, left)) = exec.buffer.pop() {
            shared.metrics.add_buffered(-1);
            if left <= exec.buffer.target(exec.capacity as usize) / 2 {
                exec.ask_refill();
            }
            next = Some(b);
        }
    }
    drop(permit);
    exec.ask_refill();
    if !expired.is_empty() {
        tracing::debug!(
            executor = exec.registration.executor,
            jobs = expired.len(),
            "jobs waited too long for a slot: handing them back"
        );
        hand_back(&shared.pool, &shared.clock, &shared.metrics, expired).await;
    }
}

/// Runs one leased job and hands its outcome to the completer.
pub(crate) async fn execute(mut job: LeasedJob, exec: &ExecutorState, shared: &Shared) {
    shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let reg = exec.registration;
    let span = tracing::info_span!(
        "qron.job",
        messaging.system = "qron",
        messaging.operation.type = "process",
        messaging.destination.name = reg.executor,
        job.id = job.id,
        executor = reg.executor,
        attempt = job.attempt,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        lateness_ms = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    // For the log line of a failure (the context takes the job's own).
    let (owner, name) = (job.owner.clone(), job.name.clone());
    // A meta that does not decode (written around the client's checks) fails this job alone.
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
    crate::telemetry::link(&span, &meta);
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
    };
    let timeout = interval_to_duration(&job.timeout);
    // The job's own signal: its lease was lost, or an operator cancelled it. A job that may
    // run longer than a lease has its lease renewed once it has run for a third of one (a
    // short job costs the heartbeat nothing).
    let token = CancellationToken::new();
    let long = timeout > shared.lease_time;
    let mut held = false;
    let requests = ctx.requests_handle();
    // Leased ahead of its run time: hold it until then. A soft stop meanwhile starts nothing
    // new: the job goes back unstarted; a hard stop leaves it to its lease, as for a running
    // one; an operator's cancel has ended it.
    let mut registered = None;
    let mut unstarted = Unstarted::HardStop;
    let due = match (job.run_at - shared.clock.now()).to_std() {
        Ok(early) => {
            registered = Some(
                shared
                    .cancels
                    .register(job.id, job.lease_token, token.clone()),
            );
            tokio::select! {
                () = tokio::time::sleep(early) => true,
                () = shared.hard.cancelled() => false,
                () = shared.soft.cancelled() => {
                    unstarted = Unstarted::SoftStop;
                    false
                }
                () = token.cancelled() => {
                    unstarted = Unstarted::Cancelled;
                    false
                }
            }
        }
        Err(_) => true,
    };
    let started = std::time::Instant::now();
    let ctx = ctx.with_cancellation(crate::cancel::Cancellation::new(
        shared.soft.clone(),
        Some(token.clone()),
        tokio::time::Instant::now()
            .checked_add(timeout.saturating_sub(crate::cancel::warning_before(timeout))),
    ));
    // How late it started: from when it was due (its slot, or the end of a back-off).
    let lateness = due.then(|| {
        (shared.clock.now() - job.run_at)
            .to_std()
            .unwrap_or(std::time::Duration::ZERO)
    });
    if let Some(late) = lateness {
        span.record("lateness_ms", late.as_millis() as u64);
    }
    let result: Option<std::result::Result<(), JobError>> = if let Some(e) = bad_meta {
        Some(Err(e))
    } else if due {
        // The handler runs in this task: a panic is caught here, and a timeout or a hard stop
        // drops (cancels) it.
        let run = std::panic::AssertUnwindSafe(
            (reg.run)(ctx, job.payload.take()).instrument(span.clone()),
        )
        .catch_unwind();
        let run = async {
            let mut run = std::pin::pin!(run);
            // A handler that finishes on its first poll cannot be cancelled, and is not
            // registered for it: the common short job costs nothing there.
            let _registered = match registered {
                Some(r) => r,
                None => {
                    let first = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await;
                    if let Poll::Ready(r) = first {
                        return Ok(r);
                    }
                    shared
                        .cancels
                        .register(job.id, job.lease_token, token.clone())
                }
            };
            // Started: said with the completer's next batch (a job that ends on its first
            // poll needs no mark: its outcome says it).
            shared.completer.started(job.id, job.lease_token).await;
            if long {
                let first = shared.lease_time / 3;
                if let Ok(r) = tokio::time::timeout(first, &mut run).await {
                    return Ok(r);
                }
                shared.running.hold(job.id, job.lease_token, token.clone());
                held = true;
                tokio::time::timeout(timeout.saturating_sub(first), run).await
            } else {
                tokio::time::timeout(timeout, run).await
            }
        };
        tokio::select! {
            biased;
            r = run => Some(match r {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => Err(JobError::retry(format!("the handler panicked: {}", crate::job_error::panic_message(panic)))),
                Err(_) => Err(JobError::retry(format!("the handler timed out after {timeout:?}"))),
            }),
            () = shared.hard.cancelled() => None,
        }
    } else {
        None
    };
    // Released before the outcome is sent: from then on the lease may change hands.
    if held {
        shared.running.release(job.id, job.lease_token);
    }
    if let Some(result) = result {
        let requests = Requests::take_from(&requests);
        let input = OutcomeInput::leased(&job);
        let error = match &result {
            Err(e @ (JobError::Retry(_) | JobError::Fail(_) | JobError::RetryAfter(..))) => {
                Some(e.reason().to_owned())
            }
            _ => None,
        };
        let (outcome, label) = decide(
            &input,
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
        let took = started.elapsed();
        span.record("outcome", label);
        span.record("duration_ms", took.as_millis() as u64);
        crate::telemetry::executed(reg.executor, label, took, lateness);
        let counter = match label {
            "succeeded" | "paused" | "rescheduled" => &shared.metrics.succeeded,
            "retry" => &shared.metrics.retried,
            "snoozed" => &shared.metrics.snoozed,
            _ => &shared.metrics.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(parent: &span, outcome = label, "job finished");
        if let Some(error) = error {
            span.record("error", error.as_str());
            let failure = Failure {
                job: &job,
                executor: reg.executor,
                owner: &owner,
                name: name.as_deref(),
                error: &error,
            };
            failure.log(label, &outcome);
        }
        if !shared.completer.send(outcome).await {
            tracing::error!(
                job.id = job.id,
                "the completer is gone: the job will come back when its lease expires"
            );
        }
    } else if !due && unstarted == Unstarted::SoftStop {
        tracing::debug!(parent: &span, "the worker stops before the job's run time: handed back unstarted");
        hand_back(&shared.pool, &shared.clock, &shared.metrics, vec![job]).await;
    } else if !due && unstarted == Unstarted::Cancelled {
        tracing::debug!(parent: &span, "cancelled before its run time");
    } else {
        tracing::info!(parent: &span, "cancelled by a hard stop: the job comes back when its lease expires");
    }
    shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
}

/// Why a job leased ahead of its run time did not start.
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
    fn log(&self, label: &str, outcome: &Outcome) {
        let next_run = match outcome {
            Outcome::Complete(c) if c.status == "ready" => Some(c.run_at),
            _ => None,
        };
        let next_run = next_run.map(|t| t.to_rfc3339());
        let (id, attempt, max_attempts) = (self.job.id, self.job.attempt, self.job.max_attempts);
        let (executor, owner, name, error) = (self.executor, self.owner, self.name, self.error);
        if label == "retry" {
            tracing::warn!(
                job.id = id,
                executor,
                owner,
                name,
                attempt,
                max_attempts,
                next_run,
                error,
                "job failed; will retry"
            );
        } else {
            tracing::error!(
                job.id = id,
                executor,
                owner,
                name,
                attempt,
                max_attempts,
                next_run,
                error,
                "job failed for good"
            );
        }
    }
}

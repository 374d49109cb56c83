//! The executor: runs leased jobs in a slot, each handler under its timeout and catching its
//! panics, and hands each outcome to the completer.

use std::time::Instant;

use super::buffer::Buffered;
use super::producer::hand_back;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::FutureExt as _;
use tracing::Instrument as _;

use super::outcome::{OutcomeInput, decide};
use super::{ExecutorState, Shared};
use crate::db::LeasedJob;
use crate::handler::{Context, JobError, Requests};
use crate::job::interval_to_duration;

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
        hand_back(&shared, expired).await;
    }
}

/// Runs one leased job and hands its outcome to the completer.
pub(crate) async fn execute(mut job: LeasedJob, exec: &ExecutorState, shared: &Shared) {
    shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let reg = exec.registration;
    let span = tracing::info_span!(
        "qron.job",
        job.id = job.id,
        executor = reg.executor,
        attempt = job.attempt,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
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
    };
    let requests = ctx.requests_handle();
    // Leased ahead of its run time: hold it until then (a hard stop meanwhile leaves the job
    // to its lease, as for a running one).
    let due = match (job.run_at - shared.clock.now()).to_std() {
        Ok(early) => tokio::select! {
            () = tokio::time::sleep(early) => true,
            () = shared.hard.cancelled() => false,
        },
        Err(_) => true,
    };
    let started = std::time::Instant::now();
    let timeout = interval_to_duration(&job.timeout);
    let result: Option<std::result::Result<(), JobError>> = if let Some(e) = bad_meta {
        Some(Err(e))
    } else if due {
        // The handler runs in this task: a panic is caught here, and a timeout or a hard stop
        // drops (cancels) it.
        let run = std::panic::AssertUnwindSafe(
            (reg.run)(ctx, job.payload.take()).instrument(span.clone()),
        )
        .catch_unwind();
        tokio::select! {
            biased;
            r = tokio::time::timeout(timeout, run) => Some(match r {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => Err(JobError::retry(format!("the handler panicked: {}", panic_message(panic)))),
                Err(_) => Err(JobError::retry(format!("the handler timed out after {timeout:?}"))),
            }),
            () = shared.hard.cancelled() => None,
        }
    } else {
        None
    };
    if let Some(result) = result {
        let requests = Requests::take_from(&requests);
        let input = OutcomeInput::leased(&job);
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
        span.record("outcome", label);
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        let counter = match label {
            "succeeded" | "paused" | "rescheduled" => &shared.metrics.succeeded,
            "retry" => &shared.metrics.retried,
            _ => &shared.metrics.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(parent: &span, outcome = label, "job finished");
        if !shared.completer.send(outcome).await {
            tracing::error!(
                job.id = job.id,
                "the completer is gone: the job will come back when its lease expires"
            );
        }
    } else {
        tracing::info!(parent: &span, "cancelled by a hard stop: the job comes back when its lease expires");
    }
    shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
}

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

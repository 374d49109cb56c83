//! The executor: runs one leased job's handler under its timeout, catching panics, and hands
//! the outcome to the completer.

use super::*;

/// Runs one leased job and hands its outcome to the completer.
pub(crate) async fn execute(
    mut job: LeasedJob,
    exec: Arc<ExecutorState>,
    shared: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
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
    drop(permit);
    shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    // Waking the producer for every freed slot would cost a task switch per job: it is told
    // of the first (it then gathers for `LEASE_GATHER` at most) and when a batch is worth it.
    if exec.freed.fetch_add(1, Ordering::Relaxed) == 0
        || exec.slots.available_permits() >= exec.gather
    {
        exec.slot_freed.notify_one();
    }
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

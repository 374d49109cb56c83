//! The outcome of an execution (SPEC §4): a pure decision from a handler's result to the row's
//! change, with no I/O.

use super::*;

/// What an outcome depends on, from a lease or from an expired lease.
pub(crate) struct OutcomeInput {
    pub id: i64,
    pub token: i64,
    pub revision: i64,
    pub recurring: bool,
    pub run_at: DateTime<Utc>,
    pub slot_at: DateTime<Utc>,
    pub attempt: i32,
    pub max_attempts: i32,
    /// The instant the schedule counts from.
    pub start_at: DateTime<Utc>,
}

impl OutcomeInput {
    pub(crate) fn leased(job: &LeasedJob) -> Self {
        Self {
            id: job.id,
            token: job.lease_token,
            revision: job.revision,
            recurring: job.recurring,
            run_at: job.run_at,
            slot_at: job.slot_at,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            start_at: job.start_at,
        }
    }
}

/// Turns an execution's result into what the completer writes (SPEC §4), with a label for
/// logs and counters.
pub(crate) fn decide(
    job: &OutcomeInput,
    result: std::result::Result<(), JobError>,
    requests: Requests,
    now: DateTime<Utc>,
    schedule: Option<&Schedule>,
    backoff: Backoff,
) -> (Outcome, &'static str) {
    let next_slot = schedule.and_then(|s| s.next_run(job.start_at, job.slot_at, now));
    // A new occurrence (`reset`) starts at its slot; a retry keeps the occurrence's slot.
    let live = |status: &'static str, run_at: DateTime<Utc>, reset: bool, error: Option<String>| {
        Outcome::Complete(Completion {
            id: job.id,
            token: job.token,
            revision: job.revision,
            lease_run_at: job.run_at,
            one_off: !job.recurring,
            status,
            run_at,
            slot_at: reset.then_some(run_at),
            reset_attempt: reset,
            payload: requests.payload.clone(),
            expr: None,
            start_at: None,
            recurring: job.recurring,
            error,
        })
    };
    let finish = |status: &'static str, error: Option<String>| {
        Outcome::Finish(Finish {
            id: job.id,
            token: job.token,
            revision: job.revision,
            lease_run_at: job.run_at,
            status,
            payload: requests.payload.clone(),
            error,
        })
    };
    // A recurring job whose stored schedule gives no next slot (it no longer parses, or its
    // next run is out of range) would otherwise run back to back: it ends, failed.
    if job.recurring && next_slot.is_none() && !requests.stop {
        let reason = "the job's stored schedule gives no next run (it no longer parses, or its \
                      next run is out of range): the job is ended as failed";
        return (finish("failed", Some(reason.to_owned())), "failed");
    }
    let paused_or = |status: &'static str| if requests.stop { "paused" } else { status };
    match result {
        Ok(()) => {
            if requests.stop {
                return (live("paused", job.run_at, true, None), "paused");
            }
            if let Some(s) = &requests.reschedule {
                let Some(run_at) = s.first_run(now) else {
                    let reason = format!("the new schedule `{s}` gives no run after {now}");
                    return (finish("failed", Some(reason)), "failed");
                };
                let mut outcome = live("ready", run_at, true, None);
                if let Outcome::Complete(c) = &mut outcome {
                    c.expr = Some(s.to_string());
                    c.start_at = Some(now);
                    c.recurring = s.is_recurring();
                }
                return (outcome, "rescheduled");
            }
            match next_slot {
                Some(run_at) if job.recurring => (live("ready", run_at, true, None), "succeeded"),
                _ => (finish("succeeded", None), "succeeded"),
            }
        }
        Err(e) => {
            let reason = Some(crate::limits::storable_error(e.reason()));
            let retry = matches!(e, JobError::Retry(_)) && job.attempt < job.max_attempts;
            if retry {
                let delay = chrono::Duration::from_std(backoff.delay(job.attempt))
                    .unwrap_or(chrono::Duration::seconds(1));
                let mut at = now + delay;
                if let (true, Some(slot)) = (job.recurring, next_slot) {
                    at = at.min(slot);
                }
                (live(paused_or("ready"), at, false, reason), "retry")
            } else if let (true, Some(run_at)) = (job.recurring, next_slot) {
                (live(paused_or("ready"), run_at, true, reason), "failed")
            } else if requests.stop {
                (live("paused", job.run_at, true, reason), "failed")
            } else {
                (finish("failed", reason), "failed")
            }
        }
    }
}

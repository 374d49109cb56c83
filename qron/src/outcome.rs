//! The outcome of an execution (SPEC §4): what the completer writes for it, and the pure
//! decision from a handler's result to that row change, with no I/O. The executor, the
//! rescuer, a remote worker's report and the completer all use it.

use chrono::{DateTime, Utc};

use crate::JobStatus::{self, Failed, Ready, Stopped, Succeeded};
use crate::context::Requests;
use crate::db::{Completion, Finish, LeasedJob};
use crate::handler::Backoff;
use crate::{JobError, Schedule};

/// What the completer writes for one execution.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The job stays live (next slot, retry, or stopped).
    Complete(Completion),
    /// A one-off job ends and moves to the history (unless it was paused or given a new
    /// schedule while it ran: then it stays live).
    Finish(Finish),
}

/// How soon a job made ready again must be due for its outcome to be written without waiting
/// for the batch to fill: a retry after a short back-off, or the next slot of a frequent
/// recurring job, would otherwise start late by the wait.
const URGENT_WITHIN: chrono::Duration = chrono::Duration::milliseconds(200);

impl Outcome {
    /// The lease it is the outcome of: (job id, lease token).
    pub(crate) fn lease(&self) -> (i64, i64) {
        match self {
            Outcome::Complete(c) => (c.id, c.token),
            Outcome::Finish(f) => (f.id, f.token),
        }
    }

    /// Whether the outcome makes its job ready again within [`URGENT_WITHIN`] of `now`.
    /// A job others wait for ends urgently too: its end releases them.
    pub(crate) fn is_urgent(&self, now: DateTime<Utc>) -> bool {
        match self {
            Outcome::Complete(c) => c.status == Ready && c.run_at - now < URGENT_WITHIN,
            Outcome::Finish(f) => f.kept,
        }
    }

    /// What is written instead of an outcome the server refused (a value it cannot store that
    /// got past the checks): the job fails with the server's reason, and nothing the handler
    /// asked for (payload, schedule) is applied. A one-off job ends; a recurring one goes on
    /// at the run time its outcome had.
    pub(crate) fn refused(&self, why: &sqlx::Error) -> Outcome {
        let error = Some(crate::limits::storable_error(&format!(
            "qron could not store this execution's outcome, and recorded this failure instead: {why}"
        )));
        match self {
            Outcome::Finish(f) => Outcome::Finish(Finish {
                status: Failed,
                payload: None,
                output: None,
                error,
                ..f.clone()
            }),
            Outcome::Complete(c) if c.one_off => Outcome::Finish(Finish {
                id: c.id,
                token: c.token,
                revision: c.revision,
                lease_run_at: c.lease_run_at,
                history: c.history,
                status: Failed,
                payload: None,
                output: None,
                kept: false,
                error,
            }),
            Outcome::Complete(c) => Outcome::Complete(Completion {
                payload: None,
                expr: None,
                start_at: None,
                error,
                ..c.clone()
            }),
        }
    }
}

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
    /// Other jobs wait for it (as leased).
    pub has_dependents: bool,
}

impl OutcomeInput {
    /// For a held lease read back from its row (an expired one, or a remote worker's).
    pub(crate) fn held(l: &crate::db::HeldLease) -> Self {
        Self {
            id: l.id,
            token: l.lease_token,
            revision: l.revision,
            recurring: l.recurring,
            run_at: l.run_at,
            slot_at: l.slot_at,
            attempt: l.attempt,
            max_attempts: l.max_attempts,
            start_at: l.start_at,
            has_dependents: false,
        }
    }

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
            has_dependents: job.has_dependents,
        }
    }
}

/// What came of an execution, as logs, spans and counters name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// It succeeded: the job ended, or a recurring job's next slot is due.
    Succeeded,
    /// It failed for good (a recurring job goes on to its next slot).
    Failed,
    /// It failed and is tried again.
    Retry,
    /// The handler asked to run later; the attempt does not count.
    Snoozed,
    /// The handler gave the job a new schedule.
    Rescheduled,
    /// The handler stopped (paused) the job.
    Stopped,
}

impl Kind {
    /// Its name: `succeeded`, `failed`, `retry`, `snoozed`, `rescheduled` or `paused`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Succeeded => "succeeded",
            Kind::Failed => "failed",
            Kind::Retry => "retry",
            Kind::Snoozed => "snoozed",
            Kind::Rescheduled => "rescheduled",
            Kind::Stopped => "stopped",
        }
    }
}

/// Turns an execution's result into what the completer writes (SPEC §4), and what kind of
/// outcome it is.
pub(crate) fn decide(
    job: &OutcomeInput,
    result: std::result::Result<(), JobError>,
    requests: Requests,
    now: DateTime<Utc>,
    schedule: Option<&Schedule>,
    backoff: Backoff,
    history: crate::History,
) -> (Outcome, Kind) {
    let d = Decision {
        job,
        next_slot: schedule.and_then(|s| s.next_run(job.start_at, job.slot_at, now)),
        requests,
        history,
        now,
    };
    // A recurring job whose stored schedule gives no next slot (it no longer parses, or its
    // next run is out of range) would otherwise run back to back: it ends, failed.
    if job.recurring && d.next_slot.is_none() && !d.requests.stop {
        let reason = "the job's stored schedule gives no next run (it no longer parses, or its \
                      next run is out of range): the job is ended as failed";
        return (d.finish(Failed, Some(reason.to_owned())), Kind::Failed);
    }
    match result {
        Ok(()) => d.succeeded(),
        // Later, as if this execution had not been: the attempt does not count, and no error.
        Err(JobError::Snooze(delay)) => (
            d.live_counted(d.paused_or(Ready), d.later(delay), false, true, None),
            Kind::Snoozed,
        ),
        Err(e) => d.failed(&e, backoff),
    }
}

/// What one outcome is decided from.
struct Decision<'a> {
    job: &'a OutcomeInput,
    /// A recurring job's next slot after this execution.
    next_slot: Option<DateTime<Utc>>,
    requests: Requests,
    history: crate::History,
    now: DateTime<Utc>,
}

impl Decision<'_> {
    /// The job stays live with `status`, due at `run_at`: a new occurrence (`reset`) starts at
    /// its slot, a retry keeps the occurrence's; `uncount`: the attempt does not count.
    fn live_counted(
        &self,
        status: JobStatus,
        run_at: DateTime<Utc>,
        reset: bool,
        uncount: bool,
        error: Option<String>,
    ) -> Outcome {
        let job = self.job;
        Outcome::Complete(Completion {
            id: job.id,
            token: job.token,
            revision: job.revision,
            lease_run_at: job.run_at,
            one_off: !job.recurring,
            history: self.history,
            status,
            run_at,
            slot_at: reset.then_some(run_at),
            reset_attempt: reset,
            uncount_attempt: uncount,
            payload: self.requests.payload.clone(),
            expr: None,
            start_at: None,
            recurring: job.recurring,
            error,
        })
    }

    fn live(
        &self,
        status: JobStatus,
        run_at: DateTime<Utc>,
        reset: bool,
        error: Option<String>,
    ) -> Outcome {
        self.live_counted(status, run_at, reset, false, error)
    }

    /// The job ends with `status`.
    fn finish(&self, status: JobStatus, error: Option<String>) -> Outcome {
        let job = self.job;
        Outcome::Finish(Finish {
            id: job.id,
            token: job.token,
            revision: job.revision,
            lease_run_at: job.run_at,
            history: self.history,
            status,
            payload: self.requests.payload.clone(),
            output: self.requests.output.clone(),
            kept: job.has_dependents,
            error,
        })
    }

    /// `status`, or paused when the handler stopped the job.
    fn paused_or(&self, status: JobStatus) -> JobStatus {
        if self.requests.stop { Stopped } else { status }
    }

    /// `delay` from now, but no later than a recurring job's next slot.
    fn later(&self, delay: std::time::Duration) -> DateTime<Utc> {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let at = self
            .now
            .checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        match (self.job.recurring, self.next_slot) {
            (true, Some(slot)) => at.min(slot),
            _ => at,
        }
    }

    fn succeeded(&self) -> (Outcome, Kind) {
        let job = self.job;
        if self.requests.stop {
            return (self.live(Stopped, job.run_at, true, None), Kind::Stopped);
        }
        if let Some(s) = &self.requests.reschedule {
            let Some(run_at) = s.first_run(self.now) else {
                let reason = format!("the new schedule `{s}` gives no run after {}", self.now);
                return (self.finish(Failed, Some(reason)), Kind::Failed);
            };
            let mut outcome = self.live(Ready, run_at, true, None);
            if let Outcome::Complete(c) = &mut outcome {
                c.expr = Some(s.to_string());
                c.start_at = Some(self.now);
                c.recurring = s.is_recurring();
            }
            return (outcome, Kind::Rescheduled);
        }
        match self.next_slot {
            Some(run_at) if job.recurring => {
                (self.live(Ready, run_at, true, None), Kind::Succeeded)
            }
            _ => (self.finish(Succeeded, None), Kind::Succeeded),
        }
    }

    fn failed(&self, e: &JobError, backoff: Backoff) -> (Outcome, Kind) {
        let job = self.job;
        let reason = Some(crate::limits::storable_error(e.reason()));
        let retry = matches!(e, JobError::Retry(_) | JobError::RetryAfter(..))
            && job.attempt < job.max_attempts;
        if retry {
            let wait = match e {
                JobError::RetryAfter(_, d) => *d,
                _ => backoff.delay(job.attempt),
            };
            let at = self.later(wait);
            (
                self.live(self.paused_or(Ready), at, false, reason),
                Kind::Retry,
            )
        } else if let (true, Some(run_at)) = (job.recurring, self.next_slot) {
            (
                self.live(self.paused_or(Ready), run_at, true, reason),
                Kind::Failed,
            )
        } else if self.requests.stop {
            (self.live(Stopped, job.run_at, true, reason), Kind::Failed)
        } else {
            (self.finish(Failed, reason), Kind::Failed)
        }
    }
}

/// SPEC §4's outcome table, cell by cell, without a database.
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use std::time::Duration;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, h, m, s)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// A job leased at its slot 10:00 (started 09:00), on attempt `attempt` of 3.
    fn input(recurring: bool, attempt: i32) -> OutcomeInput {
        OutcomeInput {
            id: 7,
            token: 2,
            revision: 1,
            recurring,
            run_at: at(10, 0, 0),
            slot_at: at(10, 0, 0),
            attempt,
            max_attempts: 3,
            start_at: at(9, 0, 0),
            has_dependents: false,
        }
    }

    fn backoff() -> Backoff {
        Backoff::new(Duration::from_secs(10), Duration::from_secs(10))
    }

    fn hourly() -> Schedule {
        Schedule::parse("@every 1 hour").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Decides for a job run at 10:00:05.
    fn run(
        recurring: bool,
        attempt: i32,
        result: std::result::Result<(), JobError>,
        requests: Requests,
    ) -> (Outcome, &'static str) {
        let s = hourly();
        let (o, kind) = decide(
            &input(recurring, attempt),
            result,
            requests,
            at(10, 0, 5),
            recurring.then_some(&s),
            backoff(),
            crate::History::All,
        );
        (o, kind.as_str())
    }

    fn finish(o: &Outcome) -> &Finish {
        match o {
            Outcome::Finish(f) => f,
            Outcome::Complete(c) => panic!("a completion: {c:?}"),
        }
    }

    fn complete(o: &Outcome) -> &Completion {
        match o {
            Outcome::Complete(c) => c,
            Outcome::Finish(f) => panic!("a finish: {f:?}"),
        }
    }

    #[test]
    fn one_off_jobs() {
        // Ok: succeeded.
        let (o, label) = run(false, 1, Ok(()), Requests::default());
        let f = finish(&o);
        assert_eq!(
            (f.status.as_str(), label, f.error.as_deref()),
            ("succeeded", "succeeded", None)
        );
        assert_eq!((f.id, f.token, f.lease_run_at), (7, 2, at(10, 0, 0)));
        // Retry with attempts left: ready after the back-off (7.5–10 s), same occurrence.
        let (o, label) = run(false, 1, Err(JobError::retry("busy")), Requests::default());
        let c = complete(&o);
        assert_eq!(
            (c.status.as_str(), label, c.reset_attempt),
            ("ready", "retry", false)
        );
        assert!(
            c.run_at >= at(10, 0, 12) && c.run_at <= at(10, 0, 15),
            "{}",
            c.run_at
        );
        assert_eq!((c.slot_at, c.error.as_deref()), (None, Some("busy")));
        // Retry on the last attempt: failed.
        let (o, label) = run(false, 3, Err(JobError::retry("busy")), Requests::default());
        assert_eq!((finish(&o).status.as_str(), label), ("failed", "failed"));
        // Fail: failed at once, with its reason.
        let (o, _) = run(false, 1, Err(JobError::fail("gone")), Requests::default());
        let f = finish(&o);
        assert_eq!(
            (f.status.as_str(), f.error.as_deref()),
            ("failed", Some("gone"))
        );
    }

    #[test]
    fn recurring_jobs() {
        // Ok: ready at the next slot, a new occurrence.
        let (o, label) = run(true, 1, Ok(()), Requests::default());
        let c = complete(&o);
        assert_eq!(
            (c.status.as_str(), label, c.reset_attempt),
            ("ready", "succeeded", true)
        );
        assert_eq!((c.run_at, c.slot_at), (at(11, 0, 0), Some(at(11, 0, 0))));
        // Retry: ready after the back-off, never later than the next slot.
        let (o, _) = run(true, 1, Err(JobError::retry("busy")), Requests::default());
        let c = complete(&o);
        assert_eq!((c.status.as_str(), c.reset_attempt), ("ready", false));
        assert!(c.run_at < at(11, 0, 0));
        // Retry on the last attempt, or Fail: the occurrence is given up; the next slot waits.
        for e in [JobError::retry("busy"), JobError::fail("gone")] {
            let (o, label) = run(true, 3, Err(e), Requests::default());
            let c = complete(&o);
            assert_eq!(
                (c.status.as_str(), label, c.run_at),
                ("ready", "failed", at(11, 0, 0))
            );
            assert!(c.reset_attempt && c.error.is_some());
        }
    }

    #[test]
    fn what_the_handler_asked_for() {
        // stop(): paused, whatever the kind.
        for recurring in [false, true] {
            let requests = Requests {
                stop: true,
                ..Requests::default()
            };
            let (o, label) = run(recurring, 1, Ok(()), requests);
            assert_eq!(
                (complete(&o).status.as_str(), label),
                ("stopped", "stopped")
            );
        }
        // reschedule(): ready on the new schedule, counted from now.
        let requests = Requests {
            reschedule: Some(
                Schedule::parse("@after 10 minutes").unwrap_or_else(|e| panic!("{e}")),
            ),
            payload: Some("{\"step\":2}".to_owned()),
            ..Requests::default()
        };
        let (o, label) = run(false, 1, Ok(()), requests);
        let c = complete(&o);
        assert_eq!(
            (c.status.as_str(), label, c.run_at),
            ("ready", "rescheduled", at(10, 10, 5))
        );
        assert_eq!(c.expr.as_deref(), Some("@after 10 minutes"));
        assert_eq!((c.start_at, c.recurring), (Some(at(10, 0, 5)), false));
        assert_eq!(c.payload.as_deref(), Some("{\"step\":2}"));
        // set_payload() goes with a one-off job's end.
        let requests = Requests {
            payload: Some("1".to_owned()),
            ..Requests::default()
        };
        let (o, _) = run(false, 1, Ok(()), requests);
        assert_eq!(finish(&o).payload.as_deref(), Some("1"));
    }

    #[test]
    fn a_recurring_job_without_a_next_slot_ends_failed() {
        let (o, label) = decide(
            &input(true, 1),
            Ok(()),
            Requests::default(),
            at(10, 0, 5),
            None,
            backoff(),
            crate::History::All,
        );
        let f = finish(&o);
        assert_eq!((f.status.as_str(), label.as_str()), ("failed", "failed"));
        assert!(
            f.error
                .as_deref()
                .is_some_and(|e| e.contains("no next run"))
        );
    }

    #[test]
    fn a_snooze_runs_again_later_without_counting_or_recording() {
        let snooze = || Err(JobError::retry_in(Duration::from_secs(30)));
        // A one-off job at its last attempt: it stays live, its attempt given back.
        let (o, label) = run(false, 3, snooze(), Requests::default());
        let c = complete(&o);
        assert_eq!((c.status.as_str(), label), ("ready", "snoozed"));
        assert_eq!(c.run_at, at(10, 0, 35));
        assert!(c.uncount_attempt && !c.reset_attempt);
        assert_eq!((c.slot_at, c.error.as_deref()), (None, None));
        // A recurring job runs no later than its next slot; stop() still pauses it.
        let (o, _) = run(
            true,
            1,
            Err(JobError::retry_in(Duration::from_secs(7200))),
            Requests::default(),
        );
        assert_eq!(complete(&o).run_at, at(11, 0, 0));
        let stop = Requests {
            stop: true,
            ..Requests::default()
        };
        let (o, _) = run(false, 1, snooze(), stop);
        assert_eq!(complete(&o).status.as_str(), "stopped");
        // A delay past the calendar's end does not overflow.
        let (o, _) = run(
            false,
            1,
            Err(JobError::retry_in(Duration::MAX)),
            Requests::default(),
        );
        assert_eq!(complete(&o).run_at, DateTime::<Utc>::MAX_UTC);
    }
}

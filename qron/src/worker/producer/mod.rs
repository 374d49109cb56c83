//! The producer: keeps an executor's slots busy. It leases due jobs into the executor's
//! [`Buffer`], up to two leases in flight at a time, asking for the free slots plus the reserve
//! the buffer's pace allows; it starts buffered jobs in free slots (each slot then runs buffered
//! jobs one after another, see [`run_slot`]); and when the queue is drained it sleeps until the
//! next due job, a notification or the poll interval. A soft stop hands the buffered jobs back
//! at once.

use std::time::Instant;

use super::buffer::{MAX_ANSWER_WAIT, MAX_BUFFERED_WAIT, StartCheck, outcome_margin};

use super::executor::run_slot;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::budget::Held;
use super::handoff;
use super::turns::{Start, Turns};
use super::{ExecutorState, Shared};
use crate::db::{self, LeasedJob};

/// Leases of one producer on their way at once. One lease of 1,000 jobs takes 10–20 ms, in one
/// server process: a second one, started while the first runs once the buffer is a quarter
/// empty, uses the other core (the two skip each other's rows). Measured in BENCHMARKS.md.
pub(crate) const MAX_LEASES_IN_FLIGHT: usize = 2;

/// The least a producer waits for a rate limit's bucket to refill.
const MIN_RATE_WAIT: Duration = Duration::from_millis(5);

mod config;
pub(crate) use config::Config;
#[cfg(test)]
use config::MAX_LEASE_AHEAD;
pub use config::{DEFAULT_LEASE_AHEAD, DEFAULT_POLL_INTERVAL, DEFAULT_PREFETCH};

/// What a lease brought back.
struct Landed {
    jobs: sqlx::Result<Vec<LeasedJob>>,
    asked: usize,
    /// When the lease found nothing: how long to sleep (until the next due job or the poll
    /// interval), and the bytes of that next job.
    idle_for: Option<(Duration, Option<u64>)>,
    /// The lease's allowance, held in the memory budget until its jobs hold their own bytes.
    _allowance: Held,
    /// How long the lease statement took, from its start to its answer.
    took: Duration,
    /// Where it started in the lease order.
    start: Start,
    /// Whether it was a lease under the executor's limits.
    limited: bool,
    /// Whether the executor turned out to have limits the worker did not know of (an
    /// unlimited lease then takes nothing).
    found_limits: bool,
    /// The outcomes it carried (see `hand_over`).
    carried: usize,
    /// The running jobs it asked successors for (see `Buffer::holders`).
    holders: Vec<(i64, i64)>,
    /// The bytes the lease could take, unless it was the one that takes a job whatever its
    /// size.
    bytes_allowed: Option<u64>,
}

/// What a lease may bring of the worker's memory budget (see [`Producer::allowance`]).
pub(crate) struct Allowance {
    /// The most bytes of payload and meta.
    bytes: u64,
    /// Whether it brings the first job even when that alone is over `bytes`.
    at_least_one: bool,
    held: Held,
}

/// One executor's producer.
pub(crate) struct Producer {
    exec: Arc<ExecutorState>,
    shared: Arc<Shared>,
    /// Where the next lease starts in the lease order.
    turns: Turns,
    /// Leases wait until then: the queue was drained, or the database failed.
    resting_until: Option<tokio::time::Instant>,
    /// Whether the rest is an error's back-off (outcomes handed off do not end it).
    backing_off: bool,
    /// Changes each time the completer has written a batch of outcomes: under limits, places
    /// its outcomes freed (those written while the limits had room) are taken at once.
    written: tokio::sync::watch::Receiver<u64>,
    /// Leases wait until one of the executor's jobs ends (or until then): due jobs are there,
    /// but the last lease could take none within the memory budget, and a lease again before
    /// some bytes are freed would come back as empty.
    short_of_memory_until: Option<tokio::time::Instant>,
    error_delay: Duration,
    /// Jobs asked for by the leases in flight.
    asked: usize,
    /// Whether a notification came since the last lease started.
    woken: bool,
    /// How long recent leases took to answer (the last one, or half the one before when that
    /// was longer): the next lease lasts that much longer, since its clock starts when it is
    /// sent.
    answer_time: Duration,
}

impl Producer {
    pub(crate) fn new(exec: Arc<ExecutorState>, shared: Arc<Shared>) -> Self {
        Self {
            exec,
            turns: Turns::default(),
            resting_until: None,
            backing_off: false,
            written: shared.completer.written(),
            short_of_memory_until: None,
            error_delay: Duration::from_millis(100),
            asked: 0,
            woken: false,
            answer_time: Duration::ZERO,
            shared,
        }
    }

    /// Runs until a soft stop, then hands the buffered jobs back.
    pub(crate) async fn run(mut self) {
        let mut leases: tokio::task::JoinSet<Landed> = tokio::task::JoinSet::new();
        loop {
            self.exec.refill_asked.store(false, Ordering::Relaxed);
            self.dispatch();
            if self.shared.soft.is_cancelled() {
                break;
            }
            // Outcomes handed off end a rest (at the limit, or drained): their lease takes the
            // places they free.
            if !self.backing_off && self.exec.has_handoff() {
                self.resting_until = None;
            }
            let holding_off = self.shared.completer.over_limit();
            // Passing places to successors, one hand-over at a time (see `Producer::want`).
            let most = if self.passes_places() {
                1
            } else {
                MAX_LEASES_IN_FLIGHT
            };
            if leases.len() < most
                && self.resting_until.is_none()
                && self.short_of_memory_until.is_none()
                && !holding_off
                && let Some(want) = self.want(leases.len())
                && let Some(allowance) = self.allowance(leases.len())
            {
                self.asked += want;
                self.woken = false;
                self.written.borrow_and_update();
                leases.spawn(self.lease(want, allowance));
            } else if leases.is_empty() && self.exec.has_handoff() {
                // Outcomes wait for a lease that cannot go now (no slot or bytes free, an
                // error's back-off, outcomes backed up): the completer writes them.
                handoff::to_completer(&self.shared, self.exec.take_handoff());
            }
            let resting = self.resting_until;
            // Under limits that count places (not only a rate limit), outcomes written free
            // some.
            let limited = (self.exec.limited.load(Ordering::Relaxed)
                && self.exec.counted.load(Ordering::Relaxed))
                || self.exec.capped.load(Ordering::Relaxed);
            let short_of_memory = self.short_of_memory_until;
            tokio::select! {
                biased;
                () = self.shared.soft.cancelled() => break,
                Some(landed) = leases.join_next(), if !leases.is_empty() => match landed {
                    Ok(landed) => self.landed(landed),
                    // The lease task panicked (a bug, or a host clock that panics): the
                    // producer fails with it, and the worker stops with an error naming it;
                    // the lease's jobs come back by lease expiry.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => {
                        self.failed(&e.to_string());
                        if leases.is_empty() {
                            self.asked = 0;
                        }
                    }
                },
                // Outcomes were written: under limits, places may have been freed.
                Ok(()) = self.written.changed(), if limited && resting.is_some() && !self.backing_off => {
                    self.resting_until = None;
                }
                () = self.exec.wake.notified() => {
                    self.resting_until = None;
                    self.woken = true;
                }
                // A slot freed or the buffer ran low: bytes were given back. Or a job under
                // limits ended: its outcome goes with the next lease, at once (see above).
                () = self.exec.refill.notified() => self.short_of_memory_until = None,
                () = tokio::time::sleep_until(short_of_memory.unwrap_or_else(tokio::time::Instant::now)), if short_of_memory.is_some() => {
                    self.short_of_memory_until = None;
                }
                () = tokio::time::sleep_until(resting.unwrap_or_else(tokio::time::Instant::now)), if resting.is_some() => {
                    self.resting_until = None;
                }
                () = tokio::time::sleep(Duration::from_millis(10)), if holding_off => {}
            }
        }
        // Outcomes of jobs that end from now on go to the completer.
        handoff::to_completer(&self.shared, self.exec.close_handoff());
        // Leases on their way land in the buffer, which goes back whole.
        while let Some(landed) = leases.join_next().await {
            if let Ok(Landed { jobs: Ok(jobs), .. }) = landed {
                self.shared.metrics.add_buffered(jobs.len() as i64);
                self.exec
                    .buffer
                    .push(jobs, &self.shared.budget, &self.start_check());
            }
        }
        let left: Vec<LeasedJob> = self
            .exec
            .buffer
            .take_all()
            .into_iter()
            .map(|b| b.job)
            .collect();
        self.shared.metrics.add_buffered(-(left.len() as i64));
        let s = &self.shared;
        super::buffer::hand_back(s.pool(), &s.clock, &s.metrics, left).await;
    }

    /// One round, awaited in place: starts buffered jobs in free slots, leases what
    /// [`Producer::want`] asks for if anything, takes it in and starts what fits. Returns the
    /// jobs leased. The loop of [`Producer::run`] does the same with leases in flight beside
    /// the dispatching; tests call this directly.
    #[cfg(test)]
    pub(crate) async fn run_once(&mut self) -> usize {
        self.dispatch();
        let (Some(want), Some(allowance)) = (self.want(0), self.allowance(0)) else {
            return 0;
        };
        self.asked += want;
        let landed = self.lease(want, allowance).await;
        let leased = landed.jobs.as_ref().map_or(0, Vec::len);
        self.landed(landed);
        self.dispatch();
        leased
    }

    /// Starts buffered jobs in the free slots.
    pub(crate) fn dispatch(&self) {
        loop {
            let waiting = self.exec.buffer.len();
            if waiting == 0 {
                return;
            }
            let Ok(permit) = self.exec.slots.clone().try_acquire_owned() else {
                self.shared.metrics.note_waiting(waiting);
                return;
            };
            let Some((first, _)) = self.exec.buffer.pop() else {
                return;
            };
            self.shared.metrics.add_buffered(-1);
            // Boxed: the execution's state is large, and spawning moves it several times on
            // its way into the task.
            tokio::spawn(Box::pin(run_slot(
                first,
                self.exec.clone(),
                self.shared.clone(),
                permit,
            )));
        }
    }

    /// How many jobs to lease now, if a lease is worth it: the free slots and the reserve,
    /// less what is held and asked for; a first lease when slots would otherwise idle or the
    /// reserve is down to half, a second beside it when a quarter of the reserve is missing.
    pub(crate) fn want(&self, in_flight: usize) -> Option<usize> {
        let capacity = self.exec.capacity as usize;
        let free = self.exec.slots.available_permits();
        let running = capacity.saturating_sub(free);
        let buffered = self.exec.buffer.len();
        // A limited executor's leased jobs hold places of its limit: none waits in the buffer
        // once the limit binds (a lease came back short); while it has room, they may.
        let reserve = if self.exec.leases_sparingly() {
            0
        } else {
            self.exec.buffer.target(capacity)
        };
        let want = capacity
            .saturating_add(reserve)
            .saturating_sub(running + buffered + self.asked)
            .min(self.shared.batch_size);
        let worth = if in_flight == 0 {
            (buffered == 0 && free > self.asked) || (reserve > 0 && buffered <= reserve / 2)
        } else {
            (reserve > 0 && want >= (reserve / 4).max(1)) || self.exec.has_handoff()
        };
        // At the limits, a lease that carries outcomes asks for the places they free and one
        // more (one freed elsewhere): the slots left go with the next outcomes' lease, which
        // goes beside it.
        let outcomes = self.exec.handoff_len();
        // Passing places to successors (see `migrations/0028_places.sql`): a lease that carries
        // outcomes asks for the places that were freed, not passed on, and none more (a lease
        // for jobs no key has room for reads the whole queue for nothing); it goes even when
        // that is none, to write the outcomes and bring the next successors.
        if outcomes > 0 && self.passes_places() {
            return Some(want.min(self.exec.buffer.freed()));
        }
        let want = match outcomes {
            // Far from its limits, within what a lease beside others may take.
            0 if self.exec.limited.load(Ordering::Relaxed) && !self.exec.leases_sparingly() => {
                want.min(db::LANE_MOST)
            }
            0 => want,
            outcomes => want.min(outcomes + 1),
        };
        (want > 0 && worth).then_some(want)
    }

    /// Whether the executor's places pass to successors now: at a limit per key (leasing
    /// sparingly), with running jobs that hold places. Its hand-overs then go one at a time:
    /// each brings the successors and writes the outcomes gathered while the one before was on
    /// its way, where a second beside it would split them over two statements that wait for
    /// one another at the limit lock (measured: `reliability::limits`, 20,000 jobs under a
    /// limit of 2 per customer, done in 3.7 s rather than 4.1 s by one worker and in 6.4–6.9 s
    /// rather than 8.2–8.3 s by four).
    fn passes_places(&self) -> bool {
        self.exec.leases_sparingly() && self.exec.buffer.holds_places()
    }

    /// What the next lease may bring of the worker's memory budget, if it is worth leasing
    /// (held while it is on its way); when the budget has nothing left, one job whatever its
    /// size, only for an executor that holds none: each executor makes progress.
    pub(crate) fn allowance(&self, in_flight: usize) -> Option<Allowance> {
        let budget = &self.shared.budget;
        let bytes = budget.for_a_lease();
        let holds_none = in_flight == 0
            && self.exec.buffer.len() == 0
            && self.exec.slots.available_permits() == self.exec.capacity as usize;
        (bytes > 0 || holds_none).then(|| Allowance {
            bytes: bytes.max(1),
            at_least_one: holds_none,
            held: budget.hold(bytes),
        })
    }

    /// A lease of up to `want` jobs within `allowance`, run as its own task so that the buffer
    /// keeps feeding slots meanwhile.
    fn lease(
        &mut self,
        want: usize,
        allowance: Allowance,
    ) -> impl std::future::Future<Output = Landed> + use<> {
        let limited = self.exec.limited.load(Ordering::Relaxed);
        let sparingly = self.exec.leases_sparingly();
        // Under limits, the outcomes handed off since the last lease go with this one.
        let outcomes = if limited {
            self.exec.take_handoff()
        } else {
            // Limits just cleared: any left go to the completer.
            handoff::to_completer(&self.shared, self.exec.take_handoff());
            Vec::new()
        };
        let carried = outcomes.len();
        // At a limit per key, this worker's running jobs whose places may pass to successors
        // (see `migrations/0028_places.sql`).
        self.exec.buffer.take_freed(want);
        let holders = if limited && sparingly && self.exec.counts_places() {
            self.exec.buffer.holders()
        } else {
            Vec::new()
        };
        // Far from its limits (none bound the last lease), beside other leases if they allow.
        let in_lane = limited && !sparingly && carried == 0;
        let mut start = self.turns.start(self.shared.poll_interval);
        if limited && self.exec.passes_over.load(Ordering::Relaxed) {
            // From the start of the lease order: a job passed over for its key's limit comes
            // first once its key has room.
            start.cursors = Arc::new([]);
        }
        // The lease's clock starts when it is sent: it covers its answer's way back (as long
        // as recent answers took), and for jobs beyond the free slots their wait in the buffer.
        // A job that arrives too late to start within its lease is handed back (`run_slot`).
        let buffer_wait = if want > self.exec.slots.available_permits() || !holders.is_empty() {
            MAX_BUFFERED_WAIT
        } else {
            Duration::ZERO
        };
        let wait = buffer_wait + self.answer_time;
        let shared = self.shared.clone();
        let executor = self.exec.registration.executor;
        let paused = self.exec.paused.load(Ordering::Relaxed);
        async move {
            let now = shared.clock.now();
            let sent = Instant::now();
            let lease = db::Lease {
                executor,
                worker_id: &shared.worker_id,
                limit: i64::try_from(want).unwrap_or(i64::MAX),
                now,
                // a limited executor's jobs hold their places from their lease: not ahead
                // while places are scarce
                due_by: if sparingly {
                    now
                } else {
                    now + shared.lease_ahead
                },
                cursors: &start.cursors,
                turn_after: &start.turn_after,
                wait,
                slack: shared.slack,
                lease_time: shared.lease_time,
                paused,
                owner: None,
                max_bytes: Some(allowance.bytes),
                at_least_one: allowance.at_least_one,
            };
            let jobs = if limited {
                handoff::hand_over(&shared, &lease, outcomes, in_lane, &holders).await
            } else {
                db::job_lease(&shared.lease_pool, &lease).await
            };
            let took = sent.elapsed();
            // Found nothing: how long to rest. (A lease that found some jobs hands them over
            // first; the next lease, finding none, decides the rest.)
            let idle_for = match &jobs {
                Ok(jobs) if jobs.is_empty() && start.cursors.is_empty() && want > 0 => {
                    Some(idle_wait(&shared, executor).await)
                }
                _ => None,
            };
            // Nothing leased though a job is due: the executor may have limits this worker
            // was not told of yet (the unlimited lease takes none of its jobs then).
            let found_limits = !limited
                && matches!(idle_for, Some((Duration::ZERO, _)))
                && db::executor_limits_get(shared.pool(), Some(&[executor]))
                    .await
                    .is_ok_and(|l| !l.is_empty());
            Landed {
                jobs,
                asked: want,
                idle_for,
                limited,
                found_limits,
                carried,
                holders,
                bytes_allowed: (!allowance.at_least_one).then_some(allowance.bytes),
                _allowance: allowance.held,
                took,
                start,
            }
        }
    }

    /// Takes in what a lease brought.
    fn landed(&mut self, landed: Landed) {
        self.asked = self.asked.saturating_sub(landed.asked);
        let mut jobs = match landed.jobs {
            Ok(jobs) => jobs,
            Err(e) => {
                // No successor came: the places go back when their jobs end.
                self.exec.buffer.answered(&landed.holders, &[]);
                return self.failed(&e.to_string());
            }
        };
        super::turns::in_lease_order(&mut jobs);
        // Successors take their places, not slots: the lease's answer to what it asked for is
        // the other jobs.
        let (successors, fresh): (Vec<LeasedJob>, Vec<LeasedJob>) =
            jobs.into_iter().partition(|j| j.successor_of.is_some());
        if !landed.holders.is_empty() {
            self.exec.buffer.answered(&landed.holders, &successors);
        }
        jobs = fresh;
        let leased = jobs.len();
        // Bound when a lease comes back short; free again when one that asked for all its free
        // slots (not only for the places its outcomes freed) brings them all.
        if landed.limited && leased < landed.asked {
            self.exec.bound.store(true, Ordering::Relaxed);
        } else if landed.limited && landed.carried == 0 {
            self.exec.bound.store(false, Ordering::Relaxed);
        }
        self.error_delay = Duration::from_millis(100);
        self.backing_off = false;
        self.answer_time = landed.took.max(self.answer_time / 2).min(MAX_ANSWER_WAIT);
        self.turns
            .landed(&landed.start, &jobs, leased == landed.asked);
        let m = &self.shared.metrics;
        m.note_lease_time(landed.took);
        m.leased.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        m.polls.fetch_add(1, Ordering::Relaxed);
        m.leased
            .fetch_add(successors.len() as u64, Ordering::Relaxed);
        m.add_buffered((jobs.len() + successors.len()) as i64);
        jobs.extend(successors);
        self.exec
            .buffer
            .push(jobs, &self.shared.budget, &self.start_check());
        // Drained: rest until the next due job, a notification (of a new job, or of one that
        // any worker's outcome made ready again: see `db::job_complete_many`) or the poll.
        // A notification that came while the lease ran may be of a job its snapshot missed.
        // Under limits, a due job not leased waits for a place: until outcomes are written
        // (see `Producer::run`), a notification, or the poll.
        if landed.found_limits {
            self.exec.limited.store(true, Ordering::Relaxed);
        } else if !self.woken {
            self.resting_until = if landed.limited && leased < landed.asked {
                // Short of what it asked: at the limit, or drained. A place freed here is
                // taken by the lease that writes its outcome (see `hand_over`); one freed
                // elsewhere, by the poll; under a rate limit, starts come back as its bucket
                // refills.
                let poll = self.shared.poll_interval;
                let wait = match landed.idle_for {
                    Some((d, _)) if !d.is_zero() => d,
                    _ => self
                        .exec
                        .rate_refill()
                        .map_or(poll, |r| r.clamp(MIN_RATE_WAIT, poll)),
                };
                Some(tokio::time::Instant::now() + wait)
            } else if leased == 0
                && self.exec.capped.load(Ordering::Relaxed)
                && matches!(landed.idle_for, Some((Duration::ZERO, _)))
            {
                // Due jobs, none leased: their owners' caps hold them (or another lease is
                // taking them). Places come back with outcomes (see `Producer::run`), or by
                // the poll.
                Some(tokio::time::Instant::now() + self.shared.poll_interval)
            } else {
                landed
                    .idle_for
                    .map(|(d, _)| tokio::time::Instant::now() + d)
            };
        }
        // Found nothing though the next job is due now and does not fit in what the lease could
        // take: wait for bytes to be freed rather than ask again at once (at most a poll
        // interval).
        if let (Some((Duration::ZERO, Some(next))), Some(allowed)) =
            (landed.idle_for, landed.bytes_allowed)
            && next > allowed
        {
            self.short_of_memory_until =
                Some(tokio::time::Instant::now() + self.shared.poll_interval);
        }
    }

    /// How the jobs that just came are checked before they start.
    fn start_check(&self) -> StartCheck {
        start_check(&self.shared)
    }

    fn failed(&mut self, error: &str) {
        tracing::warn!(
            executor = self.exec.registration.executor,
            error,
            "could not lease jobs; retrying"
        );
        self.resting_until = Some(tokio::time::Instant::now() + self.error_delay);
        self.backing_off = true;
        self.error_delay = (self.error_delay * 2).min(Duration::from_secs(5));
    }
}

/// How jobs that just came are checked before they start.
fn start_check(s: &Shared) -> StartCheck {
    StartCheck {
        now: s.clock.now(),
        at: Instant::now(),
        lease_time: s.lease_time,
        margin: outcome_margin(s.slack),
    }
}

/// How long a producer whose lease found nothing sleeps: until the poll interval, or until the
/// next job to lease; and that job's bytes.
async fn idle_wait(shared: &Shared, executor: &str) -> (Duration, Option<u64>) {
    let longest = shared.poll_interval;
    // Only a job due before the longest sleep shortens it.
    let horizon = chrono::Duration::from_std(longest)
        .ok()
        .and_then(|d| d.checked_add(&shared.lease_ahead))
        .and_then(|d| shared.clock.now().checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let now = shared.clock.now();
    match db::job_next_due(&shared.lease_pool, executor, now, horizon).await {
        Ok(Some((due, bytes, scheduled))) => {
            let wait = (due - shared.lease_ahead - shared.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(longest);
            // Due, but not staged yet (the rescuers stage ahead of time; one was late): stage
            // it now, and lease again at once.
            if scheduled && wait.is_zero() {
                let by = shared.clock.now() + shared.lease_ahead;
                if let Err(e) = db::jobs_stage_executor(&shared.lease_pool, executor, by).await {
                    tracing::warn!(error = %e, executor, "could not stage the due jobs");
                    return (longest, None);
                }
            }
            (wait, u64::try_from(bytes).ok())
        }
        Ok(None) | Err(_) => (longest, None),
    }
}

#[cfg(test)]
mod tests;

//! The local buffer: jobs leased but not yet started, held for the executor's next free slots.
//!
//! A producer that leased only into free slots made one round trip per few jobs at ordinary
//! concurrency (10–100): most of a worker's time went to leases. With a buffer, a lease asks for
//! the free slots plus a reserve, and the reserve starts as slots free, while the next lease is
//! already on its way. The reserve is sized by the executor's pace: never more jobs than would
//! start within [`PREFETCH_HORIZON`] at the recent pace, and never more than the `prefetch`
//! setting; so slow jobs are not hoarded by one worker while others sit idle.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::budget::{Budget, Held};
use crate::clock::DbClock;
use crate::db::{self, LeasedJob};
use crate::metrics::Metrics;

/// How long, at the recent pace, the buffered jobs of an executor may take to start.
pub(crate) const PREFETCH_HORIZON: Duration = Duration::from_millis(250);

/// The longest a job may wait in the buffer: its lease is that much longer than the handler's
/// timeout (see [`startable`]).
pub(crate) const MAX_BUFFERED_WAIT: Duration = Duration::from_secs(2);

/// The longest a lease's answer is allowed to take in the leases' length (see
/// `Producer::lease`): past it, leased jobs arrive too late to start and are handed back.
pub(crate) const MAX_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// The lease slack of a worker whose completer flushes every `flush_interval`.
pub(crate) fn slack(flush_interval: Duration) -> Duration {
    crate::db::LEASE_SLACK_TIME + flush_interval
}

/// Of a lease's slack, what a job's outcome may take to be written once its handler has
/// ended: a job starts only while its lease leaves its run time and this much. The rest of the
/// slack (a second) covers the clocks' error and the outcome's trip to the server.
pub(crate) fn outcome_margin(slack: Duration) -> Duration {
    slack.saturating_sub(Duration::from_secs(1))
}

/// A leased job waiting for a slot.
#[derive(Debug)]
pub(crate) struct Buffered {
    pub(crate) job: LeasedJob,
    /// The last instant it may start (see [`StartCheck`]); `None`: it may not.
    pub(crate) start_by: Option<Instant>,
    /// Its bytes in the worker's memory budget, held until its execution ends.
    pub(crate) held: Held,
}

/// The latest time (the database's) at which `job` may start and still have, within the
/// expiry the server wrote for its lease, its limit to run (or `lease_time`, past which the
/// heartbeat renews it) and `margin` for its outcome to be written; `None` when even its run
/// time is too late. A job that cannot start by then is handed back: neither a slow answer nor
/// a wait in the buffer lets a job start whose lease could run out under it.
fn latest_start(job: &LeasedJob, lease_time: Duration, margin: Duration) -> Option<DateTime<Utc>> {
    let run = crate::job::interval_to_duration(&job.timeout)
        .min(lease_time)
        .saturating_add(margin);
    let latest = job
        .lease_expires_at
        .checked_sub_signed(chrono::Duration::from_std(run).ok()?)?;
    (latest >= job.run_at).then_some(latest)
}

/// Whether `job` may start at `now` (at its run time, if that is later; see [`latest_start`]).
#[cfg(test)]
fn startable(job: &LeasedJob, now: DateTime<Utc>, lease_time: Duration, margin: Duration) -> bool {
    latest_start(job, lease_time, margin).is_some_and(|latest| now <= latest)
}

/// How a lease's jobs are checked before they start (see [`latest_start`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartCheck {
    /// The database's time when the jobs came, and that instant by the monotonic clock.
    pub(crate) now: DateTime<Utc>,
    pub(crate) at: Instant,
    pub(crate) lease_time: Duration,
    pub(crate) margin: Duration,
}

impl StartCheck {
    /// The last instant, by the monotonic clock, at which `job` may start (one reading of the
    /// database's time per lease, none per job); `None`: it may not start.
    fn start_by(&self, job: &LeasedJob) -> Option<Instant> {
        let latest = latest_start(job, self.lease_time, self.margin)?;
        Some(self.at + (latest - self.now).to_std().ok()?)
    }
}

/// Jobs of one executor leased and not yet started, oldest first; and under a limit per key,
/// the running jobs that hold places, each with the successor leased to take its place (see
/// `migrations/0028_places.sql`).
#[derive(Debug)]
pub(crate) struct Buffer {
    inner: Mutex<Inner>,
    /// The most jobs it holds (the worker's `prefetch` setting).
    limit: usize,
    /// Moving average of how long a job holds a slot, in nanoseconds; 0 until one has finished.
    pace_ns: AtomicU64,
    /// Places freed since the last lease: jobs that ended with no successor to pass theirs to.
    freed: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: VecDeque<Buffered>,
    /// Running jobs that hold places, by id.
    places: HashMap<i64, Place>,
}

/// A running job's place.
#[derive(Debug)]
struct Place {
    token: i64,
    /// Whether a lease was asked for its successor (once a job: a key with no due job left
    /// is not asked for again and again).
    asked: bool,
    /// Whether that lease came back without one: the place is freed when the job ends.
    none_came: bool,
    successor: Option<Buffered>,
}

impl Inner {
    /// Every successor, out of its place.
    fn successors(&mut self) -> impl Iterator<Item = Buffered> + '_ {
        self.places.values_mut().filter_map(|p| p.successor.take())
    }
}

impl Buffer {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit,
            pace_ns: AtomicU64::new(0),
            freed: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The jobs waiting for a free slot (successors wait for their places' slots instead).
    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Takes in leased jobs, holding their bytes in `budget`, each to start by what `check`
    /// says: a successor in the place of the job it follows, if that one still runs; every
    /// other job in the queue for a free slot.
    pub(crate) fn push(&self, jobs: Vec<LeasedJob>, budget: &Arc<Budget>, check: &StartCheck) {
        let mut inner = self.lock();
        for job in jobs {
            let b = Buffered {
                held: budget.hold(job.bytes()),
                start_by: check.start_by(&job),
                job,
            };
            let place = b
                .job
                .successor_of
                .and_then(|holder| inner.places.get_mut(&holder))
                .filter(|p| p.successor.is_none());
            match place {
                Some(place) => place.successor = Some(b),
                None => inner.jobs.push_back(b),
            }
        }
    }

    /// The oldest job and how many are left.
    pub(crate) fn pop(&self) -> Option<(Buffered, usize)> {
        let mut inner = self.lock();
        inner.jobs.pop_front().map(|b| (b, inner.jobs.len()))
    }

    /// Every job held, emptying the buffer (successors included).
    pub(crate) fn take_all(&self) -> Vec<Buffered> {
        let mut inner = self.lock();
        let mut all: Vec<Buffered> = inner.jobs.drain(..).collect();
        all.extend(inner.successors());
        all
    }

    /// Takes out the jobs `which` picks, in order (successors included).
    pub(crate) fn take_where(&self, which: impl Fn(&LeasedJob) -> bool) -> Vec<LeasedJob> {
        let mut inner = self.lock();
        let (taken, kept): (VecDeque<Buffered>, VecDeque<Buffered>) =
            inner.jobs.drain(..).partition(|b| which(&b.job));
        inner.jobs = kept;
        let mut taken: Vec<LeasedJob> = taken.into_iter().map(|b| b.job).collect();
        for place in inner.places.values_mut() {
            if place.successor.as_ref().is_some_and(|b| which(&b.job))
                && let Some(b) = place.successor.take()
            {
                taken.push(b.job);
            }
        }
        taken
    }

    /// Takes job `id` out, if it is held (it was cancelled before it started).
    pub(crate) fn remove(&self, id: i64) -> Option<LeasedJob> {
        let mut inner = self.lock();
        if let Some(at) = inner.jobs.iter().position(|b| b.job.id == id) {
            return inner.jobs.remove(at).map(|b| b.job);
        }
        inner
            .places
            .values_mut()
            .find(|p| p.successor.as_ref().is_some_and(|b| b.job.id == id))
            .and_then(|p| p.successor.take())
            .map(|b| b.job)
    }

    /// Job `id`, under lease `token`, starts in a place of its executor's limit.
    pub(crate) fn hold_place(&self, id: i64, token: i64) {
        self.lock().places.entry(id).or_insert(Place {
            token,
            asked: false,
            none_came: false,
            successor: None,
        });
    }

    /// Job `id` ended: its place's successor, if one came, which holds the place from now on.
    /// A place never asked for a successor is counted as freed (one asked for goes to the
    /// successor on its way, or its key had no due job).
    pub(crate) fn end_place(&self, id: i64) -> Option<Buffered> {
        let mut inner = self.lock();
        let place = inner.places.remove(&id)?;
        let Some(next) = place.successor else {
            if !place.asked || place.none_came {
                self.freed.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        };
        inner.places.insert(
            next.job.id,
            Place {
                token: next.job.lease_token,
                asked: false,
                none_came: false,
                successor: None,
            },
        );
        Some(next)
    }

    /// A lease asked for successors of `holders` came back: those it brought none for free
    /// their places when they end, or now if they have ended.
    pub(crate) fn answered(&self, holders: &[(i64, i64)], successors: &[LeasedJob]) {
        let came: std::collections::HashSet<i64> =
            successors.iter().filter_map(|j| j.successor_of).collect();
        let mut inner = self.lock();
        for (id, _) in holders.iter().filter(|(id, _)| !came.contains(id)) {
            match inner.places.get_mut(id) {
                Some(place) => place.none_came = true,
                None => {
                    self.freed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counts `n` of the places freed (see [`Buffer::end_place`]) as asked for again, and
    /// returns how many were freed before; those freed meanwhile stay counted.
    pub(crate) fn take_freed(&self, n: usize) -> usize {
        self.freed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(f.saturating_sub(n))
            })
            .unwrap_or_else(|f| f)
    }

    /// The places freed and not yet asked for again (see [`Buffer::take_freed`]).
    pub(crate) fn freed(&self) -> usize {
        self.freed.load(Ordering::Relaxed)
    }

    /// Whether some running job holds a place.
    pub(crate) fn holds_places(&self) -> bool {
        !self.lock().places.is_empty()
    }

    /// The running jobs (id, lease token) whose places have no successor and were not asked
    /// for one yet; each is marked asked.
    pub(crate) fn holders(&self) -> Vec<(i64, i64)> {
        let mut inner = self.lock();
        inner
            .places
            .iter_mut()
            .filter(|(_, p)| !p.asked && p.successor.is_none())
            .map(|(id, p)| {
                p.asked = true;
                (*id, p.token)
            })
            .collect()
    }

    /// Records that a job held its slot for `took`.
    pub(crate) fn record(&self, took: Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.pace_ns.load(Ordering::Relaxed);
        // An average over about the last eight jobs: it follows a change of pace within a few
        // jobs. Concurrent updates may lose one another's samples, which an average forgives.
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.pace_ns.store(new.max(1), Ordering::Relaxed);
    }

    /// How many jobs to hold beyond the running ones: what `capacity` slots start within the
    /// horizon at the recent pace, within the limit; none before a job has finished (a first
    /// lease asks only for the free slots: the jobs may be slow).
    pub(crate) fn target(&self, capacity: usize) -> usize {
        let pace = self.pace_ns.load(Ordering::Relaxed);
        if pace == 0 || self.limit == 0 {
            return 0;
        }
        let horizon = u64::try_from(PREFETCH_HORIZON.as_nanos()).unwrap_or(u64::MAX);
        let starts = (horizon / pace).saturating_mul(capacity as u64);
        usize::try_from(starts)
            .unwrap_or(usize::MAX)
            .min(self.limit)
    }
}

/// Hands leased jobs back unstarted (see `db::job_release`). When that fails they come back
/// when their leases expire.
pub(crate) async fn hand_back(
    pool: &sqlx::PgPool,
    clock: &DbClock,
    metrics: &Metrics,
    jobs: Vec<LeasedJob>,
) {
    if jobs.is_empty() {
        return;
    }
    let refs: Vec<&LeasedJob> = jobs.iter().collect();
    match db::job_release(pool, &refs, clock.now()).await {
        Ok(n) => {
            metrics
                .handed_back
                .fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
        }
        Err(e) => tracing::warn!(
            error = %e,
            jobs = jobs.len(),
            "could not hand back unstarted jobs: they come back when their leases expire"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_job_starts_only_while_its_lease_covers_its_run_and_its_outcome() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        let job = LeasedJob {
            max_attempts: 3,
            // a 10 s limit
            timeout: sqlx::postgres::types::PgInterval {
                months: 0,
                days: 0,
                microseconds: 10_000_000,
            },
            // the limit and 3 s
            lease_expires_at: t0 + s(13),
            ..LeasedJob::for_test(1, "default", t0)
        };
        let (long_lease, margin) = (Duration::from_secs(30), Duration::from_secs(1));
        assert!(startable(&job, t0, long_lease, margin));
        assert!(
            startable(&job, t0 + s(2), long_lease, margin),
            "10 + 1 s left"
        );
        assert!(
            !startable(&job, t0 + s(3), long_lease, margin),
            "only 10 s left"
        );
        // Leased ahead: it starts at its run time, whenever it is looked at.
        let ahead = LeasedJob {
            run_at: t0 + s(5),
            lease_expires_at: t0 + s(18),
            ..job.clone()
        };
        assert!(startable(&ahead, t0, long_lease, margin));
        // A lease time under the limit: the heartbeat renews it while it runs.
        let renewed = LeasedJob {
            lease_expires_at: t0 + s(6),
            ..job
        };
        assert!(startable(&renewed, t0, Duration::from_secs(5), margin));
        assert!(!startable(
            &renewed,
            t0 + s(1),
            Duration::from_secs(5),
            margin
        ));
    }

    #[test]
    fn the_reserve_follows_the_pace_within_the_limit() {
        let b = Buffer::new(1000);
        assert_eq!(b.target(10), 0, "no reserve before a job has finished");
        b.record(Duration::from_micros(5));
        assert_eq!(b.target(10), 1000, "fast jobs: the limit");
        let slow = Buffer::new(1000);
        slow.record(Duration::from_millis(100));
        assert_eq!(
            slow.target(10),
            20,
            "100 ms jobs on 10 slots: 250 ms of them"
        );
        let slower = Buffer::new(1000);
        slower.record(Duration::from_secs(1));
        assert_eq!(
            slower.target(10),
            0,
            "jobs longer than the horizon: no reserve"
        );
        let off = Buffer::new(0);
        off.record(Duration::from_micros(5));
        assert_eq!(off.target(10), 0, "prefetch 0: no reserve");
        // The average moves toward a new pace.
        for _ in 0..50 {
            b.record(Duration::from_millis(100));
        }
        assert!(b.target(10) <= 30, "{}", b.target(10));
    }

    #[test]
    fn a_successor_waits_in_its_holders_place_and_goes_back_with_the_buffer() {
        let t0 = Utc::now();
        let budget = Budget::new(1 << 20, 2);
        let check = StartCheck {
            now: t0,
            at: Instant::now(),
            lease_time: Duration::from_secs(30),
            margin: Duration::from_secs(1),
        };
        let job = |id: i64, successor_of: Option<i64>| LeasedJob {
            lease_expires_at: t0 + chrono::Duration::seconds(30),
            lease_token: id * 10,
            successor_of,
            ..LeasedJob::for_test(id, "default", t0)
        };
        let b = Buffer::new(100);
        b.hold_place(1, 10);
        b.hold_place(2, 20);
        // Each running job is asked for once.
        let mut asked = b.holders();
        asked.sort_unstable();
        assert_eq!(asked, [(1, 10), (2, 20)]);
        assert!(b.holders().is_empty());
        // A successor waits in its holder's place, not for a slot; one whose holder ended
        // goes to the queue.
        b.push(vec![job(3, Some(1)), job(4, Some(9))], &budget, &check);
        assert_eq!(b.len(), 1);
        // The holder ends: its successor holds the place (and is asked for in its turn).
        let next = b.end_place(1).map(|s| s.job.id);
        assert_eq!(next, Some(3));
        assert_eq!(b.holders(), [(3, 30)]);
        // The lease asked for job 2's successor came back with none: its place is freed when
        // it ends; one never asked for is freed too.
        b.answered(&[(2, 20)], &[]);
        assert_eq!(b.end_place(2).map(|s| s.job.id), None);
        b.hold_place(5, 50);
        assert_eq!(b.end_place(5).map(|s| s.job.id), None);
        assert_eq!(b.take_freed(usize::MAX), 2);
        // A successor on its way when its holder ended frees nothing.
        assert_eq!(b.end_place(3).map(|s| s.job.id), None);
        assert_eq!(b.freed(), 0);
        // A lease asks for the places freed when it is decided; one freed before it is sent
        // stays counted for the next.
        b.hold_place(20, 200);
        b.hold_place(21, 210);
        assert!(b.end_place(20).is_none());
        let asked = b.freed();
        assert!(b.end_place(21).is_none());
        assert_eq!(b.take_freed(asked), 2);
        assert_eq!(b.freed(), 1);
        b.take_freed(1);
        // Cancelled, paused, or handed back at a stop: successors go with the queue.
        b.hold_place(6, 60);
        b.hold_place(7, 70);
        b.hold_place(8, 80);
        b.push(
            vec![job(11, Some(6)), job(12, Some(7)), job(13, Some(8))],
            &budget,
            &check,
        );
        assert_eq!(b.remove(11).map(|j| j.id), Some(11));
        assert_eq!(b.end_place(6).map(|s| s.job.id), None);
        let paused: Vec<i64> = b.take_where(|j| j.id == 12).iter().map(|j| j.id).collect();
        assert_eq!(paused, [12]);
        let mut all: Vec<i64> = b.take_all().iter().map(|s| s.job.id).collect();
        all.sort_unstable();
        assert_eq!(all, [4, 13]);
        assert_eq!(b.end_place(8).map(|s| s.job.id), None);
    }
}

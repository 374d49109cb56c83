//! A worker's counters: what it leased, ran, wrote and rescued, readable while it runs.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one worker, readable while it runs.
///
/// ```no_run
/// # async fn demo(worker: qron::Worker) {
/// let metrics = worker.metrics();
/// tokio::spawn(worker.run());
/// println!("{} succeeded so far", metrics.succeeded());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) leased: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) snoozed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) rescued: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) in_flight: AtomicI64,
    pub(crate) buffered: AtomicI64,
    pub(crate) buffered_peak: AtomicI64,
    pub(crate) handed_back: AtomicU64,
    /// The last [`LEASE_TIMES_KEPT`] leases' times, from the statement's start to its answer.
    lease_times: std::sync::Mutex<std::collections::VecDeque<std::time::Duration>>,
}

/// How many of the last leases' times a worker keeps (see [`Metrics::lease_times`]).
pub const LEASE_TIMES_KEPT: usize = 4096;

impl Metrics {
    /// Adds `other`'s counts to these (the testing kit's drain sums its rounds).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn absorb(&self, other: &Metrics) {
        for (mine, theirs) in [
            (&self.leased, &other.leased),
            (&self.polls, &other.polls),
            (&self.succeeded, &other.succeeded),
            (&self.retried, &other.retried),
            (&self.snoozed, &other.snoozed),
            (&self.failed, &other.failed),
            (&self.rescued, &other.rescued),
            (&self.written, &other.written),
            (&self.stale, &other.stale),
            (&self.handed_back, &other.handed_back),
        ] {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Keeps a lease's time (see [`Metrics::lease_times`]).
    pub(crate) fn note_lease_time(&self, took: std::time::Duration) {
        let mut times = self
            .lease_times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if times.len() == LEASE_TIMES_KEPT {
            times.pop_front();
        }
        times.push_back(took);
    }

    /// The times of the worker's last leases (at most [`LEASE_TIMES_KEPT`], oldest first),
    /// each from the lease statement's start to its answer: for its percentiles.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert!(m.lease_times().is_empty());
    /// ```
    pub fn lease_times(&self) -> Vec<std::time::Duration> {
        self.lease_times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }

    /// Jobs leased.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.leased(), 0);
    /// ```
    pub fn leased(&self) -> u64 {
        self.leased.load(Ordering::Relaxed)
    }
    /// Lease statements run: each is a producer's look at the queue (busy or idle).
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.polls(), 0);
    /// ```
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
    /// Executions that succeeded.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.succeeded(), 0);
    /// ```
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }
    /// Executions that failed and will be retried.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.retried(), 0);
    /// ```
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
    /// Executions that asked to run again later without counting
    /// ([`JobError::retry_in`](crate::JobError::retry_in)).
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.snoozed(), 0);
    /// ```
    pub fn snoozed(&self) -> u64 {
        self.snoozed.load(Ordering::Relaxed)
    }
    /// Executions that failed for good (or gave up their occurrence).
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.failed(), 0);
    /// ```
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    /// Expired leases returned to the pool by this worker's rescuer.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.rescued(), 0);
    /// ```
    pub fn rescued(&self) -> u64 {
        self.rescued.load(Ordering::Relaxed)
    }
    /// Outcomes written.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.written(), 0);
    /// ```
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
    /// Outcomes that arrived after their lease had moved on, and changed nothing.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.stale(), 0);
    /// ```
    pub fn stale(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }
    /// Handlers running now.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Jobs leased and waiting in the worker for a free slot (see
    /// [`WorkerBuilder::prefetch`](crate::WorkerBuilder::prefetch)).
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.buffered(), 0);
    /// ```
    pub fn buffered(&self) -> i64 {
        self.buffered.load(Ordering::Relaxed)
    }
    /// The most jobs that waited in the worker for a slot at once since it started: never more
    /// than the [prefetch](crate::WorkerBuilder::prefetch) setting.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.buffered_peak(), 0);
    /// ```
    pub fn buffered_peak(&self) -> i64 {
        self.buffered_peak.load(Ordering::Relaxed)
    }
    /// Leased jobs handed back unstarted: at a soft stop, or after waiting too long for a slot.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.handed_back(), 0);
    /// ```
    pub fn handed_back(&self) -> u64 {
        self.handed_back.load(Ordering::Relaxed)
    }

    pub(crate) fn add_buffered(&self, n: i64) {
        self.buffered.fetch_add(n, Ordering::Relaxed);
    }

    /// Notes how many jobs wait for a slot once the free slots have taken theirs.
    pub(crate) fn note_waiting(&self, n: usize) {
        self.buffered_peak
            .fetch_max(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn add_written(&self, applied: usize, stale: usize) {
        self.written.fetch_add(applied as u64, Ordering::Relaxed);
        self.stale.fetch_add(stale as u64, Ordering::Relaxed);
        if stale > 0 {
            tracing::debug!(stale, "outcomes for leases that moved on changed nothing");
        }
    }
}

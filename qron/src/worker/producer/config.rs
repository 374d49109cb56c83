//! A producer's settings, their defaults and their bounds.

use std::time::Duration;

/// How often an idle producer looks for due jobs when no notification wakes it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long before their run time jobs are leased by default.
pub const DEFAULT_LEASE_AHEAD: Duration = Duration::from_millis(250);
/// The most jobs a worker holds leased but not started, per executor, by default.
pub const DEFAULT_PREFETCH: usize = 1000;
/// The longest a job may be leased ahead of its run time.
pub(crate) const MAX_LEASE_AHEAD: Duration = Duration::from_secs(60);

/// A producer's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How often an idle producer polls (default [`DEFAULT_POLL_INTERVAL`], at least
    /// [`crate::limits::MIN_INTERVAL`]).
    pub poll_interval: Duration,
    /// How long before its run time a job may be leased (default [`DEFAULT_LEASE_AHEAD`], at
    /// most [`MAX_LEASE_AHEAD`]).
    pub lease_ahead: Duration,
    /// Jobs held leased but not started, at most (default [`DEFAULT_PREFETCH`]).
    pub prefetch: usize,
    /// Jobs per lease, at most (the completer's batch size).
    pub batch_size: usize,
    /// Bytes of payload and meta held in jobs leased and not finished, at most, across the
    /// worker's executors (default [`DEFAULT_MEMORY_BUDGET`](crate::worker::DEFAULT_MEMORY_BUDGET)).
    pub memory_budget: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
            lease_ahead: DEFAULT_LEASE_AHEAD,
            prefetch: DEFAULT_PREFETCH,
            batch_size: crate::completer::DEFAULT_BATCH_SIZE,
            memory_budget: crate::worker::DEFAULT_MEMORY_BUDGET,
        }
    }
}

impl Config {
    /// Refuses a poll that would spin, a lease ahead over its limit and an empty memory
    /// budget.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::limits::{at_least, at_most, check_interval};
        check_interval("poll_interval", self.poll_interval)?;
        at_most(
            "lease_ahead",
            self.lease_ahead,
            MAX_LEASE_AHEAD,
            "jobs held that long wait idle",
        )?;
        at_least(
            "memory_budget",
            self.memory_budget,
            1,
            "it would hold no job",
        )
    }
}

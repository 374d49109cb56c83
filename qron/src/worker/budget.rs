//! The memory budget: the bytes of payload and meta a worker holds in jobs it leased and has not
//! finished (waiting in a buffer, or running), across its executors.
//!
//! A bound in jobs is no bound on memory: 1,000 buffered jobs of 1 MiB each are a gigabyte. So
//! each lease asks the database for jobs within what the budget has left (the lease sums the
//! `bytes` column in lease order, see `db::job_lease`), and the bytes it brings are held from
//! then until each job's execution ends or it is handed back. While a lease is on its way it
//! holds its whole allowance. An executor that holds none of its jobs may always lease one,
//! whatever its size: a job larger than the budget still runs, one at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most bytes of payload and meta a worker holds in jobs leased and not finished, by
/// default: 64 MiB.
///
/// ```
/// assert_eq!(qron::DEFAULT_MEMORY_BUDGET, 64 * 1024 * 1024);
/// ```
pub const DEFAULT_MEMORY_BUDGET: usize = 64 * 1024 * 1024;

/// A worker's memory budget and what it holds.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    /// The most one lease may hold on its way: an equal part of the limit for each lease that
    /// can be on its way at once, so that one executor's leases in flight never leave the
    /// others nothing to lease with.
    share: u64,
    held: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes, for up to `leases` leases on their way at once.
    pub(crate) fn new(limit: usize, leases: usize) -> Arc<Self> {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        Arc::new(Self {
            limit,
            share: limit / u64::try_from(leases.max(1)).unwrap_or(u64::MAX),
            held: AtomicU64::new(0),
        })
    }

    /// Bytes not held.
    pub(crate) fn available(&self) -> u64 {
        self.limit.saturating_sub(self.held.load(Ordering::Relaxed))
    }

    /// What a lease may bring now: its share of the limit, at most what is not held.
    pub(crate) fn for_a_lease(&self) -> u64 {
        self.available().min(self.share)
    }

    /// Holds `bytes` until the [`Held`] is dropped (even past the limit: the caller decided).
    pub(crate) fn hold(self: &Arc<Self>, bytes: u64) -> Held {
        self.held.fetch_add(bytes, Ordering::Relaxed);
        Held {
            bytes,
            budget: self.clone(),
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes held in a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    bytes: u64,
    budget: Arc<Budget>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_held_comes_back_when_dropped() {
        let budget = Budget::new(100, 2);
        assert_eq!(budget.for_a_lease(), 50, "a lease's share");
        let a = budget.hold(60);
        assert_eq!(budget.available(), 40);
        assert_eq!(budget.for_a_lease(), 40, "what is left");
        let b = budget.hold(70);
        assert_eq!(budget.available(), 0, "past the limit: nothing available");
        drop(a);
        assert_eq!(budget.available(), 30);
        drop(b);
        assert_eq!((budget.available(), budget.held()), (100, 0));
    }
}

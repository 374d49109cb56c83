//! One clock for every time stored in or compared by the database: the database server's.
//!
//! A host's clock may be off by seconds or minutes; jobs due by the database's clock must not
//! run early on a host that is fast, nor leases still held be taken over. A [`DbClock`] reads
//! the host's clock and corrects it by the offset to the server's, measured with one small
//! query and refreshed now and then (the correction is as good as half a round trip).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// How old a measured offset may get before it is measured again.
pub(crate) const RESYNC_AFTER: Duration = Duration::from_secs(30);

/// The host's clock, as a function, so tests can make a host whose clock is wrong.
pub type HostClock = fn() -> DateTime<Utc>;

/// The host's clock corrected to the database server's.
#[derive(Debug)]
pub(crate) struct DbClock {
    host: HostClock,
    /// The server's time minus the host's, and when it was measured (`None`: never yet).
    offset: Mutex<(chrono::Duration, Option<Instant>)>,
    /// How far ahead of the server's time this clock runs: zero, except for a test's worker
    /// that runs jobs as of a later time (`testing::run_due_at`).
    ahead: chrono::Duration,
}

impl DbClock {
    pub(crate) fn new(host: HostClock) -> Self {
        Self {
            host,
            offset: Mutex::new((chrono::Duration::zero(), None)),
            ahead: chrono::Duration::zero(),
        }
    }

    /// The same clock, `by` ahead of the server's time.
    pub(crate) fn ahead(mut self, by: chrono::Duration) -> Self {
        self.ahead = by;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (chrono::Duration, Option<Instant>)> {
        self.offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database server's time now, as last measured (the host's until the first
    /// measurement).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let offset = self.state().0 + self.ahead;
        let host = (self.host)();
        host.checked_add_signed(offset).unwrap_or(host)
    }

    /// Whether the offset is missing or older than [`RESYNC_AFTER`].
    pub(crate) fn stale(&self) -> bool {
        self.state().1.is_none_or(|at| at.elapsed() >= RESYNC_AFTER)
    }

    /// Measures the offset to the server through `ex`.
    pub(crate) async fn sync<'e>(&self, ex: impl sqlx::PgExecutor<'e>) -> sqlx::Result<()> {
        let before = (self.host)();
        let server: DateTime<Utc> = crate::db::server_now(ex).await?;
        let after = (self.host)();
        // The server read its clock somewhere between `before` and `after` by the host's: the
        // smallest correction consistent with that (none at all when the clocks agree within
        // the round trip, as on one machine).
        let offset = if server < before {
            server - before
        } else if server > after {
            server - after
        } else {
            chrono::Duration::zero()
        };
        *self.state() = (offset, Some(Instant::now()));
        Ok(())
    }

    /// [`DbClock::now`], measuring the offset first when it is [`stale`](DbClock::stale); the
    /// host's clock, corrected as last measured, when the server cannot be asked.
    pub(crate) async fn now_synced<'e>(&self, ex: impl sqlx::PgExecutor<'e>) -> DateTime<Utc> {
        if self.stale()
            && let Err(e) = self.sync(ex).await
        {
            tracing::debug!(error = %e, "could not read the database's clock");
        }
        self.now()
    }
}

/// The clock of enqueues through a bare connection when no default client is installed: one
/// per process, so that its offset is measured every [`RESYNC_AFTER`], not at every enqueue.
pub(crate) fn process_clock() -> &'static DbClock {
    static CLOCK: std::sync::OnceLock<DbClock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(|| DbClock::new(Utc::now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_the_host_clock_until_measured() {
        let c = DbClock::new(Utc::now);
        assert!(c.stale());
        let d = c.now() - Utc::now();
        assert!(d.num_milliseconds().abs() < 1000);
    }
}

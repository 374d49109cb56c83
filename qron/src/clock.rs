//! One clock for every time stored in or compared by the database: the database server's.
//!
//! A host's clock may be off by seconds or minutes, and may be stepped (an NTP step, a VM
//! resumed, `date -s`); jobs due by the database's clock must not run early on a host that is
//! fast, nor leases still held be taken over. A [`DbClock`] measures the server's time with one
//! small query, refreshed now and then, and counts from it with the monotonic clock: a step of
//! the host's clock between two measurements moves nothing (the measurement is as good as half
//! a round trip).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// How old a measurement of the server's time may get before it is measured again.
pub(crate) const RESYNC_AFTER: Duration = Duration::from_secs(30);

/// The host's clock, as a function, so tests can make a host whose clock is wrong.
pub type HostClock = fn() -> DateTime<Utc>;

/// A measurement: the server's time, and that instant by the monotonic clock and by the host's.
type Measured = (DateTime<Utc>, Instant, DateTime<Utc>);

/// The host's clock corrected to the database server's.
#[derive(Debug)]
pub(crate) struct DbClock {
    host: HostClock,
    /// The server's time at the last measurement, that instant by the monotonic clock, and by
    /// the host's (`None`: never measured; the host's clock is used until then).
    synced: Mutex<Option<Measured>>,
    /// Whether the host's clock was seen to step since the last measurement: measure again.
    stepped: std::sync::atomic::AtomicBool,
    /// How far ahead of the server's time this clock runs: zero, except for a test's worker
    /// that runs jobs as of a later time (`testing::run_due_at`).
    ahead: chrono::Duration,
}

impl DbClock {
    pub(crate) fn new(host: HostClock) -> Self {
        Self {
            host,
            synced: Mutex::new(None),
            stepped: std::sync::atomic::AtomicBool::new(false),
            ahead: chrono::Duration::zero(),
        }
    }

    /// The same clock, `by` ahead of the server's time.
    pub(crate) fn ahead(mut self, by: chrono::Duration) -> Self {
        self.ahead = by;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Measured>> {
        self.synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database server's time now: its last measurement plus the monotonic time since (the
    /// host's clock until the first measurement). A step of the host's clock does not move it
    /// (see [`DbClock::stale`]).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let synced = *self.state();
        let base = match synced {
            Some((server, at, _)) => {
                let since = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
                server.checked_add_signed(since).unwrap_or(server)
            }
            None => (self.host)(),
        };
        base.checked_add_signed(self.ahead).unwrap_or(base)
    }

    /// Whether the measurement is missing, older than [`RESYNC_AFTER`], or was taken before a
    /// step of the host's clock (which moved other than time did since): measure again, since a
    /// measurement reads the host's clock. Read at each chance to measure, not by every
    /// [`DbClock::now`], which is on every job's path.
    pub(crate) fn stale(&self) -> bool {
        if self.stepped.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        let Some((_, at, host_then)) = *self.state() else {
            return true;
        };
        let since = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
        let drift = (self.host)() - host_then - since;
        if drift.abs() > chrono::Duration::seconds(1) {
            self.stepped
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.stepped.load(std::sync::atomic::Ordering::Relaxed) || at.elapsed() >= RESYNC_AFTER
    }

    /// Measures the server's time through `ex`.
    pub(crate) async fn sync<'e>(&self, ex: impl sqlx::PgExecutor<'e>) -> sqlx::Result<()> {
        let started = Instant::now();
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
        // Counted from the start of the round trip: the server's time then, as the host's clock
        // (corrected) read it.
        let base = before.checked_add_signed(offset).unwrap_or(server);
        *self.state() = Some((base, started, before));
        self.stepped
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// [`DbClock::now`], measuring the server's time first when it is
    /// [`stale`](DbClock::stale); counted from the last measurement when the server cannot be
    /// asked.
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
/// per process, so that the server's time is measured every [`RESYNC_AFTER`], not at every
/// enqueue.
pub(crate) fn process_clock() -> &'static DbClock {
    static CLOCK: std::sync::OnceLock<DbClock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(|| DbClock::new(Utc::now))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minutes the stepping host clock is ahead of the real one.
    static STEPPED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

    fn stepping_host() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::minutes(STEPPED.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_step_of_the_hosts_clock_after_a_sync_does_not_move_now() {
        let db = crate::testing::TestDb::new()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let c = DbClock::new(stepping_host);
        c.sync(db.pool()).await.unwrap_or_else(|e| panic!("{e}"));
        let before = c.now();
        // The host's clock is set 10 minutes ahead (an NTP step, a VM resumed, `date -s`).
        STEPPED.store(10, std::sync::atomic::Ordering::SeqCst);
        let after = c.now();
        // The step is noticed: the server's time is measured again at the next chance.
        let noticed = c.stale();
        STEPPED.store(0, std::sync::atomic::Ordering::SeqCst);
        let moved = after - before;
        assert!(
            moved >= chrono::Duration::zero() && moved < chrono::Duration::seconds(1),
            "now moved by {moved}"
        );
        assert!(noticed);
    }

    #[test]
    fn now_is_the_host_clock_until_measured() {
        let c = DbClock::new(Utc::now);
        assert!(c.stale());
        let d = c.now() - Utc::now();
        assert!(d.num_milliseconds().abs() < 1000);
    }
}

//! The overview's figures: one query for every owner, refreshed in the background while someone
//! looks, shared by every viewer and every live update. A viewer never makes the database count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::Client;
use crate::db::{self, OverviewRow};

/// The figures of one refresh.
#[derive(Debug, Default)]
pub(crate) struct Overview {
    /// When they were counted (the database's clock).
    pub(crate) at: Option<DateTime<Utc>>,
    /// Every owner's executors.
    pub(crate) rows: Vec<OverviewRow>,
    /// The live workers and the executors each serves.
    pub(crate) workers: Vec<(String, Vec<String>)>,
    /// The executors' limits (every owner's), with the places taken under them.
    pub(crate) limits: Vec<db::LimitsNow>,
    /// The owners' caps on their own jobs (every owner's), with their jobs leased under them.
    pub(crate) caps: Vec<db::OwnerCap>,
    /// Why the last refresh failed, if it did (the figures are then the previous ones).
    pub(crate) error: Option<String>,
    /// When this refresh ended, by this process's clock.
    refreshed: Option<std::time::Instant>,
    /// How long until the next refresh (see [`next_in`]).
    next_in: Duration,
}

/// The share of the database's time the counts may take: the next refresh waits at least this
/// many times as long as the last count took.
const SHARE: u32 = 10;

/// How long to wait after a count that took `took`, when the refresh interval is `every` and
/// the wait before this count was `previous`: the interval, or longer when the counts are slow
/// (a large table), so that the dashboard never takes more than a tenth of one database
/// connection's time however many look. The wait grows at most twofold per count: one slow count
/// (a busy moment, a cold connection) does not hold the figures back for ten times its length,
/// while a table that is slow to count reaches its share within a few counts. A count that failed
/// (the database away, a connection that timed out) is no measure of its cost: the next try comes
/// after the interval.
fn next_in(every: Duration, previous: Duration, took: Duration, counted: bool) -> Duration {
    if counted {
        let share = took.saturating_mul(SHARE);
        every.max(share.min(previous.saturating_mul(2)))
    } else {
        every
    }
}

/// The shared figures and the task that refreshes them.
#[derive(Debug)]
pub(crate) struct Cache {
    client: Client,
    every: Duration,
    figures: watch::Sender<Arc<Overview>>,
    running: AtomicBool,
    /// When a viewer last asked (Unix milliseconds).
    wanted_at: AtomicI64,
}

/// How many refresh intervals the task goes on after the last viewer left.
const LINGER: u32 = 10;

impl Cache {
    pub(crate) fn new(client: Client, every: Duration) -> Arc<Self> {
        Arc::new(Self {
            client,
            every,
            figures: watch::channel(Arc::new(Overview::default())).0,
            running: AtomicBool::new(false),
            wanted_at: AtomicI64::new(0),
        })
    }

    /// The latest figures, waiting for a refresh (a few seconds at most) when there are none
    /// yet, or they are older than two intervals (nobody looked for a while, so the refresh had
    /// stopped).
    pub(crate) async fn get(self: &Arc<Self>) -> Arc<Overview> {
        let mut rx = self.subscribe();
        let now = rx.borrow_and_update().clone();
        if now
            .refreshed
            .is_some_and(|at| at.elapsed() <= now.next_in.saturating_mul(2))
        {
            return now;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        rx.borrow().clone()
    }

    /// Every refresh from now on (live updates); keeps the refresh running while held.
    pub(crate) fn subscribe(self: &Arc<Self>) -> watch::Receiver<Arc<Overview>> {
        self.wanted_at
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
        let rx = self.figures.subscribe();
        if !self.running.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).refresh());
        }
        rx
    }

    /// Counts every interval while someone looks (a viewer subscribed, or one asked lately),
    /// or less often when counting is slow (see [`next_in`]).
    async fn refresh(self: Arc<Self>) {
        let mut wait = Duration::ZERO;
        loop {
            tokio::time::sleep(wait).await;
            if !self.watched() {
                self.running.store(false, Ordering::Release);
                // A viewer who came between the check and the store saw it running and started
                // nothing: look again, and go on if one did (unless that viewer's own start won).
                if !self.watched() || self.running.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
            let started = std::time::Instant::now();
            let counted = self.count().await;
            wait = next_in(self.every, wait, started.elapsed(), counted.is_ok());
            self.figures.send_modify(|figures| {
                *figures = Arc::new(match counted {
                    Ok(fresh) => Overview {
                        next_in: wait,
                        ..fresh
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "the dashboard's counts could not be refreshed");
                        Overview {
                            at: figures.at,
                            rows: figures.rows.clone(),
                            workers: figures.workers.clone(),
                            limits: figures.limits.clone(),
                            caps: figures.caps.clone(),
                            // The cause is in the log: a viewer is told what it means.
                            error: Some(
                                "the database did not answer in time, or refused the count"
                                    .to_owned(),
                            ),
                            refreshed: Some(std::time::Instant::now()),
                            next_in: wait,
                        }
                    }
                });
            });
        }
    }

    /// Whether someone looks: a live update holds a receiver (the cache's own sender counts
    /// none), or a viewer asked within the last few intervals.
    fn watched(&self) -> bool {
        let idle_ms = Utc::now().timestamp_millis() - self.wanted_at.load(Ordering::Relaxed);
        let linger = self.every.saturating_mul(LINGER).as_millis();
        self.figures.receiver_count() > 0 || u128::try_from(idle_ms).unwrap_or(0) <= linger
    }

    async fn count(&self) -> sqlx::Result<Overview> {
        let pool = self.client.pool();
        let now = db::server_now(pool).await?;
        let rows = db::overview(pool, now).await?;
        let workers = db::workers_live(pool, now).await?;
        let limits = db::executor_limits_get(pool, None).await?;
        let caps = db::owner_caps(pool, None).await?;
        Ok(Overview {
            at: Some(now),
            rows,
            workers,
            limits,
            caps,
            error: None,
            refreshed: Some(std::time::Instant::now()),
            next_in: self.every,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_counts_space_the_refreshes_out() {
        let second = Duration::from_secs(1);
        let next =
            |previous, took_ms| next_in(second, previous, Duration::from_millis(took_ms), true);
        assert_eq!(next(second, 20), second);
        // A table that takes 314 ms to count: 2 s, then its tenth share, 3.14 s, and stays.
        assert_eq!(next(second, 314), Duration::from_secs(2));
        assert_eq!(
            next(Duration::from_secs(2), 314),
            Duration::from_millis(3140)
        );
        assert_eq!(
            next(Duration::from_millis(3140), 314),
            Duration::from_millis(3140)
        );
        // Faster again: back to the interval at once.
        assert_eq!(next(Duration::from_millis(3140), 20), second);
        assert_eq!(
            next_in(second, Duration::MAX, Duration::MAX, true),
            Duration::MAX
        );
    }

    #[test]
    fn one_slow_count_does_not_hold_the_figures_back() {
        // Regression: the first count of a page on a busy machine took 500 ms, and the next
        // came 5 s later, so the overview missed its 2 s to show finished jobs (seen in CI).
        let quarter = Duration::from_millis(250);
        assert_eq!(
            next_in(quarter, Duration::ZERO, Duration::from_millis(500), true),
            quarter
        );
        assert_eq!(
            next_in(quarter, quarter, Duration::from_millis(500), true),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_failed_count_is_tried_again_after_the_interval() {
        // Regression: a count that failed after a 30 s connection timeout put the next try
        // 5 minutes away, so the page showed the error that long after the database was back.
        let second = Duration::from_secs(1);
        assert_eq!(
            next_in(second, second, Duration::from_secs(30), false),
            second
        );
    }
}

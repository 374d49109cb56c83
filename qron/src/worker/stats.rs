//! The worker's share of the overview's charts over time (see
//! `migrations/0020_executor_stats.sql`): each run's end tallied in memory by owner and
//! executor, and added to `qron.executor_stats` every [`STATS_EVERY`], with a sample of the due
//! jobs waiting under the executors' limits; no write per job.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ExecutorState;
use crate::clock::DbClock;
use crate::db::{self, StatsCounts as Counts, StatsRow};

/// How often a worker adds its tallies to the charts' figures.
pub(crate) const STATS_EVERY: Duration = Duration::from_secs(10);

/// The runs that ended since the last flush, by owner and executor.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    by_owner: std::sync::Mutex<HashMap<String, HashMap<&'static str, Counts>>>,
}

impl Tally {
    /// Counts a run of `owner`'s job of `executor` that ended (`failed`: its attempt failed),
    /// `late` after it was due.
    pub(crate) fn record(
        &self,
        owner: &str,
        executor: &'static str,
        failed: bool,
        late: Option<Duration>,
    ) {
        let late_ms = late.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut map = self
            .by_owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = match map.get_mut(owner) {
            Some(m) => m.entry(executor).or_default(),
            None => map
                .entry(owner.to_owned())
                .or_default()
                .entry(executor)
                .or_default(),
        };
        counts.runs += 1;
        counts.failures += i64::from(failed);
        counts.late_ms_sum = counts.late_ms_sum.saturating_add(late_ms);
        counts.late_ms_max = counts.late_ms_max.max(late_ms);
    }

    /// Everything tallied since the last call.
    pub(crate) fn take(&self) -> HashMap<String, HashMap<&'static str, Counts>> {
        std::mem::take(
            &mut *self
                .by_owner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts back what a flush could not write (added to what came meanwhile).
    fn put_back(&self, rows: Vec<StatsRow>) {
        let mut map = self
            .by_owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in rows.into_iter().filter(|r| r.counts.runs > 0) {
            let c = map
                .entry(r.owner)
                .or_default()
                .entry(r.executor)
                .or_default();
            c.runs += r.counts.runs;
            c.failures += r.counts.failures;
            c.late_ms_sum = c.late_ms_sum.saturating_add(r.counts.late_ms_sum);
            c.late_ms_max = c.late_ms_max.max(r.counts.late_ms_max);
        }
    }
}

/// Adds the worker's tallies to the charts' figures every [`STATS_EVERY`], with the due jobs
/// waiting under limits (of the executors with limits or an owner's cap).
pub(crate) struct Stats {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) clock: Arc<DbClock>,
    pub(crate) tally: Arc<Tally>,
    pub(crate) executors: Vec<Arc<ExecutorState>>,
}

impl Stats {
    pub(crate) async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(STATS_EVERY) => {}
                () = stop.cancelled() => {
                    // The last runs' figures, once.
                    self.flush().await;
                    return;
                }
            }
            self.flush().await;
        }
    }

    /// One flush; a failure keeps the tallies for the next.
    pub(crate) async fn flush(&self) {
        let mut rows: Vec<StatsRow> = Vec::new();
        for (owner, executors) in self.tally.take() {
            for (executor, counts) in executors {
                rows.push(StatsRow {
                    owner: owner.clone(),
                    executor,
                    counts,
                    waiting: 0,
                });
            }
        }
        let now = self.clock.now();
        let limited: Vec<&'static str> = self
            .executors
            .iter()
            .filter(|e| e.limited.load(Ordering::Relaxed) || e.capped.load(Ordering::Relaxed))
            .map(|e| e.registration.executor)
            .collect();
        if !limited.is_empty() {
            match db::jobs_waiting_by_owner(&self.pool, &limited, now).await {
                Ok(waiting) => {
                    for (executor, owner, n) in waiting {
                        let Some(executor) = limited.iter().copied().find(|e| *e == executor)
                        else {
                            continue;
                        };
                        match rows
                            .iter_mut()
                            .find(|r| r.owner == owner && r.executor == executor)
                        {
                            Some(r) => r.waiting = n,
                            None => rows.push(StatsRow {
                                owner,
                                executor,
                                counts: Counts::default(),
                                waiting: n,
                            }),
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not count the jobs waiting under limits")
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        if let Err(e) = db::executor_stats_add(&self.pool, &rows, now).await {
            tracing::debug!(error = %e, "could not write the charts' figures; kept for the next try");
            self.tally.put_back(rows);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::registry::Registration;
    use crate::testing::TestDb;
    use crate::{JobOptions, NewJob};

    fn registration(executor: &'static str) -> Registration {
        Registration {
            executor,
            type_name: executor,
            options: JobOptions::default(),
            run: |_, _| Box::pin(async { Ok(()) }),
            states: &[],
        }
    }

    #[tokio::test]
    async fn a_flush_adds_the_tallies_and_the_jobs_waiting_under_limits_by_owner() {
        let db = TestDb::new().await.unwrap();
        for owner in ["a", "b"] {
            db.client()
                .owner(owner)
                .create_many((0..3).map(|_| NewJob::new("capped", "@after -1s")))
                .await
                .unwrap();
        }
        db.client()
            .create(NewJob::new("free", "@after -1s"))
            .await
            .unwrap();
        let capped = Arc::new(ExecutorState::new(registration("capped"), 1, 0));
        capped.limited.store(true, Ordering::Relaxed);
        let free = Arc::new(ExecutorState::new(registration("free"), 1, 0));
        let clock = Arc::new(DbClock::new(chrono::Utc::now));
        clock.sync(db.pool()).await.unwrap();
        let stats = Stats {
            pool: db.pool().clone(),
            clock,
            tally: Arc::default(),
            executors: vec![capped, free],
        };
        stats
            .tally
            .record("a", "capped", false, Some(Duration::from_millis(40)));
        stats
            .tally
            .record("a", "capped", true, Some(Duration::from_millis(10)));
        stats.tally.record("b", "free", false, None);
        stats.flush().await;
        // A second flush in the same minute adds to the first.
        stats
            .tally
            .record("a", "capped", false, Some(Duration::from_millis(5)));
        stats.flush().await;
        let rows: Vec<(String, String, i64, i64, i64, i64, i64)> =
            sqlx::query_as(crate::schema::sql(
                "SELECT owner, executor, sum(runs)::bigint, sum(failures)::bigint,
                        sum(late_ms_sum)::bigint, max(late_ms_max), max(waiting)
                   FROM qron.executor_stats GROUP BY owner, executor ORDER BY owner, executor",
            ))
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(
            rows,
            [
                ("a".into(), "capped".into(), 3, 1, 55, 40, 3),
                ("b".into(), "capped".into(), 0, 0, 0, 0, 3),
                ("b".into(), "free".into(), 1, 0, 0, 0, 0),
            ]
        );
        assert!(stats.tally.take().is_empty());
    }
}

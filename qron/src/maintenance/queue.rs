//! The queue gauges: how many due jobs of each executor a worker serves wait to be leased, and
//! how long the oldest has waited, reported through the `metrics` facade (see
//! [`crate::telemetry`]). One query per refresh, whatever the number of scrapes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::DbClock;
use crate::db;

/// The gauges' settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How often the gauges are refreshed (default
    /// [`DEFAULT_QUEUE_REFRESH`](crate::telemetry::DEFAULT_QUEUE_REFRESH), at least
    /// [`crate::limits::MIN_INTERVAL`]).
    pub every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            every: crate::telemetry::DEFAULT_QUEUE_REFRESH,
        }
    }
}

impl Config {
    /// Refuses an interval that would keep the database busy counting.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        crate::limits::check_interval("queue_refresh", self.every)
    }
}

/// Refreshes the queue gauges of a worker's executors.
pub(crate) struct Gauges {
    pool: sqlx::PgPool,
    clock: Arc<DbClock>,
    executors: Vec<&'static str>,
    config: Config,
}

impl Gauges {
    pub(crate) fn new(
        pool: sqlx::PgPool,
        clock: Arc<DbClock>,
        executors: Vec<&'static str>,
        config: Config,
    ) -> Self {
        Self {
            pool,
            clock,
            executors,
            config,
        }
    }

    /// A refresh every [`Config::every`] until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.run_once(self.clock.now()).await {
                tracing::debug!(error = %e, "could not count the executors' queues");
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.every) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Counts each executor's due jobs as of `now` and sets its gauges; returns the figures
    /// (executor, due jobs, how long the oldest has waited).
    pub(crate) async fn run_once(
        &self,
        now: DateTime<Utc>,
    ) -> sqlx::Result<Vec<(&'static str, i64, Duration)>> {
        let rows = db::executors_queue(&self.pool, &self.executors, now).await?;
        let mut figures = Vec::with_capacity(rows.len());
        for (name, depth, oldest) in rows {
            let Some(executor) = self.executors.iter().copied().find(|e| *e == name) else {
                continue;
            };
            let waited = oldest
                .and_then(|t| (now - t).to_std().ok())
                .unwrap_or(Duration::ZERO);
            crate::telemetry::queue(executor, depth, waited);
            figures.push((executor, depth, waited));
        }
        Ok(figures)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::NewJob;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn run_once_counts_the_due_jobs_each_executor_has_waiting() {
        let db = TestDb::new().await.unwrap();
        let client = db.client();
        for _ in 0..3 {
            client.create(NewJob::new("q", "@after 0s")).await.unwrap();
        }
        client
            .create(NewJob::new("q", "@after 1 hour"))
            .await
            .unwrap();
        client
            .create(NewJob::new("other", "@after 0s"))
            .await
            .unwrap();
        let clock = Arc::new(DbClock::new(Utc::now));
        clock.sync(db.pool()).await.unwrap();
        let gauges = Gauges::new(
            db.pool().clone(),
            clock.clone(),
            vec!["q", "idle"],
            Config::default(),
        );
        let later = clock.now() + chrono::Duration::seconds(5);
        let mut figures = gauges.run_once(later).await.unwrap();
        figures.sort();
        assert_eq!(figures.len(), 2);
        assert_eq!((figures[0].0, figures[0].1), ("idle", 0));
        assert_eq!((figures[1].0, figures[1].1), ("q", 3));
        assert!(figures[1].2 >= Duration::from_secs(5), "{figures:?}");
        assert!(
            Config {
                every: Duration::ZERO
            }
            .validate()
            .is_err()
        );
    }
}

//! The watch for executors no worker serves: jobs of an executor that no running worker
//! serves wait forever (a typo in an executor's name, a worker not deployed), so once their
//! oldest has waited longer than a configurable age, one process of the fleet reports them at
//! `warn`, every pass while it lasts. It also removes the registrations of workers that died.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::DbClock;
use crate::db::{self, Unserved};

/// How long jobs of an executor no worker serves wait before they are reported, by default.
pub const DEFAULT_UNSERVED_AFTER: Duration = Duration::from_secs(300);

/// The longest `unserved_after`: a year.
pub(crate) const MAX_UNSERVED_AFTER: Duration = Duration::from_secs(365 * 86_400);

/// The watch's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How long the oldest due job of an executor no worker serves waits before it is reported
    /// (default [`DEFAULT_UNSERVED_AFTER`], at least 1 s).
    pub after: Duration,
    /// How often a pass runs (one minute, or `after` when shorter).
    pub every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            after: DEFAULT_UNSERVED_AFTER,
            every: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Refuses an age under a second, or over [`MAX_UNSERVED_AFTER`] (an age PostgreSQL could
    /// not subtract from a time would fail the query).
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::limits::{at_least, at_most};
        let field = "unserved_after";
        at_least(
            field,
            self.after,
            Duration::from_secs(1),
            "every pass would report",
        )?;
        at_most(
            field,
            self.after,
            MAX_UNSERVED_AFTER,
            "the database could not compute it",
        )
    }
}

/// Reports executors no worker serves.
pub(crate) struct Watch {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) clock: Arc<DbClock>,
    pub(crate) config: Config,
}

impl Watch {
    /// A pass every [`Config::every`] (or `after`, when shorter) until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let every = self.config.every.min(self.config.after);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
            match self.run_once(self.clock.now()).await {
                Ok(unserved) => {
                    for u in unserved {
                        tracing::warn!(
                            executor = %u.executor,
                            due = u.due,
                            oldest_due = %u.oldest_due.to_rfc3339(),
                            "jobs wait for an executor that no running worker serves: is its name right, and is a worker for it running?"
                        );
                    }
                }
                Err(e) => tracing::debug!(error = %e, "could not look for unserved executors"),
            }
        }
    }

    /// One pass as of `now`, in one process of the fleet at a time (the others find nothing):
    /// removes the workers gone, and returns the executors no worker serves whose oldest due
    /// job has waited longer than [`Config::after`].
    pub(crate) async fn run_once(&self, now: DateTime<Utc>) -> sqlx::Result<Vec<Unserved>> {
        let mut tx = self.pool.begin().await?;
        if !db::maintenance_try_lock(&mut *tx).await? {
            return Ok(Vec::new());
        }
        db::workers_delete_gone(&mut *tx, now).await?;
        let unserved = db::executors_unserved(&mut *tx, now, self.config.after).await?;
        tx.commit().await?;
        Ok(unserved)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::NewJob;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn run_once_reports_executors_that_no_live_worker_serves() {
        let db = TestDb::new().await.unwrap();
        let client = db.client();
        let long_ago = "@at 2020-01-01T00:00:00Z";
        for executor in ["served", "typo", "typo", "gone_worker"] {
            client
                .create(NewJob::new(executor, long_ago))
                .await
                .unwrap();
        }
        // Due a moment ago only: not reported yet.
        client
            .create(NewJob::new("fresh", "@after 0s"))
            .await
            .unwrap();
        let clock = Arc::new(DbClock::new(Utc::now));
        clock.sync(db.pool()).await.unwrap();
        let now = clock.now();
        let ttl = Duration::from_secs(30);
        db::worker_seen(db.pool(), "alive", &["served"], now, ttl)
            .await
            .unwrap();
        // A worker that died an hour ago, without removing itself.
        db::worker_seen(
            db.pool(),
            "dead",
            &["gone_worker"],
            now - chrono::Duration::hours(1),
            ttl,
        )
        .await
        .unwrap();
        let watch = Watch {
            pool: db.pool().clone(),
            clock,
            config: Config::default(),
        };
        let found = watch.run_once(now).await.unwrap();
        let named: Vec<(&str, i64)> = found.iter().map(|u| (u.executor.as_str(), u.due)).collect();
        assert_eq!(named, [("gone_worker", 1), ("typo", 2)]);
        assert_eq!(
            found[1].oldest_due,
            "2020-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let workers: Vec<String> = sqlx::query_scalar("SELECT id FROM qron.workers")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(workers, ["alive"], "the dead worker was removed");
    }

    #[test]
    fn the_config_refuses_an_age_under_a_second() {
        assert!(Config::default().validate().is_ok());
        let short = Config {
            after: Duration::from_millis(10),
            ..Config::default()
        };
        assert!(short.validate().is_err());
        // An age the database cannot subtract from a time would fail the fleet's query.
        let huge = Config {
            after: Duration::MAX,
            ..Config::default()
        };
        assert!(huge.validate().is_err());
    }
}

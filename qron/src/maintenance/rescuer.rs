//! The rescuer: returns expired leases to the pool, counting the attempt (or ends the job when
//! its attempts are spent), and holds jobs made ready in paused executors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::JobError;
use crate::clock::DbClock;
use crate::completer;
use crate::context::Requests;
use crate::db;
use crate::handler::JobOptions;
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::outcome::{OutcomeInput, decide};

/// How often expired leases are looked for by default.
pub const DEFAULT_RESCUE_INTERVAL: Duration = Duration::from_secs(1);

/// The rescuer's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How often expired leases are looked for (default [`DEFAULT_RESCUE_INTERVAL`], at least
    /// [`crate::limits::MIN_INTERVAL`]).
    pub interval: Duration,
    /// Expired leases a pass takes at most (1,000).
    pub batch: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: DEFAULT_RESCUE_INTERVAL,
            batch: 1000,
        }
    }
}

impl Config {
    /// Refuses an interval that would keep a core busy asking, and an empty batch.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        crate::limits::check_interval("rescue_interval", self.interval)?;
        crate::limits::at_least("rescue_batch", self.batch, 1, "a pass would rescue nothing")
    }
}

/// Returns expired leases to the pool (or ends their jobs when attempts are spent). Safe when
/// many workers run it at once: the lease guard lets one write win.
pub(crate) struct Rescuer {
    pool: sqlx::PgPool,
    clock: Arc<DbClock>,
    metrics: Arc<Metrics>,
    /// The options of the executors this worker serves; others get the defaults.
    options: HashMap<&'static str, JobOptions>,
    config: Config,
    /// The expressions of the recurring jobs rescued, each parsed once.
    schedules: crate::expr::Schedules,
}

impl Rescuer {
    pub(crate) fn new(
        pool: sqlx::PgPool,
        clock: Arc<DbClock>,
        metrics: Arc<Metrics>,
        options: HashMap<&'static str, JobOptions>,
        config: Config,
    ) -> Self {
        Self {
            pool,
            clock,
            metrics,
            options,
            config,
            schedules: crate::expr::Schedules::default(),
        }
    }

    /// A pass every [`Config::interval`] until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        loop {
            // The rescuer keeps the clock's offset fresh (a host's clock drifts, or is set).
            if self.clock.stale()
                && let Err(e) = self.clock.sync(&self.pool).await
            {
                tracing::debug!(error = %e, "could not read the database's clock");
            }
            match self.run_once().await {
                Ok(n) if n > 0 => {
                    tracing::info!(rescued = n, "returned expired leases to the pool");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not look for expired leases"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.interval) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One pass: the scheduled jobs due soon staged (see `db::jobs_stage`), and up to
    /// [`Config::batch`] leases that ran out by the server's clock, each
    /// decided as a retry of its attempt (its back-off counted from this clock's now). Returns
    /// how many were found.
    pub(crate) async fn run_once(&self) -> sqlx::Result<usize> {
        // Scheduled jobs due before the next pass and a little more enter the lease index.
        let staged = db::jobs_stage(&self.pool, self.config.interval + db::STAGE_AHEAD).await?;
        if staged > 0 {
            tracing::debug!(staged, "scheduled jobs staged");
        }
        let expired = db::job_expired_leases(&self.pool, self.config.batch).await?;
        if expired.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now();
        // A job that never started (it waited in a buffer, or its worker died first) made no
        // attempt: handed back as it was, with no attempt counted and no back-off.
        let (expired, unstarted): (Vec<_>, Vec<_>) = expired.into_iter().partition(|l| l.started);
        let found = expired.len() + unstarted.len();
        if !unstarted.is_empty() {
            let leases = unstarted.iter().map(|l| (l.id, l.lease_token, l.revision));
            let n = db::job_release_leases(&self.pool, leases, now).await?;
            self.metrics
                .rescued
                .fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
        }
        let outcomes: Vec<Outcome> = expired
            .iter()
            .map(|l| {
                let input = OutcomeInput::held(l);
                let o = self
                    .options
                    .get(l.executor.as_str())
                    .copied()
                    .unwrap_or_default();
                decide(
                    &input,
                    Err(JobError::retry(
                        "the lease expired: the worker died, hung or lost its connection",
                    )),
                    Requests::default(),
                    now,
                    self.schedules.of(&l.expr, l.recurring).as_ref(),
                    o.backoff,
                    o.history,
                )
                .0
            })
            .collect();
        let n = completer::write(&self.pool, outcomes, &self.metrics, &self.clock).await;
        self.metrics.rescued.fetch_add(n as u64, Ordering::Relaxed);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::TestDb;
    use crate::{JobStatus, NewJob};
    use chrono::Utc;

    #[tokio::test]
    async fn run_once_returns_expired_leases_and_ends_jobs_out_of_attempts() {
        let db = TestDb::new().await.unwrap();
        let client = db.client();
        let job = |attempts| NewJob::new("lost", "@after 0s").max_attempts(attempts);
        let again = client.create(job(3)).await.unwrap().id;
        let spent = client.create(job(1)).await.unwrap().id;
        let held = client.create(job(3)).await.unwrap().id;
        // A worker leased all three and vanished; the third's lease has not run out yet.
        sqlx::query(
            "UPDATE qron.jobs SET status = 'running', attempt = 1, executions = 1,
                    lease_owner = 'gone', lease_token = lease_token + 1, started_at = now(),
                    lease_expires_at = CASE WHEN id = $1 THEN now() + interval '1 hour'
                                            ELSE now() - interval '1 second' END",
        )
        .bind(held)
        .execute(db.pool())
        .await
        .unwrap();
        let clock = Arc::new(DbClock::new(Utc::now));
        clock.sync(db.pool()).await.unwrap();
        let metrics = Arc::new(Metrics::default());
        let rescuer = Rescuer::new(
            db.pool().clone(),
            clock.clone(),
            metrics.clone(),
            HashMap::new(),
            Config::default(),
        );

        assert_eq!(rescuer.run_once().await.unwrap(), 2);
        let again = client.get(again).await.unwrap();
        assert_eq!((again.status, again.attempt), (JobStatus::Ready, 1));
        assert!(
            again.errors[0].error.contains("the lease expired"),
            "{:?}",
            again.errors
        );
        assert_eq!(client.get(spent).await.unwrap().status, JobStatus::Failed);
        assert_eq!(client.get(held).await.unwrap().status, JobStatus::Running);
        assert_eq!(metrics.rescued.load(Ordering::Relaxed), 2);
        // Nothing is rescued twice.
        assert_eq!(rescuer.run_once().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_job_that_never_started_is_handed_back_with_no_attempt_counted() {
        let db = TestDb::new().await.unwrap();
        let client = db.client();
        let id = client
            .create(NewJob::new("lost", "@after 0s").max_attempts(1))
            .await
            .unwrap()
            .id;
        // Leased (its one attempt counted) by a worker that died before starting it.
        sqlx::query(
            "UPDATE qron.jobs SET status = 'running', attempt = 1, executions = 1,
                    lease_owner = 'gone', lease_token = lease_token + 1,
                    lease_expires_at = now() - interval '1 second'",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let clock = Arc::new(DbClock::new(Utc::now));
        let metrics = Arc::new(Metrics::default());
        let rescuer = Rescuer::new(
            db.pool().clone(),
            clock,
            metrics.clone(),
            HashMap::new(),
            Config::default(),
        );
        assert_eq!(rescuer.run_once().await.unwrap(), 1);
        let job = client.get(id).await.unwrap();
        assert_eq!(
            (job.status, job.attempt, job.executions, job.errors.len()),
            (JobStatus::Ready, 0, 0, 0)
        );
        assert_eq!(metrics.rescued.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_config_refuses_a_spinning_interval_and_an_empty_batch() {
        assert!(Config::default().validate().is_ok());
        let spin = Config {
            interval: Duration::ZERO,
            ..Config::default()
        };
        assert!(matches!(
            spin.validate(),
            Err(crate::Error::InvalidArgument {
                field: "rescue_interval",
                ..
            })
        ));
        let empty = Config {
            batch: 0,
            ..Config::default()
        };
        assert!(empty.validate().is_err());
    }
}

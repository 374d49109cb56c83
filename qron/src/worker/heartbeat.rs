//! The heartbeat: keeps the leases of long jobs alive while their handlers run. A lease lasts
//! the lease time (or the job's run-time limit, when shorter), so a worker that dies gives its
//! jobs back within about a lease time whatever their limit; while the worker lives, the
//! heartbeat renews the leases of its running jobs every third of the lease time, up to their
//! limit. A lease it finds lost (taken over after the database could not be reached for a
//! lease time) cancels its handler's context.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::DbClock;
use crate::db;

/// How long a lease lasts before its worker must renew it, by default.
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(30);
/// The shortest lease time.
pub(crate) const MIN_LEASE_TIME: Duration = Duration::from_secs(1);

/// The heartbeat's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// How long a lease lasts unless renewed (default [`DEFAULT_LEASE_TIME`], at least
    /// [`MIN_LEASE_TIME`]); renewed every third of it.
    pub lease_time: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lease_time: DEFAULT_LEASE_TIME,
        }
    }
}

impl Config {
    /// Refuses a lease time under [`MIN_LEASE_TIME`] (renewals would be a load of their own)
    /// or over [`MAX_TIMEOUT`](crate::MAX_TIMEOUT) (a time PostgreSQL could not compute).
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::limits::{at_least, at_most};
        let field = "lease_time";
        at_most(
            field,
            self.lease_time,
            crate::MAX_TIMEOUT,
            "the database could not compute it",
        )?;
        at_least(
            field,
            self.lease_time,
            MIN_LEASE_TIME,
            "renewals would load the database",
        )
    }

    /// How often leases are renewed.
    pub(crate) fn every(&self) -> Duration {
        self.lease_time / 3
    }
}

/// The running jobs whose leases the heartbeat renews: those whose run-time limit is longer
/// than the lease time (a shorter one's lease covers it whole).
#[derive(Debug, Default)]
pub(crate) struct Running {
    /// By (job, lease token): after a rescue, one worker may run the same job twice, each
    /// execution under its own lease. Each holds the token its handler is told a loss by.
    jobs: Mutex<HashMap<(i64, i64), CancellationToken>>,
}

impl Running {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, i64), CancellationToken>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Renews the lease `token` of job `id` from now on; `lost` is cancelled if the lease is
    /// found lost.
    pub(crate) fn hold(&self, id: i64, token: i64, lost: CancellationToken) {
        self.jobs().insert((id, token), lost);
    }

    /// Stops renewing the lease `token` of job `id` (its handler returned); another
    /// execution of the same job, under a later lease, keeps its own.
    pub(crate) fn release(&self, id: i64, token: i64) {
        self.jobs().remove(&(id, token));
    }

    fn snapshot(&self) -> (Vec<i64>, Vec<i64>) {
        self.jobs().keys().copied().unzip()
    }

    /// Tells the handlers of leases found lost; returns how many were still held here.
    fn lose(&self, lost: &[(i64, i64)]) -> usize {
        let mut jobs = self.jobs();
        let mut n = 0;
        for lease in lost {
            if let Some(lost) = jobs.remove(lease) {
                lost.cancel();
                n += 1;
            }
        }
        n
    }
}

/// Renews the leases of a worker's long jobs, and its registration.
pub(crate) struct Heartbeat {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) clock: Arc<DbClock>,
    pub(crate) running: Arc<Running>,
    pub(crate) config: Config,
    pub(crate) worker_id: String,
    pub(crate) executors: Vec<&'static str>,
    /// The worker's lease slack (see `Shared::slack`).
    pub(crate) slack: Duration,
}

impl Heartbeat {
    /// Registers the worker (or records that it is alive): gone for the others unless seen
    /// again within a lease time, three beats.
    pub(crate) async fn register(&self, now: DateTime<Utc>) -> sqlx::Result<()> {
        db::worker_seen(
            &self.pool,
            &self.worker_id,
            &self.executors,
            now,
            self.config.lease_time,
        )
        .await
    }

    /// Registers the worker, then renews every [`Config::every`] until `stop` (the worker
    /// removes its registration itself once everything has stopped).
    pub(crate) async fn run(self, stop: CancellationToken) {
        if let Err(e) = self.register(self.clock.now()).await {
            tracing::warn!(error = %e, "could not register the worker in qron.workers");
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.every()) => {}
                () = stop.cancelled() => return,
            }
            match self.run_once(self.clock.now()).await {
                Ok((_, 0)) => {}
                Ok((_, lost)) => tracing::warn!(
                    jobs = lost,
                    "leases of running jobs were lost (taken over or ended elsewhere): their handlers are told to stop"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not renew the leases of running jobs; another worker may take them over if this lasts a lease time"
                ),
            }
        }
    }

    /// Renews, as of `now`, the lease of every job held: for a lease time more, but not past
    /// its run-time limit. Returns how many leases were renewed and how many were found lost.
    pub(crate) async fn run_once(&self, now: DateTime<Utc>) -> sqlx::Result<(usize, usize)> {
        // The registry only informs (the dashboard, the unserved warning): a failure there must
        // not cost the running jobs their leases.
        if let Err(e) = self.register(now).await {
            tracing::warn!(error = %e, "could not say in qron.workers that the worker is alive; renewing its leases all the same");
        }
        let (ids, tokens) = self.running.snapshot();
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let renewed: HashSet<i64> = db::job_lease_renew(
            &self.pool,
            None,
            &ids,
            &tokens,
            now,
            self.config.lease_time + self.slack,
            // the longest a job may have taken to start (see `Producer::lease`)
            super::buffer::MAX_BUFFERED_WAIT + super::buffer::MAX_ANSWER_WAIT + self.slack,
        )
        .await?
        .into_iter()
        .collect();
        let lost: Vec<(i64, i64)> = ids
            .into_iter()
            .zip(tokens)
            .filter(|(id, _)| !renewed.contains(id))
            .collect();
        Ok((renewed.len(), self.running.lose(&lost)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::NewJob;
    use crate::db::LeasedJob;
    use crate::testing::TestDb;

    async fn expiry(db: &TestDb, id: i64) -> DateTime<Utc> {
        sqlx::query_scalar("SELECT lease_expires_at FROM qron.jobs WHERE id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await
            .unwrap()
    }

    /// `n` jobs of a minute's limit, leased by worker `test` for a lease time of 1 s; the
    /// database, the synced clock, and the lease's instant (in microseconds, as stored).
    async fn leased(n: usize) -> (TestDb, Arc<DbClock>, DateTime<Utc>, Vec<LeasedJob>) {
        let db = TestDb::new().await.unwrap();
        for _ in 0..n {
            db.client()
                .create(NewJob::new("long", "@after 0s").timeout(Duration::from_secs(60)))
                .await
                .unwrap();
        }
        let clock = Arc::new(DbClock::new(Utc::now));
        clock.sync(db.pool()).await.unwrap();
        let now = chrono::SubsecRound::trunc_subsecs(clock.now(), 6);
        let lease = db::Lease::due(
            "long",
            "test",
            i64::try_from(n).unwrap(),
            now,
            Duration::from_secs(1),
        );
        let jobs = db::job_lease(db.pool(), &lease).await.unwrap();
        (db, clock, now, jobs)
    }

    /// The heartbeat of worker `w1` serving `long`, renewing `running` for 1 s at a time.
    fn heartbeat(db: &TestDb, clock: Arc<DbClock>, running: Arc<Running>) -> Heartbeat {
        let config = Config {
            lease_time: Duration::from_secs(1),
        };
        Heartbeat {
            pool: db.pool().clone(),
            clock,
            running,
            config,
            worker_id: "w1".to_owned(),
            executors: vec!["long"],
            slack: db::LEASE_SLACK_TIME,
        }
    }

    #[test]
    fn two_executions_of_one_job_keep_their_own_leases() {
        // After a rescue, the same worker may run job 1 under lease 5, and again under lease 6.
        let running = Running::default();
        running.hold(1, 5, CancellationToken::new());
        running.hold(1, 6, CancellationToken::new());
        // The first execution ends: the second's lease is still renewed.
        running.release(1, 5);
        assert_eq!(running.snapshot(), (vec![1], vec![6]));
    }

    #[tokio::test]
    async fn run_once_renews_held_leases_up_to_the_limit_and_tells_lost_ones() {
        let (db, clock, now, jobs) = leased(2).await;
        let second = chrono::Duration::seconds;
        let (kept, taken) = (&jobs[0], &jobs[1]);
        // The lease is the lease time (and the slack), not the minute the job may run.
        assert_eq!(expiry(&db, kept.id).await, now + second(3));

        let running = Arc::new(Running::default());
        let (kept_lost, taken_lost) = (CancellationToken::new(), CancellationToken::new());
        running.hold(kept.id, kept.lease_token, kept_lost.clone());
        // The other lease changed hands meanwhile.
        running.hold(taken.id, taken.lease_token - 1, taken_lost.clone());
        let heartbeat = heartbeat(&db, clock, running.clone());

        assert_eq!(heartbeat.run_once(now + second(10)).await.unwrap(), (1, 1));
        assert_eq!(expiry(&db, kept.id).await, now + second(13));
        assert!(taken_lost.is_cancelled() && !kept_lost.is_cancelled());
        // Never past the run-time limit (with the longest wait to start, 2 s in the buffer and
        // 30 s for the lease's answer, and the slack).
        heartbeat.run_once(now + second(200)).await.unwrap();
        assert_eq!(expiry(&db, kept.id).await, now + second(60 + 2 + 30 + 2));
        // A released job is no longer renewed.
        running.release(kept.id, kept.lease_token);
        assert_eq!(heartbeat.run_once(now + second(1)).await.unwrap(), (0, 0));
        // Each beat says the worker is alive, for a lease time.
        let (executors, seen, alive): (Vec<String>, DateTime<Utc>, bool) = sqlx::query_as(
            "SELECT executors, seen_at, seen_at + ttl = $1 FROM qron.workers WHERE id = 'w1'",
        )
        .bind(now + second(2))
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(
            (executors, seen, alive),
            (vec!["long".to_owned()], now + second(1), true)
        );
        db::worker_delete(db.pool(), "w1").await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM qron.workers")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn leases_are_renewed_when_the_registry_of_workers_fails() {
        let (db, clock, now, mut jobs) = leased(1).await;
        let job = jobs.remove(0);
        let running = Arc::new(Running::default());
        running.hold(job.id, job.lease_token, CancellationToken::new());
        let heartbeat = heartbeat(&db, clock, running);
        // The registry's upsert fails (here: its table is gone).
        sqlx::query("ALTER TABLE qron.workers RENAME TO workers_gone")
            .execute(db.pool())
            .await
            .unwrap();
        let second = chrono::Duration::seconds;
        assert_eq!(heartbeat.run_once(now + second(10)).await.unwrap(), (1, 0));
        assert_eq!(expiry(&db, job.id).await, now + second(13));
    }

    #[test]
    fn the_config_refuses_a_lease_under_a_second() {
        assert!(Config::default().validate().is_ok());
        assert_eq!(Config::default().every(), Duration::from_secs(10));
        let short = Config {
            lease_time: Duration::from_millis(999),
        };
        assert!(matches!(
            short.validate(),
            Err(crate::Error::InvalidArgument {
                field: "lease_time",
                ..
            })
        ));
        // A lease time PostgreSQL cannot add to a time would fail every renewal, and the
        // fleet's query for unserved executors with it.
        let huge = Config {
            lease_time: Duration::MAX,
        };
        assert!(huge.validate().is_err());
    }
}

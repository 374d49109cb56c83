//! What a worker's services share, and the producers' own connections.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::{heartbeat, producer};
use crate::Schedule;
use crate::clock::DbClock;
use crate::completer::CompleterHandle;
use crate::metrics::Metrics;

/// The most connections a worker opens for its leases, whatever its number of executors: each
/// producer holds one per lease in flight, only while it runs.
const MAX_LEASE_CONNECTIONS: usize = 4;

/// Connections for the producers' leases (one per lease in flight, up to
/// [`MAX_LEASE_CONNECTIONS`]),
/// beside the application's pool: a busy application cannot starve the worker of connections
/// to lease with. The lease is a
/// prepared statement (saving a round trip and the parse), planned for its values at each run
/// (`plan_cache_mode`): a generic plan made while the table's statistics said it was nearly
/// empty would sort every due job (measured: 88 ms instead of 15 ms for 1,000 of 100,000 due
/// jobs) until the next `ANALYZE` invalidated it.
pub(super) fn lease_pool(pool: &sqlx::PgPool, executors: usize) -> sqlx::PgPool {
    // Planned for its values each time; and never compiled: the lease's planner estimates for
    // each owner's share are loose, and compiling it (tens of milliseconds) would cost more
    // than it runs.
    producer_pool(pool, executors, "force_custom_plan")
}

/// The connections a worker leases the jobs of executors with limits on (opened only when one
/// has limits): the limited lease costs more to plan (about 1.5 ms) than to run, and each
/// takes a job or two, so it keeps a generic plan. Its scans follow the lease index whatever
/// the statistics: each owner's jobs in lease order, and the leased rows by their own index.
pub(super) fn limited_pool(pool: &sqlx::PgPool, executors: usize) -> sqlx::PgPool {
    producer_pool(pool, executors, "force_generic_plan")
}

/// A pool of the producers' own (see [`lease_pool`]), opened lazily, with `plan_cache_mode`
/// and no JIT compilation.
fn producer_pool(pool: &sqlx::PgPool, executors: usize, plans: &str) -> sqlx::PgPool {
    let connections = u32::try_from(lease_connections(executors)).unwrap_or(1);
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("plan_cache_mode", plans), ("jit", "off")]);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .min_connections(0)
        .connect_lazy_with(options)
}

/// How many leases a worker with `executors` executors has on their way at once, at most: its
/// producers' leases in flight, within its lease connections.
pub(super) fn lease_connections(executors: usize) -> usize {
    executors
        .saturating_mul(producer::MAX_LEASES_IN_FLIGHT)
        .clamp(1, MAX_LEASE_CONNECTIONS)
}

pub(crate) struct Shared {
    /// The worker's client (its pool, schema and checks), which handlers' contexts act through.
    pub(crate) client: crate::Client,
    /// The producers' own connections (see [`lease_pool`]).
    pub(crate) lease_pool: sqlx::PgPool,
    /// Their connections for executors with limits (see [`limited_pool`]).
    pub(crate) limited_pool: sqlx::PgPool,
    pub(crate) completer: CompleterHandle,
    pub(crate) metrics: Arc<Metrics>,
    /// The database's time (see [`DbClock`]).
    pub(crate) clock: Arc<DbClock>,
    pub(crate) schedules: crate::expr::Schedules,
    pub(crate) worker_id: String,
    /// The application's values for handlers.
    pub(crate) states: Arc<crate::state::States>,
    pub(crate) batch_size: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) lease_ahead: chrono::Duration,
    pub(crate) soft: CancellationToken,
    pub(crate) hard: CancellationToken,
    /// The running jobs whose leases the heartbeat renews.
    pub(crate) running: Arc<heartbeat::Running>,
    /// How long a lease lasts before it must be renewed.
    pub(crate) lease_time: Duration,
    /// The executions an operator can cancel.
    pub(crate) cancels: Arc<crate::cancel::Cancels>,
    /// The bytes of payload and meta the worker may hold in jobs (see [`Budget`]).
    pub(crate) budget: Arc<Budget>,
    /// How long the worker's leases outlive their jobs' run-time limits (and the time they may
    /// take to start), for its outcomes to be written: the least slack plus the completer's
    /// flush interval, the longest an outcome waits for its batch (see `buffer::slack`).
    pub(crate) slack: Duration,
    /// The runs that ended since the charts' figures were last written (see `stats`).
    pub(crate) tally: Arc<super::stats::Tally>,
}

impl Shared {
    /// The worker's pool (its client's).
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        self.client.pool()
    }

    /// What a worker's services share, for tests that drive one service by hand: the default
    /// settings, a running completer, and the host's clock synced to the database's.
    #[cfg(test)]
    pub(crate) async fn for_test(pool: sqlx::PgPool) -> Arc<Self> {
        let settings = super::builder::Settings::default();
        let metrics = Arc::new(Metrics::default());
        let clock = Arc::new(DbClock::new(chrono::Utc::now));
        let _ = clock.sync(&pool).await;
        let (completer, _task) = crate::completer::spawn(
            pool.clone(),
            &settings.completer,
            metrics.clone(),
            clock.clone(),
        );
        Arc::new(Self {
            client: crate::Client::new(pool.clone()),
            lease_pool: lease_pool(&pool, 1),
            limited_pool: limited_pool(&pool, 1),
            completer,
            metrics,
            clock,
            schedules: crate::expr::Schedules::default(),
            worker_id: "test-worker".to_owned(),
            states: Arc::default(),
            batch_size: settings.producer.batch_size,
            poll_interval: settings.producer.poll_interval,
            lease_ahead: chrono::Duration::zero(),
            soft: CancellationToken::new(),
            hard: CancellationToken::new(),
            running: Arc::default(),
            lease_time: settings.heartbeat.lease_time,
            cancels: Arc::default(),
            budget: Budget::new(settings.producer.memory_budget, lease_connections(1)),
            slack: super::buffer::slack(settings.completer.flush_interval),
            tally: Arc::default(),
        })
    }

    /// A stored expression, parsed once per worker.
    pub(crate) fn schedule(&self, expr: &str) -> Option<Schedule> {
        self.schedules.get(expr)
    }
}

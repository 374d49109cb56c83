//! The worker: per executor, a [`producer`] that leases due jobs into free slots; an
//! [`executor`] that runs each handler under its timeout and catches panics; the [`outcome`]
//! of each execution (a pure decision); the [`notifier`] that wakes idle producers; the
//! [`heartbeat`] that renews long jobs' leases and the worker's registration; one completer for
//! all outcomes (`crate::completer`); the rescuer, history maintenance and the unserved
//! executors' watch (`crate::maintenance`). What they share is in `shared`; stopping (the
//! [`Stopper`], the signals, the tasks' supervision) in `shutdown`.

mod budget;
mod buffer;
mod builder;
pub(crate) mod executor;
mod handoff;
mod heartbeat;
pub(crate) mod notifier;
pub(crate) mod producer;
mod services;
mod shared;
mod shutdown;
pub(crate) mod stats;
pub(crate) mod turns;

pub use builder::WorkerBuilder;
use services::Services;
pub(crate) use shared::Shared;
use shared::{lease_connections, lease_pool, limited_pool};
pub use shutdown::Stopper;
use shutdown::{RunGuard, Signals};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};

use crate::clock::DbClock;
use crate::completer;
use crate::metrics::Metrics;
use crate::registry::Registration;
use crate::{Client, Error, Result};

pub use crate::completer::DEFAULT_FLUSH_TIMEOUT;
pub use crate::maintenance::history::DEFAULT_HISTORY_RETENTION;
pub use crate::maintenance::rescuer::DEFAULT_RESCUE_INTERVAL;
pub use crate::maintenance::unserved::DEFAULT_UNSERVED_AFTER;
pub use budget::DEFAULT_MEMORY_BUDGET;
pub use heartbeat::DEFAULT_LEASE_TIME;
pub use producer::{DEFAULT_LEASE_AHEAD, DEFAULT_POLL_INTERVAL, DEFAULT_PREFETCH};

/// How long running handlers may take to finish after a soft stop.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The notification channel on which creating a due job wakes idle workers.
pub(crate) const CHANNEL: &str = "qron_jobs";

#[derive(Debug)]
pub(crate) struct ExecutorState {
    pub(crate) registration: Registration,
    pub(crate) capacity: u32,
    pub(crate) slots: Arc<Semaphore>,
    /// The executor's name, shared by the contexts of its executions.
    pub(crate) executor: Arc<str>,
    /// Told of a new due job (by the notifier).
    pub(crate) wake: Notify,
    /// Jobs leased and not started.
    pub(crate) buffer: buffer::Buffer,
    /// Told by the slots when one frees or the buffer runs low.
    pub(crate) refill: Notify,
    /// Whether the producer was told since it last looked: one wake-up per look, not one per
    /// job.
    pub(crate) refill_asked: AtomicBool,
    /// Whether some owner paused this executor (kept by the notifier): the lease then skips
    /// their jobs.
    pub(crate) paused: AtomicBool,
    /// Whether the executor has limits (kept by the notifier; see `db::JOB_LEASE_LIMITED`):
    /// its leases then take only free slots, one worker at a time, and its outcomes are
    /// written at once.
    pub(crate) limited: AtomicBool,
    /// Whether its limits pass jobs over (a partition by a payload field: the jobs of a full
    /// key wait while later ones run), so that no lease may start past a cursor.
    pub(crate) passes_over: AtomicBool,
    /// Whether its limits count places (a concurrency limit, in all or per key): the
    /// outcomes free places, and go with the next lease while the limits bind.
    pub(crate) counted: AtomicBool,
    /// Under a rate limit, how long its bucket takes to refill a burst, in nanoseconds (0:
    /// no rate limit): a lease the rate cut short is followed by another after that long.
    pub(crate) rate_refill: AtomicU64,
    /// Whether some owner capped its jobs of the executor (kept by the notifier): a lease that
    /// takes none of its due jobs then waits for places, as under limits.
    pub(crate) capped: AtomicBool,
    /// Whether the limits bound the executor's last lease (it came back short).
    pub(crate) bound: AtomicBool,
    /// Under limits, the outcomes of the jobs that ended, for the producer's next lease to
    /// write in its own transaction (see `producer::hand_over`); `None` once the producer
    /// stopped (they go to the completer then).
    handoff: std::sync::Mutex<Option<Vec<crate::outcome::Outcome>>>,
}

impl ExecutorState {
    /// An executor serving `registration` with `concurrency` slots (at least one) and a
    /// buffer of up to `prefetch` jobs.
    pub(crate) fn new(registration: Registration, concurrency: usize, prefetch: usize) -> Self {
        let capacity = u32::try_from(concurrency.max(1)).unwrap_or(u32::MAX);
        Self {
            registration,
            capacity,
            slots: Arc::new(Semaphore::new(capacity as usize)),
            executor: Arc::from(registration.executor),
            wake: Notify::new(),
            buffer: buffer::Buffer::new(prefetch),
            refill: Notify::new(),
            refill_asked: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            limited: AtomicBool::new(false),
            passes_over: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            rate_refill: AtomicU64::new(0),
            capped: AtomicBool::new(false),
            bound: AtomicBool::new(true),
            handoff: std::sync::Mutex::new(Some(Vec::new())),
        }
    }

    /// Whether the executor has limits and they bound its last lease: its places are scarce.
    /// Its leases then take only free slots, and its outcomes go with the next lease (which
    /// takes the places they free); while its limits have room, its jobs are leased ahead and
    /// its outcomes written in the completer's batches, as without limits.
    pub(crate) fn at_limit(&self) -> bool {
        self.limited.load(Ordering::Relaxed)
            && self.counted.load(Ordering::Relaxed)
            && self.bound.load(Ordering::Relaxed)
    }

    /// Whether the executor's jobs hold counted places (a concurrency limit, in all or per
    /// key): each running job's place may pass to a successor (see `Buffer::hold_place`).
    pub(crate) fn counts_places(&self) -> bool {
        self.limited.load(Ordering::Relaxed) && self.counted.load(Ordering::Relaxed)
    }

    /// The time a rate limit's bucket takes to refill a burst, if the executor has a rate
    /// limit.
    pub(crate) fn rate_refill(&self) -> Option<Duration> {
        match self.rate_refill.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Whether the executor's leased jobs should start at once: at its concurrency limit (a
    /// job waiting in the buffer holds a place), or under a rate limit (a lease counts as a
    /// start). Its leases then take due jobs only, into free slots.
    pub(crate) fn leases_sparingly(&self) -> bool {
        self.at_limit() || (self.limited.load(Ordering::Relaxed) && self.rate_refill().is_some())
    }

    fn handoff(&self) -> std::sync::MutexGuard<'_, Option<Vec<crate::outcome::Outcome>>> {
        self.handoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Leaves an outcome for the producer's next lease, and tells the producer; gives it back
    /// when the producer has stopped.
    pub(crate) fn hand_off(
        &self,
        outcome: crate::outcome::Outcome,
    ) -> Option<crate::outcome::Outcome> {
        match self.handoff().as_mut() {
            Some(waiting) => waiting.push(outcome),
            None => return Some(outcome),
        }
        self.refill.notify_one();
        None
    }

    /// The outcomes left for the next lease.
    pub(crate) fn take_handoff(&self) -> Vec<crate::outcome::Outcome> {
        self.handoff()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Whether outcomes wait for the next lease.
    pub(crate) fn has_handoff(&self) -> bool {
        self.handoff_len() > 0
    }

    /// How many outcomes wait for the next lease.
    pub(crate) fn handoff_len(&self) -> usize {
        self.handoff().as_ref().map_or(0, Vec::len)
    }

    /// Takes no more outcomes (the producer stops): those left, for the completer.
    pub(crate) fn close_handoff(&self) -> Vec<crate::outcome::Outcome> {
        self.handoff().take().unwrap_or_default()
    }

    /// Asks the producer to look at the slots and the buffer again.
    pub(crate) fn ask_refill(&self) {
        if !self.refill_asked.swap(true, Ordering::Relaxed) {
            self.refill.notify_one();
        }
    }
}

/// Runs registered jobs: leases due jobs, runs their handlers with a bound per executor, writes
/// outcomes in batches, rescues expired leases, and keeps the history partitioned.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// let client = qron::Client::connect("postgres://localhost/app").await?;
/// qron::init(client);
/// qron::Worker::run_all().await?; // until Ctrl-C or SIGTERM
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Worker {
    pub(crate) client: Client,
    pub(crate) executors: Vec<Arc<ExecutorState>>,
    pub(crate) settings: builder::Settings,
    pub(crate) clock: Arc<DbClock>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stopper: Stopper,
    pub(crate) id: String,
    pub(crate) states: Arc<crate::state::States>,
}

impl Worker {
    /// A [`WorkerBuilder`] over `client`, serving every registered job by default.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let builder = qron::Worker::builder(client);
    /// # Ok(()) }
    /// ```
    pub fn builder(client: Client) -> WorkerBuilder {
        WorkerBuilder {
            client,
            executors: None,
            registrations: Vec::new(),
            concurrency: HashMap::new(),
            settings: builder::Settings::default(),
            host_clock: Utc::now,
            states: Default::default(),
            ahead: chrono::Duration::zero(),
        }
    }

    /// Serves every registered job with the default client ([`crate::init`]) until Ctrl-C or
    /// SIGTERM (a second signal cancels running handlers).
    ///
    /// Jobs that take [`State`](crate::State) need a worker given it:
    /// `Worker::builder(client).state(value).build()?.run_until_signal()`.
    ///
    /// # Errors
    /// [`Error::NotInitialized`] without a default client; as [`WorkerBuilder::build`] (a job
    /// that takes state is one).
    ///
    /// ```no_run
    /// # async fn demo() -> qron::Result<()> {
    /// qron::Worker::run_all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn run_all() -> Result<()> {
        Self::builder(crate::client()?)
            .build()?
            .run_until_signal()
            .await
    }

    /// Runs until Ctrl-C or SIGTERM, then stops softly (a second signal cancels running
    /// handlers), as [`Worker::run`] does on a [`Stopper::soft`].
    ///
    /// It listens for the signals from the call on (when called inside a Tokio runtime; else
    /// from the first poll), so an application can announce "Ctrl-C stops it" before it awaits
    /// the future: a signal in between is a clean stop too. From then on these signals no longer
    /// end the process by themselves (Tokio keeps its handler for the process's life), even if
    /// the future is dropped unawaited.
    ///
    /// # Errors
    /// As [`Worker::run`]; [`Error::Signal`] when the signals cannot be listened for.
    ///
    /// ```no_run
    /// # #[derive(Clone)] struct Mailer;
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// qron::Worker::builder(client).state(Mailer).build()?.run_until_signal().await?;
    /// # Ok(()) }
    /// ```
    pub fn run_until_signal(self) -> impl Future<Output = Result<()>> + Send + 'static {
        let listening = tokio::runtime::Handle::try_current()
            .is_ok()
            .then(Signals::listen);
        async move {
            let mut signals = listening
                .unwrap_or_else(Signals::listen)
                .map_err(Error::Signal)?;
            let stopper = self.stopper();
            tokio::spawn(async move {
                signals.recv().await;
                tracing::info!("stopping: finishing running jobs (signal again to cancel them)");
                stopper.soft();
                signals.recv().await;
                stopper.hard();
            });
            self.run().await
        }
    }

    /// Runs until there is nothing left to do now, then stops softly and returns: no job of
    /// its executors due (by the database's clock) within its lease-ahead (see
    /// [`WorkerBuilder::lease_ahead`]: the worker takes those as due now), none leased by this
    /// worker (waiting in it, running, or with its outcome not yet written). A job made due
    /// again meanwhile (a retry with a short back-off, a recurring job's next slot that is
    /// already due) is run too; one due later is left for later. For tests, and for one-shot
    /// processes run by an outside scheduler.
    ///
    /// # Errors
    /// As [`Worker::run`], and a database error from looking for due jobs.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).build()?;
    /// let metrics = worker.metrics();
    /// worker.run_until_idle().await?;
    /// println!("{} jobs succeeded", metrics.succeeded());
    /// # Ok(()) }
    /// ```
    pub async fn run_until_idle(self) -> Result<()> {
        let stopper = self.stopper();
        let pool = self.client.pool().clone();
        let clock = self.clock.clone();
        let lease_ahead = self.settings.producer.lease_ahead;
        let worker_id = self.id.clone();
        let executors: Vec<&'static str> = self
            .executors
            .iter()
            .map(|e| e.registration.executor)
            .collect();
        let run = self.run();
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => return r,
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            let horizon = clock
                .now()
                .checked_add_signed(chrono::Duration::from_std(lease_ahead).unwrap_or_default())
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
            if !crate::db::jobs_pending(&pool, &executors, &worker_id, horizon).await? {
                stopper.soft();
                return run.await;
            }
        }
    }

    /// This worker's id (host, process and creation time): the lease owner of the jobs it
    /// runs, and the `worker` of their [errors](crate::AttemptError).
    ///
    /// ```no_run
    /// # fn demo(worker: qron::Worker) {
    /// tracing::info!(worker = worker.id(), "starting");
    /// # }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The worker's counters.
    ///
    /// ```no_run
    /// # async fn demo(worker: qron::Worker) -> qron::Result<()> {
    /// let metrics = worker.metrics();
    /// tokio::spawn(worker.run());
    /// println!("{} in flight", metrics.in_flight());
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A handle that stops the worker.
    ///
    /// ```no_run
    /// # async fn demo(worker: qron::Worker) -> qron::Result<()> {
    /// let stopper = worker.stopper();
    /// let running = tokio::spawn(worker.run());
    /// stopper.soft();
    /// # Ok(()) }
    /// ```
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Runs until stopped through its [`Stopper`]; returns once every outcome is written (or,
    /// when the database cannot be reached, after the [flush
    /// timeout](WorkerBuilder::flush_timeout)).
    ///
    /// # Errors
    /// [`Error::WorkerTask`] when one of the worker's own tasks (a producer, the rescuer…)
    /// panicked: the worker then stops as on a soft stop, and returns the panic's message. It
    /// carries on through database errors.
    ///
    /// # Cancel safety
    /// Dropping the future stops the worker as a hard stop does: it leases no more, its running
    /// handlers are cancelled (their jobs come back when their leases expire), and the
    /// outcomes it holds are written within the flush timeout.
    ///
    /// ```no_run
    /// # async fn demo(worker: qron::Worker) -> qron::Result<()> {
    /// worker.run().await?;
    /// # Ok(()) }
    /// ```
    pub async fn run(self) -> Result<()> {
        let pool = self.client.pool().clone();
        let (completer, completer_task) = completer::spawn(
            pool.clone(),
            &self.settings.completer,
            self.metrics.clone(),
            self.clock.clone(),
        );
        // From here on, dropping this future stops everything it started.
        let mut guard = RunGuard {
            stopper: self.stopper.clone(),
            completer: Some(completer_task),
            flush_timeout: self.settings.completer.flush_timeout,
        };
        // Every due time, lease and rescue is the database's time: measure the offset first.
        if let Err(e) = self.clock.sync(&pool).await {
            tracing::warn!(error = %e, "could not read the database's clock; using the host's until it can");
        }
        let shared = self.shared(completer);
        tracing::info!(
            worker = %self.id,
            executors = ?self.executors.iter().map(|e| e.registration.executor).collect::<Vec<_>>(),
            "worker started"
        );
        let mut services = Services::start(&self, &shared).await;
        let failed = services.supervise(&shared).await;
        services.stop(&self, shared).await;
        // The outcomes held are written, within the flush timeout.
        if let Some(mut completer) = guard.completer.take() {
            tokio::select! {
                _ = &mut completer => {}
                () = tokio::time::sleep(self.settings.completer.flush_timeout) => {
                    tracing::error!(timeout = ?self.settings.completer.flush_timeout, "could not write every outcome in time: their jobs come back when their leases expire");
                    completer.abort();
                }
            }
        }
        tracing::info!(worker = %self.id, "worker stopped");
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// What every task of a run shares, around the run's completer.
    fn shared(&self, completer: completer::CompleterHandle) -> Arc<Shared> {
        let pool = self.client.pool();
        Arc::new(Shared {
            client: self.client.clone(),
            lease_pool: lease_pool(pool, self.executors.len()),
            limited_pool: limited_pool(pool, self.executors.len()),
            completer,
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            schedules: crate::expr::Schedules::default(),
            worker_id: self.id.clone(),
            states: self.states.clone(),
            batch_size: self.settings.producer.batch_size,
            poll_interval: self.settings.producer.poll_interval,
            lease_ahead: chrono::Duration::from_std(self.settings.producer.lease_ahead)
                .unwrap_or(chrono::Duration::zero()),
            soft: self.stopper.soft.clone(),
            hard: self.stopper.hard.clone(),
            running: Arc::default(),
            lease_time: self.settings.heartbeat.lease_time,
            cancels: Arc::default(),
            budget: budget::Budget::new(
                self.settings.producer.memory_budget,
                lease_connections(self.executors.len()),
            ),
            slack: buffer::slack(self.settings.completer.flush_interval),
            tally: Arc::default(),
        })
    }
}

//! The worker: per executor, a [`producer`] that leases due jobs into free slots; an
//! [`executor`] that runs each handler under its timeout and catches panics; the [`outcome`]
//! of each execution (a pure decision); the [`notifier`] that wakes idle producers; the
//! [`heartbeat`] that renews long jobs' leases and the worker's registration; one completer for
//! all outcomes (`crate::completer`); the rescuer, history maintenance and the unserved
//! executors' watch (`crate::maintenance`). What they share is in `shared`; stopping (the
//! [`Stopper`], the signals, the tasks' supervision) in `shutdown`.

mod buffer;
mod builder;
pub(crate) mod executor;
pub(crate) mod heartbeat;
pub(crate) mod notifier;
pub(crate) mod producer;
mod shared;
mod shutdown;

pub use builder::WorkerBuilder;
pub(crate) use shared::Shared;
use shared::lease_pool;
pub use shutdown::Stopper;
use shutdown::{RunGuard, Signals, supervised};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock::DbClock;
use crate::completer;
use crate::maintenance::{history, queue, rescuer, unserved};
use crate::metrics::Metrics;
use crate::registry::Registration;
use crate::{Client, Error, Result};
use notifier::Notifier;
use producer::Producer;

pub use crate::completer::DEFAULT_FLUSH_TIMEOUT;
pub use crate::maintenance::history::DEFAULT_HISTORY_RETENTION;
pub use crate::maintenance::rescuer::DEFAULT_RESCUE_INTERVAL;
pub use crate::maintenance::unserved::DEFAULT_UNSERVED_AFTER;
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
        }
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
    /// its executors due (by the database's clock), none leased by this worker (waiting in it,
    /// running, or with its outcome not yet written). A job made due again meanwhile (a retry
    /// with no back-off, a recurring job's next slot that is already due) is run too; one due
    /// later is left for later. For tests, and for one-shot processes run by an outside
    /// scheduler.
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
            if !crate::db::jobs_pending(&pool, &executors, &worker_id, clock.now()).await? {
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
        let leases = lease_pool(&pool, self.executors.len());
        let shared = Arc::new(Shared {
            pool: pool.clone(),
            lease_pool: leases.clone(),
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
        });
        tracing::info!(
            worker = %self.id,
            executors = ?self.executors.iter().map(|e| e.registration.executor).collect::<Vec<_>>(),
            "worker started"
        );
        // The worker's own tasks, each reporting its name and, if it panicked, why. A JoinSet
        // aborts them all when it is dropped.
        let mut background = tokio::task::JoinSet::new();
        let mut producers = tokio::task::JoinSet::new();
        let by_name: HashMap<&'static str, Arc<ExecutorState>> = self
            .executors
            .iter()
            .map(|e| (e.registration.executor, e.clone()))
            .collect();
        // Before the first lease: a worker that starts during a pause must skip the paused
        // owners' jobs from its first lease on.
        notifier::refresh_pauses(&pool, &by_name).await;
        let notifier = Notifier {
            pool: pool.clone(),
            executors: by_name,
            cancels: shared.cancels.clone(),
        };
        background.spawn(supervised(
            "notification listener",
            notifier.run(shared.soft.clone()),
        ));
        let rescuer = rescuer::Rescuer::new(
            pool.clone(),
            shared.clock.clone(),
            shared.metrics.clone(),
            self.executors
                .iter()
                .map(|e| (e.registration.executor, e.registration.options))
                .collect(),
            self.settings.rescuer.clone(),
        );
        background.spawn(supervised("rescuer", rescuer.run(shared.soft.clone())));
        // Renews leases until every handler has returned (after the soft stop, the grace).
        let heartbeat = heartbeat::Heartbeat::new(
            pool.clone(),
            shared.clock.clone(),
            shared.running.clone(),
            self.settings.heartbeat.clone(),
            self.id.clone(),
            self.executors
                .iter()
                .map(|e| e.registration.executor)
                .collect(),
        );
        let heartbeat_stop = CancellationToken::new();
        background.spawn(supervised(
            "heartbeat",
            heartbeat.run(heartbeat_stop.clone()),
        ));
        let watch = unserved::Watch::new(
            pool.clone(),
            shared.clock.clone(),
            self.settings.unserved.clone(),
        );
        background.spawn(supervised(
            "unserved executors watch",
            watch.run(shared.soft.clone()),
        ));
        let gauges = queue::Gauges::new(
            pool.clone(),
            shared.clock.clone(),
            self.executors
                .iter()
                .map(|e| e.registration.executor)
                .collect(),
            self.settings.queue.clone(),
        );
        background.spawn(supervised("queue gauges", gauges.run(shared.soft.clone())));
        let history = history::Maintainer::new(
            pool.clone(),
            shared.clock.clone(),
            self.settings.history.clone(),
        );
        background.spawn(supervised(
            "history maintenance",
            history.run(shared.soft.clone()),
        ));
        for e in &self.executors {
            producers.spawn(supervised(
                "producer",
                Producer::new(e.clone(), shared.clone()).run(),
            ));
        }

        // Until stopped, or until one of the tasks ends on its own (it panicked).
        let mut failed: Option<Error> = None;
        loop {
            let ended = tokio::select! {
                () = shared.soft.cancelled() => break,
                Some(r) = background.join_next() => r,
                Some(r) = producers.join_next() => r,
            };
            let (task, reason) = match ended {
                Ok((task, panic)) => (task, panic.unwrap_or_else(|| "it returned".to_owned())),
                Err(e) => ("task", e.to_string()),
            };
            if shared.soft.is_cancelled() {
                break;
            }
            tracing::error!(
                task,
                reason,
                "a worker task stopped unexpectedly; stopping the worker"
            );
            failed = Some(Error::WorkerTask { task, reason });
            shared.soft.cancel();
        }
        while producers.join_next().await.is_some() {}
        leases.close().await;
        // Let running handlers finish within the grace period: every slot free again.
        let drain = async {
            for e in &self.executors {
                let _ = e.slots.acquire_many(e.capacity).await;
            }
        };
        tokio::pin!(drain);
        let mut drained = false;
        tokio::select! {
            () = &mut drain => drained = true,
            () = tokio::time::sleep(self.settings.shutdown_grace) => {
                tracing::warn!("grace period over: cancelling running handlers");
                shared.hard.cancel();
            }
            () = shared.hard.cancelled() => {}
        }
        if !drained {
            // Cancelled executions give their slots back at once.
            drain.await;
        }
        heartbeat_stop.cancel();
        background.shutdown().await;
        // Gone from the registry of workers (a worker that dies is removed by others later).
        match tokio::time::timeout(
            self.settings.completer.flush_timeout,
            crate::db::worker_delete(&pool, &self.id),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "could not remove the worker from qron.workers")
            }
            Err(_) => tracing::debug!("could not remove the worker from qron.workers in time"),
        }
        drop(shared);
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
}

//! The worker: per executor, a producer that leases only as many due jobs as it has free slots;
//! an executor that runs each handler under its timeout and catches panics; one completer for
//! all outcomes; a rescuer of expired leases and the history's maintenance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::clock::{DbClock, HostClock};
use crate::completer::{self, CompleterHandle, Outcome};
use crate::db::{self, Completion, Finish, LeasedJob};
use crate::handler::{Backoff, Context, JobError, Requests};
use crate::job::interval_to_duration;
use crate::registry::Registration;
use crate::{Client, Error, Result, Schedule};

/// How often an idle producer looks for due jobs when no notification wakes it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often expired leases are looked for.
pub const DEFAULT_RESCUE_INTERVAL: Duration = Duration::from_secs(1);
/// How long running handlers may take to finish after a soft stop.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long a stopping worker keeps trying to write the outcomes it holds.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long finished one-off jobs stay in the history.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// How long before their run time jobs are leased by default.
pub const DEFAULT_LEASE_AHEAD: Duration = Duration::from_millis(250);
/// Concurrency from which an executor has two producers: one leases while the other's jobs
/// start, which keeps the server busy between leases.
const PARALLEL_LEASES_FROM: u32 = 64;
/// The longest a busy producer waits for more free slots before leasing.
const LEASE_GATHER: Duration = Duration::from_millis(5);
/// The notification channel on which creating a due job wakes idle workers.
const CHANNEL: &str = "qron_jobs";

/// Counters of one worker, readable while it runs.
///
/// ```no_run
/// # async fn demo(worker: qron::Worker) {
/// let metrics = worker.metrics();
/// tokio::spawn(worker.run());
/// println!("{} succeeded so far", metrics.succeeded());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    leased: AtomicU64,
    polls: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    rescued: AtomicU64,
    written: AtomicU64,
    stale: AtomicU64,
    in_flight: AtomicI64,
}

impl Metrics {
    /// Jobs leased.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.leased(), 0);
    /// ```
    pub fn leased(&self) -> u64 {
        self.leased.load(Ordering::Relaxed)
    }
    /// Lease statements run: each is a producer's look at the queue (busy or idle).
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.polls(), 0);
    /// ```
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
    /// Executions that succeeded.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.succeeded(), 0);
    /// ```
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }
    /// Executions that failed and will be retried.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.retried(), 0);
    /// ```
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
    /// Executions that failed for good (or gave up their occurrence).
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.failed(), 0);
    /// ```
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    /// Expired leases returned to the pool by this worker's rescuer.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.rescued(), 0);
    /// ```
    pub fn rescued(&self) -> u64 {
        self.rescued.load(Ordering::Relaxed)
    }
    /// Outcomes written.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.written(), 0);
    /// ```
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
    /// Outcomes that arrived after their lease had moved on, and changed nothing.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.stale(), 0);
    /// ```
    pub fn stale(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }
    /// Handlers running now.
    ///
    /// ```
    /// let m = qron::Metrics::default();
    /// assert_eq!(m.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn add_written(&self, applied: usize, stale: usize) {
        self.written.fetch_add(applied as u64, Ordering::Relaxed);
        self.stale.fetch_add(stale as u64, Ordering::Relaxed);
        if stale > 0 {
            tracing::debug!(stale, "outcomes for leases that moved on changed nothing");
        }
    }
}

/// Stops a running worker. Cheap to clone.
///
/// ```no_run
/// # async fn demo(worker: qron::Worker) {
/// let stop = worker.stopper();
/// let running = tokio::spawn(worker.run());
/// stop.soft(); // finish what runs, write every outcome, return
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Stopper {
    soft: CancellationToken,
    hard: CancellationToken,
}

impl Stopper {
    /// Stop leasing; let running handlers finish (within the grace period); write every
    /// outcome; return.
    ///
    /// ```no_run
    /// # fn demo(worker: qron::Worker) {
    /// worker.stopper().soft();
    /// # }
    /// ```
    pub fn soft(&self) {
        self.soft.cancel();
    }

    /// Cancel running handlers now; their jobs come back when their leases expire.
    ///
    /// ```no_run
    /// # fn demo(worker: qron::Worker) {
    /// worker.stopper().hard();
    /// # }
    /// ```
    pub fn hard(&self) {
        self.soft.cancel();
        self.hard.cancel();
    }
}

/// How a [`Worker`] runs. Made by [`Worker::builder`].
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// use std::time::Duration;
/// let worker = qron::Worker::builder(client)
///     .executors(["email", "backup"])
///     .concurrency("email", 50)
///     .poll_interval(Duration::from_secs(5))
///     .build()?;
/// worker.run().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WorkerBuilder {
    client: Client,
    executors: Option<Vec<String>>,
    registrations: Vec<Registration>,
    concurrency: HashMap<String, usize>,
    poll_interval: Duration,
    lease_ahead: Duration,
    flush_interval: Duration,
    batch_size: usize,
    backlog_limit: usize,
    rescue_interval: Duration,
    shutdown_grace: Duration,
    flush_timeout: Duration,
    history_retention: Duration,
    host_clock: HostClock,
}

/// The shortest poll, rescue or flush interval: shorter ones would keep a core busy asking.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The longest a job may be leased ahead of its run time.
const MAX_LEASE_AHEAD: Duration = Duration::from_secs(60);

impl WorkerBuilder {
    /// Refuses settings that would make the worker spin, stall or drop work.
    fn check(&self) -> Result<()> {
        let bad =
            |field: &'static str, reason: String| Err(Error::InvalidArgument { field, reason });
        for (field, d) in [
            ("poll_interval", self.poll_interval),
            ("rescue_interval", self.rescue_interval),
            ("flush_interval", self.flush_interval),
        ] {
            if d < MIN_INTERVAL {
                return bad(
                    field,
                    format!("{d:?} is under {MIN_INTERVAL:?}: the worker would spin"),
                );
            }
        }
        if self.lease_ahead > MAX_LEASE_AHEAD {
            return bad(
                "lease_ahead",
                format!(
                    "{:?} is over the limit of {MAX_LEASE_AHEAD:?}",
                    self.lease_ahead
                ),
            );
        }
        if self.history_retention < Duration::from_secs(86_400) {
            return bad(
                "history_retention",
                format!(
                    "{:?} is under one day (partitions are days)",
                    self.history_retention
                ),
            );
        }
        for (field, n) in [
            ("batch_size", self.batch_size),
            ("backlog_limit", self.backlog_limit),
        ] {
            if n == 0 {
                return bad(field, "must be at least 1".to_owned());
            }
        }
        if let Some((executor, _)) = self.concurrency.iter().find(|(_, n)| **n == 0) {
            return bad(
                "concurrency",
                format!("0 for executor `{executor}`: it would never run a job"),
            );
        }
        Ok(())
    }

    /// Serves only these executors (default: every job registered with `#[qron::job]`).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).executors(["email", "backup"]).build()?;
    /// # Ok(()) }
    /// ```
    pub fn executors<I, S>(mut self, executors: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.executors = Some(executors.into_iter().map(Into::into).collect());
        self
    }

    /// Serves job type `J` whether or not its registration reached the binary.
    ///
    /// `#[qron::job]` registers jobs through `inventory`, and `Worker::run_all()` finds every
    /// job of the binary, including those of its libraries. But a linker keeps a library's code
    /// only when the binary refers to it: a job declared in a library of which the binary uses
    /// nothing else is dropped, and its executor reported as unregistered. Naming the job here
    /// refers to it, which keeps it (the same job registered both ways counts once).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "email")] async fn email(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).job::<Email>().build()?;
    /// # Ok(()) }
    /// ```
    pub fn job<J: crate::Job>(self) -> Self {
        self.register(Registration::of::<J>(std::any::type_name::<J>()))
    }

    /// Serves a job from its registration, in addition to the registered ones.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let jobs = qron::registered_jobs()?;
    /// let worker = qron::Worker::builder(client).register(jobs["email"]).build()?;
    /// # Ok(()) }
    /// ```
    pub fn register(mut self, registration: Registration) -> Self {
        self.registrations.push(registration);
        self
    }

    /// Handlers of `executor` running at once in this process (default: the job's
    /// `concurrency`).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).concurrency("email", 100).build()?;
    /// # Ok(()) }
    /// ```
    pub fn concurrency(mut self, executor: impl Into<String>, n: usize) -> Self {
        self.concurrency.insert(executor.into(), n);
        self
    }

    /// How often an idle producer polls (default 1 s). Notifications wake it sooner.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).poll_interval(std::time::Duration::from_secs(5)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// How long before its run time a job may be leased (default 250 ms). The worker holds
    /// such a job, in one of its slots, until the run time, then starts it at once: runs that
    /// fall due together (a thousand jobs on one crontab) start on time instead of waiting for
    /// the leases that would follow. Zero leases only jobs already due.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).lease_ahead(std::time::Duration::from_millis(500)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn lease_ahead(mut self, d: Duration) -> Self {
        self.lease_ahead = d;
        self
    }

    /// The longest an outcome waits for its batch (default 20 ms).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).flush_interval(std::time::Duration::from_millis(5)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// Outcomes per statement, and jobs per lease, at most (default 1000).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).batch_size(500).build()?;
    /// # Ok(()) }
    /// ```
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Outcomes waiting to be written above which leasing pauses (default 10,000).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).backlog_limit(50_000).build()?;
    /// # Ok(()) }
    /// ```
    pub fn backlog_limit(mut self, n: usize) -> Self {
        self.backlog_limit = n;
        self
    }

    /// How often expired leases are looked for (default 1 s).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).rescue_interval(std::time::Duration::from_secs(10)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn rescue_interval(mut self, d: Duration) -> Self {
        self.rescue_interval = d;
        self
    }

    /// How long handlers may run on after a soft stop (default 30 s).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).shutdown_grace(std::time::Duration::from_secs(60)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }

    /// How long a stopping worker keeps trying to write the outcomes it holds (default 10 s),
    /// for when the database cannot be reached: the jobs whose outcomes are not written come
    /// back when their leases expire, and run again.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).flush_timeout(std::time::Duration::from_secs(30)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn flush_timeout(mut self, d: Duration) -> Self {
        self.flush_timeout = d;
        self
    }

    /// How long finished one-off jobs are kept (default 30 days; whole days).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).history_retention(std::time::Duration::from_secs(7 * 86_400)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn history_retention(mut self, d: Duration) -> Self {
        self.history_retention = d;
        self
    }

    /// The host's clock the worker reads (default [`Utc::now`]). The worker corrects it to the
    /// database server's clock, which decides every due time, lease and rescue: a host whose
    /// clock is wrong neither runs jobs early nor takes over leases still held. For tests that
    /// make such a host.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// fn two_minutes_fast() -> chrono::DateTime<chrono::Utc> {
    ///     chrono::Utc::now() + chrono::Duration::minutes(2)
    /// }
    /// let worker = qron::Worker::builder(client).host_clock(two_minutes_fast).build()?;
    /// # Ok(()) }
    /// ```
    pub fn host_clock(mut self, clock: HostClock) -> Self {
        self.host_clock = clock;
        self
    }

    /// The worker.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when two job types declare one executor, a selected executor
    /// has no registered job, or a setting is out of range (an interval under 1 ms, a
    /// concurrency, batch size or backlog limit of 0, a retention under a day, a lease ahead
    /// over a minute).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).build()?;
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<Worker> {
        self.check()?;
        let mut table = crate::registry::registered()?;
        for r in self.registrations {
            if let Some(other) = table.insert(r.executor, r)
                && other.type_name != r.type_name
            {
                return Err(crate::registry::duplicate(&other, &r));
            }
        }
        let selected: Vec<Registration> = match &self.executors {
            None => table.into_values().collect(),
            Some(names) => {
                let mut out = Vec::new();
                for name in names {
                    let r = table.get(name.as_str()).ok_or_else(|| Error::InvalidArgument {
                        field: "executors",
                        reason: format!(
                            "no job is registered for executor `{name}`; declare one with #[qron::job(executor = \"{name}\")]"
                        ),
                    })?;
                    out.push(*r);
                }
                out
            }
        };
        let executors = selected
            .into_iter()
            .map(|r| {
                let concurrency = self
                    .concurrency
                    .get(r.executor)
                    .copied()
                    .unwrap_or(r.options.concurrency)
                    .max(1);
                let capacity = u32::try_from(concurrency).unwrap_or(u32::MAX);
                Arc::new(ExecutorState {
                    registration: r,
                    capacity,
                    slots: Arc::new(Semaphore::new(capacity as usize)),
                    executor: Arc::from(r.executor),
                    wake: Notify::new(),
                    slot_freed: Notify::new(),
                    // A busy executor frees its slots one by one: its producer gathers a few
                    // before leasing, so that a lease is a batch rather than a round trip per
                    // job (waiting `LEASE_GATHER` at most).
                    gather: (capacity as usize / 4).clamp(1, self.batch_size),
                    freed: AtomicUsize::new(0),
                    next_ready: AtomicI64::new(i64::MAX),
                })
            })
            .collect();
        Ok(Worker {
            client: self.client,
            executors,
            poll_interval: self.poll_interval,
            lease_ahead: self.lease_ahead,
            flush_interval: self.flush_interval,
            batch_size: self.batch_size,
            backlog_limit: self.backlog_limit,
            rescue_interval: self.rescue_interval,
            shutdown_grace: self.shutdown_grace,
            flush_timeout: self.flush_timeout,
            history_retention: self.history_retention,
            clock: Arc::new(DbClock::new(self.host_clock)),
            metrics: Arc::default(),
            stopper: Stopper {
                soft: CancellationToken::new(),
                hard: CancellationToken::new(),
            },
            id: format!(
                "{}:{}:{}",
                hostname(),
                std::process::id(),
                Utc::now().timestamp_micros()
            ),
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}

#[derive(Debug)]
struct ExecutorState {
    registration: Registration,
    capacity: u32,
    slots: Arc<Semaphore>,
    /// The executor's name, shared by the contexts of its executions.
    executor: Arc<str>,
    wake: Notify,
    /// Told when the first slot frees after a lease, and when `gather` slots are free.
    slot_freed: Notify,
    /// Free slots worth a lease without waiting for more.
    gather: usize,
    /// Slots freed since a producer last reserved some.
    freed: AtomicUsize,
    /// The earliest run time (µs since the epoch) of the jobs this worker made ready again
    /// since its producer last looked: no notification announces those.
    next_ready: AtomicI64,
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
    client: Client,
    executors: Vec<Arc<ExecutorState>>,
    poll_interval: Duration,
    lease_ahead: Duration,
    flush_interval: Duration,
    batch_size: usize,
    backlog_limit: usize,
    rescue_interval: Duration,
    shutdown_grace: Duration,
    flush_timeout: Duration,
    history_retention: Duration,
    clock: Arc<DbClock>,
    metrics: Arc<Metrics>,
    stopper: Stopper,
    id: String,
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
            poll_interval: DEFAULT_POLL_INTERVAL,
            lease_ahead: DEFAULT_LEASE_AHEAD,
            flush_interval: completer::DEFAULT_FLUSH_INTERVAL,
            batch_size: completer::DEFAULT_BATCH_SIZE,
            backlog_limit: completer::DEFAULT_BACKLOG_LIMIT,
            rescue_interval: DEFAULT_RESCUE_INTERVAL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            history_retention: DEFAULT_HISTORY_RETENTION,
            host_clock: Utc::now,
        }
    }

    /// Serves every registered job with the default client ([`crate::init`]) until Ctrl-C or
    /// SIGTERM (a second signal cancels running handlers).
    ///
    /// # Errors
    /// [`Error::NotInitialized`] without a default client; as [`WorkerBuilder::build`].
    ///
    /// ```no_run
    /// # async fn demo() -> qron::Result<()> {
    /// qron::Worker::run_all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn run_all() -> Result<()> {
        let worker = Self::builder(crate::client()?).build()?;
        let stopper = worker.stopper();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: finishing running jobs (signal again to cancel them)");
            stopper.soft();
            shutdown_signal().await;
            stopper.hard();
        });
        worker.run().await
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
            self.batch_size,
            self.flush_interval,
            self.backlog_limit,
            self.metrics.clone(),
            self.clock.clone(),
        );
        // From here on, dropping this future stops everything it started.
        let mut guard = RunGuard {
            stopper: self.stopper.clone(),
            completer: Some(completer_task),
            flush_timeout: self.flush_timeout,
        };
        // Every due time, lease and rescue is the database's time: measure the offset first.
        if let Err(e) = self.clock.sync(&pool).await {
            tracing::warn!(error = %e, "could not read the database's clock; using the host's until it can");
        }
        let shared = Arc::new(Shared {
            pool: pool.clone(),
            completer,
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            schedules: Mutex::new(HashMap::new()),
            worker_id: self.id.clone(),
            batch_size: self.batch_size,
            poll_interval: self.poll_interval,
            lease_ahead: chrono::Duration::from_std(self.lease_ahead)
                .unwrap_or(chrono::Duration::zero()),
            soft: self.stopper.soft.clone(),
            hard: self.stopper.hard.clone(),
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
        background.spawn(supervised(
            "notification listener",
            listen(pool.clone(), by_name, shared.soft.clone()),
        ));
        background.spawn(supervised(
            "rescuer",
            rescue(shared.clone(), self.executors.clone(), self.rescue_interval),
        ));
        background.spawn(supervised(
            "history maintenance",
            maintain(
                pool.clone(),
                self.history_retention,
                shared.clock.clone(),
                shared.soft.clone(),
            ),
        ));
        for e in &self.executors {
            let n = if e.capacity >= PARALLEL_LEASES_FROM {
                2
            } else {
                1
            };
            for _ in 0..n {
                producers.spawn(supervised("producer", produce(e.clone(), shared.clone())));
            }
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
            () = tokio::time::sleep(self.shutdown_grace) => {
                tracing::warn!("grace period over: cancelling running handlers");
                shared.hard.cancel();
            }
            () = shared.hard.cancelled() => {}
        }
        if !drained {
            // Cancelled executions give their slots back at once.
            drain.await;
        }
        background.shutdown().await;
        drop(shared);
        // The outcomes held are written, within the flush timeout.
        if let Some(mut completer) = guard.completer.take() {
            tokio::select! {
                _ = &mut completer => {}
                () = tokio::time::sleep(self.flush_timeout) => {
                    tracing::error!(timeout = ?self.flush_timeout, "could not write every outcome in time: their jobs come back when their leases expire");
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

/// Runs one of the worker's tasks, reporting its name and, if it panicked, the panic's
/// message.
async fn supervised(
    task: &'static str,
    f: impl std::future::Future<Output = ()>,
) -> (&'static str, Option<String>) {
    match std::panic::AssertUnwindSafe(f).catch_unwind().await {
        Ok(()) => (task, None),
        Err(panic) => (task, Some(format!("panicked: {}", panic_message(panic)))),
    }
}

/// Stops a worker whose `run` future is dropped before it returned: a hard stop, and the
/// completer's flush bounded by the flush timeout.
struct RunGuard {
    stopper: Stopper,
    /// The completer, until `run` has waited for it.
    completer: Option<tokio::task::JoinHandle<()>>,
    flush_timeout: Duration,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let Some(mut completer) = self.completer.take() else {
            return;
        };
        tracing::warn!("the worker's run future was dropped: stopping it hard");
        self.stopper.hard();
        let timeout = self.flush_timeout;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if tokio::time::timeout(timeout, &mut completer).await.is_err() {
                    completer.abort();
                }
            });
        } else {
            completer.abort();
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

struct Shared {
    pool: sqlx::PgPool,
    completer: CompleterHandle,
    metrics: Arc<Metrics>,
    /// The database's time (see [`DbClock`]).
    clock: Arc<DbClock>,
    schedules: Mutex<HashMap<String, Option<Schedule>>>,
    worker_id: String,
    batch_size: usize,
    poll_interval: Duration,
    lease_ahead: chrono::Duration,
    soft: CancellationToken,
    hard: CancellationToken,
}

impl Shared {
    /// A stored expression, parsed once per worker.
    fn schedule(&self, expr: &str) -> Option<Schedule> {
        let mut cache = self
            .schedules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        if let Some(s) = cache.get(expr) {
            return s.clone();
        }
        let s = Schedule::parse(expr).ok();
        cache.insert(expr.to_owned(), s.clone());
        s
    }
}

/// Leases due jobs of one executor whenever it has free slots.
async fn produce(exec: Arc<ExecutorState>, shared: Arc<Shared>) {
    let executor = exec.registration.executor;
    let mut error_delay = Duration::from_millis(100);
    // Where the last full batch stopped in the lease order: the next lease starts after it,
    // past the entries of jobs just leased (see `db::job_lease`). A lease from the start at
    // least every poll interval, and whenever one after the cursor comes back short, serves
    // the jobs that became due before it (retries, restarts, rescued leases).
    let mut cursor: Option<(DateTime<Utc>, i64)> = None;
    let mut from_start = std::time::Instant::now();
    // Whether the last lease found fewer jobs than it asked for (see `db::job_lease`).
    let mut drained = true;
    loop {
        if shared.soft.is_cancelled() {
            break;
        }
        let free = exec.slots.available_permits();
        if free == 0 {
            tokio::select! {
                () = exec.slot_freed.notified() => continue,
                () = shared.soft.cancelled() => break,
            }
        }
        if shared.completer.over_limit() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if free < exec.gather {
            let deadline = tokio::time::Instant::now() + LEASE_GATHER;
            while exec.slots.available_permits() < exec.gather {
                tokio::select! {
                    () = exec.slot_freed.notified() => {}
                    () = tokio::time::sleep_until(deadline) => break,
                    () = shared.soft.cancelled() => break,
                }
            }
        }
        // Slots are taken before the lease, so that the executor's producers together never
        // lease more jobs than it has slots.
        let want = exec.slots.available_permits().min(shared.batch_size);
        if want == 0 {
            continue;
        }
        let Ok(mut reserved) = exec
            .slots
            .clone()
            .try_acquire_many_owned(u32::try_from(want).unwrap_or(u32::MAX))
        else {
            continue;
        };
        exec.freed.store(0, Ordering::Relaxed);
        let now = shared.clock.now();
        let after = cursor.filter(|_| from_start.elapsed() < shared.poll_interval);
        if after.is_none() {
            from_start = std::time::Instant::now();
        }
        let leased = db::job_lease(
            &shared.pool,
            drained && after.is_none(),
            executor,
            i64::try_from(want).unwrap_or(i64::MAX),
            now,
            now + shared.lease_ahead,
            after,
            &shared.worker_id,
        )
        .await;
        let jobs = match leased {
            Ok(jobs) => {
                error_delay = Duration::from_millis(100);
                jobs
            }
            Err(e) => {
                tracing::warn!(executor, error = %e, "could not lease jobs; retrying");
                tokio::select! {
                    () = tokio::time::sleep(error_delay) => {}
                    () = shared.soft.cancelled() => break,
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let full = jobs.len() == want;
        drained = !full;
        cursor = if full {
            jobs.iter().map(|j| (j.run_at, j.id)).max()
        } else {
            None
        };
        shared
            .metrics
            .leased
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        shared.metrics.polls.fetch_add(1, Ordering::Relaxed);
        for job in jobs {
            let Some(permit) = reserved.split(1) else {
                break;
            };
            shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
            // Boxed: the execution's state is large (1.7 KB), and spawning moves it several
            // times on its way into the task.
            tokio::spawn(Box::pin(execute(job, exec.clone(), shared.clone(), permit)));
        }
        // Slots reserved for jobs that were not there go back.
        drop(reserved);
        if full || after.is_some() {
            continue;
        }
        // Idle: sleep until the poll interval, the next job to lease, or a notification. Jobs
        // this worker is running may soon be ready again (a recurring job's next slot, a retry)
        // and no notification announces that: while some run, look again within `lease_ahead`.
        let ready_here = match exec.next_ready.swap(i64::MAX, Ordering::Relaxed) {
            i64::MAX => None,
            micros => DateTime::from_timestamp_micros(micros),
        };
        let mut longest = shared.poll_interval;
        if exec.slots.available_permits() < exec.capacity as usize {
            longest = longest.min(
                shared
                    .lease_ahead
                    .to_std()
                    .unwrap_or_default()
                    .max(LEASE_GATHER),
            );
        }
        // Only a job due before the longest sleep shortens it.
        let horizon = chrono::Duration::from_std(longest)
            .ok()
            .and_then(|d| d.checked_add(&shared.lease_ahead))
            .and_then(|d| shared.clock.now().checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let wait = match db::job_next_due(&shared.pool, executor, horizon).await {
            Ok(due) => match due.into_iter().chain(ready_here).min() {
                Some(due) => (due - shared.lease_ahead - shared.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(longest),
                None => longest,
            },
            Err(_) => longest,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = exec.wake.notified() => {}
            () = shared.soft.cancelled() => break,
        }
    }
}

/// Runs one leased job and hands its outcome to the completer.
async fn execute(
    mut job: LeasedJob,
    exec: Arc<ExecutorState>,
    shared: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let reg = exec.registration;
    let span = tracing::info_span!(
        "qron.job",
        job.id = job.id,
        executor = reg.executor,
        attempt = job.attempt,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    // A meta that does not decode (written around the client's checks) fails this job alone.
    let (meta, bad_meta) = match job.meta.take().map(|t| serde_json::from_str(&t)) {
        None => (serde_json::Value::Object(Default::default()), None),
        Some(Ok(meta)) => (meta, None),
        Some(Err(e)) => (
            serde_json::Value::Null,
            Some(JobError::fail(format!(
                "the job's meta does not decode: {e}"
            ))),
        ),
    };
    let ctx = Context {
        id: job.id,
        executor: exec.executor.clone(),
        owner: std::mem::take(&mut job.owner),
        name: job.name.take(),
        attempt: job.attempt,
        executions: job.executions,
        meta,
        scheduled_at: job.slot_at,
        due_at: job.run_at,
        requests: Arc::default(),
    };
    let requests = ctx.requests_handle();
    // Leased ahead of its run time: hold it until then (a hard stop meanwhile leaves the job
    // to its lease, as for a running one).
    let due = match (job.run_at - shared.clock.now()).to_std() {
        Ok(early) => tokio::select! {
            () = tokio::time::sleep(early) => true,
            () = shared.hard.cancelled() => false,
        },
        Err(_) => true,
    };
    let started = std::time::Instant::now();
    let timeout = interval_to_duration(&job.timeout);
    let result: Option<std::result::Result<(), JobError>> = if let Some(e) = bad_meta {
        Some(Err(e))
    } else if due {
        // The handler runs in this task: a panic is caught here, and a timeout or a hard stop
        // drops (cancels) it.
        let run = std::panic::AssertUnwindSafe(
            (reg.run)(ctx, job.payload.take()).instrument(span.clone()),
        )
        .catch_unwind();
        tokio::select! {
            biased;
            r = tokio::time::timeout(timeout, run) => Some(match r {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => Err(JobError::retry(format!("the handler panicked: {}", panic_message(panic)))),
                Err(_) => Err(JobError::retry(format!("the handler timed out after {timeout:?}"))),
            }),
            () = shared.hard.cancelled() => None,
        }
    } else {
        None
    };
    if let Some(result) = result {
        let requests = Requests::take_from(&requests);
        let input = OutcomeInput::leased(&job);
        let (outcome, label) = decide(
            &input,
            result,
            requests,
            shared.clock.now(),
            // One-off jobs have no next slot to compute.
            job.recurring
                .then(|| shared.schedule(&job.expr))
                .flatten()
                .as_ref(),
            reg.options.backoff,
        );
        if let Outcome::Complete(c) = &outcome
            && c.status == "ready"
        {
            exec.next_ready
                .fetch_min(c.run_at.timestamp_micros(), Ordering::Relaxed);
        }
        span.record("outcome", label);
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        let counter = match label {
            "succeeded" | "paused" | "rescheduled" => &shared.metrics.succeeded,
            "retry" => &shared.metrics.retried,
            _ => &shared.metrics.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(parent: &span, outcome = label, "job finished");
        if !shared.completer.send(outcome).await {
            tracing::error!(
                job.id = job.id,
                "the completer is gone: the job will come back when its lease expires"
            );
        }
    } else {
        tracing::info!(parent: &span, "cancelled by a hard stop: the job comes back when its lease expires");
    }
    drop(permit);
    shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    // Waking the producer for every freed slot would cost a task switch per job: it is told
    // of the first (it then gathers for `LEASE_GATHER` at most) and when a batch is worth it.
    if exec.freed.fetch_add(1, Ordering::Relaxed) == 0
        || exec.slots.available_permits() >= exec.gather
    {
        exec.slot_freed.notify_one();
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// What an outcome depends on, from a lease or from an expired lease.
pub(crate) struct OutcomeInput {
    pub id: i64,
    pub token: i64,
    pub revision: i64,
    pub recurring: bool,
    pub run_at: DateTime<Utc>,
    pub slot_at: DateTime<Utc>,
    pub attempt: i32,
    pub max_attempts: i32,
    /// The instant the schedule counts from.
    pub start_at: DateTime<Utc>,
}

impl OutcomeInput {
    fn leased(job: &LeasedJob) -> Self {
        Self {
            id: job.id,
            token: job.lease_token,
            revision: job.revision,
            recurring: job.recurring,
            run_at: job.run_at,
            slot_at: job.slot_at,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            start_at: job.start_at,
        }
    }
}

/// Turns an execution's result into what the completer writes (SPEC §4), with a label for
/// logs and counters.
pub(crate) fn decide(
    job: &OutcomeInput,
    result: std::result::Result<(), JobError>,
    requests: Requests,
    now: DateTime<Utc>,
    schedule: Option<&Schedule>,
    backoff: Backoff,
) -> (Outcome, &'static str) {
    let next_slot = schedule.and_then(|s| s.next_run(job.start_at, job.slot_at, now));
    // A new occurrence (`reset`) starts at its slot; a retry keeps the occurrence's slot.
    let live = |status: &'static str, run_at: DateTime<Utc>, reset: bool, error: Option<String>| {
        Outcome::Complete(Completion {
            id: job.id,
            token: job.token,
            revision: job.revision,
            lease_run_at: job.run_at,
            one_off: !job.recurring,
            status,
            run_at,
            slot_at: reset.then_some(run_at),
            reset_attempt: reset,
            payload: requests.payload.clone(),
            expr: None,
            start_at: None,
            recurring: job.recurring,
            error,
        })
    };
    let finish = |status: &'static str, error: Option<String>| {
        Outcome::Finish(Finish {
            id: job.id,
            token: job.token,
            revision: job.revision,
            lease_run_at: job.run_at,
            status,
            payload: requests.payload.clone(),
            error,
        })
    };
    // A recurring job whose stored schedule gives no next slot (it no longer parses, or its
    // next run is out of range) would otherwise run back to back: it ends, failed.
    if job.recurring && next_slot.is_none() && !requests.stop {
        let reason = "the job's stored schedule gives no next run (it no longer parses, or its \
                      next run is out of range): the job is ended as failed";
        return (finish("failed", Some(reason.to_owned())), "failed");
    }
    let paused_or = |status: &'static str| if requests.stop { "paused" } else { status };
    match result {
        Ok(()) => {
            if requests.stop {
                return (live("paused", job.run_at, true, None), "paused");
            }
            if let Some(s) = &requests.reschedule {
                let Some(run_at) = s.first_run(now) else {
                    let reason = format!("the new schedule `{s}` gives no run after {now}");
                    return (finish("failed", Some(reason)), "failed");
                };
                let mut outcome = live("ready", run_at, true, None);
                if let Outcome::Complete(c) = &mut outcome {
                    c.expr = Some(s.to_string());
                    c.start_at = Some(now);
                    c.recurring = s.is_recurring();
                }
                return (outcome, "rescheduled");
            }
            match next_slot {
                Some(run_at) if job.recurring => (live("ready", run_at, true, None), "succeeded"),
                _ => (finish("succeeded", None), "succeeded"),
            }
        }
        Err(e) => {
            let reason = Some(crate::limits::storable_error(e.reason()));
            let retry = matches!(e, JobError::Retry(_)) && job.attempt < job.max_attempts;
            if retry {
                let delay = chrono::Duration::from_std(backoff.delay(job.attempt))
                    .unwrap_or(chrono::Duration::seconds(1));
                let mut at = now + delay;
                if let (true, Some(slot)) = (job.recurring, next_slot) {
                    at = at.min(slot);
                }
                (live(paused_or("ready"), at, false, reason), "retry")
            } else if let (true, Some(run_at)) = (job.recurring, next_slot) {
                (live(paused_or("ready"), run_at, true, reason), "failed")
            } else if requests.stop {
                (live("paused", job.run_at, true, reason), "failed")
            } else {
                (finish("failed", reason), "failed")
            }
        }
    }
}

/// Wakes producers on notifications of new due jobs; reconnects when the connection drops.
async fn listen(
    pool: sqlx::PgPool,
    executors: HashMap<&'static str, Arc<ExecutorState>>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "could not listen for new jobs; polling meanwhile");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        delay = Duration::from_millis(100);
        // Jobs may have come while no one listened.
        for e in executors.values() {
            e.wake.notify_one();
        }
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) => {
                        if let Some(e) = executors.get(n.payload()) {
                            e.wake.notify_one();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                        break;
                    }
                },
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Returns expired leases to the pool (or ends their jobs when attempts are spent).
async fn rescue(shared: Arc<Shared>, executors: Vec<Arc<ExecutorState>>, every: Duration) {
    let backoffs: HashMap<&str, Backoff> = executors
        .iter()
        .map(|e| (e.registration.executor, e.registration.options.backoff))
        .collect();
    loop {
        // The rescuer keeps the clock's offset fresh (a host's clock drifts, or is set).
        if shared.clock.stale()
            && let Err(e) = shared.clock.sync(&shared.pool).await
        {
            tracing::debug!(error = %e, "could not read the database's clock");
        }
        match rescue_once(&shared, &backoffs, shared.clock.now()).await {
            Ok(n) if n > 0 => {
                tracing::info!(rescued = n, "returned expired leases to the pool");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for expired leases"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.soft.cancelled() => return,
        }
    }
}

/// One pass of the rescuer: up to 1000 expired leases. Safe when many workers run it at once:
/// the lease guard lets one write win.
async fn rescue_once(
    shared: &Shared,
    backoffs: &HashMap<&str, Backoff>,
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    let expired = db::job_expired_leases(&shared.pool, now, 1000).await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let outcomes: Vec<Outcome> = expired
        .iter()
        .map(|l| {
            let input = OutcomeInput {
                id: l.id,
                token: l.lease_token,
                revision: l.revision,
                recurring: l.recurring,
                run_at: l.run_at,
                slot_at: l.slot_at,
                attempt: l.attempt,
                max_attempts: l.max_attempts,
                start_at: l.start_at,
            };
            let backoff = backoffs
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
                shared.schedule(&l.expr).as_ref(),
                backoff,
            )
            .0
        })
        .collect();
    let n = completer::write(&shared.pool, outcomes, &shared.metrics, &shared.clock).await;
    shared
        .metrics
        .rescued
        .fetch_add(n as u64, Ordering::Relaxed);
    Ok(expired.len())
}

/// How long a maintenance step waits for a lock on the history before it gives up until its
/// next try: creating or dropping a partition needs the history to itself for a moment, and
/// while it waits behind a long search every job's finish would wait behind it.
const MAINTENANCE_LOCK_TIMEOUT: &str = "200ms";
/// How often maintenance runs.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// How soon maintenance tries again after a step failed or gave up.
const MAINTENANCE_RETRY: Duration = Duration::from_secs(60);

/// Keeps history partitions ahead of time and drops those past the retention, once an hour
/// (sooner again after a step gave up), in one process of the fleet at a time.
async fn maintain(
    pool: sqlx::PgPool,
    retention: Duration,
    clock: Arc<DbClock>,
    stop: CancellationToken,
) {
    loop {
        let wait = match maintain_once(&pool, clock.now(), retention).await {
            Ok(_) => MAINTENANCE_EVERY,
            Err(e) => {
                tracing::warn!(error = %e, "history maintenance did not finish; will try again");
                MAINTENANCE_RETRY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Begins one maintenance step: its own transaction, a lock timeout, and the maintenance lock
/// (`None` when another process holds it: that one does the work).
async fn maintenance_step(
    pool: &sqlx::PgPool,
) -> sqlx::Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>> {
    let mut tx = pool.begin().await?;
    db::lock_timeout_set_local(&mut *tx, MAINTENANCE_LOCK_TIMEOUT).await?;
    if !db::maintenance_try_lock(&mut *tx).await? {
        return Ok(None);
    }
    Ok(Some(tx))
}

/// One maintenance pass; returns the partitions dropped. Each partition is created or dropped
/// in a transaction of its own, which gives up (an error) rather than wait more than
/// [`MAINTENANCE_LOCK_TIMEOUT`] for the history; a step another process is doing is skipped.
pub(crate) async fn maintain_once(
    pool: &sqlx::PgPool,
    now: DateTime<Utc>,
    retention: Duration,
) -> sqlx::Result<Vec<String>> {
    let today = now.date_naive();
    for d in 0..3 {
        let Some(mut tx) = maintenance_step(pool).await? else {
            return Ok(Vec::new());
        };
        db::history_partition_create(&mut *tx, today + chrono::Duration::days(d)).await?;
        tx.commit().await?;
    }
    let keep_days = i64::try_from(retention.as_secs() / 86_400).unwrap_or(i64::MAX);
    let oldest = today - chrono::Duration::days(keep_days);
    let mut dropped = Vec::new();
    for name in db::history_partitions(pool).await? {
        let Some(day) = name
            .strip_prefix("jobs_history_")
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        else {
            continue;
        };
        if day < oldest {
            let Some(mut tx) = maintenance_step(pool).await? else {
                break;
            };
            db::history_partition_drop(&mut *tx, &name).await?;
            tx.commit().await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

//! [`WorkerBuilder`]: a worker's settings, checked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{DEFAULT_SHUTDOWN_GRACE, ExecutorState, Stopper, Worker, heartbeat, producer};
use crate::clock::{DbClock, HostClock};
use crate::completer;
use crate::maintenance::{history, queue, rescuer, unserved};
use crate::registry::Registration;
use crate::{Client, Error, Result};

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
#[derive(Debug, Clone)]
pub struct WorkerBuilder {
    pub(crate) client: Client,
    pub(crate) executors: Option<Vec<String>>,
    pub(crate) registrations: Vec<Registration>,
    pub(crate) concurrency: HashMap<String, usize>,
    pub(crate) settings: Settings,
    pub(crate) host_clock: HostClock,
    pub(crate) states: crate::state::States,
    /// How far ahead of the database's time the worker acts (`testing::run_due_at`).
    pub(crate) ahead: chrono::Duration,
}

/// What a worker runs with: each service's settings, each field set by the [`WorkerBuilder`]
/// method of its name and checked by the service's own `validate`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) producer: producer::Config,
    pub(crate) completer: completer::Config,
    pub(crate) rescuer: rescuer::Config,
    pub(crate) history: history::Config,
    pub(crate) heartbeat: heartbeat::Config,
    pub(crate) unserved: unserved::Config,
    pub(crate) queue: queue::Config,
    pub(crate) shutdown_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            producer: producer::Config::default(),
            completer: completer::Config::default(),
            rescuer: rescuer::Config::default(),
            history: history::Config::default(),
            heartbeat: heartbeat::Config::default(),
            unserved: unserved::Config::default(),
            queue: queue::Config::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl WorkerBuilder {
    /// Refuses settings that would make the worker spin, stall or drop work.
    fn check(&self) -> Result<()> {
        self.settings.producer.validate()?;
        self.settings.completer.validate()?;
        self.settings.rescuer.validate()?;
        self.settings.history.validate()?;
        self.settings.heartbeat.validate()?;
        self.settings.unserved.validate()?;
        self.settings.queue.validate()?;
        if let Some((executor, _)) = self.concurrency.iter().find(|(_, n)| **n == 0) {
            return Err(Error::InvalidArgument {
                field: "concurrency",
                reason: format!("0 for executor `{executor}`: it would never run a job"),
            });
        }
        Ok(())
    }

    /// Gives handlers a value of the application's (a pool, a client, a configuration), which
    /// they take as a [`State<T>`](crate::State) argument; one value per type (a second of the
    /// same type replaces the first). Each execution gets a clone: wrap what should be shared
    /// in an `Arc` (pools and HTTP clients already are).
    ///
    /// ```no_run
    /// # #[derive(Clone)] struct Mailer;
    /// # fn demo(client: qron::Client, pool: sqlx::PgPool) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).state(pool).state(Mailer).build()?;
    /// # Ok(()) }
    /// ```
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
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

    /// Serves executor `http` with the HTTP executor (feature `http-executor`): each job is
    /// sent to the URL in its meta, at most `settings`' concurrency at once (see
    /// [`HttpExecutor`](crate::HttpExecutor)).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client)
    ///     .http_executor(qron::HttpExecutor::new().concurrency(20))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "http-executor")]
    pub fn http_executor(self, settings: crate::HttpExecutor) -> Self {
        let n = settings.concurrency;
        self.register(settings.registration())
            .concurrency(crate::HTTP_EXECUTOR, n)
            .state(settings)
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
        self.settings.producer.poll_interval = d;
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
        self.settings.producer.lease_ahead = d;
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
        self.settings.completer.flush_interval = d;
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
        self.settings.completer.batch_size = n;
        self.settings.producer.batch_size = n;
        self
    }

    /// The most jobs, per executor, that the worker holds leased but not yet started (default
    /// [`DEFAULT_PREFETCH`](crate::DEFAULT_PREFETCH); 0 leases only into free slots).
    ///
    /// A lease asks for the free slots plus a reserve, which starts as slots free while the
    /// next lease is on its way: at ordinary concurrency (10–100) that is what keeps the slots
    /// busy with short jobs, instead of one round trip per few jobs. The reserve follows the
    /// executor's pace: never more jobs than its slots start within 250 ms at the recent
    /// pace, none before a first job has finished, so slow jobs are not hoarded by one worker.
    /// A job's lease covers 2 s in the reserve; one that waited longer is handed back
    /// unstarted, as is the whole reserve at a soft stop.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).prefetch(100).build()?;
    /// # Ok(()) }
    /// ```
    pub fn prefetch(mut self, n: usize) -> Self {
        self.settings.producer.prefetch = n;
        self
    }

    /// The most bytes of payload and meta (as JSON text) the worker holds in jobs it leased and
    /// has not finished, across its executors: waiting for a slot or running (default
    /// [`DEFAULT_MEMORY_BUDGET`](crate::DEFAULT_MEMORY_BUDGET), 64 MiB; at least 1).
    ///
    /// The bound `prefetch` and the concurrency set is in jobs; this one is in bytes, so that
    /// large payloads cannot pull gigabytes into one process. Each lease takes jobs in order
    /// until the next would go over what is left. When it binds, fewer jobs run than the
    /// concurrency allows; an executor holding none of its jobs always takes one, so a job
    /// larger than the budget still runs, alone.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).memory_budget(256 * 1024 * 1024).build()?;
    /// # Ok(()) }
    /// ```
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.settings.producer.memory_budget = bytes;
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
        self.settings.completer.backlog_limit = n;
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
        self.settings.rescuer.interval = d;
        self
    }

    /// How long a lease lasts before the worker must renew it (default
    /// [`DEFAULT_LEASE_TIME`](crate::DEFAULT_LEASE_TIME), 30 s; at least 1 s, at most
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)).
    ///
    /// A job's `timeout` is its run-time limit; its lease is the shorter of the two. While a
    /// handler runs past a lease time, the worker renews its lease every third of it, so a job
    /// of a worker that dies (killed, its host lost) goes back to the pool within about a lease
    /// time, not at the end of its run-time limit. A lease that could not be renewed for a
    /// lease time (the database out of reach) may be taken over: the handler's
    /// [`Context::cancelled`](crate::Context::cancelled) then fires.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).lease_time(std::time::Duration::from_secs(10)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn lease_time(mut self, d: Duration) -> Self {
        self.settings.heartbeat.lease_time = d;
        self
    }

    /// How long the oldest due job of an executor that no running worker serves may wait
    /// before it is reported (default [`DEFAULT_UNSERVED_AFTER`](crate::DEFAULT_UNSERVED_AFTER),
    /// 5 minutes; at least 1 s, at most a year). Workers register in `qron.workers` with the executors they
    /// serve; one process of the fleet looks, once a minute (or this often, when shorter), for
    /// executors with due jobs and no live worker, and logs each at `warn` with how many jobs
    /// wait and since when: a typo in an executor's name, or a worker not deployed, otherwise
    /// leaves jobs waiting unnoticed.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).unserved_after(std::time::Duration::from_secs(60)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn unserved_after(mut self, d: Duration) -> Self {
        self.settings.unserved.after = d;
        self
    }

    /// How often the worker refreshes the queue gauges of its executors (`qron_queue_depth`,
    /// `qron_queue_oldest_due_seconds`: see [`telemetry`](crate::telemetry)); default
    /// [`DEFAULT_QUEUE_REFRESH`](crate::telemetry::DEFAULT_QUEUE_REFRESH), at least 1 ms. One
    /// query per refresh per worker, whatever reads the gauges.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) -> qron::Result<()> {
    /// let worker = qron::Worker::builder(client).queue_refresh(std::time::Duration::from_secs(30)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn queue_refresh(mut self, d: Duration) -> Self {
        self.settings.queue.every = d;
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
        self.settings.shutdown_grace = d;
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
        self.settings.completer.flush_timeout = d;
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
        self.settings.history.retention = d;
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
    /// has no registered job, or a setting is out of range (an interval under 1 ms or over a
    /// day, a concurrency, batch size or backlog limit of 0, a retention under a day or over a
    /// hundred years, a lease ahead over a minute, a lease time over
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)).
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
        // A handler's state is checked now, not at its first job.
        for r in &selected {
            if let Some(missing) = r.states.iter().find(|s| !self.states.contains((s.id)())) {
                return Err(Error::InvalidArgument {
                    field: "state",
                    reason: format!(
                        "job `{}` (executor `{}`) takes `State<{}>`, and the worker has none: \
                         give it one with `.state(value)` (in a test, pass that builder to \
                         `qron::testing::run_due_with` or `qron::testing::drain_with`)",
                        r.type_name,
                        r.executor,
                        (missing.name)()
                    ),
                });
            }
        }
        let executors = selected
            .into_iter()
            .map(|r| {
                let concurrency = self
                    .concurrency
                    .get(r.executor)
                    .copied()
                    .unwrap_or(r.options.concurrency);
                Arc::new(ExecutorState::new(
                    r,
                    concurrency,
                    self.settings.producer.prefetch,
                ))
            })
            .collect();
        Ok(Worker {
            client: self.client,
            executors,
            settings: self.settings,
            clock: Arc::new(DbClock::new(self.host_clock).ahead(self.ahead)),
            metrics: Arc::default(),
            stopper: Stopper {
                soft: CancellationToken::new(),
                hard: CancellationToken::new(),
            },
            states: Arc::new(self.states),
            id: format!(
                "{}:{}:{}",
                hostname(),
                std::process::id(),
                Utc::now().timestamp_micros()
            ),
        })
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}

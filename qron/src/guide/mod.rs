//! Guides: short pages on using qron well. Documentation only; nothing here is code to call.
//!
//! - [`delivery`]: what qron promises about running a job, and how to make handlers safe to
//!   run twice.
//! - [`state`]: carrying state from one execution to the next (resumable work, checkpoints).
//! - [`testing`]: testing code that enqueues jobs, and the handlers themselves.
//! - [`flow`]: flow control: fairness between owners, priorities, unique jobs, concurrency and
//!   rate limits.
//! - [`production`]: migrations, shutdown, retention, scaling out, operating and observing.
//! - [`dashboard`]: the web dashboard and the management API: what they show, how to mount
//!   them, and how to protect them.
//! - [`workflows`]: jobs that wait for other jobs, outputs passed along, and workflows.

pub mod workflows;

pub mod delivery {
    //! # Delivery guarantees and idempotency
    //!
    //! **At least once.** A worker leases a due job (`FOR UPDATE SKIP LOCKED`: no two workers
    //! lease the same job at once), runs its handler, and writes the outcome guarded by the
    //! lease. A worker that dies (killed, out of memory, its host gone) leaves the lease to run
    //! out; the rescuer hands the job out again, counting the attempt. So a handler may run
    //! again after it did its work but before its outcome was stored: **make handlers
    //! idempotent**.
    //!
    //! What qron guarantees:
    //! - A job created in a transaction exists exactly when the transaction commits
    //!   (`Email::schedule_with(&mut tx, …)`, [`Client::create_with`](crate::Client::create_with)):
    //!   no job for a rolled-back sign-up, no sign-up without its job.
    //! - A job is never lost: a crash, a lost connection or a killed worker at any moment leaves
    //!   it live, to be leased again (the reliability suite kills workers mid-batch to show it).
    //! - A stale outcome changes nothing: an outcome written after the job was handed to another
    //!   worker, or cancelled, is refused by its lease token.
    //! - A recurring job's next occurrence is scheduled by the outcome of the current one, in
    //!   the same statement: an occurrence is neither skipped nor doubled by a crash.
    //!
    //! How to be idempotent:
    //! - Key the side effect by the job: [`Context::id`](crate::Context::id) and, for a
    //!   recurring job, [`Context::scheduled_at`](crate::Context::scheduled_at) (the slot)
    //!   identify one occurrence across its attempts. Store them with the effect under a unique
    //!   constraint, or pass them as the idempotency key of the API you call.
    //! - Do the database work of a job in one transaction with a check of whether it was done.
    //! - Give a job that must exist once a **unique name** ([`NewJob::name`](crate::NewJob)):
    //!   names are unique per owner and executor among live jobs, and
    //!   [`OnConflict::Keep`](crate::OnConflict) makes "schedule it at every start-up" safe.
    //!
    //! ```no_run
    //! # use serde::{Deserialize, Serialize};
    //! # #[derive(Serialize, Deserialize)] struct Order { id: i64 }
    //! #[qron::job(executor = "invoice")]
    //! async fn invoice(ctx: qron::Context, msg: Order) -> Result<(), qron::JobError> {
    //!     // One invoice per job, however many times the handler runs.
    //!     let key = format!("invoice-{}", ctx.id());
    //!     # let _ = (key, msg.id);
    //!     Ok(())
    //! }
    //! ```
    //!
    //! **Timeouts.** A job's `timeout` bounds one execution; past it the handler is dropped and
    //! the attempt retried. Its lease lasts the worker's
    //! [`lease_time`](crate::WorkerBuilder::lease_time) and is renewed while it runs, so a dead
    //! worker's long job comes back within about a lease time. A handler is told to wrap up
    //! through [`Context::cancelled`](crate::Context::cancelled) before its limit, at a soft
    //! stop, when its lease is lost, and when an operator cancels it.
    //!
    //! **Order.** Due jobs of an executor are leased oldest run time first, but run
    //! concurrently, on many workers: qron does not promise an order of completion. Chain work
    //! by enqueueing the next job from the handler, in the handler's own transaction.
}

pub mod state {
    //! # State between runs
    //!
    //! A job's payload is its state. A handler may replace it for the next execution with
    //! [`Context::set_payload`](crate::Context::set_payload): the new payload is stored with
    //! the outcome, atomically. With it a job becomes a small resumable workflow.
    //!
    //! - **A recurring job that remembers**: a poller keeps the cursor of what it saw last.
    //! - **A checkpoint**: a long job saves its progress and asks to run again at once with
    //!   [`JobError::retry_in`](crate::JobError::retry_in)`(Duration::ZERO)` (a snooze: the
    //!   attempt is not counted). It resumes from the checkpoint after a stop, a deploy or a
    //!   crash (from the last stored one).
    //! - **A new schedule**: [`Context::reschedule`](crate::Context::reschedule) moves the job
    //!   to another expression (a one-off job becomes recurring, or the other way round), and
    //!   [`Context::stop`](crate::Context::stop) pauses it until an operator restarts it.
    //!
    //! ```no_run
    //! use std::time::Duration;
    //! use serde::{Deserialize, Serialize};
    //!
    //! #[derive(Serialize, Deserialize)]
    //! struct Progress { next_row: u64 }
    //!
    //! #[qron::job(executor = "export", timeout = "1h")]
    //! async fn export(ctx: qron::Context, mut job: Progress) -> Result<(), qron::JobError> {
    //!     while job.next_row < 1_000_000 {
    //!         if ctx.is_cancelled() {
    //!             // Stopping, or near the limit: save the place, run again from it.
    //!             ctx.set_payload(&job)?;
    //!             return Err(qron::JobError::retry_in(Duration::ZERO));
    //!         }
    //!         job.next_row += 1_000; // … one chunk of work …
    //!     }
    //!     Ok(())
    //! }
    //! ```
    //!
    //! An edit made by an operator while the job runs wins over the handler's: a payload
    //! updated through [`Client::update`](crate::Client::update) is kept, and the handler's
    //! `set_payload` of that execution is dropped.
}

pub mod testing {
    //! # Testing
    //!
    //! With the `testing` feature (in `[dev-dependencies]`), [`crate::testing`] gives each test
    //! a fresh, migrated database (a copy of a template: fast), on `DATABASE_URL` or on a
    //! throwaway server started from the machine's PostgreSQL binaries.
    //!
    //! ```toml
    //! [dev-dependencies]
    //! qron = { version = "0.1", features = ["testing"] }
    //! ```
    //!
    //! - **Code that enqueues**: run it against the test's database, then
    //!   `assert_enqueued::<Email>(&pool, |msg| msg.user_id == 7)`: it reads through the
    //!   connection you give, so it sees the test's own transaction.
    //! - **The jobs it enqueued, end to end**: `run_due::<Email>(&client)` runs the due jobs of
    //!   one job type with a real worker and returns each job as it ended;
    //!   `run_due_at::<Report>(&client, tomorrow)` runs what will be due then. A job that takes
    //!   `State<T>` runs with `run_due_with::<Email>(Worker::builder(client).state(mailer))`
    //!   (and `run_due_at_with`).
    //! - **A handler alone**: it is a plain `async fn`; call it with
    //!   [`Context::detached`](crate::Context::detached) (and `.with_state(..)` for its
    //!   `State` arguments, `.already_cancelled()` for its wrap-up path).
    //!
    //! ```no_run
    //! # use serde::{Deserialize, Serialize};
    //! # #[derive(Serialize, Deserialize, Debug)] struct Welcome { user_id: i64 }
    //! # #[qron::job(executor = "email")]
    //! # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
    //! # async fn sign_up(client: &qron::Client, _email: &str) -> qron::Result<()> {
    //! #     Email::schedule_with(client, "@after 0s", Welcome { user_id: 1 }).await?;
    //! #     Ok(())
    //! # }
    //! // #[tokio::test]
    //! async fn sign_up_sends_a_welcome() {
    //!     let db = qron::testing::TestDb::new().await.unwrap();
    //!     let client = db.client();
    //!     sign_up(&client, "ada@example.com").await.unwrap(); // the code under test
    //!     qron::testing::assert_enqueued::<Email>(db.pool(), |w| w.user_id == 1).await;
    //!     let ran = qron::testing::run_due::<Email>(&client).await.unwrap();
    //!     assert_eq!(ran.succeeded(), 1);
    //! }
    //! ```
}

pub mod flow {
    //! # Flow control
    //!
    //! ## Fairness between owners
    //!
    //! Nothing to set: a worker's lease is shared between the owners (tenants) with due jobs of
    //! the executor, in turn. Each owner gives its oldest due jobs, one job of each owner, then a
    //! second of each, and so on (at most 32 owners a lease; the next lease goes on after the
    //! last one served). One owner's backlog of a million jobs does not hold back another
    //! owner's ten: they start within a second. A paused owner's jobs are skipped at the cost of
    //! one index descent, and jobs due later (a daily job per tenant) cost nothing: a job
    //! written more than 2 s ahead of its run time stays out of the lease index until shortly
    //! before it is due. A worker starts one lease's jobs in the lease's rounds, not in queue
    //! order: an owner whose jobs are older does not go first.
    //!
    //! **Weights.** The operator may weigh owners: an owner of weight 3 gets three jobs of a
    //! lease for each one of an owner of weight 1, while both have due jobs
    //! ([`Client::set_owner_weight`](crate::Client::set_owner_weight), 1 to
    //! [`MAX_OWNER_WEIGHT`](crate::MAX_OWNER_WEIGHT); GraphQL's `setOwnerWeight` for the
    //! `admin` scope; `qron owners weight`).
    //!
    //! **An owner's own cap.** An owner may cap its own jobs of an executor: at most N leased at
    //! once across every worker ([`Client::set_owner_cap`](crate::Client::set_owner_cap),
    //! GraphQL's `setOwnerCap`, `qron executors cap`), when its own downstream takes no more.
    //! The count comes from the leased rows (`cap_key`), read under a lock of that owner's
    //! that a lease tries without waiting: a lease that finds it taken leaves that owner's jobs
    //! to the lease holding it, and other owners' leases pay nothing. A lease whose share an
    //! owner's cap cuts hands what is left to the others, by weight.
    //!
    //! ```no_run
    //! # async fn demo(client: qron::Client) -> qron::Result<()> {
    //! client.set_owner_weight("acme", 3).await?;
    //! client.owner("acme").set_owner_cap("email", 5).await?;
    //! for e in client.owner("acme").executors().await? {
    //!     if let Some(cap) = e.owner_cap {
    //!         tracing::info!(executor = %e.executor, cap, in_use = e.owner_cap_taken, "acme's cap");
    //!     }
    //! }
    //! # Ok(()) }
    //! ```
    //!
    //! ## Priorities
    //!
    //! A job has a priority from 0 (the highest) to [`LOWEST_PRIORITY`](crate::LOWEST_PRIORITY)
    //! (9), [`DEFAULT_PRIORITY`](crate::DEFAULT_PRIORITY) (5) unless the job
    //! ([`NewJob::priority`](crate::NewJob::priority), `.priority(0)` on a typed enqueue) or its
    //! executor (`#[qron::job(priority = 1)]`) says otherwise. Among an owner's due jobs of an
    //! executor, a worker takes higher priorities first.
    //!
    //! No backlog starves a lower priority: a job of priority `q` is passed over only by jobs of
    //! priority `p < q` due less than `(q - p) / 9` of the client's aging bound after it
    //! ([`ClientBuilder::priority_aging`](crate::ClientBuilder::priority_aging), 10 minutes by
    //! default). Once it has waited that long, nothing due later goes before it. It costs no
    //! write: each owner's jobs are leased in the order of their run time put back by their
    //! priority (`lease_at`, a stored generated column in the lease index).
    //!
    //! Fairness between owners comes first: an owner's priorities order its own jobs, not
    //! another owner's. A job enqueued with a higher priority than a backlog the worker is
    //! working through starts within a poll interval (a second by default).
    //!
    //! ```no_run
    //! # use serde::{Deserialize, Serialize};
    //! # #[derive(Serialize, Deserialize)] struct Email { to: String }
    //! #[qron::job(executor = "email", priority = 3)]
    //! async fn send_email(msg: Email) -> Result<(), qron::JobError> { Ok(()) }
    //!
    //! # async fn demo() -> qron::Result<()> {
    //! // A password reset goes before the newsletter's backlog.
    //! SendEmail::schedule("@after 0s", Email { to: "ada@example.com".into() })
    //!     .priority(0)
    //!     .await?;
    //! # Ok(()) }
    //! ```
    //!
    //! ## Unique jobs
    //!
    //! A job can be unique among its owner's jobs of the same executor by a key: nothing else
    //! ([`Unique::by_executor`](crate::Unique::by_executor)), all of its payload
    //! ([`Unique::by_payload`](crate::Unique::by_payload)) or some of its fields
    //! ([`Unique::by_keys`](crate::Unique::by_keys)); optionally within a period (once an
    //! hour), and for as long as the job that holds the key is in one of the counted statuses
    //! (ready, running, stopped or succeeded by default: a failed or cancelled job lets a new
    //! one in).
    //!
    //! An enqueue whose key is held creates nothing and returns the holder, flagged
    //! [`duplicate`](crate::JobRow::duplicate); a batch says it of each job
    //! ([`Client::create_many_report`](crate::Client::create_many_report)). The database
    //! decides, in the statement that inserts the job: of any number of concurrent enqueues of
    //! one key, from any number of processes and in the callers' own transactions, one creates
    //! the job. A key costs one row in `qron.job_uniques` and an index entry; jobs without a key
    //! pay nothing.
    //!
    //! ```no_run
    //! use std::time::Duration;
    //! use serde::{Deserialize, Serialize};
    //!
    //! #[derive(Serialize, Deserialize)]
    //! struct Customer { customer_id: i64, reason: String }
    //!
    //! #[qron::job(executor = "sync")]
    //! async fn sync_customer(msg: Customer) -> Result<(), qron::JobError> { Ok(()) }
    //!
    //! # async fn demo() -> qron::Result<()> {
    //! // At most one sync per customer waiting or running, whatever the reason; and at most
    //! // one an hour.
    //! let job = SyncCustomer::schedule("@after 0s", Customer { customer_id: 7, reason: "webhook".into() })
    //!     .unique(qron::Unique::by_keys(["customer_id"]).period(Duration::from_secs(3600)))
    //!     .await?;
    //! if job.duplicate {
    //!     tracing::info!(job = job.id, "a sync of this customer is already planned");
    //! }
    //! # Ok(()) }
    //! ```
    //!
    //! Over GraphQL: `createJob(job: { …, unique: { by: KEYS, keys: ["customer_id"],
    //! periodSeconds: 3600 } }) { id duplicate }`; from the terminal:
    //! `qron jobs create sync '@after 0s' --payload '{"customer_id":7}' --unique keys
    //! --unique-keys customer_id --unique-period 1h`.
    //!
    //! A named job is unique by its name already ([`NewJob::name`](crate::NewJob::name)): a
    //! job has a name or a unique key, not both. A job that stopped holding its key (it failed,
    //! say) and is later retried or restarted by an operator is not checked against a job that
    //! took the key meanwhile.
    //!
    //! ## Global concurrency limits
    //!
    //! An executor can be limited across every worker process on the database: at most N of
    //! its jobs at once in all, and at most M per partition key, the job's owner or a field of
    //! its payload ("at most 2 per customer"). The operator sets them at run time
    //! ([`Client::set_executor_limits`](crate::Client::set_executor_limits), GraphQL's
    //! `setExecutorLimits` for the `admin` scope, `qron executors limit`, the dashboard's
    //! overview); they are stored in `qron.executor_limits`, and every worker is told at once.
    //! A tenant's `operate` scope may not change them: they bind every tenant's jobs.
    //!
    //! ```no_run
    //! use qron::ExecutorLimits;
    //! # async fn demo(client: qron::Client) -> qron::Result<()> {
    //! // The provider takes 20 connections, and 2 per customer.
    //! client
    //!     .set_executor_limits("sync", ExecutorLimits::new().concurrency(20).per_field("customer_id", 2))
    //!     .await?;
    //! for e in client.executors().await? {
    //!     if e.is_at_limit() {
    //!         tracing::info!(executor = %e.executor, due = e.due, "due jobs wait for a place");
    //!     }
    //! }
    //! client.clear_executor_limits("sync").await?;
    //! # Ok(()) }
    //! ```
    //!
    //! How it holds:
    //! - **Counted from the leased rows**, not from a counter: a job holds a place from its
    //!   lease to its outcome (the lease writes its partition key on the row). Nothing can
    //!   drift or leak: a worker that dies frees its places when its leases run out, never
    //!   earlier.
    //! - **One lease at a time near the limit** per limited executor, across every process (an
    //!   advisory lock, held for the lease statement alone), counting the places with a fresh
    //!   snapshot: two workers never both take the last place. Far from a limit in all (no
    //!   partition, no rate), up to 8 leases go at once, each in a lane that shares the lock
    //!   and leaves room for the other lanes' leases (1,000 jobs each), so that the leases made
    //!   at once never take more than the limit.
    //! - **While the limits bind**, a worker leases only into free slots and due jobs (nothing
    //!   waits in its buffer holding a place), and its jobs' outcomes are written by its next
    //!   lease, in the same statement (or transaction, for outcomes that keep jobs live), which
    //!   takes the places they free: no place stays free between. While they have room, the
    //!   executor runs as if unlimited (leases ahead, outcomes in batches), at a cost of about
    //!   12% of its throughput measured on no-op jobs (BENCHMARKS.md).
    //! - **Under a limit per key, a place passes to a successor** without a round trip: with
    //!   the outcomes, a worker's lease asks for the next due job of each running job's owner
    //!   and key, leased to take that job's place (one place for the two: the places are the
    //!   distinct places of the held rows) and started in its slot the moment it ends. The end
    //!   and the next successor then go to the database together, while the successor runs. A
    //!   limit lowered below the places held passes none on; a successor that cannot start
    //!   within its lease is handed back. A job written under a limit per key carries its key
    //!   in an index, so that a key's next job is found (and locked before the lease waits for
    //!   the limit's lock) wherever it lies in the queue; the places the ended jobs freed are
    //!   taken again by their keys' next jobs the same way. The key is a way in, never the
    //!   rule: each job's key is checked as its payload has it.
    //! - **Partitioned by a payload field**, the jobs of a full key are passed over before they
    //!   are locked: a job of a key with room is found wherever it is in the queue, at the cost
    //!   of reading past the due jobs of full keys ahead of it.
    //!
    //! Limits out of range (0, or over [`MAX_EXECUTOR_LIMIT`](crate::MAX_EXECUTOR_LIMIT)), a
    //! field name that cannot be stored, or limits that limit nothing are refused naming the
    //! field, and nothing is written. A limit set while jobs run counts them at once; the jobs a
    //! worker held leased but not started are handed back. A lease that was already on its way
    //! when the limit was set may still take its jobs (at most one lease's, once).
    //!
    //! ## Rate limits
    //!
    //! Part of the same limits: at most N starts per period across every worker, in all or per
    //! owner or payload field ("100 requests a minute per customer"), with a partition of its
    //! own (a concurrency limit per owner and a rate per customer go together).
    //!
    //! ```no_run
    //! use qron::{ExecutorLimits, RateLimit};
    //! # async fn demo(client: qron::Client) -> qron::Result<()> {
    //! // The provider allows 100 calls a minute per customer, and 20 connections.
    //! let rate = RateLimit::per_minute(100).per_field("customer_id");
    //! client
    //!     .set_executor_limits("sync", ExecutorLimits::new().concurrency(20).rate(rate))
    //!     .await?;
    //! for e in client.executors().await? {
    //!     if e.rate_spent > 0 {
    //!         tracing::info!(executor = %e.executor, keys = e.rate_spent, "keys out of starts");
    //!     }
    //! }
    //! # Ok(()) }
    //! ```
    //!
    //! How it holds:
    //! - **A bucket per key, not per job**: a GCRA cell (`qron.rate_buckets`, one row per
    //!   executor and key holding the time the bucket is paid up to), read and moved once per
    //!   lease, under the executor's limit lock and in the lease's own statement: a lease of 50
    //!   jobs writes each of their keys' rows once.
    //! - **A start counts at its lease.** A rate-limited executor's worker leases only due jobs
    //!   into free slots, so a start follows its lease within milliseconds; a retry is a start.
    //! - **The steady rate, and a small burst**: starts are spaced `period / N` apart, and up
    //!   to the burst (a twentieth of N by default, [`RateLimit::burst`](crate::RateLimit::burst))
    //!   may go at once after a quiet spell. Any window of one period holds at most
    //!   `N + burst - 1` starts; over 30 s, four worker processes under 100 a second started
    //!   3,004 jobs, and at most 104 in any second (`reliability::limits`).
    //! - **A key out of starts is passed over** before its jobs are locked, as a full key is:
    //!   the other keys' jobs behind it start.
    //! - A worker whose lease the rate cut short leases again when its bucket has refilled a
    //!   burst (at most a poll interval later), or when told of new jobs.
    //!
    //! A period under a second or over 366 days, a rate of 0 or over a million, a burst over
    //! the rate: refused naming the field (`rate_period`, `rate_limit`, `rate_burst`), nothing
    //! written. Setting an executor's limits again starts its buckets afresh. Buckets that
    //! have refilled are dropped by the hourly maintenance pass (a missing row is a full
    //! bucket).
    //!
}

pub mod production {
    //! # Running in production
    //!
    //! **Migrations.** [`migrate`](crate::migrate) creates or upgrades qron's schema; it is
    //! idempotent and safe when many processes start at once (they take turns on an advisory
    //! lock). Call it at start-up, or run [`migrator`](crate::migrator) from your own migration
    //! step. Two applications sharing a database each choose a schema with
    //! [`set_schema`](crate::set_schema).
    //!
    //! **Shutdown.** [`Worker::run_all`](crate::Worker::run_all) and
    //! [`Worker::run_until_signal`](crate::Worker::run_until_signal) stop on SIGTERM or
    //! Ctrl-C: leasing stops, jobs leased but not started are handed back at once, running
    //! handlers get [`shutdown_grace`](crate::WorkerBuilder::shutdown_grace) (30 s) to finish
    //! (their `ctx.cancelled()` fires), and every outcome is written before the process exits
    //! (within [`flush_timeout`](crate::WorkerBuilder::flush_timeout) if the database is
    //! gone: those jobs come back by their leases). Set your orchestrator's termination grace
    //! above the sum.
    //!
    //! **Retention.** Finished one-off jobs stay in a history partitioned by day, dropped a
    //! partition at a time after [`history_retention`](crate::WorkerBuilder::history_retention)
    //! (30 days): no `DELETE` storms, no bloat. An executor whose successes are not worth
    //! keeping declares `#[qron::job(history = "failed")]` (or `"none"`), which also makes each
    //! finish cheaper.
    //!
    //! **Scaling out.** Run as many worker processes as you like, on as many hosts, against
    //! the same database; each leases with `SKIP LOCKED` and wakes on `LISTEN/NOTIFY`. Size
    //! `concurrency` per executor to what its handlers wait on (10–100 is usual; a worker
    //! leases ahead of its free slots, so throughput holds at these settings), and the pool to
    //! the handlers' own needs plus a few connections for the worker (it opens up to four more
    //! of its own for leasing). Give slow and fast work different executors, so that one
    //! cannot hold the other's slots. Within an executor, owners (tenants) take turns: each
    //! lease is shared between the owners with due jobs, one job of each, then a second of
    //! each, so that one owner's backlog does not hold back another's jobs.
    //!
    //! **Operating.** [`Client::retry`](crate::Client::retry) runs a failed job again,
    //! [`Client::cancel`](crate::Client::cancel) ends a job (telling a running handler),
    //! [`Client::pause_executor`](crate::Client::pause_executor) holds an owner's jobs of an
    //! executor while a provider is down (one row, whatever the backlog), [`Client::run_now`](crate::Client::run_now) runs a
    //! waiting job now, and [`Client::executors`](crate::Client::executors) shows each
    //! executor's queue, lateness, pause and workers. Workers register in `qron.workers`; jobs
    //! of an executor no worker serves are reported at `warn`.
    //!
    //! **Observing.** Logs and spans go through `tracing` (`qron.enqueue`, `qron.job` with the
    //! outcome, duration and lateness); metrics through the `metrics` facade; traces from the
    //! request that enqueued a job to its executions with the `opentelemetry` feature. See
    //! [`telemetry`](crate::telemetry).
    //!
    //! ```no_run
    //! # async fn demo(client: qron::Client) -> qron::Result<()> {
    //! use std::time::Duration;
    //! qron::Worker::builder(client)
    //!     .concurrency("email", 50)
    //!     .shutdown_grace(Duration::from_secs(20))
    //!     .history_retention(Duration::from_secs(14 * 86_400))
    //!     .build()?
    //!     .run_until_signal()
    //!     .await
    //! # }
    //! ```
}

#[cfg(feature = "dashboard")]
pub mod dashboard {
    //! # The dashboard and the management API
    //!
    //! With the `dashboard` feature, [`Api::dashboard`](crate::http::Api::dashboard) is an axum
    //! `Router` of server-rendered pages (no Node build step, no CDN: its stylesheet and its one
    //! small script are in the binary); with `http`, [`Api::router`](crate::http::Api::router)
    //! is the GraphQL API with GraphiQL and the remote workers' endpoints. Both answer for one
    //! owner (tenant) at a time, the one the application's access policy gives each request.
    //!
    //! ## What it shows
    //!
    //! | page | what |
    //! |---|---|
    //! | `/` (the overview) | per executor: live jobs by status (retrying ones apart: ready jobs on a later attempt), each count a link to its list; the jobs that ran and failed over the last hour (a job *ran* when its latest run started within the hour and has ended, and *failed* when that run failed: never more than ran, and a job counts once however often it ran); how late the oldest due job is, paused or not (with Pause / Resume), how many workers serve it, its limits and the owner's cap; live over server-sent events. The figures come from one query for every viewer, every [refresh interval](crate::http::Api::refresh), only while someone looks. Below, charts over the last hour or day (`?range=day`): runs and failures, lateness, and the due jobs waiting under limits, as SVG, from the figures each worker adds every 10 s (`qron.executor_stats`, kept two days) |
    //! | `/jobs` | the live jobs of the listed executor counted by status, each count a link to its list (the overview's shared figures: the list never makes the database count; finished jobs are listed, not counted); the jobs, newest first, with the search's filters (executor, status, name, creation and run times, meta) and keyset pages; retry, cancel, run now, stop, restart and delete on a selection |
    //! | `/jobs/{id}` | one job: payload and meta (an `http` job's header values redacted), the expression and its description, attempts and the error of each, its last runs, the next 10 runs; its actions |
    //! | `/upcoming` | how many runs fall in each minute of the next hour, day or week, per executor, the busiest minute named |
    //! | `/playground` | an expression checked as you type: the parser's error at its position, or its description and next runs in any zone |
    //!
    //! ## How to mount it
    //!
    //! ```no_run
    //! # async fn demo(client: qron::Client) -> std::io::Result<()> {
    //! use qron::http::{Api, Owner};
    //! let api = Api::new(client).owner(|req| {
    //!     // your session, token or proxy header: see "How to protect it"
    //! #   let _ = req;
    //!     Ok::<_, axum::http::StatusCode>(Owner::operate("acme"))
    //! });
    //! let app = axum::Router::new()
    //!     .nest("/admin/api", api.clone().router()) // GraphiQL at /admin/api
    //!     .nest_service("/admin", api.dashboard()); // the overview at /admin and /admin/
    //! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    //! axum::serve(listener, app).await
    //! # }
    //! ```
    //!
    //! Mount the dashboard with `nest_service`: axum's `nest` answers `/admin/` (with the
    //! slash) with 404. Its links are relative to wherever it is mounted. Behind a proxy that
    //! rewrites `Host`, tell it the origin browsers see:
    //! [`Api::public_origin`](crate::http::Api::public_origin) (or
    //! [`Api::trust_forwarded_headers`](crate::http::Api::trust_forwarded_headers)). An open
    //! tab holds a server-sent-events stream: give the API a cancellation token with
    //! [`Api::shutdown_on`](crate::http::Api::shutdown_on) and cancel it when the server shuts
    //! down, or a graceful shutdown waits for every tab to close.
    //!
    //! `qron dev` serves the dashboard at its root and the API at `/api`, on loopback, for
    //! development.
    //!
    //! ## How to protect it
    //!
    //! **Without an access policy, both routers refuse every request with 401.** The
    //! application chooses, once:
    //! - [`Api::owner`](crate::http::Api::owner): a function of the request's head returning an
    //!   [`Owner`](crate::http::Owner) (a tenant and a [`Scope`](crate::http::Scope)), or the
    //!   response that refuses it. A browser sends no bearer token when it navigates: answer
    //!   with a redirect to your login page (`Redirect::to("/login")`), or a
    //!   `WWW-Authenticate: Basic realm="…"` challenge and a 401, so that the browser asks.
    //! - a tower layer of your own (your session middleware) that inserts an `Owner` into the
    //!   request's extensions: the place for a check that needs `.await`.
    //! - [`Api::allow_anonymous`](crate::http::Api::allow_anonymous): every request is the
    //!   client's owner with every scope, for a trusted machine only.
    //!
    //! The scope decides what a viewer may do: `read` sees every page without its actions,
    //! `operate` may act, `worker` sees nothing (it may only lease, complete and renew).
    //! [`Api::read_only`](crate::http::Api::read_only) caps everyone to `read`.
    //!
    //! The actions are forms posted to the dashboard, accepted only from its own pages: the
    //! browser's `Origin` must be the dashboard's (its `Host`, or its public origin),
    //! `Sec-Fetch-Site` must say `same-origin` when sent, and the form must carry the token of
    //! the browser's `SameSite=Strict`, `HttpOnly` cookie (`Secure` under https). So a page on
    //! another site cannot make a signed-in operator's browser act. Every answer carries a
    //! content security policy (this origin's scripts and styles only, no framing), `nosniff`
    //! and a same-origin referrer policy. The names of the workers (their hosts) are shown to
    //! the client's own owner only.
    //!
    //! `examples/axum_app.rs` mounts both under `/admin` behind a session-cookie login, with
    //! HTTP Basic as the two-line alternative, and its tests drive them. `SECURITY.md` in the
    //! repository has the whole threat model.
}

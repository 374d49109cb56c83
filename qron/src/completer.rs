//! The completer: gathers the outcomes of every executor and writes them in batches, one
//! statement per kind of outcome, guarded by the lease. A batch that fails is retried, then
//! split; nothing is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};

use crate::clock::DbClock;
use crate::db::{self, Completion, Finish};
use crate::metrics::Metrics;
use crate::outcome::Outcome;

/// Outcomes per statement, at most.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// The longest an outcome waits for its batch to fill.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Outcomes waiting to be written above which workers stop leasing.
pub const DEFAULT_BACKLOG_LIMIT: usize = 10_000;
/// How long a stopping worker keeps trying to write the outcomes it holds.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The completer's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Outcomes per statement, at most (default [`DEFAULT_BATCH_SIZE`], at least 1).
    pub batch_size: usize,
    /// The longest an outcome waits for its batch to fill (default
    /// [`DEFAULT_FLUSH_INTERVAL`], at least [`crate::limits::MIN_INTERVAL`]).
    pub flush_interval: Duration,
    /// Outcomes waiting above which producers stop leasing (default
    /// [`DEFAULT_BACKLOG_LIMIT`], at least 1).
    pub backlog_limit: usize,
    /// How long a stopping worker keeps trying to write what it holds (default
    /// [`DEFAULT_FLUSH_TIMEOUT`]).
    pub flush_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            backlog_limit: DEFAULT_BACKLOG_LIMIT,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }
}

impl Config {
    /// Refuses a flush interval that would spin, and empty batches or backlogs.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::limits::{at_least, check_interval};
        check_interval("flush_interval", self.flush_interval)?;
        at_least(
            "batch_size",
            self.batch_size,
            1,
            "a batch would hold nothing",
        )?;
        at_least(
            "backlog_limit",
            self.backlog_limit,
            1,
            "no outcome could wait",
        )
    }
}

/// Whether the server refused the data of a statement (a value out of range, a check, a
/// character it cannot store…) rather than failed to run it (a lost connection, a restart):
/// the first fails again whatever the wait, the second may not.
fn refused_data(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.code().is_some_and(|code| {
            // 22: data exception; 23: integrity constraint violation; 54: program limit
            // exceeded (a value too large, for example).
            ["22", "23", "54"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        _ => false,
    }
}

/// What the completer's channel carries: an execution's outcome, or the start of a handler
/// (the job's id and lease token), written with the same batches so that a start costs no
/// round trip of its own, and nothing when the outcome comes in the same batch.
#[derive(Debug)]
enum Write {
    Outcome(Outcome),
    Started(i64, i64),
}

impl Write {
    fn is_urgent(&self, now: DateTime<Utc>) -> bool {
        matches!(self, Write::Outcome(o) if o.is_urgent(now))
    }
}

/// The sending side, cloned into every executor.
#[derive(Debug, Clone)]
pub(crate) struct CompleterHandle {
    tx: mpsc::Sender<Write>,
    backlog: Arc<AtomicUsize>,
    limit: usize,
    /// Counts the batches of outcomes written.
    written: watch::Receiver<u64>,
}

impl CompleterHandle {
    /// Queues an outcome; waits while the queue is full (back-pressure on executors).
    pub(crate) async fn send(&self, outcome: Outcome) -> bool {
        self.queue(Write::Outcome(outcome)).await
    }

    /// Queues the mark that the handler of job `id` under lease `token` started: the rescuer
    /// charges an attempt only to a job that started.
    pub(crate) async fn started(&self, id: i64, token: i64) -> bool {
        self.queue(Write::Started(id, token)).await
    }

    async fn queue(&self, write: Write) -> bool {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(write).await.is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A receiver that changes each time a batch of outcomes has been written: a producer
    /// resting at its executor's limits leases again then (places may have been freed).
    pub(crate) fn written(&self) -> watch::Receiver<u64> {
        self.written.clone()
    }

    /// Whether producers should hold off leasing.
    pub(crate) fn over_limit(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) >= self.limit
    }
}

/// Starts a completer; it runs until every handle is dropped, then flushes and returns.
pub(crate) fn spawn(
    pool: PgPool,
    config: &Config,
    metrics: Arc<Metrics>,
    clock: Arc<DbClock>,
) -> (CompleterHandle, tokio::task::JoinHandle<()>) {
    let limit = config.backlog_limit;
    let (tx, rx) = mpsc::channel(limit.max(1));
    let backlog = Arc::new(AtomicUsize::new(0));
    let (written_tx, written) = watch::channel(0);
    let handle = CompleterHandle {
        tx,
        backlog: backlog.clone(),
        limit,
        written,
    };
    let task = tokio::spawn(run(
        pool,
        rx,
        Batching {
            size: config.batch_size.max(1),
            interval: config.flush_interval,
        },
        (backlog, Arc::new(written_tx)),
        metrics,
        clock,
    ));
    (handle, task)
}

/// Batches written at the same time. Two keep the server busy: one batch is being written
/// while the next one fills and is sent, so neither the network round trip nor the gathering
/// leaves a core idle. (Batches cannot conflict: each outcome belongs to its own lease.)
const WRITERS: usize = 2;

/// How often a filling batch looks for new outcomes.
const GATHER_TICK: Duration = Duration::from_millis(1);

/// How the completer fills its batches: at most `size` outcomes, waiting at most `interval`.
struct Batching {
    size: usize,
    interval: Duration,
}

/// The outcomes waiting to be written, and the count of batches written (see
/// [`CompleterHandle::written`]).
type Tallies = (Arc<AtomicUsize>, Arc<watch::Sender<u64>>);

async fn run(
    pool: PgPool,
    mut rx: mpsc::Receiver<Write>,
    batching: Batching,
    (backlog, written): Tallies,
    metrics: Arc<Metrics>,
    clock: Arc<DbClock>,
) {
    let (batch_size, flush_interval) = (batching.size, batching.interval);
    let mut writing = tokio::task::JoinSet::new();
    loop {
        // Wait for a first outcome, then give the batch a short while to fill.
        let Some(first) = rx.recv().await else {
            break;
        };
        let mut urgent = first.is_urgent(clock.now());
        let mut batch: Vec<Write> = Vec::with_capacity(batch_size);
        batch.push(first);
        // Take what is queued, then look again every tick until the batch is full or its time
        // is up (at once for an urgent outcome): waiting on the channel itself would wake this
        // task for every outcome.
        let deadline = tokio::time::Instant::now() + flush_interval;
        while batch.len() < batch_size {
            match rx.try_recv() {
                Ok(o) => {
                    urgent = urgent || o.is_urgent(clock.now());
                    batch.push(o);
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    let now = tokio::time::Instant::now();
                    // An urgent outcome goes at once when no batch is being written; while
                    // one is, the batch fills until that write ends (a fan-in's 100,000 ends,
                    // each urgent, would otherwise go in many small batches, each releasing
                    // the callback's row once).
                    while writing.try_join_next().is_some() {}
                    if (urgent && writing.is_empty()) || now >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(deadline.min(now + GATHER_TICK)).await;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        while writing.len() >= WRITERS {
            let _ = writing.join_next().await;
        }
        let (pool, backlog, written, metrics, clock) = (
            pool.clone(),
            backlog.clone(),
            written.clone(),
            metrics.clone(),
            clock.clone(),
        );
        writing.spawn(async move {
            let n = batch.len();
            let (outcomes, started) = split(batch);
            if !started.is_empty()
                && let Err(e) = db::job_mark_started(&pool, &started, clock.now()).await
            {
                // Lost marks cost no job: its lease, if it runs out, is returned uncharged.
                tracing::debug!(error = %e, marks = started.len(), "could not mark jobs started");
            }
            if !outcomes.is_empty() {
                let _ = write(&pool, outcomes, &metrics, &clock).await;
                written.send_modify(|n| *n = n.wrapping_add(1));
            }
            backlog.fetch_sub(n, Ordering::Relaxed);
        });
    }
    while writing.join_next().await.is_some() {}
    tracing::debug!("completer flushed and stopped");
}

/// A batch's outcomes, and the start marks of the leases with no outcome in it (an outcome
/// says the job started).
fn split(batch: Vec<Write>) -> (Vec<Outcome>, Vec<(i64, i64)>) {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut started = Vec::new();
    for w in batch {
        match w {
            Write::Outcome(o) => outcomes.push(o),
            Write::Started(id, token) => started.push((id, token)),
        }
    }
    if !started.is_empty() {
        let done: std::collections::HashSet<(i64, i64)> =
            outcomes.iter().map(Outcome::lease).collect();
        started.retain(|lease| !done.contains(lease));
    }
    (outcomes, started)
}

/// Writes a batch, retrying failed statements with back-off and splitting a batch that keeps
/// failing, so that one bad outcome cannot hold the others back: an outcome the server refuses
/// on its own is replaced by a failure naming the server's reason ([`Outcome::refused`]), and
/// dropped if even that is refused (its job comes back when its lease expires). A retry carries
/// only the outcomes not yet written, so each is counted once. Returns how many outcomes took
/// effect.
pub(crate) async fn write(
    pool: &PgPool,
    batch: Vec<Outcome>,
    metrics: &Metrics,
    clock: &DbClock,
) -> usize {
    let mut total = 0;
    // Each batch with whether it is already a replacement for a refused outcome.
    let mut pending = vec![(batch, false)];
    while let Some((mut batch, replacement)) = pending.pop() {
        let mut delay = Duration::from_millis(50);
        let mut failures = 0u32;
        loop {
            let result = match pool.acquire().await {
                Ok(mut conn) => write_once(&mut conn, &mut batch, clock.now(), metrics).await,
                Err(e) => Attempt {
                    applied: 0,
                    error: Some(e),
                },
            };
            total += result.applied;
            match result.error {
                None => break,
                Some(e) if refused_data(&e) && batch.len() == 1 => {
                    if replacement {
                        tracing::error!(error = %e, outcome = ?batch[0], "the server refused even the failure recorded for an outcome it refused; dropped: the job comes back when its lease expires");
                    } else {
                        tracing::error!(error = %e, outcome = ?batch[0], "the server refused an outcome; recording the job's failure instead");
                        pending.push((vec![batch[0].refused(&e)], true));
                    }
                    break;
                }
                Some(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, outcomes = batch.len(), failures, "could not write outcomes; will retry");
                    // Refused data is in one of the outcomes: halve at once to find it.
                    if (failures >= 3 || refused_data(&e)) && batch.len() > 1 {
                        let right = batch.split_off(batch.len() / 2);
                        pending.push((right, replacement));
                        pending.push((batch, replacement));
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    total
}

/// Writes `batch` once on `conn`: the caller's transaction, which locked the outcomes' leases,
/// so that every outcome applies or the error is returned (a remote worker's report, which
/// says what was applied). Returns how many outcomes took effect.
pub(crate) async fn write_in(
    conn: &mut sqlx::PgConnection,
    mut batch: Vec<Outcome>,
    now: DateTime<Utc>,
    metrics: &Metrics,
) -> sqlx::Result<usize> {
    let attempt = write_once(conn, &mut batch, now, metrics).await;
    match attempt.error {
        None => Ok(attempt.applied),
        Some(e) => Err(e),
    }
}

/// What one attempt at a batch did.
struct Attempt {
    /// Outcomes that took effect.
    applied: usize,
    /// The statement that failed, if one did.
    error: Option<sqlx::Error>,
}

/// One attempt at a batch: a statement for plain successes of one-off jobs, one for their other
/// ends, one for the outcomes that keep jobs live. Each statement that succeeds takes its
/// outcomes out of `batch` and counts them (applied, or stale: met a lease that had moved on,
/// harmless), so that after a failure `batch` holds only what is left to write.
async fn write_once(
    conn: &mut sqlx::PgConnection,
    batch: &mut Vec<Outcome>,
    now: DateTime<Utc>,
    metrics: &Metrics,
) -> Attempt {
    let mut applied = 0;
    for kind in db::FinishKind::ALL {
        let finishes: Vec<&Finish> = batch
            .iter()
            .filter_map(|o| match o {
                Outcome::Finish(f) if f.kind() == kind => Some(f),
                _ => None,
            })
            .collect();
        if finishes.is_empty() {
            continue;
        }
        let moved = match db::job_finish_many(&mut *conn, kind, &finishes, now).await {
            Ok(moved) => moved,
            Err(e) => {
                return Attempt {
                    applied,
                    error: Some(e),
                };
            }
        };
        metrics.add_written(moved.len(), 0);
        applied += moved.len();
        // Usually every one moved. A job paused or given a new schedule while it ran stays
        // live: its outcome is recorded in place, with the others that keep jobs live. A job
        // that others wait for is not deleted without a history row: it is ended into it.
        // By lease: a batch may hold a stale outcome and a current one for the same job.
        let moved: std::collections::HashSet<(i64, i64)> = moved.into_iter().collect();
        let mut rest = Vec::with_capacity(batch.len());
        for o in batch.drain(..) {
            match o {
                Outcome::Finish(f) if f.kind() == kind => {
                    if moved.contains(&(f.id, f.token)) {
                        continue;
                    }
                    rest.push(if kind == db::FinishKind::Deleted {
                        // Other jobs may wait for it: ended again, into the history (a later
                        // kind of this same batch).
                        Outcome::Finish(f.keeping())
                    } else {
                        Outcome::Complete(f.kept_live())
                    });
                }
                other => rest.push(other),
            }
        }
        *batch = rest;
    }
    let completes: Vec<&Completion> = batch
        .iter()
        .filter_map(|o| match o {
            Outcome::Complete(c) => Some(c),
            Outcome::Finish(_) => None,
        })
        .collect();
    if !completes.is_empty() {
        match db::job_complete_many(&mut *conn, &completes, now).await {
            Ok(n) => {
                let n = n.min(completes.len());
                metrics.add_written(n, completes.len() - n);
                applied += n;
                batch.clear();
            }
            Err(e) => {
                return Attempt {
                    applied,
                    error: Some(e),
                };
            }
        }
    }
    Attempt {
        applied,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::context::Requests;
    use crate::outcome::{OutcomeInput, decide};
    use crate::testing::TestDb;
    use crate::{JobStatus, NewJob};

    #[tokio::test]
    async fn write_applies_outcomes_whose_lease_is_held_and_no_other() {
        let db = TestDb::new().await.unwrap();
        let client = db.client();
        for _ in 0..2 {
            client.create(NewJob::new("w", "@after 0s")).await.unwrap();
        }
        let clock = DbClock::new(Utc::now);
        clock.sync(db.pool()).await.unwrap();
        let now = clock.now();
        let leased = db::job_lease(
            db.pool(),
            &db::Lease::due("w", "test", 2, now, Duration::from_secs(30)),
        )
        .await
        .unwrap();
        assert_eq!(leased.len(), 2);
        let outcome = |j: &db::LeasedJob, token: i64| {
            let input = OutcomeInput {
                id: j.id,
                token,
                revision: j.revision,
                recurring: j.recurring,
                run_at: j.run_at,
                slot_at: j.slot_at,
                attempt: j.attempt,
                max_attempts: j.max_attempts,
                start_at: j.start_at,
                has_dependents: false,
            };
            let o = crate::JobOptions::default();
            decide(
                &input,
                Ok(()),
                Requests::default(),
                now,
                None,
                o.backoff,
                o.history,
            )
            .0
        };
        // The second outcome carries a lease the job no longer has (taken over meanwhile).
        let (held, lost) = (&leased[0], &leased[1]);
        let metrics = Metrics::default();
        let batch = vec![
            outcome(held, held.lease_token),
            outcome(lost, lost.lease_token - 1),
        ];
        assert_eq!(write(db.pool(), batch, &metrics, &clock).await, 1);
        assert_eq!(
            client.get(held.id).await.unwrap().status,
            JobStatus::Succeeded
        );
        assert_eq!(
            client.get(lost.id).await.unwrap().status,
            JobStatus::Running
        );
    }

    #[test]
    fn the_config_refuses_empty_batches_and_a_spinning_flush() {
        assert!(Config::default().validate().is_ok());
        for (bad, field) in [
            (
                Config {
                    batch_size: 0,
                    ..Config::default()
                },
                "batch_size",
            ),
            (
                Config {
                    backlog_limit: 0,
                    ..Config::default()
                },
                "backlog_limit",
            ),
            (
                Config {
                    flush_interval: Duration::ZERO,
                    ..Config::default()
                },
                "flush_interval",
            ),
        ] {
            assert!(
                matches!(bad.validate(), Err(crate::Error::InvalidArgument { field: f, .. }) if f == field),
                "{field}"
            );
        }
    }
}

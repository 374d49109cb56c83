//! Jobs the tests run, declared in this library so that the test binaries and the child worker
//! binary share them (and so that a job declared in a library is found by a binary that uses
//! it). Each handler reports to [`probe`], keyed by the test's own key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use qron::{Context, JobError};
use serde::{Deserialize, Serialize};

/// What the handler of one test observed.
#[derive(Debug, Default)]
pub struct Probe {
    /// Handlers running now.
    pub running: AtomicI64,
    /// The most that ran at once.
    pub max_running: AtomicI64,
    /// (job id, attempt, when the handler started).
    pub starts: Mutex<Vec<(i64, i32, DateTime<Utc>)>>,
    /// Values a handler reported.
    pub values: Mutex<Vec<i64>>,
    /// Whether [`Probe::open_gate`] was called.
    opened: AtomicBool,
    gate: tokio::sync::Notify,
}

/// A probe key unique to one test: `name` and the time.
pub fn key(name: &str) -> String {
    format!("{name}-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0))
}

/// A job of `executor` on `expr` whose `act`-style handler runs `mode`, reporting to probe `key`;
/// with the library's default attempts and run-time limit, whatever the executor declares
/// (tests set what they need on top).
pub fn script_job(executor: &str, expr: &str, key: &str, mode: Mode) -> qron::NewJob {
    let payload = serde_json::to_value(Script::new(key, mode)).unwrap_or(serde_json::Value::Null);
    qron::NewJob::new(executor, expr)
        .payload(payload)
        .max_attempts(qron::DEFAULT_MAX_ATTEMPTS)
        .timeout(qron::DEFAULT_TIMEOUT)
}

/// `n` due jobs of `executor` whose handler runs `mode`, reporting to probe `key`.
pub fn script_jobs(executor: &str, n: usize, key: &str, mode: Mode) -> Vec<qron::NewJob> {
    (0..n)
        .map(|_| script_job(executor, "@after 0s", key, mode.clone()))
        .collect()
}

/// The probe of `key`.
pub fn probe(key: &str) -> Arc<Probe> {
    static PROBES: OnceLock<Mutex<HashMap<String, Arc<Probe>>>> = OnceLock::new();
    let map = PROBES.get_or_init(Default::default);
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key.to_owned())
        .or_default()
        .clone()
}

impl Probe {
    fn enter(&self, ctx: &Context) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.starts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((ctx.id(), ctx.attempt(), Utc::now()));
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many executions started.
    pub fn started(&self) -> usize {
        self.starts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Lets the handlers waiting at the gate ([`Mode::GateFirst`]) go on, now and later.
    pub fn open_gate(&self) {
        self.opened.store(true, Ordering::SeqCst);
        self.gate.notify_waiters();
    }

    async fn wait_gate(&self) {
        loop {
            // Created before the check, so an opening between the two is not missed.
            let opened = self.gate.notified();
            if self.opened.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

/// What the `act` handler does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Succeed.
    Ok,
    /// Return a retryable error.
    Retry,
    /// Return `JobError::fail`.
    Fail,
    /// Fail for now, to be retried after this many seconds (`JobError::retry_after`).
    RetryAfter(u64),
    /// Panic.
    Panic,
    /// Never finish (until the timeout or a cancellation).
    Hang,
    /// Hang on the first attempt, succeed on the next ones.
    HangFirst,
    /// On the first attempt, wait until the test opens the gate ([`Probe::open_gate`]), then
    /// succeed; succeed at once on the next ones.
    GateFirst,
    /// Sleep this many milliseconds, then succeed.
    Sleep(u64),
    /// Add one to `count` in the payload for the next execution.
    Count,
    /// Reschedule the job to this expression, up to `count` more times.
    Reschedule(String),
    /// Stop (pause) the job.
    Stop,
    /// Fail for good with this message, `<NUL>` standing for a NUL character (which a stored
    /// payload cannot hold).
    FailWith(String),
    /// Replace the payload with this JSON text, `<NUL>` standing for a NUL character (and fail,
    /// as the handler would, when it is refused).
    SetPayload(String),
    /// Wait until the context says to wrap up, report the milliseconds waited to the probe,
    /// and succeed.
    UntilCancelled,
    /// Work until the context says to wrap up, then checkpoint: report the milliseconds it
    /// ran to the probe, carry `count + 1` forward with mode `Ok`, and snooze.
    Checkpoint,
}

/// The payload of `act`: a script of what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// The test's probe key.
    pub key: String,
    /// What to do.
    pub mode: Mode,
    /// A counter the handler may carry forward.
    #[serde(default)]
    pub count: u64,
}

impl Script {
    /// A payload for `key` doing `mode`.
    pub fn new(key: &str, mode: Mode) -> Self {
        Self {
            key: key.to_owned(),
            mode,
            count: 0,
        }
    }
}

async fn behave(ctx: Context, mut a: Script) -> Result<(), JobError> {
    let probe = probe(&a.key);
    probe.enter(&ctx);
    let result = match a.mode.clone() {
        Mode::Ok => Ok(()),
        Mode::Retry => {
            // `?` on any std::error::Error retries.
            Err(std::io::Error::other("transient trouble"))?;
            Ok(())
        }
        Mode::Fail => Err(JobError::fail("permanent trouble")),
        Mode::RetryAfter(secs) => Err(JobError::retry_after(
            "busy for now",
            Duration::from_secs(secs),
        )),
        Mode::Panic => {
            probe.leave();
            panic!("handler exploded");
        }
        Mode::Hang => std::future::pending().await,
        Mode::HangFirst if ctx.attempt() == 1 => std::future::pending().await,
        Mode::HangFirst => Ok(()),
        Mode::GateFirst => {
            if ctx.attempt() == 1 {
                probe.wait_gate().await;
            }
            Ok(())
        }
        Mode::Sleep(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        }
        Mode::Count => {
            a.count += 1;
            ctx.set_payload(&a)?;
            Ok(())
        }
        Mode::Reschedule(expr) => {
            if a.count > 0 {
                a.count -= 1;
                ctx.set_payload(&a)?;
                ctx.reschedule(&expr).map_err(JobError::fail)?;
            }
            Ok(())
        }
        Mode::Stop => {
            ctx.stop();
            Ok(())
        }
        Mode::FailWith(message) => Err(JobError::fail(message.replace("<NUL>", "\0"))),
        Mode::UntilCancelled => {
            let started = std::time::Instant::now();
            ctx.cancelled().await;
            probe
                .values
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(started.elapsed().as_millis() as i64);
            Ok(())
        }
        Mode::Checkpoint => {
            let started = std::time::Instant::now();
            ctx.cancelled().await;
            assert!(ctx.is_cancelled());
            probe
                .values
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(started.elapsed().as_millis() as i64);
            a.count += 1;
            a.mode = Mode::Ok;
            ctx.set_payload(&a)?;
            Err(JobError::retry_in(Duration::ZERO))
        }
        Mode::SetPayload(json) => {
            let value: serde_json::Value =
                serde_json::from_str(&json.replace("<NUL>", "\\u0000")).map_err(JobError::fail)?;
            ctx.set_payload(&value)
        }
    };
    probe.leave();
    result
}

/// The general-purpose test job: 3 attempts, a 300 ms lease, millisecond back-off.
#[qron::job(
    executor = "act",
    max_attempts = 3,
    timeout = "300ms",
    concurrency = 50,
    backoff(base = "1ms", max = "5ms")
)]
pub async fn act(ctx: Context, a: Script) -> Result<(), JobError> {
    behave(ctx, a).await
}

/// As `act`, with a 1 s lease and one attempt at a time per job: for the rescue test.
#[qron::job(
    executor = "act_lease",
    max_attempts = 5,
    timeout = "1s",
    concurrency = 20,
    backoff(base = "1ms", max = "5ms")
)]
pub async fn act_lease(ctx: Context, a: Script) -> Result<(), JobError> {
    behave(ctx, a).await
}

/// As `act`, one attempt, and a history that keeps failed jobs only.
#[qron::job(executor = "act_failed_only", max_attempts = 1, history = "failed")]
pub async fn act_failed_only(ctx: Context, a: Script) -> Result<(), JobError> {
    behave(ctx, a).await
}

/// As `act`, one attempt, and no history at all.
#[qron::job(executor = "act_no_history", max_attempts = 1, history = "none")]
pub async fn act_no_history(ctx: Context, a: Script) -> Result<(), JobError> {
    behave(ctx, a).await
}

/// A job that does nothing, many at once: for batching and throughput.
#[qron::job(executor = "noop", concurrency = 2000)]
pub async fn noop(_: ()) -> Result<(), JobError> {
    Ok(())
}

/// The typed job of the quick start, checked by the macro tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Greeting {
    /// The test's probe key.
    pub key: String,
    /// Who to welcome.
    pub user_id: i64,
}

/// Records each payload it receives.
#[qron::job(executor = "welcome", backoff(base = "1ms", max = "5ms"))]
pub async fn welcome(ctx: Context, msg: Greeting) -> Result<(), JobError> {
    let probe = probe(&msg.key);
    probe.enter(&ctx);
    probe.leave();
    probe
        .values
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(msg.user_id);
    Ok(())
}

macro_rules! tagging_job {
    ($name:ident, $executor:literal) => {
        /// Writes its executor into its payload: for the multi-executor test.
        #[qron::job(executor = $executor, concurrency = 100)]
        pub async fn $name(ctx: Context, _p: serde_json::Value) -> Result<(), JobError> {
            ctx.set_payload(&serde_json::json!({ "done_by": $executor }))?;
            Ok(())
        }
    };
}

tagging_job!(tag_a, "tag_a");
tagging_job!(tag_b, "tag_b");
tagging_job!(tag_c, "tag_c");

/// A job of a high priority, declared.
#[qron::job(executor = "urgent", priority = 1)]
pub async fn urgent(_: ()) -> Result<(), JobError> {
    Ok(())
}

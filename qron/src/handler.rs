//! What a job type declares: the [`Job`] trait that `#[qron::job]` implements, its options
//! ([`JobOptions`], [`Backoff`], [`History`]); the [`Context`] of one execution is in
//! `context`.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::JobError;
use crate::context::Context;

/// A boxed handler future: what a registered job's `run` returns.
pub type HandlerFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), JobError>> + Send + 'static>>;

/// How long to wait before retrying: exponential from `base`, capped at `max`, with jitter.
///
/// ```
/// use std::time::Duration;
/// let b = qron::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// assert!(b.delay(1) <= Duration::from_secs(1));
/// assert!(b.delay(20) <= Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// A back-off from `base` up to `max`.
    ///
    /// ```
    /// let b = qron::Backoff::new(std::time::Duration::from_millis(100), std::time::Duration::from_secs(5));
    /// ```
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The delay before the retry that follows failed attempt `attempt` (1-based):
    /// `base × 2^(attempt−1)`, capped at `max`, then scaled by a random factor in [0.75, 1].
    ///
    /// ```
    /// let b = qron::Backoff::default();
    /// assert!(b.delay(3) >= std::time::Duration::from_secs(3));
    /// ```
    pub fn delay(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
        let full = self
            .base
            .checked_mul(1u32.checked_shl(exp.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        full.mul_f64(0.75 + 0.25 * jitter())
    }
}

/// A number in [0, 1) that differs from call to call (not for cryptography).
fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What the history keeps of an executor's finished one-off jobs (`#[qron::job(history =
/// "…")]`). Keeping fewer makes each finish cheaper: a job that is not kept is deleted in the
/// outcome statement, without a history row.
///
/// ```
/// assert_eq!(qron::JobOptions::default().history, qron::History::All);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum History {
    /// Every finished job, succeeded or failed (the default).
    #[default]
    All,
    /// Failed jobs only: a success leaves no trace (`get` finds nothing once it is done).
    Failed,
    /// None: every finished job is deleted.
    None,
}

impl History {
    /// Whether a job that ended with `status` (`succeeded` or `failed`) is kept.
    pub(crate) fn keeps(self, status: crate::JobStatus) -> bool {
        match self {
            History::All => true,
            History::Failed => status == crate::JobStatus::Failed,
            History::None => false,
        }
    }
}

/// Defaults a typed job gives the jobs it creates and the worker that runs it.
///
/// ```
/// let o = qron::JobOptions::default();
/// assert_eq!(o.max_attempts, qron::DEFAULT_MAX_ATTEMPTS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobOptions {
    /// Attempts per occurrence.
    pub max_attempts: i32,
    /// Lease length: how long one execution may take before it is abandoned and retried.
    pub timeout: Duration,
    /// The most executions of this job type at once in one worker process.
    pub concurrency: usize,
    /// Retry delays.
    pub backoff: Backoff,
    /// What the history keeps of its finished jobs.
    pub history: History,
    /// Its jobs' priority: 0 (the highest) to 9.
    pub priority: u8,
}

/// Executions at once per job type and worker when the job does not say.
pub const DEFAULT_CONCURRENCY: usize = 10;

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            max_attempts: crate::DEFAULT_MAX_ATTEMPTS,
            timeout: crate::DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            backoff: Backoff::default(),
            history: History::All,
            priority: crate::DEFAULT_PRIORITY,
        }
    }
}

impl JobOptions {
    /// The defaults with other attempts, timeout, concurrency and back-off; `const`, for the
    /// code `#[qron::job]` generates.
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = qron::JobOptions::new(3, Duration::from_secs(30), 4, qron::Backoff::new(Duration::from_secs(1), Duration::from_secs(60)));
    /// assert_eq!(o.concurrency, 4);
    /// ```
    pub const fn new(
        max_attempts: i32,
        timeout: Duration,
        concurrency: usize,
        backoff: Backoff,
    ) -> Self {
        Self {
            max_attempts,
            timeout,
            concurrency,
            backoff,
            history: History::All,
            priority: crate::DEFAULT_PRIORITY,
        }
    }

    /// The same options with another history policy; `const`, for the code `#[qron::job]`
    /// generates.
    ///
    /// ```
    /// let o = qron::JobOptions::default().with_history(qron::History::Failed);
    /// assert_eq!(o.history, qron::History::Failed);
    /// ```
    pub const fn with_history(mut self, history: History) -> Self {
        self.history = history;
        self
    }

    /// The same options with another priority for its jobs (0, the highest, to 9); `const`,
    /// for the code `#[qron::job]` generates.
    ///
    /// ```
    /// let o = qron::JobOptions::default().with_priority(1);
    /// assert_eq!(o.priority, 1);
    /// ```
    pub const fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }
}

/// A typed job: an executor name, a payload type and defaults. `#[qron::job]` implements it on
/// the type it generates; the provided methods enqueue jobs of this type.
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Welcome { user_id: i64 }
///
/// #[qron::job(executor = "email")]
/// async fn email(ctx: qron::Context, msg: Welcome) -> Result<(), qron::JobError> {
///     Ok(())
/// }
///
/// # async fn demo() -> qron::Result<()> {
/// Email::schedule("@after 1 hour", Welcome { user_id: 7 }).await?;
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a qron job",
    note = "declare jobs with `#[qron::job(executor = \"...\")]` on an async fn"
)]
pub trait Job: Send + Sync + 'static {
    /// The handler's input.
    type Payload: Serialize + DeserializeOwned + Send + 'static;
    /// The executor (queue) name: stable, whatever the code's layout.
    const EXECUTOR: &'static str;
    /// Defaults for jobs of this type.
    const OPTIONS: JobOptions;

    /// The state types its handler takes (generated by `#[qron::job]`).
    #[doc(hidden)]
    const STATES: &'static [crate::state::StateType] = &[];

    /// Decodes a payload and runs the handler (generated by `#[qron::job]`).
    #[doc(hidden)]
    fn __run(ctx: Context, payload: Option<String>) -> HandlerFuture;
}

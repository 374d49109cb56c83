//! [`JobError`]: why an execution did not succeed, and what the worker does about it.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Any error a handler may give: every `std::error::Error + Send + Sync`, `String` and `&str`,
/// `Box<dyn Error + Send + Sync>`, and error reports such as `anyhow::Error` and `eyre::Report`
/// (which convert into that box).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why an execution did not succeed: retry later, fail for good, or try again later without
/// counting an attempt.
///
/// Every error converts into [`JobError::Retry`] (with its chain of causes: "send: connect:
/// connection refused"), so `?` works in handlers on a `std::error::Error`, an
/// `anyhow::Error`, an `eyre::Report` or a `Box<dyn Error + Send + Sync>`. A handler may also
/// return those error types directly (`anyhow::Result<()>`): `#[qron::job]` converts them the
/// same way. Use [`JobError::fail`] for errors that retrying cannot fix.
///
/// ```
/// fn parse(s: &str) -> Result<i64, qron::JobError> {
///     let n: i64 = s.parse()?; // a parse error retries...
///     if n < 0 {
///         return Err(qron::JobError::fail("negative input")); // ...this one never will
///     }
///     Ok(n)
/// }
/// assert!(matches!(parse("-1"), Err(qron::JobError::Fail(_))));
/// assert_eq!(parse("x").unwrap_err().reason(), "invalid digit found in string");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum JobError {
    /// Retry with back-off while attempts remain; then fail.
    Retry(Cow<'static, str>),
    /// Give up on this occurrence now.
    Fail(Cow<'static, str>),
    /// Run again after this delay, without counting the attempt or recording an error (the
    /// resource is busy, a rate limit says "later").
    Snooze(Duration),
    /// Retry as [`JobError::Retry`] does, after this delay instead of the back-off (a
    /// server's `Retry-After`).
    RetryAfter(Cow<'static, str>, Duration),
}

impl JobError {
    /// A failure worth retrying; `error` is any error or message (see [`BoxError`]).
    ///
    /// ```
    /// let e = qron::JobError::retry("mail server busy");
    /// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "smtp");
    /// assert_eq!(qron::JobError::retry(io).reason(), "smtp");
    /// ```
    pub fn retry(error: impl Into<BoxError>) -> Self {
        JobError::Retry(Cow::Owned(chain(&*error.into())))
    }

    /// A failure that retrying cannot fix; `error` is any error or message (see [`BoxError`]).
    ///
    /// ```
    /// let e = qron::JobError::fail("user deleted");
    /// assert!(matches!(e, qron::JobError::Fail(_)));
    /// ```
    pub fn fail(error: impl Into<BoxError>) -> Self {
        JobError::Fail(Cow::Owned(chain(&*error.into())))
    }

    /// A failure worth retrying after `delay` rather than the back-off (the attempt counts and
    /// the error is recorded, as for [`JobError::retry`]): what a server's `Retry-After` asks.
    ///
    /// ```
    /// let e = qron::JobError::retry_after("busy", std::time::Duration::from_secs(120));
    /// assert_eq!(e.reason(), "busy");
    /// ```
    pub fn retry_after(error: impl Into<BoxError>, delay: Duration) -> Self {
        JobError::RetryAfter(Cow::Owned(chain(&*error.into())), delay)
    }

    /// Try again after `delay`, as if this execution had not happened: the attempt is not
    /// counted and no error is recorded (the payload a handler set is kept).
    ///
    /// ```
    /// # async fn handler(ctx: qron::Context) -> Result<(), qron::JobError> {
    /// let rate_limited = true;
    /// if rate_limited {
    ///     return Err(qron::JobError::retry_in(std::time::Duration::from_secs(30)));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn retry_in(delay: Duration) -> Self {
        JobError::Snooze(delay)
    }

    /// The reason, as recorded in the job's `last_error` (empty for a snooze).
    ///
    /// ```
    /// assert_eq!(qron::JobError::fail("gone").reason(), "gone");
    /// ```
    pub fn reason(&self) -> &str {
        match self {
            JobError::Retry(r) | JobError::Fail(r) | JobError::RetryAfter(r, _) => r,
            JobError::Snooze(_) => "",
        }
    }
}

/// An error and its causes, outermost first: "send: connect: connection refused".
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some errors repeat their cause in their own message.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Retry(r) => write!(f, "retry: {r}"),
            JobError::Fail(r) => write!(f, "fail: {r}"),
            JobError::Snooze(d) => write!(f, "retry in {d:?}"),
            JobError::RetryAfter(r, d) => write!(f, "retry after {d:?}: {r}"),
        }
    }
}

// `JobError` itself is not a `std::error::Error`: that is what lets it take every error (and
// `anyhow::Error`, which is not one either) through this single conversion.
impl<E: Into<BoxError>> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::retry(e)
    }
}
/// The message a panic carries (a `&str` or a `String`), for the error it is recorded as.
pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

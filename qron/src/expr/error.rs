//! What can be wrong with an expression, and where.

/// What is wrong with an expression.
///
/// ```
/// let err = qron::Schedule::parse("*/0 * * * *").unwrap_err();
/// assert_eq!(err.kind(), qron::ExprErrorKind::CronZeroStep);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// The expression is empty.
    Empty,
    /// An `@keyword` that is not one of the language's.
    UnknownKeyword,
    /// The interval of `@after` or `@every` is missing or not a PostgreSQL interval.
    BadInterval,
    /// The timestamp of `@at` is missing or not RFC 3339.
    BadTimestamp,
    /// A crontab without exactly five fields.
    CronFieldCount,
    /// A crontab value outside its field's range.
    CronOutOfRange,
    /// A crontab range whose start is after its end.
    CronInvertedRange,
    /// A crontab step of zero.
    CronZeroStep,
    /// Any other crontab syntax error (Quartz extensions among them).
    CronSyntax,
    /// `@every` with a zero or negative interval: it would never stop running.
    NonPositiveInterval,
    /// A crontab that matches no instant (`0 0 30 2 *`).
    NeverFires,
    /// A `TZ=` zone that is not in the IANA database.
    UnknownTimeZone,
    /// `TZ=` on a one-off expression, where it has no meaning.
    TimeZoneNotAllowed,
    /// An expression longer than [`MAX_EXPR_LEN`](crate::MAX_EXPR_LEN) bytes (as written, or
    /// in canonical form).
    TooLong,
    /// A control character (NUL, a tab is fine) in the expression.
    InvalidCharacter,
    /// `@every` with an interval shorter than [`MIN_EVERY`](crate::MIN_EVERY): it would keep a
    /// worker busy running one job.
    IntervalTooShort,
}

/// The longest expression, in bytes, as written and in canonical form (what is stored).
pub const MAX_EXPR_LEN: usize = 1024;

/// The shortest `@every` interval.
pub const MIN_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// Characters of the expression an error message quotes, at most.
pub(crate) const ECHO_CHARS: usize = 100;

/// An invalid expression: which part is wrong, where, and why.
///
/// ```
/// let err = "0 0 32 * *".parse::<qron::Schedule>().unwrap_err();
/// assert_eq!(err.kind(), qron::ExprErrorKind::CronOutOfRange);
/// assert_eq!(err.position(), 4);
/// assert!(err.to_string().contains("day-of-month"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule `{expr}`: {message} (at byte {position}: `{fragment}`)")]
pub struct ExprError {
    pub(crate) kind: ExprErrorKind,
    pub(crate) position: usize,
    pub(crate) fragment: String,
    pub(crate) message: String,
    pub(crate) expr: String,
}

impl ExprError {
    pub(crate) fn new(
        kind: ExprErrorKind,
        position: usize,
        fragment: &str,
        message: String,
    ) -> Self {
        Self {
            kind,
            position,
            fragment: fragment.to_owned(),
            message,
            expr: String::new(),
        }
    }

    /// What kind of mistake it is.
    ///
    /// ```
    /// let err = "@definitely".parse::<qron::Schedule>().unwrap_err();
    /// assert_eq!(err.kind(), qron::ExprErrorKind::UnknownKeyword);
    /// ```
    pub fn kind(&self) -> ExprErrorKind {
        self.kind
    }

    /// Byte offset of the offending part in the expression.
    ///
    /// ```
    /// let err = "@every 234 bananas".parse::<qron::Schedule>().unwrap_err();
    /// assert_eq!(err.position(), 7);
    /// ```
    pub fn position(&self) -> usize {
        self.position
    }

    /// The offending part of the expression.
    ///
    /// ```
    /// let err = "0 0 * * MON-FRX".parse::<qron::Schedule>().unwrap_err();
    /// assert_eq!(err.fragment(), "FRX");
    /// ```
    pub fn fragment(&self) -> &str {
        &self.fragment
    }

    /// Why it is wrong, without the expression and position.
    ///
    /// ```
    /// let err = "*/0 * * * *".parse::<qron::Schedule>().unwrap_err();
    /// assert!(err.message().contains("step of 0"));
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

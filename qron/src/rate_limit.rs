//! Rate limits: how many of an executor's jobs may start per period across every worker
//! process, in all or per partition key; part of an executor's
//! [`ExecutorLimits`](crate::ExecutorLimits), kept as a GCRA bucket per key (see
//! `migrations/0018_rate_limits.sql` and `db::JOB_LEASE_LIMITED`).

use std::time::Duration;

use crate::client::checks::check_name;
use crate::error::{Error, Result};
use crate::{MAX_EXECUTOR_LIMIT, Partition};

/// The shortest period of a rate limit.
pub(crate) const MIN_RATE_PERIOD: Duration = Duration::from_secs(1);
/// The longest period of a rate limit: a year (366 days).
pub(crate) const MAX_RATE_PERIOD: Duration = Duration::from_secs(366 * 86_400);

/// At most so many starts of an executor's jobs per period, across every worker on the
/// database, in all or per [`Partition`] key ("100 requests per minute per customer"). Set as
/// part of an executor's [`ExecutorLimits`](crate::ExecutorLimits).
///
/// A start counts when its job is leased (the worker leases a rate-limited executor's jobs only
/// when they are due, into free slots, and starts them at once), so a retry is a start too.
/// The starts are spread at the steady rate, `period / starts` apart, with up to
/// [`burst`](Self::burst) of them at once after a quiet spell (a generic cell rate algorithm,
/// the token bucket's exact form): any window of one period holds at most
/// `starts + burst - 1` of them, and over longer spans the rate is `starts` per period. The
/// burst is a twentieth of the limit by default (at least 1): at most 5% over in any window.
///
/// ```
/// use qron::RateLimit;
/// use std::time::Duration;
/// // 100 starts a minute per customer, none at once after a quiet spell.
/// let rate = RateLimit::new(100, Duration::from_secs(60)).per_field("customer_id").burst(1);
/// assert_eq!(rate.to_string(), "100 per minute per customer_id");
/// assert_eq!(RateLimit::per_second(100).burst_size(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RateLimit {
    pub(crate) starts: u32,
    #[serde(rename = "period_ms", serialize_with = "millis")]
    pub(crate) period: Duration,
    pub(crate) burst: Option<u32>,
    pub(crate) partition: Option<Partition>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RateLimit {
    /// At most `starts` starts per `period` (1 to [`MAX_EXECUTOR_LIMIT`] starts, a period of
    /// 1 second to 366 days, counted in whole milliseconds), across all of the executor's
    /// jobs.
    ///
    /// ```
    /// let rate = qron::RateLimit::new(1000, std::time::Duration::from_secs(3600));
    /// assert_eq!(rate.to_string(), "1000 per hour");
    /// ```
    pub fn new(starts: u32, period: Duration) -> Self {
        Self {
            starts,
            period,
            burst: None,
            partition: None,
        }
    }

    /// At most `starts` a second.
    ///
    /// ```
    /// assert_eq!(qron::RateLimit::per_second(10).period(), std::time::Duration::from_secs(1));
    /// ```
    pub fn per_second(starts: u32) -> Self {
        Self::new(starts, Duration::from_secs(1))
    }

    /// At most `starts` a minute.
    ///
    /// ```
    /// assert_eq!(qron::RateLimit::per_minute(100).to_string(), "100 per minute");
    /// ```
    pub fn per_minute(starts: u32) -> Self {
        Self::new(starts, Duration::from_secs(60))
    }

    /// The limit per owner: each tenant's jobs have their own bucket.
    ///
    /// ```
    /// let rate = qron::RateLimit::per_second(5).per_owner();
    /// assert_eq!(rate.partition(), Some(&qron::Partition::Owner));
    /// ```
    pub fn per_owner(self) -> Self {
        self.per(Partition::Owner)
    }

    /// The limit per value of the payload's top-level field `field` (as
    /// [`Partition::Field`]).
    ///
    /// ```
    /// let rate = qron::RateLimit::per_minute(100).per_field("customer_id");
    /// ```
    pub fn per_field(self, field: impl Into<String>) -> Self {
        self.per(Partition::Field(field.into()))
    }

    /// The limit per key of `partition`.
    ///
    /// ```
    /// let rate = qron::RateLimit::per_minute(100).per(qron::Partition::Owner);
    /// ```
    pub fn per(mut self, partition: Partition) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Up to `burst` starts at once after a quiet spell (1 to the limit's `starts`; by
    /// default a twentieth of them, at least 1). A burst of 1 spreads every start
    /// `period / starts` apart.
    ///
    /// ```
    /// assert_eq!(qron::RateLimit::per_second(100).burst(20).burst_size(), 20);
    /// ```
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The most starts per period.
    ///
    /// ```
    /// assert_eq!(qron::RateLimit::per_second(7).starts(), 7);
    /// ```
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The period.
    ///
    /// ```
    /// assert_eq!(qron::RateLimit::per_minute(7).period().as_secs(), 60);
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The most starts at once after a quiet spell: the one set, or a twentieth of the limit
    /// (at least 1).
    ///
    /// ```
    /// assert_eq!(qron::RateLimit::per_second(10).burst_size(), 1);
    /// assert_eq!(qron::RateLimit::per_second(1000).burst_size(), 50);
    /// ```
    pub fn burst_size(&self) -> u32 {
        self.burst.unwrap_or((self.starts / 20).max(1))
    }

    /// What the limit counts by, if it is per key.
    ///
    /// ```
    /// assert_eq!(qron::RateLimit::per_second(7).partition(), None);
    /// ```
    pub fn partition(&self) -> Option<&Partition> {
        self.partition.as_ref()
    }

    /// How long a worker waits for the bucket to refill a burst: `burst` starts' worth of
    /// time.
    pub(crate) fn refill(&self) -> Duration {
        self.period / self.starts.max(1) * self.burst_size()
    }

    /// Refuses a limit of 0 or over [`MAX_EXECUTOR_LIMIT`], a period under a second or over
    /// a year, a burst over the limit and a field name that cannot be stored; each error names
    /// its field.
    pub(crate) fn check(&self) -> Result<()> {
        if self.starts == 0 || self.starts > MAX_EXECUTOR_LIMIT {
            return Err(Error::InvalidArgument {
                field: "rate_limit",
                reason: format!("is {}, outside 1 to {MAX_EXECUTOR_LIMIT}", self.starts),
            });
        }
        if self.period < MIN_RATE_PERIOD || self.period > MAX_RATE_PERIOD {
            return Err(Error::InvalidArgument {
                field: "rate_period",
                reason: format!("is {:?}, outside 1 second to 366 days", self.period),
            });
        }
        if let Some(b) = self.burst
            && (b == 0 || b > self.starts)
        {
            return Err(Error::InvalidArgument {
                field: "rate_burst",
                reason: format!("is {b}, outside 1 to the limit's {}", self.starts),
            });
        }
        if let Some(Partition::Field(field)) = &self.partition {
            check_name("rate_partition_field", field)?;
        }
        Ok(())
    }

    /// The row's columns: limit, period in milliseconds, burst, partition kind and field.
    pub(crate) fn columns(&self) -> (i32, i64, i32, Option<&'static str>, Option<&str>) {
        let (by, field) = match &self.partition {
            None => (None, None),
            Some(Partition::Owner) => (Some("owner"), None),
            Some(Partition::Field(f)) => (Some("field"), Some(f.as_str())),
        };
        (
            i32::try_from(self.starts).unwrap_or(i32::MAX),
            i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX),
            i32::try_from(self.burst_size()).unwrap_or(i32::MAX),
            by,
            field,
        )
    }

    /// A rate limit read back from its row (`None` for a row no version of qron writes).
    pub(crate) fn from_columns(
        starts: i32,
        period_ms: i64,
        burst: i32,
        partition_by: Option<&str>,
        partition_field: Option<String>,
    ) -> Option<Self> {
        let partition = match (partition_by, partition_field) {
            (None, _) => None,
            (Some("owner"), _) => Some(Partition::Owner),
            (Some("field"), Some(f)) => Some(Partition::Field(f)),
            _ => return None,
        };
        Some(Self {
            starts: u32::try_from(starts).ok()?,
            period: Duration::from_millis(u64::try_from(period_ms).ok()?),
            burst: Some(u32::try_from(burst).ok()?),
            partition,
        })
    }
}

/// The limit in words: `100 per minute per customer_id`, `5 per 10 seconds`.
impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} per {}", self.starts, period_words(self.period))?;
        match &self.partition {
            None => Ok(()),
            Some(Partition::Owner) => f.write_str(" per owner"),
            Some(Partition::Field(field)) => write!(f, " per {field}"),
        }
    }
}

/// A period in words: `minute`, `10 seconds`, `1.5 seconds`.
fn period_words(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    for (size, name) in units {
        if ms.is_multiple_of(size) && ms > 0 {
            return match ms / size {
                1 => name.to_owned(),
                n => format!("{n} {name}s"),
            };
        }
    }
    format!("{} seconds", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(rate: RateLimit) -> &'static str {
        match rate.check() {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn rate_limits_out_of_range_are_refused_naming_the_field() {
        assert_eq!(refused(RateLimit::per_second(0)), "rate_limit");
        assert_eq!(
            refused(RateLimit::per_second(MAX_EXECUTOR_LIMIT + 1)),
            "rate_limit"
        );
        assert_eq!(
            refused(RateLimit::new(1, Duration::from_millis(999))),
            "rate_period"
        );
        assert_eq!(
            refused(RateLimit::new(
                1,
                MAX_RATE_PERIOD + Duration::from_millis(1)
            )),
            "rate_period"
        );
        assert_eq!(refused(RateLimit::per_second(5).burst(0)), "rate_burst");
        assert_eq!(refused(RateLimit::per_second(5).burst(6)), "rate_burst");
        assert_eq!(
            refused(RateLimit::per_second(5).per_field("a\0")),
            "rate_partition_field"
        );
        for ok in [
            RateLimit::new(1, MIN_RATE_PERIOD),
            RateLimit::new(MAX_EXECUTOR_LIMIT, MAX_RATE_PERIOD).burst(MAX_EXECUTOR_LIMIT),
            RateLimit::per_minute(100).per_field("customer_id").burst(1),
        ] {
            assert!(ok.check().is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn a_rate_limit_comes_back_from_its_columns_and_reads_in_words() {
        let rate = RateLimit::per_minute(100).per_field("k").burst(3);
        let (n, ms, burst, by, field) = rate.columns();
        assert_eq!((n, ms, burst), (100, 60_000, 3));
        let back = RateLimit::from_columns(n, ms, burst, by, field.map(str::to_owned));
        assert_eq!(back, Some(rate));
        assert_eq!(
            RateLimit::new(5, Duration::from_secs(10)).to_string(),
            "5 per 10 seconds"
        );
        assert_eq!(
            RateLimit::new(5, Duration::from_millis(1500))
                .per_owner()
                .to_string(),
            "5 per 1.5 seconds per owner"
        );
        assert_eq!(
            RateLimit::per_second(100).refill(),
            Duration::from_millis(50)
        );
    }
}

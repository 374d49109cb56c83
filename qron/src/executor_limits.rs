//! Global concurrency limits: how many of an executor's jobs may be leased at once across every
//! worker process, in all and per partition key (the owner, or a field of the payload). Stored
//! in the database (`qron.executor_limits`), changed at run time, counted from the leased rows
//! themselves (see `db::JOB_LEASE_LIMITED`).

use crate::RateLimit;
use crate::client::checks::check_name;
use crate::error::{Error, Result};

/// The largest limit accepted: a million jobs at once.
///
/// ```
/// assert_eq!(qron::MAX_EXECUTOR_LIMIT, 1_000_000);
/// ```
pub const MAX_EXECUTOR_LIMIT: u32 = 1_000_000;

/// What a per-key limit counts by: see [`ExecutorLimits::per_owner`] and
/// [`ExecutorLimits::per_field`].
///
/// ```
/// let by = qron::Partition::Field("customer_id".into());
/// assert_eq!(by.to_string(), "payload field customer_id");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Partition {
    /// The job's owner: at most so many of each tenant's jobs at once.
    Owner,
    /// A top-level field of the job's payload, as text (a number `7` and a string `"7"` are
    /// one key); a job without the field, or whose payload is not an object, has the empty
    /// key, shared by all such jobs.
    Field(String),
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partition::Owner => f.write_str("owner"),
            Partition::Field(field) => write!(f, "payload field {field}"),
        }
    }
}

/// An executor's limits, across every worker on the database: at most
/// [`concurrency`](Self::concurrency) of its jobs leased at once in all, and at most a number
/// per [`Partition`] key. Set with [`Client::set_executor_limits`](crate::Client::set_executor_limits);
/// each worker takes a change into account at its next lease (it is told at once).
///
/// A job counts from its lease to its outcome, including the moments it waits in a worker
/// before its handler starts; a worker that dies frees its jobs' places when their leases run
/// out, never earlier. Workers lease a limited executor's jobs only into free slots, due now
/// (no prefetch, no lease ahead), one worker at a time.
///
/// ```
/// use qron::{ExecutorLimits, Partition};
/// // At most 20 at once, and 2 per customer.
/// let limits = ExecutorLimits::new().concurrency(20).per_field("customer_id", 2);
/// assert_eq!(limits.concurrency_limit(), Some(20));
/// assert_eq!(limits.partition(), Some((&Partition::Field("customer_id".into()), 2)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExecutorLimits {
    pub(crate) concurrency: Option<u32>,
    pub(crate) partition: Option<(Partition, u32)>,
    pub(crate) rate: Option<RateLimit>,
}

impl ExecutorLimits {
    /// No limit yet: add one with the methods below.
    ///
    /// ```
    /// let limits = qron::ExecutorLimits::new();
    /// assert_eq!(limits.concurrency_limit(), None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` of the executor's jobs leased at once, across every worker (1 to
    /// [`MAX_EXECUTOR_LIMIT`]).
    ///
    /// ```
    /// let limits = qron::ExecutorLimits::new().concurrency(5);
    /// ```
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// At most `n` of each owner's jobs of the executor at once (1 to [`MAX_EXECUTOR_LIMIT`]).
    ///
    /// ```
    /// let limits = qron::ExecutorLimits::new().per_owner(10);
    /// ```
    pub fn per_owner(self, n: u32) -> Self {
        self.per(Partition::Owner, n)
    }

    /// At most `n` jobs at once per value of the payload's top-level field `field` (1 to
    /// [`MAX_EXECUTOR_LIMIT`]): "at most 2 per customer".
    ///
    /// ```
    /// let limits = qron::ExecutorLimits::new().per_field("customer_id", 2);
    /// ```
    pub fn per_field(self, field: impl Into<String>, n: u32) -> Self {
        self.per(Partition::Field(field.into()), n)
    }

    /// At most `n` jobs at once per key of `partition` (one partition per executor: a second
    /// call replaces the first).
    ///
    /// ```
    /// let limits = qron::ExecutorLimits::new().per(qron::Partition::Owner, 3);
    /// ```
    pub fn per(mut self, partition: Partition, n: u32) -> Self {
        self.partition = Some((partition, n));
        self
    }

    /// At most so many starts per period, in all or per key of the rate limit's own partition
    /// (see [`RateLimit`]).
    ///
    /// ```
    /// use qron::{ExecutorLimits, RateLimit};
    /// // 100 a minute per customer, and at most 10 at once.
    /// let limits = ExecutorLimits::new()
    ///     .concurrency(10)
    ///     .rate(RateLimit::per_minute(100).per_field("customer_id"));
    /// assert_eq!(limits.to_string(), "10 at once, 100 per minute per customer_id");
    /// ```
    pub fn rate(mut self, rate: RateLimit) -> Self {
        self.rate = Some(rate);
        self
    }

    /// The rate limit, if any.
    ///
    /// ```
    /// let limits = qron::ExecutorLimits::new().rate(qron::RateLimit::per_second(5));
    /// assert_eq!(limits.rate_limit().map(|r| r.starts()), Some(5));
    /// ```
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.rate.as_ref()
    }

    /// The limit on all of the executor's jobs at once, if any.
    ///
    /// ```
    /// assert_eq!(qron::ExecutorLimits::new().concurrency(5).concurrency_limit(), Some(5));
    /// ```
    pub fn concurrency_limit(&self) -> Option<u32> {
        self.concurrency
    }

    /// The partition and its per-key limit, if any.
    ///
    /// ```
    /// let limits = qron::ExecutorLimits::new().per_owner(3);
    /// assert_eq!(limits.partition(), Some((&qron::Partition::Owner, 3)));
    /// ```
    pub fn partition(&self) -> Option<(&Partition, u32)> {
        self.partition.as_ref().map(|(p, n)| (p, *n))
    }

    /// Refuses a limit of 0 or over [`MAX_EXECUTOR_LIMIT`], a field name that cannot be
    /// stored, and limits that limit nothing; each error names its field.
    pub(crate) fn check(&self) -> Result<()> {
        if self.concurrency.is_none() && self.partition.is_none() && self.rate.is_none() {
            return Err(Error::InvalidArgument {
                field: "limits",
                reason: "set no limit: give a concurrency, a partition or a rate, or clear the \
                         limits"
                    .to_owned(),
            });
        }
        if let Some(n) = self.concurrency {
            check_limit("concurrency", n)?;
        }
        if let Some((partition, n)) = &self.partition {
            check_limit("partition_concurrency", *n)?;
            if let Partition::Field(field) = partition {
                check_name("partition_field", field)?;
            }
        }
        if let Some(rate) = &self.rate {
            rate.check()?;
        }
        Ok(())
    }

    /// The row's columns: partition kind, field, per-key limit.
    pub(crate) fn partition_columns(&self) -> (Option<&'static str>, Option<&str>, Option<i32>) {
        match &self.partition {
            None => (None, None, None),
            Some((Partition::Owner, n)) => (Some("owner"), None, Some(as_i32(*n))),
            Some((Partition::Field(f), n)) => (Some("field"), Some(f.as_str()), Some(as_i32(*n))),
        }
    }

    /// Limits read back from their row (`None` for a row no version of qron writes).
    pub(crate) fn from_columns(
        concurrency: Option<i32>,
        partition_by: Option<&str>,
        partition_field: Option<String>,
        partition_concurrency: Option<i32>,
    ) -> Option<Self> {
        let n = |v: i32| u32::try_from(v).ok();
        let partition = match (partition_by, partition_field, partition_concurrency) {
            (None, _, _) => None,
            (Some("owner"), _, Some(c)) => Some((Partition::Owner, n(c)?)),
            (Some("field"), Some(f), Some(c)) => Some((Partition::Field(f), n(c)?)),
            _ => return None,
        };
        Some(Self {
            concurrency: match concurrency {
                Some(c) => Some(n(c)?),
                None => None,
            },
            partition,
            rate: None,
        })
    }
}

/// The limits in words: `20 at once, 2 per customer_id`.
///
/// ```
/// let limits = qron::ExecutorLimits::new().concurrency(20).per_field("customer_id", 2);
/// assert_eq!(limits.to_string(), "20 at once, 2 per customer_id");
/// assert_eq!(qron::ExecutorLimits::new().per_owner(3).to_string(), "3 per owner");
/// ```
impl std::fmt::Display for ExecutorLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.concurrency {
            parts.push(format!("{n} at once"));
        }
        match &self.partition {
            Some((Partition::Owner, n)) => parts.push(format!("{n} per owner")),
            Some((Partition::Field(field), n)) => parts.push(format!("{n} per {field}")),
            None => {}
        }
        if let Some(rate) = &self.rate {
            parts.push(rate.to_string());
        }
        f.write_str(&parts.join(", "))
    }
}

fn as_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn check_limit(field: &'static str, n: u32) -> Result<()> {
    if n == 0 || n > MAX_EXECUTOR_LIMIT {
        return Err(Error::InvalidArgument {
            field,
            reason: format!("is {n}, outside 1 to {MAX_EXECUTOR_LIMIT}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(limits: &ExecutorLimits) -> &'static str {
        match limits.check() {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn limits_out_of_range_or_limiting_nothing_are_refused_naming_the_field() {
        assert_eq!(refused(&ExecutorLimits::new()), "limits");
        assert_eq!(
            refused(&ExecutorLimits::new().concurrency(0)),
            "concurrency"
        );
        assert_eq!(
            refused(&ExecutorLimits::new().concurrency(MAX_EXECUTOR_LIMIT + 1)),
            "concurrency"
        );
        assert_eq!(
            refused(&ExecutorLimits::new().per_owner(0)),
            "partition_concurrency"
        );
        assert_eq!(
            refused(&ExecutorLimits::new().per_field("", 2)),
            "partition_field"
        );
        assert_eq!(
            refused(&ExecutorLimits::new().per_field("a\0b", 2)),
            "partition_field"
        );
        for ok in [
            ExecutorLimits::new().concurrency(1),
            ExecutorLimits::new().concurrency(MAX_EXECUTOR_LIMIT),
            ExecutorLimits::new().per_field("customer_id", MAX_EXECUTOR_LIMIT),
        ] {
            assert!(ok.check().is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn limits_come_back_from_their_columns() {
        let limits = ExecutorLimits::new().concurrency(7).per_field("k", 2);
        let (by, field, n) = limits.partition_columns();
        let back = ExecutorLimits::from_columns(Some(7), by, field.map(str::to_owned), n);
        assert_eq!(back, Some(limits));
        let owner = ExecutorLimits::new().per_owner(3);
        let (by, field, n) = owner.partition_columns();
        assert_eq!(
            ExecutorLimits::from_columns(None, by, field.map(str::to_owned), n),
            Some(owner)
        );
        assert_eq!(
            ExecutorLimits::from_columns(None, Some("other"), None, Some(1)),
            None
        );
    }
}

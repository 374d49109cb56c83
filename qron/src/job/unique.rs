//! Unique jobs: at most one job of an owner's executor per key (its payload, or some of its
//! fields, and a period), enforced by the database (see `migrations/0015_unique.sql`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::JobStatus;
use crate::error::{Error, Result};

/// What makes a job unique among its owner's jobs of the same executor: none of them, all of
/// its payload, or some of its fields; within a period (once per hour), or for as long as the
/// other job is in one of the counted statuses. Set with [`NewJob::unique`](crate::NewJob::unique)
/// or [`Enqueue::unique`](crate::Enqueue::unique).
///
/// A second job with the same key is not created: the enqueue returns the job that holds the
/// key, flagged as a duplicate ([`JobRow::duplicate`](crate::JobRow::duplicate),
/// [`Created::duplicate`](crate::Created::duplicate)). The database decides, so of two
/// concurrent enqueues, from any number of processes, exactly one creates the job.
///
/// By default a key is held while its job is ready, running, stopped or succeeded (a failed or
/// cancelled job does not stop a new one): see [`Unique::states`].
///
/// ```
/// use std::time::Duration;
/// // One sync per customer at a time, whatever else the payload says.
/// let per_customer = qron::Unique::by_keys(["customer_id"]);
/// // The same report at most once an hour.
/// let hourly = qron::Unique::by_payload().period(Duration::from_secs(3600));
/// // One cleanup of the executor queued or running at a time.
/// let single = qron::Unique::by_executor().states([qron::JobStatus::Ready, qron::JobStatus::Running]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unique {
    by: By,
    period: Option<Duration>,
    states: Vec<JobStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum By {
    Executor,
    Payload,
    Keys(Vec<String>),
}

/// The statuses in which a unique job holds its key unless [`Unique::states`] says otherwise.
pub const DEFAULT_UNIQUE_STATES: [JobStatus; 4] = [
    JobStatus::Ready,
    JobStatus::Running,
    JobStatus::Stopped,
    JobStatus::Succeeded,
];

/// The shortest period a unique key can have.
pub const MIN_UNIQUE_PERIOD: Duration = Duration::from_secs(1);

impl Unique {
    fn new(by: By) -> Self {
        Self {
            by,
            period: None,
            states: DEFAULT_UNIQUE_STATES.to_vec(),
        }
    }

    /// One job of the executor (per owner), whatever its payload.
    ///
    /// ```
    /// let job = qron::NewJob::new("reindex", "@after 0s").unique(qron::Unique::by_executor());
    /// ```
    pub fn by_executor() -> Self {
        Self::new(By::Executor)
    }

    /// One job per payload: two payloads are the same when they are equal as JSON (the order of
    /// an object's fields does not matter).
    ///
    /// ```
    /// let job = qron::NewJob::new("report", "@after 0s")
    ///     .payload(serde_json::json!({ "month": "2026-11" }))
    ///     .unique(qron::Unique::by_payload());
    /// ```
    pub fn by_payload() -> Self {
        Self::new(By::Payload)
    }

    /// One job per value of these fields of the payload (a JSON object that must have each of
    /// them; the other fields do not count).
    ///
    /// ```
    /// let job = qron::NewJob::new("sync", "@after 0s")
    ///     .payload(serde_json::json!({ "customer_id": 7, "reason": "webhook" }))
    ///     .unique(qron::Unique::by_keys(["customer_id"]));
    /// ```
    pub fn by_keys<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        keys.sort();
        keys.dedup();
        Self::new(By::Keys(keys))
    }

    /// Unique within each period of this length (periods start at the Unix epoch, by the
    /// database's clock: with one hour, from each full hour): a job enqueued in the next period
    /// is a new one. At least [`MIN_UNIQUE_PERIOD`].
    ///
    /// ```
    /// let hourly = qron::Unique::by_payload().period(std::time::Duration::from_secs(3600));
    /// ```
    pub fn period(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// The statuses in which the job holds its key (default: [`DEFAULT_UNIQUE_STATES`]). A job
    /// in another status, or gone, lets the next enqueue of the key create a new job.
    ///
    /// ```
    /// use qron::JobStatus::*;
    /// // Any job that has not finished, or that finished well.
    /// let u = qron::Unique::by_payload().states([Ready, Running, Stopped, Succeeded]);
    /// ```
    pub fn states(mut self, states: impl IntoIterator<Item = JobStatus>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// The claim a job with `payload` enqueued at `now` makes, checked.
    pub(crate) fn claim(&self, payload: &Value, now: DateTime<Utc>) -> Result<UniqueClaim> {
        let invalid =
            |field: &'static str, reason: String| Error::InvalidArgument { field, reason };
        let states = self.states.iter().fold(0i16, |bits, s| bits | bit(*s));
        if states == 0 {
            return Err(invalid(
                "unique.states",
                "name at least one status in which the job holds its key".to_owned(),
            ));
        }
        let mut key = match &self.by {
            By::Executor => String::new(),
            By::Payload => serde_json::to_string(payload)?,
            By::Keys(keys) => {
                if keys.is_empty() {
                    return Err(invalid("unique.keys", "name at least one field".to_owned()));
                }
                let Value::Object(fields) = payload else {
                    return Err(invalid(
                        "unique.keys",
                        "the payload must be a JSON object to be unique by its fields".to_owned(),
                    ));
                };
                let mut picked = serde_json::Map::new();
                for k in keys {
                    let Some(v) = fields.get(k) else {
                        return Err(invalid(
                            "unique.keys",
                            format!("the payload has no field `{}`", k.escape_debug()),
                        ));
                    };
                    picked.insert(k.clone(), v.clone());
                }
                serde_json::to_string(&Value::Object(picked))?
            }
        };
        let until = match self.period {
            None => None,
            Some(p) => {
                if p < MIN_UNIQUE_PERIOD {
                    return Err(invalid(
                        "unique.period",
                        format!("{p:?} is shorter than the least period, {MIN_UNIQUE_PERIOD:?}"),
                    ));
                }
                let micros = i64::try_from(p.as_micros())
                    .ok()
                    .filter(|m| *m <= MAX_PERIOD_MICROS)
                    .ok_or_else(|| {
                        invalid(
                            "unique.period",
                            format!("{p:?} is longer than 100 years, the longest period"),
                        )
                    })?;
                let slot = now.timestamp_micros().div_euclid(micros);
                // The key names its period (after a line break: JSON text holds none).
                key.push('\n');
                key.push_str(&slot.to_string());
                DateTime::from_timestamp_micros((slot + 1).saturating_mul(micros))
            }
        };
        Ok(UniqueClaim { key, states, until })
    }
}

/// 100 years, the longest period (a longer one is no period at all).
const MAX_PERIOD_MICROS: i64 = 100 * 366 * 86_400 * 1_000_000;

/// A status's bit in a claim's `states` (see `migrations/0015_unique.sql`).
fn bit(s: JobStatus) -> i16 {
    match s {
        // a job waiting for others is ready but for them
        JobStatus::Ready | JobStatus::Waiting => 1,
        JobStatus::Running => 2,
        JobStatus::Stopped => 4,
        JobStatus::Succeeded => 8,
        JobStatus::Failed => 16,
        JobStatus::Cancelled => 32,
    }
}

/// A unique job's claim, as stored in `qron.job_uniques` (the key hashed there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UniqueClaim {
    /// The key's text: the payload's JSON (all of it, the named fields, or nothing), then the
    /// period's number when there is one.
    pub key: String,
    /// The statuses that hold the key, one bit each.
    pub states: i16,
    /// The end of the key's period.
    pub until: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_key_is_the_payload_or_its_named_fields_in_one_order() {
        let now = at("2026-12-07T10:20:00Z");
        let a = json!({ "customer": 7, "reason": "webhook", "nested": { "b": 1, "a": 2 } });
        let b = json!({ "nested": { "a": 2, "b": 1 }, "reason": "webhook", "customer": 7 });
        let by_payload = Unique::by_payload();
        assert_eq!(
            by_payload.claim(&a, now).unwrap(),
            by_payload.claim(&b, now).unwrap()
        );
        let by_customer = Unique::by_keys(["customer"]);
        let other_reason = json!({ "customer": 7, "reason": "cron" });
        assert_eq!(
            by_customer.claim(&a, now).unwrap().key,
            by_customer.claim(&other_reason, now).unwrap().key
        );
        assert_ne!(
            by_customer.claim(&a, now).unwrap().key,
            by_customer
                .claim(&json!({ "customer": 8 }), now)
                .unwrap()
                .key
        );
        assert_eq!(Unique::by_executor().claim(&a, now).unwrap().key, "");
        assert_eq!(Unique::by_executor().claim(&a, now).unwrap().states, 15);
    }

    #[test]
    fn a_period_puts_its_number_in_the_key_and_ends_the_claim() {
        let hourly = Unique::by_executor().period(Duration::from_secs(3600));
        let c = hourly
            .claim(&Value::Null, at("2026-12-07T10:20:00Z"))
            .unwrap();
        assert_eq!(c.until, Some(at("2026-12-07T11:00:00Z")));
        let same = hourly
            .claim(&Value::Null, at("2026-12-07T10:59:59Z"))
            .unwrap();
        let next = hourly
            .claim(&Value::Null, at("2026-12-07T11:00:00Z"))
            .unwrap();
        assert_eq!(c.key, same.key);
        assert_ne!(c.key, next.key);
    }

    #[test]
    fn bad_options_are_refused_naming_the_field() {
        let now = at("2026-12-07T10:20:00Z");
        let field = |u: Unique, payload: Value| match u.claim(&payload, now) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let obj = json!({ "a": 1 });
        assert_eq!(field(Unique::by_keys(["b"]), obj.clone()), "unique.keys");
        assert_eq!(
            field(Unique::by_keys(Vec::<String>::new()), obj.clone()),
            "unique.keys"
        );
        assert_eq!(field(Unique::by_keys(["a"]), json!([1])), "unique.keys");
        assert_eq!(
            field(
                Unique::by_payload().period(Duration::from_millis(999)),
                obj.clone()
            ),
            "unique.period"
        );
        assert_eq!(
            field(
                Unique::by_payload().period(Duration::from_secs(u64::MAX)),
                obj.clone()
            ),
            "unique.period"
        );
        assert_eq!(field(Unique::by_payload().states([]), obj), "unique.states");
    }
}

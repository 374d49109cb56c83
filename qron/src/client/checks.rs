//! The checks every value passes where it enters: text PostgreSQL can take, names, times,
//! attempts and timeouts in range.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;

use crate::error::{Error, Result};
use crate::job::{JobRef, MAX_ATTEMPTS_LIMIT, MAX_NAME_LEN};
use crate::limits;

/// Refuses a text PostgreSQL cannot take as a parameter (a NUL character).
pub(crate) fn check_text(field: &'static str, value: &str) -> Result<()> {
    match limits::text_problem(value) {
        Some(reason) => Err(Error::InvalidArgument {
            field,
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Refuses a job reference whose executor or name PostgreSQL cannot take.
pub(crate) fn check_ref(target: &JobRef) -> Result<()> {
    match target {
        JobRef::Id(_) => Ok(()),
        JobRef::Name { executor, name } => {
            check_text("executor", executor)?;
            check_text("name", name)
        }
    }
}

/// Refuses an instant outside the range jobs are scheduled in (years 1 to 9999).
pub(crate) fn check_time(field: &'static str, t: DateTime<Utc>) -> Result<()> {
    match limits::time_problem(t) {
        Some(reason) => Err(Error::InvalidArgument { field, reason }),
        None => Ok(()),
    }
}

pub(crate) fn check_name(field: &'static str, value: &str) -> Result<()> {
    check_text(field, value)?;
    if value.is_empty() {
        return Err(Error::InvalidArgument {
            field,
            reason: "must not be empty".to_owned(),
        });
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(Error::InvalidArgument {
            field,
            reason: format!("is {chars} characters long, over the limit of {MAX_NAME_LEN}"),
        });
    }
    Ok(())
}

pub(crate) fn check_max_attempts(n: i32) -> Result<()> {
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&n) {
        return Err(Error::InvalidArgument {
            field: "max_attempts",
            reason: format!("{n} is outside 1..={MAX_ATTEMPTS_LIMIT}"),
        });
    }
    Ok(())
}

pub(crate) fn timeout_interval(t: Duration) -> Result<PgInterval> {
    let micros = i64::try_from(t.as_micros()).unwrap_or(i64::MAX);
    if micros <= 0 {
        return Err(Error::InvalidArgument {
            field: "timeout",
            reason: "must be at least one microsecond".to_owned(),
        });
    }
    if t > limits::MAX_TIMEOUT {
        return Err(Error::InvalidArgument {
            field: "timeout",
            reason: format!(
                "{t:?} is over the limit of {:?} (7 days)",
                limits::MAX_TIMEOUT
            ),
        });
    }
    Ok(PgInterval {
        months: 0,
        days: 0,
        microseconds: micros,
    })
}

/// A number of seconds (from an API) as a duration: refused when negative, not a number, or
/// over [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), naming `field`.
pub(crate) fn seconds(field: &'static str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| *d <= crate::MAX_TIMEOUT)
        .ok_or_else(|| Error::InvalidArgument {
            field,
            reason: format!("{s} is not a number of seconds from 0 to 7 days"),
        })
}

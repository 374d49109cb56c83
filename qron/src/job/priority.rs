//! Priorities: 0 (highest) to 9, and how long a job of a lower priority can be passed over
//! (see `migrations/0016_priority.sql`).

use std::time::Duration;

use crate::error::{Error, Result};

/// A job's priority unless it, or its executor's `#[qron::job(priority = …)]`, says otherwise.
pub const DEFAULT_PRIORITY: u8 = 5;

/// The lowest priority (the highest is 0).
pub const LOWEST_PRIORITY: u8 = 9;

/// How long a due job of the lowest priority can be passed over by jobs of higher priorities due
/// after it, unless the client says otherwise
/// ([`ClientBuilder::priority_aging`](crate::ClientBuilder::priority_aging)).
pub const DEFAULT_PRIORITY_AGING: Duration = Duration::from_secs(10 * 60);

/// The shortest and longest aging bound a client accepts.
const AGING_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30 * 86_400));

/// A priority as stored, checked.
pub(crate) fn check_priority(priority: u8) -> Result<i16> {
    if priority > LOWEST_PRIORITY {
        return Err(Error::InvalidArgument {
            field: "priority",
            reason: format!(
                "{priority} is not a priority: 0 (the highest) to {LOWEST_PRIORITY} (the lowest)"
            ),
        });
    }
    Ok(i16::from(priority))
}

/// How far one priority level puts a job back in the lease order, in microseconds: a ninth of
/// the aging bound, checked.
pub(crate) fn priority_step(aging: Duration) -> Result<i64> {
    if aging < AGING_RANGE.0 || aging > AGING_RANGE.1 {
        return Err(Error::InvalidArgument {
            field: "priority_aging",
            reason: format!(
                "{aging:?} is outside {:?} to {:?} (30 days)",
                AGING_RANGE.0, AGING_RANGE.1
            ),
        });
    }
    // At most 30 days: well within i64 microseconds.
    Ok(i64::try_from(aging.as_micros()).unwrap_or(i64::MAX) / i64::from(LOWEST_PRIORITY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_and_aging_bounds_outside_their_range_are_refused() {
        assert_eq!(check_priority(0).ok(), Some(0));
        assert_eq!(check_priority(9).ok(), Some(9));
        assert!(matches!(
            check_priority(10),
            Err(Error::InvalidArgument {
                field: "priority",
                ..
            })
        ));
        assert_eq!(priority_step(Duration::from_secs(9)).ok(), Some(1_000_000));
        for bad in [Duration::from_millis(999), Duration::from_secs(31 * 86_400)] {
            assert!(matches!(
                priority_step(bad),
                Err(Error::InvalidArgument {
                    field: "priority_aging",
                    ..
                })
            ));
        }
    }
}

//! What PostgreSQL (and qron's decoder) can store and read back, checked where values enter, so
//! that no value handed in by one tenant can make a shared statement fail for the others.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The shortest poll, rescue or flush interval: shorter ones would keep a core busy asking.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The longest poll, rescue, flush or refresh interval: a worker looks at its work at least
/// once a day (longer ones are mistakes, and past the clock's range at `Duration::MAX`).
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Refuses setting `field` when `value` is under `min`, saying `why` (what would go wrong).
/// Every worker setting is checked with this and [`at_most`], so that each refusal names its
/// setting, its value and its bound the same way.
pub(crate) fn at_least<T: PartialOrd + std::fmt::Debug>(
    field: &'static str,
    value: T,
    min: T,
    why: &str,
) -> crate::Result<()> {
    if value < min {
        return Err(crate::Error::InvalidArgument {
            field,
            reason: format!("{value:?} is under {min:?}: {why}"),
        });
    }
    Ok(())
}

/// Refuses setting `field` when `value` is over `max`, saying `why` (see [`at_least`]).
pub(crate) fn at_most<T: PartialOrd + std::fmt::Debug>(
    field: &'static str,
    value: T,
    max: T,
    why: &str,
) -> crate::Result<()> {
    if value > max {
        return Err(crate::Error::InvalidArgument {
            field,
            reason: format!("{value:?} is over the limit of {max:?}: {why}"),
        });
    }
    Ok(())
}

/// Refuses an interval under [`MIN_INTERVAL`] or over [`MAX_INTERVAL`], naming the setting.
pub(crate) fn check_interval(field: &'static str, d: Duration) -> crate::Result<()> {
    at_least(field, d, MIN_INTERVAL, "the worker would spin")?;
    at_most(
        field,
        d,
        MAX_INTERVAL,
        "the worker would look at its work too rarely",
    )
}

/// The deepest nesting of arrays and objects a payload or meta may have. serde_json refuses to
/// decode past 128 levels; a value deeper than that would be stored, then fail every read.
pub const MAX_JSON_DEPTH: usize = 64;

/// The longest lease (job timeout) a job may have. Longer leases would put the lease's expiry
/// past what PostgreSQL's `timestamptz` holds, and a worker that dies would hold the job for
/// longer than anyone would wait.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

/// The longest error text recorded for an execution, in bytes; longer ones are cut.
///
/// ```
/// assert_eq!(qron::MAX_ERROR_LEN, 8 * 1024);
/// ```
pub const MAX_ERROR_LEN: usize = 8 * 1024;

/// Why a JSON text cannot be stored or read back, if it cannot.
///
/// PostgreSQL's `jsonb` refuses the escape `\u0000` (a NUL character), and serde_json refuses to
/// decode past 128 levels of nesting.
pub(crate) fn json_problem(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => {
                    if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                        return Some(
                            "holds a NUL character (\\u0000), which PostgreSQL cannot store"
                                .to_owned(),
                        );
                    }
                    i += 1;
                }
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'-' | b'0'..=b'9' => {
                    let end = bytes[i..]
                        .iter()
                        .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                        .map_or(bytes.len(), |n| i + n);
                    if let Some(problem) = number_problem(&text[i..end]) {
                        return Some(problem);
                    }
                    i = end;
                    continue;
                }
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    (deepest > MAX_JSON_DEPTH)
        .then(|| format!("is nested {deepest} levels deep, over the limit of {MAX_JSON_DEPTH}"))
}

/// Why a JSON number cannot be read back, if it cannot: PostgreSQL writes a number as stored
/// digits (`1.7976931348623157e308` comes back with 309 of them), and serde_json refuses to read
/// such digits near the end of `f64`'s range.
fn number_problem(token: &str) -> Option<String> {
    let exponent = token.contains(['e', 'E']);
    let too_long = token.trim_start_matches('-').len() > 300;
    if !exponent && !too_long {
        return None;
    }
    match token.parse::<f64>() {
        Ok(x) if x.abs() < MAX_JSON_NUMBER => None,
        _ => Some(format!(
            "holds the number {}, beyond ±1e300: it could not be read back",
            excerpt(token, 40)
        )),
    }
}

/// The largest magnitude of a JSON number a payload or meta may hold.
const MAX_JSON_NUMBER: f64 = 1e300;

/// Why a text cannot be stored in a `text` column, if it cannot (PostgreSQL refuses NUL).
pub(crate) fn text_problem(text: &str) -> Option<&'static str> {
    text.contains('\0')
        .then_some("holds a NUL character, which PostgreSQL cannot store")
}

/// The earliest instant a job may be scheduled at: 0001-01-01 UTC.
pub(crate) fn earliest() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The first instant past the range jobs may be scheduled in: 10000-01-01 UTC.
pub(crate) fn past_latest() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(253_402_300_800, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why an instant cannot be a job's time, if it cannot: jobs live in the years 1 to 9999 (what
/// RFC 3339 writes; PostgreSQL's range is wider, chrono's wider still).
pub(crate) fn time_problem(t: DateTime<Utc>) -> Option<String> {
    (t < earliest() || t >= past_latest()).then(|| format!("{t} is outside the years 1 to 9999"))
}

/// An instant brought into the range PostgreSQL stores, for a search bound: nothing lies
/// beyond it, so the search's result is the same.
pub(crate) fn clamp_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.clamp(earliest(), past_latest())
}

/// An execution's error as it can be stored: NUL characters replaced, cut to
/// [`MAX_ERROR_LEN`].
pub(crate) fn storable_error(text: &str) -> String {
    let mut out = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    };
    if out.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("… (cut)");
    }
    out
}

/// A text for a message: at most `max` characters of it, marked when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_problems_are_found_outside_and_inside_strings() {
        assert_eq!(json_problem(r#"{"a":[1,{"b":"x"}]}"#), None);
        assert!(json_problem(r#"{"a":"x\u0000y"}"#).is_some());
        assert!(json_problem(r#"{"a\u0000":1}"#).is_some());
        // An escaped backslash followed by u0000 is text, not a NUL.
        assert_eq!(json_problem(r#"{"a":"x\\u0000y"}"#), None);
        // Brackets inside strings do not count.
        assert_eq!(json_problem(&format!("\"{}\"", "[".repeat(500))), None);
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(json_problem(&deep).is_some_and(|p| p.contains("65 levels")));
        assert!(json_problem(r#"{"n":1.7976931348623157e308}"#).is_some());
        assert!(json_problem(r#"[-1e301]"#).is_some());
        assert_eq!(json_problem(r#"[1e299,-5,0.5,18446744073709551615]"#), None);
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(json_problem(&ok), None);
    }

    #[test]
    fn errors_are_made_storable() {
        assert_eq!(storable_error("a\0b"), "a\u{FFFD}b");
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = storable_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN + 12 && cut.ends_with("(cut)"));
        assert_eq!(excerpt("abc", 2), "ab… (3 bytes in all)");
        assert_eq!(excerpt("abc", 3), "abc");
    }

    #[test]
    fn times_outside_years_1_to_9999_are_refused_and_search_bounds_clamped() {
        assert!(time_problem(DateTime::<Utc>::MIN_UTC).is_some());
        assert!(time_problem(DateTime::<Utc>::MAX_UTC).is_some());
        assert!(time_problem(past_latest()).is_some());
        assert!(time_problem(earliest()).is_none());
        assert_eq!(earliest().to_rfc3339(), "0001-01-01T00:00:00+00:00");
        assert_eq!(clamp_time(DateTime::<Utc>::MIN_UTC), earliest());
        assert_eq!(clamp_time(DateTime::<Utc>::MAX_UTC), past_latest());
    }
}

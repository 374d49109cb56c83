//! `@at` timestamps.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

use super::{ExprError, ExprErrorKind};

/// `@at` timestamps: RFC 3339 (`T` or a space between date and time; `Z`, `±hh`, `±hh:mm` or
/// `±hhmm` offset, none meaning UTC), or a date alone (midnight UTC).
pub(super) fn parse_timestamp(text: &str, pos: usize) -> Result<DateTime<Utc>, ExprError> {
    let bad = |why: &str| {
        ExprError::new(
            ExprErrorKind::BadTimestamp,
            pos,
            text,
            format!(
                "{why}; write an RFC 3339 timestamp such as `2027-01-01T09:00:00+01:00` \
                 (without an offset it is UTC; zone names and abbreviations are ambiguous and not accepted)"
            ),
        )
    };
    if text.is_empty() {
        return Err(bad("@at needs a timestamp"));
    }
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err(bad(&format!(
            "`{text}` does not start with a date YYYY-MM-DD"
        )));
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err(bad(&format!(
            "`{text}` does not start with a date YYYY-MM-DD"
        )));
    }
    let date = NaiveDate::from_ymd_opt(y as i32, m, d)
        .ok_or_else(|| bad(&format!("{y:04}-{m:02}-{d:02} is not a calendar date")))?;
    let mut i = 10;
    let mut time = NaiveTime::MIN;
    if i < b.len() && matches!(b[i], b'T' | b't' | b' ') {
        i += 1;
        let (Some(h), Some(mi)) = (digits(i..i + 2), digits(i + 3..i + 5)) else {
            return Err(bad("the time must be hh:mm[:ss[.fraction]]"));
        };
        if b[i + 2] != b':' {
            return Err(bad("the time must be hh:mm[:ss[.fraction]]"));
        }
        i += 5;
        let mut sec = 0;
        let mut nanos = 0u32;
        if i < b.len() && b[i] == b':' {
            sec = digits(i + 1..i + 3).ok_or_else(|| bad("the seconds must be two digits"))?;
            i += 3;
            if i < b.len() && b[i] == b'.' {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return Err(bad("a fraction of a second needs digits after the dot"));
                }
                // PostgreSQL keeps microseconds: round the rest away.
                let frac: f64 = format!("0.{}", &text[start..end]).parse().unwrap_or(0.0);
                let micros = (frac * 1e6).round_ties_even() as u32;
                nanos = micros * 1000;
                i = end;
            }
        }
        let extra = nanos / 1_000_000_000;
        time = NaiveTime::from_hms_nano_opt(h, mi, sec.min(59), nanos % 1_000_000_000)
            .ok_or_else(|| bad(&format!("{h:02}:{mi:02}:{sec:02} is not a time of day")))?;
        if sec > 59 || extra > 0 {
            return Err(bad(&format!(
                "{h:02}:{mi:02}:{sec:02} is not a time of day"
            )));
        }
    }
    let naive = date.and_time(time);
    let rest = &text[i..];
    let offset_secs = parse_offset(rest, &bad)?;
    let utc = naive - Duration::seconds(i64::from(offset_secs));
    Ok(Utc.from_utc_datetime(&utc))
}

/// The UTC offset after a timestamp's time, in seconds: none, `Z`, `±hh`, `±hhmm` or `±hh:mm`
/// (at most ±15:59); `bad` says what is wrong.
fn parse_offset(rest: &str, bad: &dyn Fn(&str) -> ExprError) -> Result<i32, ExprError> {
    if matches!(rest, "" | "Z" | "z") {
        return Ok(0);
    }
    let sign = match rest.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad(&format!("unexpected `{rest}` after the time"))),
    };
    let not_an_offset = || bad(&format!("`{rest}` is not an offset (+hh, +hh:mm or Z)"));
    let o = &rest[1..];
    if !o.bytes().all(|c| c.is_ascii_digit() || c == b':') {
        return Err(not_an_offset());
    }
    let (hh, mm) = match o.len() {
        2 => (o.parse::<i32>().ok(), Some(0)),
        4 => (o[..2].parse().ok(), o[2..].parse().ok()),
        5 if &o[2..3] == ":" => (o[..2].parse().ok(), o[3..].parse().ok()),
        _ => (None, None),
    };
    match (hh, mm) {
        (Some(h), Some(m)) if h <= 15 && m < 60 => Ok(sign * (h * 3600 + m * 60)),
        _ => Err(not_an_offset()),
    }
}

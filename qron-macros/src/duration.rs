//! Fixed-length durations written as text (`"30 seconds"`, `"1h 30m"`, `"00:05:00"`), checked
//! when the attribute expands.

const UNITS: &[(&[&str], u64)] = &[
    (&["us", "usec", "usecs", "microsecond", "microseconds"], 1),
    (
        &["ms", "msec", "msecs", "millisecond", "milliseconds"],
        1_000,
    ),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000_000),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000_000),
    (&["d", "day", "days"], 86_400_000_000),
    (&["w", "week", "weeks"], 604_800_000_000),
];

/// Microseconds in `text`, or why it is not a duration.
pub(crate) fn parse_micros(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.contains(':') {
        return clock(t);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    let mut any = false;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("`{}` is not a number", &rest[..num_len]))?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].to_ascii_lowercase();
        let scale = UNITS
            .iter()
            .find(|(names, _)| names.contains(&unit.as_str()))
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                if unit.is_empty() {
                    format!("`{}` needs a unit (s, m, h, d …)", number)
                } else {
                    format!("unknown unit `{unit}` (use us, ms, s, m, h, d or w; months and years have no fixed length)")
                }
            })?;
        total = total.saturating_add((number * scale as f64).round() as u64);
        rest = rest[unit_len..].trim_start();
        any = true;
    }
    if !any {
        return Err("the duration is empty".to_owned());
    }
    Ok(total)
}

fn clock(t: &str) -> Result<u64, String> {
    let parts: Vec<&str> = t.split(':').collect();
    let bad = || format!("`{t}` is not hh:mm or hh:mm:ss");
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(bad()),
    };
    let h: u64 = h.parse().map_err(|_| bad())?;
    let m: u64 = m.parse().map_err(|_| bad())?;
    let s: f64 = s.parse().map_err(|_| bad())?;
    if m > 59 || !(0.0..60.0).contains(&s) {
        return Err(bad());
    }
    Ok(h * 3_600_000_000 + m * 60_000_000 + (s * 1e6).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_micros;

    #[test]
    fn durations() {
        assert_eq!(parse_micros("30 seconds"), Ok(30_000_000));
        assert_eq!(parse_micros("1h 30m"), Ok(5_400_000_000));
        assert_eq!(parse_micros("1.5 hours"), Ok(5_400_000_000));
        assert_eq!(parse_micros("00:05:00"), Ok(300_000_000));
        assert_eq!(parse_micros("250ms"), Ok(250_000));
        assert!(parse_micros("1 month").is_err());
        assert!(parse_micros("soon").is_err());
        assert!(parse_micros("").is_err());
        assert!(parse_micros("5").is_err());
    }
}

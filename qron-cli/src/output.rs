//! How results reach the terminal: aligned tables for people (times in the local zone, colours
//! only on a terminal), one JSON object per line for scripts.

use std::io::IsTerminal as _;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};

/// Output choices from the command line and the terminal.
pub(crate) struct Style {
    /// One JSON object per line.
    pub(crate) json: bool,
    utc: bool,
    color: bool,
}

/// A table cell: its text, and the colour (an ANSI SGR code) it gets on a terminal.
pub(crate) struct Cell {
    text: String,
    color: Option<&'static str>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell {
            text: clean(&text),
            color: None,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::from(text.to_owned())
    }
}

impl Style {
    /// Colours when standard output is a terminal and `NO_COLOR` is unset.
    pub(crate) fn detect(json: bool, utc: bool) -> Self {
        Style {
            json,
            utc,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// An instant in the local zone (or UTC with `--utc`), to the second.
    pub(crate) fn time(&self, t: DateTime<Utc>) -> String {
        if self.utc {
            t.format("%Y-%m-%d %H:%M:%SZ").to_string()
        } else {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S%:z")
                .to_string()
        }
    }

    /// An optional instant, `-` when absent.
    pub(crate) fn maybe_time(&self, t: Option<DateTime<Utc>>) -> String {
        t.map_or_else(|| "-".to_owned(), |t| self.time(t))
    }

    /// A job status, coloured by what it means.
    pub(crate) fn status(&self, status: qron::JobStatus) -> Cell {
        let color = match status {
            qron::JobStatus::Succeeded => "32",
            qron::JobStatus::Failed => "31",
            qron::JobStatus::Running => "36",
            qron::JobStatus::Stopped | qron::JobStatus::Cancelled => "33",
            _ => "0",
        };
        self.colored(status.as_str(), color)
    }

    /// A job's status, `retrying` for a ready job after a failed attempt.
    pub(crate) fn job_status(&self, job: &qron::JobRow) -> Cell {
        if job.is_retrying() {
            self.colored("retrying", "33")
        } else {
            self.status(job.status)
        }
    }

    /// `text` in `color` on a terminal.
    pub(crate) fn colored(&self, text: &str, color: &'static str) -> Cell {
        Cell {
            text: clean(text),
            color: (self.color && color != "0").then_some(color),
        }
    }

    /// Prints rows under headers, each column as wide as its widest cell.
    pub(crate) fn table(&self, headers: &[&str], rows: Vec<Vec<Cell>>) {
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.text.chars().count());
            }
        }
        let line = |cells: Vec<(String, Option<&str>)>| {
            let last = cells.len().saturating_sub(1);
            let mut out = String::new();
            for (i, ((text, color), w)) in cells.into_iter().zip(&widths).enumerate() {
                let pad = if i == last {
                    0
                } else {
                    w - text.chars().count() + 2
                };
                match color {
                    Some(c) => out.push_str(&format!("\x1b[{c}m{text}\x1b[0m")),
                    None => out.push_str(&text),
                }
                out.push_str(&" ".repeat(pad));
            }
            println!("{}", out.trim_end());
        };
        let bold = self.color.then_some("1");
        line(headers.iter().map(|h| ((*h).to_owned(), bold)).collect());
        for row in rows {
            line(row.into_iter().map(|c| (c.text, c.color)).collect());
        }
    }

    /// Prints a value as one line of JSON.
    pub(crate) fn json_line(&self, value: &impl serde::Serialize) {
        match serde_json::to_string(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("qron: cannot write JSON: {e}"),
        }
    }
}

/// `text` safe to print: control characters (escape sequences a job's data could carry into
/// the operator's terminal, line breaks that would break a table) shown as `?`.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// A duration in its largest whole units: `90s` → `1m30s`.
pub(crate) fn duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Parses a duration: a number of seconds, or a number with `ms`, `s`, `m`, `h` or `d`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 5m or 2h"))?;
    let scale = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{unit}` is not a unit: use ms, s, m, h or d")),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// Parses a JSON argument.
pub(crate) fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_in_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(duration(Duration::from_secs(90_061)), "1d1h1m1s");
        assert_eq!(duration(Duration::from_millis(20)), "20ms");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(clean("a\x1b[31mb\nc"), "a?[31mb?c");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}

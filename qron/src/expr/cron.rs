//! Five-field crontab with Vixie cron / crontab.guru semantics.
//!
//! This module validates the text itself, so that every mistake is reported at its position and
//! Quartz extensions (`?`, `L`, `W`, `#`, a seconds field, `1/5`) are refused; the `croner` crate
//! then finds the next matching wall-clock minute and describes the pattern in words.

use chrono::NaiveDateTime;

use super::{ExprError, ExprErrorKind};

/// What one field accepts.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of the first name (`jan` = 1, `sun` = 0).
    names_base: u32,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_base: 0,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_base: 0,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        names_base: 0,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
        names_base: 1,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        names_base: 0,
    },
];

/// A validated crontab.
#[derive(Debug, Clone)]
pub(crate) struct Crontab {
    /// Canonical text: fields separated by one space, names replaced by numbers.
    text: String,
    /// Matching values per field; day-of-week folds 7 into 0.
    sets: [u64; 5],
    /// Vixie's `DOM_STAR`/`DOW_STAR`: the field starts with `*`.
    dom_star: bool,
    dow_star: bool,
    cron: croner::Cron,
}

impl PartialEq for Crontab {
    fn eq(&self, other: &Self) -> bool {
        self.sets == other.sets
            && self.dom_star == other.dom_star
            && self.dow_star == other.dow_star
    }
}

impl Eq for Crontab {}

impl Crontab {
    /// Parses the five fields of `src`, which starts at byte `base` of the whole expression.
    pub(crate) fn parse(src: &str, base: usize) -> Result<Self, ExprError> {
        let mut fields: Vec<(usize, &str)> = Vec::new();
        let mut start = None;
        for (i, c) in src.char_indices() {
            if c.is_ascii_whitespace() {
                if let Some(s) = start.take() {
                    fields.push((s, &src[s..i]));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            fields.push((s, &src[s..]));
        }
        if fields.len() != 5 {
            let hint = if fields.len() == 6 || fields.len() == 7 {
                " (qron's crontab has no seconds or year field: drop the Quartz extras)"
            } else {
                ""
            };
            return Err(ExprError::new(
                ExprErrorKind::CronFieldCount,
                base,
                src,
                format!(
                    "a crontab has 5 fields (minute hour day-of-month month day-of-week), found {}{hint}",
                    fields.len()
                ),
            ));
        }
        let mut sets = [0u64; 5];
        let mut canon = Vec::with_capacity(5);
        for (k, (offset, text)) in fields.iter().enumerate() {
            let (set, normalized) = parse_field(&FIELDS[k], text, base + offset)?;
            sets[k] = set;
            canon.push(normalized);
        }
        // Sunday is 0 and 7.
        if sets[4] & (1 << 7) != 0 {
            sets[4] = (sets[4] | 1) & !(1 << 7);
        }
        let dom_star = fields[2].1.starts_with('*');
        let dow_star = fields[4].1.starts_with('*');
        let text = canon.join(" ");

        if dow_star && !never_fires_check(sets[2], sets[3]) {
            return Err(ExprError::new(
                ExprErrorKind::NeverFires,
                base,
                src,
                "this crontab never fires: no month in it has any of its days of the month"
                    .to_owned(),
            ));
        }

        // Vixie cron ANDs day-of-month and day-of-week when either field starts with `*` and ORs
        // them otherwise; croner treats only a bare `*` as a star, so say AND for `*/n`.
        let parser = croner::parser::CronParser::builder()
            .dom_and_dow(dom_star || dow_star)
            .build();
        // croner refuses a few spellings this module accepts (7 inside a range, for one): give
        // it the same sets as explicit lists then. Its description is less terse, its matching
        // the same.
        let cron = match parser.parse(&text) {
            Ok(cron) => cron,
            Err(_) => {
                let lists: Vec<String> = (0..5)
                    .map(|k| {
                        if canon[k] == "*" {
                            return "*".to_owned();
                        }
                        let max = if k == 4 { 6 } else { FIELDS[k].max };
                        (FIELDS[k].min.min(max)..=max)
                            .filter(|v| sets[k] & (1 << v) != 0)
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect();
                parser.parse(&lists.join(" ")).map_err(|e| {
                    ExprError::new(
                        ExprErrorKind::CronSyntax,
                        base,
                        src,
                        format!("crontab not accepted: {e}"),
                    )
                })?
            }
        };
        Ok(Self {
            text,
            sets,
            dom_star,
            dow_star,
            cron,
        })
    }

    /// The first wall-clock minute strictly after `after` that matches.
    pub(crate) fn next_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// The pattern in words: croner's description, made terser (`at 09:00, Monday through
    /// Friday`).
    pub(crate) fn describe(&self) -> String {
        tidy_description(&self.cron.describe())
    }

    /// The canonical text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// Lower-cases the opening, drops the final period and writes runs of three or more
/// consecutive weekdays as `X through Y`.
fn tidy_description(text: &str) -> String {
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let mut s = text.trim_end_matches('.').to_owned();
    if let Some(rest) = s.strip_prefix("At every ") {
        s = format!("every {rest}");
    } else if let Some(rest) = s.strip_prefix("At ") {
        s = format!("at {rest}");
    }
    for len in (3..=7).rev() {
        for start in 0..=(7 - len) {
            let run = &DAYS[start..start + len];
            let listed = format!("{}, and {}", run[..len - 1].join(", "), run[len - 1]);
            if s.contains(&listed) {
                let through = format!("{} through {}", run[0], run[len - 1]);
                s = s
                    .replace(&format!("on {listed}"), &through)
                    .replace(&listed, &through);
            }
        }
    }
    s
}

/// With day-of-week unrestricted, some month in `months` must have one of the days in `doms`
/// (February counts 29 days: leap years come).
fn never_fires_check(doms: u64, months: u64) -> bool {
    const MAX_DAYS: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12u32)
        .any(|m| months & (1 << m) != 0 && (1..=MAX_DAYS[m as usize]).any(|d| doms & (1 << d) != 0))
}

/// Parses one field: returns its set and its canonical text.
fn parse_field(spec: &FieldSpec, text: &str, offset: usize) -> Result<(u64, String), ExprError> {
    if let Some(i) = text.find(['?', '#']) {
        let msg = if text[i..].starts_with('?') {
            "`?` is Quartz syntax: write `*`"
        } else {
            "`#` (nth weekday) is Quartz syntax, not crontab"
        };
        return Err(ExprError::new(
            ExprErrorKind::CronSyntax,
            offset + i,
            &text[i..=i],
            format!("{} field: {msg}", spec.name),
        ));
    }
    let mut set = 0u64;
    let mut items = Vec::new();
    let mut pos = 0usize;
    for item in text.split(',') {
        let item_offset = offset + pos;
        pos += item.len() + 1;
        if item.is_empty() {
            return Err(ExprError::new(
                ExprErrorKind::CronSyntax,
                offset,
                text,
                format!("{} field: empty list item in `{text}`", spec.name),
            ));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some((s, item_offset + r.len() + 1))),
            None => (item, None),
        };
        let (lo, hi, is_range) = if range == "*" {
            (spec.min, spec.max, true)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = parse_value(spec, a, item_offset)?;
            let hi = parse_value(spec, b, item_offset + a.len() + 1)?;
            if lo > hi {
                return Err(ExprError::new(
                    ExprErrorKind::CronInvertedRange,
                    item_offset,
                    range,
                    format!(
                        "{} field: range `{range}` runs backwards ({lo} > {hi}); write it low-high",
                        spec.name
                    ),
                ));
            }
            (lo, hi, true)
        } else {
            let v = parse_value(spec, range, item_offset)?;
            (v, v, false)
        };
        let step = match step {
            None => 1,
            Some((s, s_offset)) => parse_step(spec, item, range, is_range, s, s_offset)?,
        };
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            // A step may be any size (`*/4000000000` fires at the range's start only).
            let Some(next) = v.checked_add(step) else {
                break;
            };
            v = next;
        }
        let normalized = match (range, step) {
            ("*", 1) => "*".to_owned(),
            ("*", n) => format!("*/{n}"),
            (_, 1) if is_range && lo == hi => lo.to_string(),
            (_, 1) if is_range => format!("{lo}-{hi}"),
            (_, n) if is_range => format!("{lo}-{hi}/{n}"),
            _ => lo.to_string(),
        };
        items.push(normalized);
    }
    Ok((set, items.join(",")))
}

/// The step `s` (at `s_offset`) of list item `item`, whose part before the `/` is `range`: a
/// whole number above 0, after `*` or a range only.
fn parse_step(
    spec: &FieldSpec,
    item: &str,
    range: &str,
    is_range: bool,
    s: &str,
    s_offset: usize,
) -> Result<u32, ExprError> {
    if !is_range {
        return Err(ExprError::new(
            ExprErrorKind::CronSyntax,
            s_offset - range.len() - 1,
            item,
            format!(
                "{} field: `{item}` is Quartz style; in crontab a step needs `*` or a range before it (write `{range}-{}/{s}`)",
                spec.name, spec.max
            ),
        ));
    }
    let n: u32 = s.parse().map_err(|_| {
        ExprError::new(
            ExprErrorKind::CronSyntax,
            s_offset,
            s,
            format!("{} field: step `{s}` is not a whole number", spec.name),
        )
    })?;
    if n == 0 {
        return Err(ExprError::new(
            ExprErrorKind::CronZeroStep,
            s_offset,
            s,
            format!("{} field: a step of 0 never advances", spec.name),
        ));
    }
    Ok(n)
}

fn parse_value(spec: &FieldSpec, text: &str, offset: usize) -> Result<u32, ExprError> {
    if text.is_empty() {
        return Err(ExprError::new(
            ExprErrorKind::CronSyntax,
            offset,
            text,
            format!("{} field: a value is missing", spec.name),
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v: u32 = text.parse().unwrap_or(u32::MAX);
        if v < spec.min || v > spec.max {
            return Err(ExprError::new(
                ExprErrorKind::CronOutOfRange,
                offset,
                text,
                format!(
                    "{} field: {text} is out of range {}-{}",
                    spec.name, spec.min, spec.max
                ),
            ));
        }
        return Ok(v);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = spec.names.iter().position(|n| *n == lower) {
        return Ok(spec.names_base + i as u32);
    }
    if lower.contains(['l', 'w'])
        && lower.trim_start_matches(|c: char| c.is_ascii_digit()).len() <= 2
    {
        return Err(ExprError::new(
            ExprErrorKind::CronSyntax,
            offset,
            text,
            format!(
                "{} field: `{text}` is Quartz syntax (`L` last, `W` nearest weekday), not crontab",
                spec.name
            ),
        ));
    }
    let expected = if spec.names.is_empty() {
        format!("a number {}-{}", spec.min, spec.max)
    } else {
        format!(
            "a number {}-{} or a name ({})",
            spec.min,
            spec.max,
            spec.names.join(", ")
        )
    };
    Err(ExprError::new(
        ExprErrorKind::CronSyntax,
        offset,
        text,
        format!("{} field: `{text}` is not {expected}", spec.name),
    ))
}

//! The expression language: when a job runs.
//!
//! | form | meaning |
//! |---|---|
//! | `@at <timestamp>` | once, at that instant (RFC 3339; without an offset, UTC) |
//! | `@after <interval>` | once, `interval` after the job's start |
//! | `@every <interval>` | repeatedly: slot n is the start + n × `interval`, in the zone (no drift) |
//! | `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@hourly` `@minutely` | `@every 1 year` … `@every 1 minute` |
//! | `m h dom mon dow` | crontab, with Vixie cron / crontab.guru semantics |
//!
//! An interval is anything PostgreSQL's `interval` accepts, with PostgreSQL's meaning (see
//! [`Interval`]). Recurring expressions may start with `TZ=<IANA zone> ` to be evaluated in that
//! zone. Everything here is pure: no I/O.

mod cron;
mod error;
mod interval;
mod timestamp;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

pub(crate) use error::ECHO_CHARS;
pub use error::{ExprError, ExprErrorKind, MAX_EXPR_LEN, MIN_EVERY};
pub use interval::{Interval, IntervalError};

use cron::Crontab;
use timestamp::parse_timestamp;

/// A parsed, validated schedule: when a job runs.
///
/// # The expression language
///
/// | form | meaning | example |
/// |---|---|---|
/// | `@at <timestamp>` | once, at that instant: RFC 3339 (`T` or a space; `Z`, `±hh`, `±hh:mm` or `±hhmm`; no offset means UTC), or a date alone (midnight UTC) | `@at 2027-01-01T09:00:00+01:00` |
/// | `@after <interval>` | once, that long after the job's start | `@after 1 hour 30 minutes` |
/// | `@every <interval>` | repeatedly: slot *n* is the start + *n* × the interval, so runs never drift (at least [`MIN_EVERY`]) | `@every 10 seconds` |
/// | `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@hourly` `@minutely` | `@every 1 year`, …, `@every 1 minute` | `@daily` |
/// | `minute hour day-of-month month day-of-week` | crontab | `0 9 * * MON-FRI` |
/// | `TZ=<IANA zone> <recurring expression>` | evaluated on that zone's wall clock (UTC otherwise) | `TZ=Europe/Paris 0 9 * * 1-5` |
///
/// **Intervals** are anything PostgreSQL's `interval` accepts, with PostgreSQL's meaning:
/// `90 seconds`, `1 day 2 hours`, `1:30:00`, `P1DT2H`, `2 weeks ago` is refused (not
/// positive); months and days are calendar units in the zone (see [`Interval`]).
///
/// **Crontab** follows Vixie cron (and crontab.guru): five fields, each `*`, a value, a range
/// `a-b`, a step `*/n` or `a-b/n`, or a list of those separated by commas; months `JAN`–`DEC`
/// and days `SUN`–`SAT` by name in any case, Sunday as 0 or 7. When both day-of-month and
/// day-of-week are restricted, a day matching either runs (`0 0 1 * MON`: the 1st, and every
/// Monday). Quartz extensions (`?`, `L`, `W`, `#`, a seconds field) are refused, each at its
/// position. In a zone with daylight saving time, a wall-clock time skipped by the change runs
/// at the first instant after the gap.
///
/// Every error is an [`ExprError`] with its position and a hint.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use qron::Schedule;
///
/// let s: Schedule = "0 9 * * mon-fri".parse()?;
/// assert!(s.is_recurring());
/// assert_eq!(s.to_string(), "0 9 * * 1-5");
/// let friday = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
/// assert_eq!(s.first_run(friday), Some(Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()));
/// # Ok::<(), qron::ExprError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
    tz: Option<Tz>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    At(DateTime<Utc>),
    After(Interval),
    Every(Interval),
    Cron(Box<Crontab>),
}

const KEYWORDS: &str =
    "@at, @after, @every, @yearly, @annually, @monthly, @weekly, @daily, @hourly, @minutely";

impl Schedule {
    /// Parses and validates an expression.
    ///
    /// # Errors
    /// [`ExprError`] naming the offending part, its byte offset and the reason.
    ///
    /// ```
    /// use qron::Schedule;
    /// assert!(Schedule::parse("@every 10s").is_ok());
    /// assert!(Schedule::parse("@every 0s").is_err());
    /// assert!(Schedule::parse("0 0 30 2 *").is_err()); // never fires
    /// ```
    pub fn parse(expr: &str) -> Result<Self, ExprError> {
        Self::parse_checked(expr).map_err(|mut e| {
            // Quote a long expression (and its offending part) in part only.
            e.expr = crate::limits::excerpt(expr, ECHO_CHARS);
            if e.fragment.chars().count() > ECHO_CHARS {
                let cut = crate::limits::excerpt(&e.fragment, ECHO_CHARS);
                e.message = e.message.replace(&e.fragment, &cut);
                e.fragment = cut;
            }
            if e.message.chars().count() > 4 * ECHO_CHARS {
                e.message = crate::limits::excerpt(&e.message, 4 * ECHO_CHARS);
            }
            e
        })
    }

    fn parse_checked(expr: &str) -> Result<Self, ExprError> {
        if expr.len() > MAX_EXPR_LEN {
            return Err(ExprError::new(
                ExprErrorKind::TooLong,
                MAX_EXPR_LEN,
                "",
                format!(
                    "the expression is {} bytes long, over the limit of {MAX_EXPR_LEN}",
                    expr.len()
                ),
            ));
        }
        if let Some((i, c)) = expr
            .char_indices()
            .find(|(_, c)| c.is_control() && !c.is_whitespace())
        {
            return Err(ExprError::new(
                ExprErrorKind::InvalidCharacter,
                i,
                "",
                format!("control character {c:?} in the expression"),
            ));
        }
        let s = Self::parse_inner(expr)?;
        let canonical = s.to_string().len();
        if canonical > MAX_EXPR_LEN {
            return Err(ExprError::new(
                ExprErrorKind::TooLong,
                0,
                "",
                format!(
                    "the expression's canonical form is {canonical} bytes long, over the limit of {MAX_EXPR_LEN}"
                ),
            ));
        }
        Ok(s)
    }

    fn parse_inner(expr: &str) -> Result<Self, ExprError> {
        let (mut pos, mut rest) = skip_ws(expr, 0);
        if rest.is_empty() {
            return Err(ExprError::new(
                ExprErrorKind::Empty,
                0,
                expr,
                format!("the expression is empty; write a crontab or one of {KEYWORDS}"),
            ));
        }
        let mut tz = None;
        if let Some(after) = rest.strip_prefix("TZ=") {
            let name_len = after.find(char::is_whitespace).unwrap_or(after.len());
            let name = &after[..name_len];
            let zone = name.parse::<Tz>().map_err(|_| {
                ExprError::new(
                    ExprErrorKind::UnknownTimeZone,
                    pos + 3,
                    name,
                    format!("`{name}` is not an IANA time zone (write e.g. `TZ=Europe/Paris`)"),
                )
            })?;
            tz = Some((zone, pos));
            (pos, rest) = skip_ws(expr, pos + 3 + name_len);
            if rest.is_empty() {
                return Err(ExprError::new(
                    ExprErrorKind::Empty,
                    pos,
                    "",
                    "nothing follows the time zone: write a crontab or @every after it".to_owned(),
                ));
            }
        }
        let kind = match rest.strip_prefix('@') {
            Some(body) => parse_keyword(expr, pos, body)?,
            None => Kind::Cron(Box::new(Crontab::parse(rest.trim_end(), pos)?)),
        };
        if let (Some((_, tz_pos)), Kind::At(_) | Kind::After(_)) = (tz, &kind) {
            return Err(ExprError::new(
                ExprErrorKind::TimeZoneNotAllowed,
                tz_pos,
                "TZ=",
                "TZ= applies to crontab and @every schedules; give @at an offset instead"
                    .to_owned(),
            ));
        }
        Ok(Self {
            kind,
            tz: tz.map(|(z, _)| z),
        })
    }

    /// Whether the schedule repeats (`@every`, aliases, crontab) rather than runs once.
    ///
    /// ```
    /// assert!(qron::Schedule::parse("@daily")?.is_recurring());
    /// assert!(!qron::Schedule::parse("@after 1 hour")?.is_recurring());
    /// # Ok::<(), qron::ExprError>(())
    /// ```
    pub fn is_recurring(&self) -> bool {
        matches!(self.kind, Kind::Every(_) | Kind::Cron(_))
    }

    /// The time zone of a `TZ=` expression.
    ///
    /// ```
    /// let s = qron::Schedule::parse("TZ=Europe/Paris 0 9 * * *")?;
    /// assert_eq!(s.time_zone(), Some(chrono_tz::Europe::Paris));
    /// # Ok::<(), qron::ExprError>(())
    /// ```
    pub fn time_zone(&self) -> Option<Tz> {
        self.tz
    }

    /// When a job created (or started) at `start` first runs. `None` only when the instant
    /// would be out of range.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let start = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    /// let s = qron::Schedule::parse("@after 90 minutes")?;
    /// assert_eq!(s.first_run(start), Some(Utc.with_ymd_and_hms(2027, 1, 1, 1, 30, 0).unwrap()));
    /// # Ok::<(), qron::ExprError>(())
    /// ```
    pub fn first_run(&self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::At(t) => Some(*t),
            Kind::After(i) => i.add_to(start),
            Kind::Every(i) => self.add(i, start),
            Kind::Cron(c) => self.cron_after(c, start),
        }
    }

    /// For a recurring schedule, the slot after `slot` that is also after `now`: the next slot
    /// when the job is on time, the first slot after `now` when it is late (missed slots collapse
    /// into the run that just happened). `None` for one-off schedules, and when the slot would
    /// be out of range.
    ///
    /// `@every` slots are counted from `start`, the instant the schedule counts from (a job's
    /// `start_at`): slot *n* is `start` + *n* × the interval, in the schedule's zone, so neither
    /// processing time, month ends nor DST changes make it drift. Crontab slots ignore `start`.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let s = qron::Schedule::parse("@every 10 minutes")?;
    /// let start = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    /// let slot = s.first_run(start).unwrap(); // 00:10
    /// let on_time = slot + chrono::Duration::seconds(1);
    /// let late = slot + chrono::Duration::minutes(35);
    /// assert_eq!(s.next_run(start, slot, on_time), Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 20, 0).unwrap()));
    /// assert_eq!(s.next_run(start, slot, late), Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 50, 0).unwrap()));
    ///
    /// // Month ends do not drift: from January 31, the last day of each shorter month.
    /// let monthly = qron::Schedule::parse("@monthly")?;
    /// let jan31 = Utc.with_ymd_and_hms(2024, 1, 31, 9, 0, 0).unwrap();
    /// let feb = monthly.first_run(jan31).unwrap();
    /// assert_eq!(feb, Utc.with_ymd_and_hms(2024, 2, 29, 9, 0, 0).unwrap());
    /// let mar = monthly.next_run(jan31, feb, feb).unwrap();
    /// assert_eq!(mar, Utc.with_ymd_and_hms(2024, 3, 31, 9, 0, 0).unwrap());
    /// # Ok::<(), qron::ExprError>(())
    /// ```
    pub fn next_run(
        &self,
        start: DateTime<Utc>,
        slot: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::At(_) | Kind::After(_) => None,
            Kind::Cron(c) => self.cron_after(c, slot.max(now)),
            Kind::Every(i) => self.every_after(i, start, slot.max(now)),
        }
    }

    /// The first `@every` slot (`start` + n × `i`, n ≥ 1) strictly after `t`.
    fn every_after(
        &self,
        i: &Interval,
        start: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let slot = |n: i64| -> Option<DateTime<Utc>> {
            let scaled = Interval::new(
                i32::try_from(i64::from(i.months).checked_mul(n)?).ok()?,
                i32::try_from(i64::from(i.days).checked_mul(n)?).ok()?,
                i.micros.checked_mul(n)?,
            );
            self.add(&scaled, start)
        };
        // An estimate of n from the interval's mean length, then a few exact steps: slots grow
        // with n, and a calendar month or day is within a few percent of its mean length.
        let mean_micros = i128::from(i.months) * 2_629_746_000_000
            + i128::from(i.days) * 86_400_000_000
            + i128::from(i.micros);
        if mean_micros <= 0 {
            return None;
        }
        let elapsed = i128::from((t - start).num_microseconds().unwrap_or(i64::MAX));
        let mut n = i64::try_from((elapsed / mean_micros).max(1)).ok()?;
        let mut steps = 0;
        while n > 1 && slot(n - 1).is_some_and(|s| s > t) {
            n -= 1;
            steps += 1;
            if steps > 10_000 {
                return None;
            }
        }
        loop {
            let s = slot(n)?;
            if s > t {
                return Some(s);
            }
            n = n.checked_add(1)?;
            steps += 1;
            if steps > 10_000 {
                return None;
            }
        }
    }

    /// A short description in English, for people.
    ///
    /// ```
    /// assert_eq!(qron::Schedule::parse("@every 10s")?.describe(), "every 10 seconds");
    /// # Ok::<(), qron::ExprError>(())
    /// ```
    pub fn describe(&self) -> String {
        let zone = match self.tz {
            Some(tz) => format!(" ({} time)", tz.name()),
            None => String::new(),
        };
        match &self.kind {
            Kind::At(t) => format!("once, at {}", t.format("%Y-%m-%d %H:%M:%S%.f UTC")),
            Kind::After(i) => format!("once, {i} after its start"),
            Kind::Every(i) => format!("every {i}{zone}"),
            Kind::Cron(c) => format!("{}{zone}", c.describe()),
        }
    }

    fn add(&self, i: &Interval, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.tz {
            Some(tz) => i.add_to_in(t, tz),
            None => i.add_to(t),
        }
    }

    /// The first crontab slot strictly after `t`. Slots are wall-clock minutes in the zone: one
    /// in a DST gap moves to the end of the gap, one in an overlap fires at its first instant
    /// only.
    fn cron_after(&self, c: &Crontab, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tz = self.tz.unwrap_or(chrono_tz::UTC);
        let mut cursor = interval::local_time(t, tz)?;
        // Each turn passes at least one matching wall-clock minute; only an overlap's repeated
        // hour can make a turn fall behind `t`.
        for _ in 0..1000 {
            let local = c.next_after(cursor)?;
            let at = first_instant_at_or_after(tz, local)?;
            if at > t {
                return Some(at);
            }
            cursor = local;
        }
        None
    }
}

/// The first instant whose wall-clock time in `tz` is `local`, or, when `local` falls in a DST
/// gap, the first instant after the gap.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = local;
    for _ in 0..(48 * 60) {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        probe = probe.checked_add_signed(Duration::minutes(1))?;
    }
    None
}

/// An `@` keyword at `pos` of `expr` (`body` follows the `@`) and what it takes: an alias,
/// `@at`, `@after` or `@every`.
fn parse_keyword(expr: &str, pos: usize, body: &str) -> Result<Kind, ExprError> {
    let word_len = body.find(char::is_whitespace).unwrap_or(body.len());
    let word = body[..word_len].to_ascii_lowercase();
    let (arg_pos, arg) = skip_ws(expr, pos + 1 + word_len);
    let arg = arg.trim_end();
    let alias = match word.as_str() {
        "yearly" | "annually" => Some(Interval::new(12, 0, 0)),
        "monthly" => Some(Interval::new(1, 0, 0)),
        "weekly" => Some(Interval::new(0, 7, 0)),
        "daily" => Some(Interval::new(0, 1, 0)),
        "hourly" => Some(Interval::new(0, 0, 3_600_000_000)),
        "minutely" => Some(Interval::new(0, 0, 60_000_000)),
        _ => None,
    };
    if let Some(interval) = alias {
        if !arg.is_empty() {
            return Err(ExprError::new(
                ExprErrorKind::UnknownKeyword,
                arg_pos,
                arg,
                format!("@{word} takes nothing after it"),
            ));
        }
        return Ok(Kind::Every(interval));
    }
    match word.as_str() {
        "at" => Ok(Kind::At(parse_timestamp(arg, arg_pos)?)),
        "after" => Ok(Kind::After(parse_interval(arg, arg_pos, "@after")?)),
        "every" => Ok(Kind::Every(every_interval(arg, arg_pos)?)),
        _ => Err(ExprError::new(
            ExprErrorKind::UnknownKeyword,
            pos,
            &format!("@{}", &body[..word_len]),
            format!("unknown keyword `@{word}`; the keywords are {KEYWORDS}"),
        )),
    }
}

/// The interval of `@every` (`arg`, at `arg_pos`): positive, and not under [`MIN_EVERY`].
fn every_interval(arg: &str, arg_pos: usize) -> Result<Interval, ExprError> {
    let i = parse_interval(arg, arg_pos, "@every")?;
    if i.months < 0 || i.days < 0 || i.micros < 0 || i.is_zero() {
        return Err(ExprError::new(
            ExprErrorKind::NonPositiveInterval,
            arg_pos,
            arg,
            format!(
                "@every needs a positive interval (every part zero or more, not all zero), got `{i}`: it would never stop running"
            ),
        ));
    }
    if i.months == 0 && i.days == 0 && i.micros < MIN_EVERY.as_micros() as i64 {
        return Err(ExprError::new(
            ExprErrorKind::IntervalTooShort,
            arg_pos,
            arg,
            format!("@every needs an interval of at least {MIN_EVERY:?}, got `{i}`"),
        ));
    }
    Ok(i)
}

fn skip_ws(s: &str, from: usize) -> (usize, &str) {
    let rest = &s[from.min(s.len())..];
    let trimmed = rest.trim_start();
    (from + (rest.len() - trimmed.len()), trimmed)
}

fn parse_interval(text: &str, pos: usize, keyword: &str) -> Result<Interval, ExprError> {
    if text.is_empty() {
        return Err(ExprError::new(
            ExprErrorKind::BadInterval,
            pos,
            text,
            format!("{keyword} needs an interval, such as `{keyword} 10 minutes`"),
        ));
    }
    Interval::parse(text).map_err(|e| {
        ExprError::new(
            ExprErrorKind::BadInterval,
            pos,
            text,
            format!("`{text}` is {e}"),
        )
    })
}

impl FromStr for Schedule {
    type Err = ExprError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The canonical text: what is stored and shown; parsing it gives an equal schedule.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(tz) = self.tz {
            write!(f, "TZ={} ", tz.name())?;
        }
        match &self.kind {
            Kind::At(t) => write!(f, "@at {}", t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Kind::After(i) => write!(f, "@after {i}"),
            Kind::Every(i) => write!(f, "@every {i}"),
            Kind::Cron(c) => f.write_str(c.text()),
        }
    }
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Stored expressions, each parsed once: a worker's jobs, or the jobs of one pass of the
/// rescuer, share a few schedules. At most 10,000 are kept (then it starts afresh), so that
/// expressions made unique per job cannot grow it without bound.
#[derive(Debug, Default)]
pub(crate) struct Schedules(std::sync::Mutex<std::collections::HashMap<String, Option<Schedule>>>);

impl Schedules {
    /// The schedule of a stored expression (`None`: it no longer parses).
    pub(crate) fn get(&self, expr: &str) -> Option<Schedule> {
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = cache.get(expr) {
            return s.clone();
        }
        if cache.len() >= 10_000 {
            cache.clear();
        }
        let s = Schedule::parse(expr).ok();
        cache.insert(expr.to_owned(), s.clone());
        s
    }

    /// The schedule a recurring job's next slot is computed from; none for a one-off job,
    /// which has no next slot.
    pub(crate) fn of(&self, expr: &str, recurring: bool) -> Option<Schedule> {
        recurring.then(|| self.get(expr)).flatten()
    }
}

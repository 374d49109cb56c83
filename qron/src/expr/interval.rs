//! PostgreSQL's `interval`: its input syntax and its arithmetic on instants, reproduced exactly.
//!
//! The parser follows PostgreSQL 15's `interval_in` (`ParseDateTime`, `DecodeInterval`, then
//! `DecodeISO8601Interval` when the first two find a bad format), with `IntervalStyle` set to its
//! default (`postgres`) and no type modifier. The test suite feeds thousands of strings to both
//! this parser and a real server and requires the same answer for each.

use std::fmt;

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::postgres::types::PgInterval;

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
const DAYS_PER_MONTH: i32 = 30;
const MONTHS_PER_YEAR: i64 = 12;
/// `interval_in` parses into a 256-byte work buffer (fields plus their terminators).
const WORKBUF_LEN: usize = 256;
/// `MAXDATEFIELDS`.
const MAX_FIELDS: usize = 25;
/// `TOKMAXLEN`: unit names are compared on their first 10 characters.
const TOKMAXLEN: usize = 10;

/// A PostgreSQL `interval`: months, days and microseconds, kept apart as PostgreSQL keeps them
/// (a month is not a fixed number of days, nor a day a fixed number of hours across a DST change).
///
/// ```
/// use qron::Interval;
///
/// let i: Interval = "1 week 6 days 1.5 hours".parse()?;
/// assert_eq!((i.months, i.days, i.micros), (0, 13, 5_400_000_000));
/// assert_eq!(i.to_string(), "13 days 1 hour 30 minutes");
/// # Ok::<(), qron::IntervalError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Whole months (years count 12).
    pub months: i32,
    /// Whole days (weeks count 7).
    pub days: i32,
    /// Microseconds (hours, minutes, seconds and their fractions).
    pub micros: i64,
}

/// Why a text is not a PostgreSQL interval.
///
/// ```
/// let err = "234 bananas".parse::<qron::Interval>().unwrap_err();
/// assert_eq!(err, qron::IntervalError::BadFormat);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntervalError {
    /// The text does not follow any interval syntax PostgreSQL accepts.
    #[error(
        "not a PostgreSQL interval (write e.g. `10 seconds`, `1 hour 30 minutes`, `2 days`, `01:30:00` or `P1DT2H`)"
    )]
    BadFormat,
    /// A field is out of range, or the whole interval does not fit.
    #[error("interval field out of range")]
    OutOfRange,
}

impl Interval {
    /// The zero interval.
    pub const ZERO: Interval = Interval {
        months: 0,
        days: 0,
        micros: 0,
    };

    /// Parses any text PostgreSQL's `interval` input accepts, with PostgreSQL's meaning.
    ///
    /// # Errors
    /// [`IntervalError`] when PostgreSQL would reject the text too.
    ///
    /// ```
    /// use qron::Interval;
    /// assert_eq!(Interval::parse("1h")?, Interval::parse("60 minutes")?);
    /// assert_eq!(Interval::parse("P1M")?.months, 1);
    /// assert!(Interval::parse("ok week").is_err());
    /// # Ok::<(), qron::IntervalError>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self, IntervalError> {
        let decoded = match tokenize(s.as_bytes()) {
            Ok(fields) => decode(&fields),
            Err(e) => Err(e),
        };
        let itm = match decoded {
            Err(Dterr::BadFormat) => decode_iso8601(s.as_bytes()),
            other => other,
        }
        .map_err(|e| match e {
            Dterr::BadFormat => IntervalError::BadFormat,
            Dterr::Overflow => IntervalError::OutOfRange,
        })?;
        itm.into_interval().ok_or(IntervalError::OutOfRange)
    }

    /// Builds an interval from its three parts.
    ///
    /// ```
    /// let i = qron::Interval::new(1, 2, 3_000_000);
    /// assert_eq!(i.to_string(), "1 month 2 days 3 seconds");
    /// ```
    pub const fn new(months: i32, days: i32, micros: i64) -> Self {
        Self {
            months,
            days,
            micros,
        }
    }

    /// True when every part is zero.
    ///
    /// ```
    /// assert!(qron::Interval::parse("0 days 00:00").unwrap().is_zero());
    /// ```
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// Adds the interval to an instant as PostgreSQL's `timestamptz + interval` does with its
    /// `TimeZone` set to UTC: months first (clamped to the end of the month), then days, then the
    /// time part. `None` when the result is out of range.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let jan31 = Utc.with_ymd_and_hms(2023, 1, 31, 12, 0, 0).unwrap();
    /// let i: qron::Interval = "1 month".parse()?;
    /// assert_eq!(i.add_to(jan31), Some(Utc.with_ymd_and_hms(2023, 2, 28, 12, 0, 0).unwrap()));
    /// # Ok::<(), qron::IntervalError>(())
    /// ```
    pub fn add_to(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = t;
        if self.months != 0 || self.days != 0 {
            let local = add_calendar(t.naive_utc(), self.months, self.days)?;
            t = Utc.from_utc_datetime(&local);
        }
        t.checked_add_signed(Duration::microseconds(self.micros))
    }

    /// Adds the interval to an instant as PostgreSQL's `timestamptz + interval` does with its
    /// `TimeZone` set to `tz`: months and days move the wall clock in that zone (so `1 day` keeps
    /// the hour across a DST change while `24 hours` does not), then the time part is added.
    /// A wall-clock time in a DST gap resolves with the offset before the gap, an ambiguous one
    /// to the later instant, as PostgreSQL does.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    /// // The night of 2023-03-26 has 23 hours in Paris.
    /// let before = Utc.with_ymd_and_hms(2023, 3, 25, 11, 0, 0).unwrap(); // 12:00 in Paris
    /// let day: qron::Interval = "1 day".parse()?;
    /// let hours: qron::Interval = "24 hours".parse()?;
    /// assert_eq!(day.add_to_in(before, paris), Some(Utc.with_ymd_and_hms(2023, 3, 26, 10, 0, 0).unwrap()));
    /// assert_eq!(hours.add_to_in(before, paris), Some(Utc.with_ymd_and_hms(2023, 3, 26, 11, 0, 0).unwrap()));
    /// # Ok::<(), qron::IntervalError>(())
    /// ```
    pub fn add_to_in(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut t = t;
        if self.months != 0 {
            let local = add_calendar(local_time(t, tz)?, self.months, 0)?;
            t = resolve_local(tz, local)?;
        }
        if self.days != 0 {
            let local = add_calendar(local_time(t, tz)?, 0, self.days)?;
            t = resolve_local(tz, local)?;
        }
        t.checked_add_signed(Duration::microseconds(self.micros))
    }
}

/// The wall-clock time of `t` in `tz`; `None` past the range of dates (chrono panics there).
pub(crate) fn local_time(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    use chrono::Offset as _;
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc()
        .checked_add_signed(Duration::seconds(i64::from(offset.local_minus_utc())))
}

/// Adds months (clamping the day to the month's end) and then days to a wall-clock time.
fn add_calendar(t: NaiveDateTime, months: i32, days: i32) -> Option<NaiveDateTime> {
    let mut date = t.date();
    if months != 0 {
        let total =
            i64::from(date.year()) * MONTHS_PER_YEAR + i64::from(date.month0()) + i64::from(months);
        let year = i32::try_from(total.div_euclid(MONTHS_PER_YEAR)).ok()?;
        let month = u32::try_from(total.rem_euclid(MONTHS_PER_YEAR)).ok()? + 1;
        let day = date.day().min(days_in_month(year, month));
        date = NaiveDate::from_ymd_opt(year, month, day)?;
    }
    if days != 0 {
        date = date.checked_add_signed(Duration::days(i64::from(days)))?;
    }
    Some(date.and_time(t.time()))
}

/// Days in `month` (1–12) of `year`, proleptic Gregorian.
pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        _ => 28,
    }
}

/// The instant of a wall-clock time in `tz`, as PostgreSQL's `DetermineTimeZoneOffset` picks it:
/// in a gap, the offset in force before the gap; in an overlap, the later instant.
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    use chrono::Offset as _;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.max(b).with_timezone(&Utc)),
        LocalResult::None => {
            // Transitions are at least two days apart: a day earlier the old offset holds.
            let before = tz
                .offset_from_utc_datetime(&(local - Duration::days(1)))
                .fix();
            let utc = local - Duration::seconds(i64::from(before.local_minus_utc()));
            Some(Utc.from_utc_datetime(&utc))
        }
    }
}

impl std::str::FromStr for Interval {
    type Err = IntervalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The canonical text: each part spelled out (`1 year 2 months 3 days 4 hours 5 minutes
/// 6.5 seconds`), which [`Interval::parse`] reads back to the same value.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let mut unit = |n: i64, one: &str, many: &str| {
            if n != 0 {
                parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            }
        };
        let years = i64::from(self.months / 12);
        unit(years, "year", "years");
        unit(i64::from(self.months % 12), "month", "months");
        unit(i64::from(self.days), "day", "days");
        let hours = self.micros / USECS_PER_HOUR;
        let minutes = (self.micros % USECS_PER_HOUR) / USECS_PER_MINUTE;
        let micros = self.micros % USECS_PER_MINUTE;
        unit(hours, "hour", "hours");
        unit(minutes, "minute", "minutes");
        if micros != 0 {
            let secs = micros / USECS_PER_SEC;
            let frac = (micros % USECS_PER_SEC).abs();
            let sign = if micros < 0 && secs == 0 { "-" } else { "" };
            let text = if frac == 0 {
                format!("{secs}")
            } else {
                let digits = format!("{frac:06}");
                format!("{sign}{secs}.{}", digits.trim_end_matches('0'))
            };
            let plural = if text == "1" { "second" } else { "seconds" };
            parts.push(format!("{text} {plural}"));
        }
        if parts.is_empty() {
            return f.write_str("0 seconds");
        }
        f.write_str(&parts.join(" "))
    }
}

impl From<Interval> for PgInterval {
    fn from(i: Interval) -> Self {
        PgInterval {
            months: i.months,
            days: i.days,
            microseconds: i.micros,
        }
    }
}

impl From<PgInterval> for Interval {
    fn from(i: PgInterval) -> Self {
        Interval {
            months: i.months,
            days: i.days,
            micros: i.microseconds,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The decoder: PostgreSQL's datetime.c, field by field.

/// `DTERR_BAD_FORMAT` and `DTERR_FIELD_OVERFLOW` (and the interval-overflow error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dterr {
    BadFormat,
    Overflow,
}

type DResult<T> = Result<T, Dterr>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Number,
    String,
    Date,
    Time,
    Tz,
    Special,
}

struct Field {
    text: Vec<u8>,
    ftype: FieldType,
}

/// `struct pg_itm_in`.
#[derive(Debug, Default, Clone, Copy)]
struct ItmIn {
    usec: i64,
    mday: i32,
    mon: i32,
    year: i32,
}

impl ItmIn {
    fn into_interval(self) -> Option<Interval> {
        let months = i64::from(self.year) * MONTHS_PER_YEAR + i64::from(self.mon);
        Some(Interval {
            months: i32::try_from(months).ok()?,
            days: self.mday,
            micros: self.usec,
        })
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `ParseDateTime`: splits the text into typed fields.
fn tokenize(s: &[u8]) -> DResult<Vec<Field>> {
    let mut fields: Vec<Field> = Vec::new();
    let mut used = 0usize; // bytes of the work buffer, terminators included
    let mut i = 0usize;
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    while i < s.len() {
        let c = s[i];
        if c == 0 {
            break;
        }
        if is_space(c) {
            i += 1;
            continue;
        }
        if fields.len() >= MAX_FIELDS {
            return Err(Dterr::BadFormat);
        }
        let mut buf: Vec<u8> = Vec::new();
        let push = |buf: &mut Vec<u8>, ch: u8| -> DResult<()> {
            if used + buf.len() + 1 >= WORKBUF_LEN {
                return Err(Dterr::BadFormat);
            }
            buf.push(ch);
            Ok(())
        };
        let ftype;
        if c.is_ascii_digit() {
            push(&mut buf, c)?;
            i += 1;
            while at(i).is_ascii_digit() {
                push(&mut buf, at(i))?;
                i += 1;
            }
            if at(i) == b':' {
                ftype = FieldType::Time;
                push(&mut buf, b':')?;
                i += 1;
                while at(i).is_ascii_digit() || at(i) == b':' || at(i) == b'.' {
                    push(&mut buf, at(i))?;
                    i += 1;
                }
            } else if matches!(at(i), b'-' | b'/' | b'.') {
                let delim = at(i);
                push(&mut buf, delim)?;
                i += 1;
                if at(i).is_ascii_digit() {
                    let mut t = if delim == b'.' {
                        FieldType::Number
                    } else {
                        FieldType::Date
                    };
                    while at(i).is_ascii_digit() {
                        push(&mut buf, at(i))?;
                        i += 1;
                    }
                    if at(i) == delim {
                        t = FieldType::Date;
                        push(&mut buf, delim)?;
                        i += 1;
                        while at(i).is_ascii_digit() || at(i) == delim {
                            push(&mut buf, at(i))?;
                            i += 1;
                        }
                    }
                    ftype = t;
                } else {
                    ftype = FieldType::Date;
                    while at(i).is_ascii_alphanumeric() || at(i) == delim {
                        push(&mut buf, at(i).to_ascii_lowercase())?;
                        i += 1;
                    }
                }
            } else {
                ftype = FieldType::Number;
            }
        } else if c == b'.' {
            push(&mut buf, c)?;
            i += 1;
            while at(i).is_ascii_digit() {
                push(&mut buf, at(i))?;
                i += 1;
            }
            ftype = FieldType::Number;
        } else if c.is_ascii_alphabetic() {
            push(&mut buf, c.to_ascii_lowercase())?;
            i += 1;
            while at(i).is_ascii_alphabetic() {
                push(&mut buf, at(i).to_ascii_lowercase())?;
                i += 1;
            }
            let next = at(i);
            let is_date = if matches!(next, b'-' | b'/' | b'.') {
                true
            } else if next == b'+' || next.is_ascii_digit() {
                !is_date_keyword(&buf)
            } else {
                false
            };
            if is_date {
                loop {
                    push(&mut buf, at(i).to_ascii_lowercase())?;
                    i += 1;
                    let n = at(i);
                    if !(matches!(n, b'+' | b'-' | b'/' | b'_' | b'.' | b':')
                        || n.is_ascii_alphanumeric())
                    {
                        break;
                    }
                }
                ftype = FieldType::Date;
            } else {
                ftype = FieldType::String;
            }
        } else if c == b'+' || c == b'-' {
            push(&mut buf, c)?;
            i += 1;
            while is_space(at(i)) {
                i += 1;
            }
            if at(i).is_ascii_digit() {
                push(&mut buf, at(i))?;
                i += 1;
                while at(i).is_ascii_digit() || matches!(at(i), b':' | b'.' | b'-') {
                    push(&mut buf, at(i))?;
                    i += 1;
                }
                ftype = FieldType::Tz;
            } else if at(i).is_ascii_alphabetic() {
                push(&mut buf, at(i).to_ascii_lowercase())?;
                i += 1;
                while at(i).is_ascii_alphabetic() {
                    push(&mut buf, at(i).to_ascii_lowercase())?;
                    i += 1;
                }
                ftype = FieldType::Special;
            } else {
                return Err(Dterr::BadFormat);
            }
        } else if c.is_ascii_punctuation() {
            i += 1;
            continue;
        } else {
            return Err(Dterr::BadFormat);
        }
        used += buf.len() + 1;
        fields.push(Field { text: buf, ftype });
    }
    Ok(fields)
}

/// Whether `tok` is in PostgreSQL's core date token table (`datetktbl`): such a word followed by
/// a digit or `+` is a word, not the start of a time zone name.
fn is_date_keyword(tok: &[u8]) -> bool {
    const DATETKTBL: &[&str] = &[
        "-infinity",
        "ad",
        "allballs",
        "am",
        "apr",
        "april",
        "at",
        "aug",
        "august",
        "bc",
        "d",
        "dec",
        "december",
        "dow",
        "doy",
        "dst",
        "epoch",
        "feb",
        "february",
        "fri",
        "friday",
        "h",
        "infinity",
        "isodow",
        "isoyear",
        "j",
        "jan",
        "january",
        "jd",
        "jul",
        "julian",
        "july",
        "jun",
        "june",
        "m",
        "mar",
        "march",
        "may",
        "mm",
        "mon",
        "monday",
        "nov",
        "november",
        "now",
        "oct",
        "october",
        "on",
        "pm",
        "s",
        "sat",
        "saturday",
        "sep",
        "sept",
        "september",
        "sun",
        "sunday",
        "t",
        "thu",
        "thur",
        "thurs",
        "thursday",
        "today",
        "tomorrow",
        "tue",
        "tues",
        "tuesday",
        "wed",
        "wednesday",
        "weds",
        "y",
        "yesterday",
    ];
    DATETKTBL.iter().any(|k| tok_eq(tok, k.as_bytes()))
}

/// `strncmp(a, b, TOKMAXLEN) == 0`.
fn tok_eq(a: &[u8], b: &[u8]) -> bool {
    let a = &a[..a.len().min(TOKMAXLEN)];
    let b = &b[..b.len().min(TOKMAXLEN)];
    a == b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
    Decade,
    Century,
    Millennium,
    Tz,
    TzHour,
    TzMinute,
}

/// What `DecodeUnits` finds for a word.
enum Word {
    Units(Unit),
    Ago,
    Invalid,
}

/// `deltatktbl`.
fn decode_units(tok: &[u8]) -> Option<Word> {
    use Unit::*;
    const TABLE: &[(&str, Option<Unit>)] = &[
        ("c", Some(Century)),
        ("cent", Some(Century)),
        ("centuries", Some(Century)),
        ("century", Some(Century)),
        ("d", Some(Day)),
        ("day", Some(Day)),
        ("days", Some(Day)),
        ("dec", Some(Decade)),
        ("decade", Some(Decade)),
        ("decades", Some(Decade)),
        ("decs", Some(Decade)),
        ("h", Some(Hour)),
        ("hour", Some(Hour)),
        ("hours", Some(Hour)),
        ("hr", Some(Hour)),
        ("hrs", Some(Hour)),
        ("m", Some(Minute)),
        ("microsecon", Some(Microsecond)),
        ("mil", Some(Millennium)),
        ("millennia", Some(Millennium)),
        ("millennium", Some(Millennium)),
        ("millisecon", Some(Millisecond)),
        ("mils", Some(Millennium)),
        ("min", Some(Minute)),
        ("mins", Some(Minute)),
        ("minute", Some(Minute)),
        ("minutes", Some(Minute)),
        ("mon", Some(Month)),
        ("mons", Some(Month)),
        ("month", Some(Month)),
        ("months", Some(Month)),
        ("ms", Some(Millisecond)),
        ("msec", Some(Millisecond)),
        ("msecond", Some(Millisecond)),
        ("mseconds", Some(Millisecond)),
        ("msecs", Some(Millisecond)),
        ("qtr", Some(Quarter)),
        ("quarter", Some(Quarter)),
        ("s", Some(Second)),
        ("sec", Some(Second)),
        ("second", Some(Second)),
        ("seconds", Some(Second)),
        ("secs", Some(Second)),
        ("timezone", Some(Tz)),
        ("timezone_h", Some(TzHour)),
        ("timezone_m", Some(TzMinute)),
        ("us", Some(Microsecond)),
        ("usec", Some(Microsecond)),
        ("usecond", Some(Microsecond)),
        ("useconds", Some(Microsecond)),
        ("usecs", Some(Microsecond)),
        ("w", Some(Week)),
        ("week", Some(Week)),
        ("weeks", Some(Week)),
        ("y", Some(Year)),
        ("year", Some(Year)),
        ("years", Some(Year)),
        ("yr", Some(Year)),
        ("yrs", Some(Year)),
    ];
    if tok_eq(tok, b"ago") {
        return Some(Word::Ago);
    }
    if tok_eq(tok, b"invalid") {
        return Some(Word::Invalid);
    }
    TABLE
        .iter()
        .find(|(k, _)| tok_eq(tok, k.as_bytes()))
        .and_then(|(_, u)| u.map(Word::Units))
}

/// Bits of `fmask`/`tmask` (`DTK_M(...)`): a unit may appear once.
mod mask {
    pub const MONTH: u32 = 1 << 1;
    pub const YEAR: u32 = 1 << 2;
    pub const DAY: u32 = 1 << 3;
    pub const HOUR: u32 = 1 << 10;
    pub const MINUTE: u32 = 1 << 11;
    pub const SECOND: u32 = 1 << 12;
    pub const MILLISECOND: u32 = 1 << 13;
    pub const MICROSECOND: u32 = 1 << 14;
    pub const WEEK: u32 = 1 << 24;
    pub const DECADE: u32 = 1 << 25;
    pub const CENTURY: u32 = 1 << 26;
    pub const MILLENNIUM: u32 = 1 << 27;
    pub const ALL_SECS: u32 = SECOND | MILLISECOND | MICROSECOND;
    pub const TIME: u32 = HOUR | MINUTE | ALL_SECS;
}

/// The unit a bare number takes: `type` in `DecodeInterval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// No unit seen yet: a bare number is seconds.
    None,
    Unit(Unit),
    /// Just after `ago`: a bare number here is an error.
    AfterAgo,
}

/// `strtol`: leading spaces, an optional sign, digits. Returns the value (`None` on overflow)
/// and the index after the number; with no digits, the value 0 and the index `start`.
fn strtol(s: &[u8], start: usize) -> (Option<i64>, usize) {
    let mut i = start;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut v: Option<i64> = Some(0);
    while i < s.len() && s[i].is_ascii_digit() {
        let d = i64::from(s[i] - b'0');
        v = v.and_then(|v| v.checked_mul(10)).and_then(|v| {
            if neg {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        });
        i += 1;
    }
    if i == digits_start {
        return (Some(0), start);
    }
    (v, i)
}

/// `strtoint`: as [`strtol`], failing outside `int`.
fn strtoint(s: &[u8], start: usize) -> (Option<i32>, usize) {
    let (v, end) = strtol(s, start);
    (v.and_then(|v| i32::try_from(v).ok()), end)
}

/// `ParseFraction`: `.` followed by digits, as a double.
fn parse_fraction(s: &[u8], start: usize) -> DResult<f64> {
    let rest = &s[start..];
    if rest.len() == 1 {
        return Ok(0.0);
    }
    if !rest[1..].iter().all(u8::is_ascii_digit) {
        return Err(Dterr::BadFormat);
    }
    let text = std::str::from_utf8(rest).map_err(|_| Dterr::BadFormat)?;
    format!("0{text}")
        .parse::<f64>()
        .map_err(|_| Dterr::BadFormat)
}

fn mul_add(val: i64, scale: i64, sum: &mut i64) -> bool {
    match val.checked_mul(scale).and_then(|p| p.checked_add(*sum)) {
        Some(v) => {
            *sum = v;
            true
        }
        None => false,
    }
}

fn adjust_fract_micros(frac: f64, scale: i64, itm: &mut ItmIn) -> bool {
    if frac == 0.0 {
        return true;
    }
    let frac = frac * scale as f64;
    let mut usec = frac as i64;
    let rest = frac - usec as f64;
    if rest > 0.5 {
        usec += 1;
    } else if rest < -0.5 {
        usec -= 1;
    }
    match itm.usec.checked_add(usec) {
        Some(v) => {
            itm.usec = v;
            true
        }
        None => false,
    }
}

fn adjust_micros(val: i64, fval: f64, scale: i64, itm: &mut ItmIn) -> bool {
    mul_add(val, scale, &mut itm.usec) && adjust_fract_micros(fval, scale, itm)
}

fn adjust_fract_days(frac: f64, scale: i32, itm: &mut ItmIn) -> bool {
    if frac == 0.0 {
        return true;
    }
    let frac = frac * f64::from(scale);
    let extra = frac as i32;
    add_checked(&mut itm.mday, Some(extra))
        && adjust_fract_micros(frac - f64::from(extra), USECS_PER_DAY, itm)
}

/// Adds `delta` to `slot` when both fit an `int`, as the `pg_add_s32_overflow` checks do.
fn add_checked(slot: &mut i32, delta: Option<i32>) -> bool {
    match delta.and_then(|d| slot.checked_add(d)) {
        Some(v) => {
            *slot = v;
            true
        }
        None => false,
    }
}

/// `val × mult` as an `int`, or `None` when either overflows.
fn scaled(val: i64, mult: i32) -> Option<i32> {
    i32::try_from(val).ok()?.checked_mul(mult)
}

fn adjust_fract_years(frac: f64, scale: i32, itm: &mut ItmIn) -> bool {
    let extra = (frac * f64::from(scale) * MONTHS_PER_YEAR as f64).round_ties_even() as i32;
    add_checked(&mut itm.mon, Some(extra))
}

fn adjust_days(val: i64, mult: i32, itm: &mut ItmIn) -> bool {
    add_checked(&mut itm.mday, scaled(val, mult))
}

fn adjust_months(val: i64, itm: &mut ItmIn) -> bool {
    add_checked(&mut itm.mon, scaled(val, 1))
}

fn adjust_years(val: i64, scale: i32, itm: &mut ItmIn) -> bool {
    add_checked(&mut itm.year, scaled(val, scale))
}

/// `DecodeTime` then `DecodeTimeForInterval`: `h:m`, `h:m:s`, `h:m:s.f` or `m:s.f`, as
/// microseconds.
fn decode_time(s: &[u8]) -> DResult<i64> {
    let (hour, mut cp) = strtol(s, 0);
    let mut hour = hour.ok_or(Dterr::Overflow)?;
    if s.get(cp) != Some(&b':') {
        return Err(Dterr::BadFormat);
    }
    let (min, c) = strtoint(s, cp + 1);
    cp = c;
    let mut min = i64::from(min.ok_or(Dterr::Overflow)?);
    let sec: i64;
    let usec: i64;
    match s.get(cp) {
        None => {
            sec = 0;
            usec = 0;
        }
        Some(b'.') => {
            let frac = parse_fraction(s, cp)?;
            usec = (frac * 1_000_000.0).round_ties_even() as i64;
            sec = min;
            min = hour;
            hour = 0;
        }
        Some(b':') => {
            let (s2, c2) = strtoint(s, cp + 1);
            sec = i64::from(s2.ok_or(Dterr::Overflow)?);
            cp = c2;
            match s.get(cp) {
                None => usec = 0,
                Some(b'.') => {
                    let frac = parse_fraction(s, cp)?;
                    usec = (frac * 1_000_000.0).round_ties_even() as i64;
                }
                Some(_) => return Err(Dterr::BadFormat),
            }
        }
        Some(_) => return Err(Dterr::BadFormat),
    }
    if hour < 0
        || !(0..=59).contains(&min)
        || !(0..=60).contains(&sec)
        || !(0..=USECS_PER_SEC).contains(&usec)
    {
        return Err(Dterr::Overflow);
    }
    let mut total = usec;
    if !mul_add(hour, USECS_PER_HOUR, &mut total)
        || !mul_add(min, USECS_PER_MINUTE, &mut total)
        || !mul_add(sec, USECS_PER_SEC, &mut total)
    {
        return Err(Dterr::Overflow);
    }
    Ok(total)
}

/// `DecodeInterval`: reads the fields from right to left, so that units come before numbers.
fn decode(fields: &[Field]) -> DResult<ItmIn> {
    let mut itm = ItmIn::default();
    let mut fmask: u32 = 0;
    let mut pending = Pending::None;
    let mut is_before = false;
    for field in fields.iter().rev() {
        let s = field.text.as_slice();
        let mut tmask: u32;
        let mut numeric = matches!(field.ftype, FieldType::Number | FieldType::Date);
        match field.ftype {
            FieldType::Time => {
                itm.usec = decode_time(s)?;
                tmask = mask::TIME;
                pending = Pending::Unit(Unit::Day);
            }
            FieldType::Tz => {
                tmask = 0;
                if s[1..].contains(&b':')
                    && let Ok(usec) = decode_time(&s[1..])
                {
                    tmask = mask::TIME;
                    itm.usec = if s[0] == b'-' {
                        usec.checked_neg().ok_or(Dterr::Overflow)?
                    } else {
                        usec
                    };
                    pending = Pending::Unit(Unit::Day);
                } else {
                    numeric = true;
                }
            }
            FieldType::String | FieldType::Special => {
                tmask = 0;
                match decode_units(s) {
                    Some(Word::Units(u)) => pending = Pending::Unit(u),
                    Some(Word::Ago) => {
                        is_before = true;
                        pending = Pending::AfterAgo;
                    }
                    // RESERV "invalid": PostgreSQL rejects the interval once decoded.
                    Some(Word::Invalid) => return Err(Dterr::BadFormat),
                    None => return Err(Dterr::BadFormat),
                }
            }
            FieldType::Number | FieldType::Date => tmask = 0,
        }
        if numeric {
            let unit = match pending {
                Pending::None => Unit::Second,
                Pending::Unit(u) => u,
                Pending::AfterAgo => return Err(Dterr::BadFormat),
            };
            let (val, cp) = strtol(s, 0);
            let mut val = val.ok_or(Dterr::Overflow)?;
            let mut unit = unit;
            let fval: f64;
            match s.get(cp) {
                Some(b'-') => {
                    // SQL "years-months"
                    let (val2, cp2) = strtoint(s, cp + 1);
                    let mut val2 = match val2 {
                        Some(v) if (0..12).contains(&v) => v,
                        _ => return Err(Dterr::Overflow),
                    };
                    if cp2 != s.len() {
                        return Err(Dterr::BadFormat);
                    }
                    unit = Unit::Month;
                    if s[0] == b'-' {
                        val2 = -val2;
                    }
                    val = val
                        .checked_mul(MONTHS_PER_YEAR)
                        .and_then(|v| v.checked_add(i64::from(val2)))
                        .ok_or(Dterr::Overflow)?;
                    fval = 0.0;
                }
                Some(b'.') => {
                    let f = parse_fraction(s, cp)?;
                    fval = if s[0] == b'-' { -f } else { f };
                }
                None => fval = 0.0,
                Some(_) => return Err(Dterr::BadFormat),
            }
            pending = Pending::Unit(unit);
            let ok = match unit {
                Unit::Microsecond => {
                    tmask = mask::MICROSECOND;
                    adjust_micros(val, fval, 1, &mut itm)
                }
                Unit::Millisecond => {
                    tmask = mask::MILLISECOND;
                    adjust_micros(val, fval, 1000, &mut itm)
                }
                Unit::Second => {
                    tmask = if fval == 0.0 {
                        mask::SECOND
                    } else {
                        mask::ALL_SECS
                    };
                    adjust_micros(val, fval, USECS_PER_SEC, &mut itm)
                }
                Unit::Minute => {
                    tmask = mask::MINUTE;
                    adjust_micros(val, fval, USECS_PER_MINUTE, &mut itm)
                }
                Unit::Hour => {
                    tmask = mask::HOUR;
                    pending = Pending::Unit(Unit::Day);
                    adjust_micros(val, fval, USECS_PER_HOUR, &mut itm)
                }
                Unit::Day => {
                    tmask = mask::DAY;
                    adjust_days(val, 1, &mut itm)
                        && adjust_fract_micros(fval, USECS_PER_DAY, &mut itm)
                }
                Unit::Week => {
                    tmask = mask::WEEK;
                    adjust_days(val, 7, &mut itm) && adjust_fract_days(fval, 7, &mut itm)
                }
                Unit::Month => {
                    tmask = mask::MONTH;
                    adjust_months(val, &mut itm)
                        && adjust_fract_days(fval, DAYS_PER_MONTH, &mut itm)
                }
                Unit::Year => {
                    tmask = mask::YEAR;
                    adjust_years(val, 1, &mut itm) && adjust_fract_years(fval, 1, &mut itm)
                }
                Unit::Decade => {
                    tmask = mask::DECADE;
                    adjust_years(val, 10, &mut itm) && adjust_fract_years(fval, 10, &mut itm)
                }
                Unit::Century => {
                    tmask = mask::CENTURY;
                    adjust_years(val, 100, &mut itm) && adjust_fract_years(fval, 100, &mut itm)
                }
                Unit::Millennium => {
                    tmask = mask::MILLENNIUM;
                    adjust_years(val, 1000, &mut itm) && adjust_fract_years(fval, 1000, &mut itm)
                }
                Unit::Quarter | Unit::Tz | Unit::TzHour | Unit::TzMinute => {
                    return Err(Dterr::BadFormat);
                }
            };
            if !ok {
                return Err(Dterr::Overflow);
            }
        }
        if tmask & fmask != 0 {
            return Err(Dterr::BadFormat);
        }
        fmask |= tmask;
    }
    if fmask == 0 {
        return Err(Dterr::BadFormat);
    }
    if is_before {
        itm.usec = itm.usec.checked_neg().ok_or(Dterr::Overflow)?;
        itm.mday = itm.mday.checked_neg().ok_or(Dterr::Overflow)?;
        itm.mon = itm.mon.checked_neg().ok_or(Dterr::Overflow)?;
        itm.year = itm.year.checked_neg().ok_or(Dterr::Overflow)?;
    }
    Ok(itm)
}

/// `strtod` on the longest prefix of `s[start..]` that is a decimal floating-point number
/// (sign, digits, fraction, exponent; `inf`, `infinity` and `nan` too). Returns the value and
/// the index after it; the index is `start` when nothing was read.
fn strtod(s: &[u8], start: usize) -> (f64, usize) {
    let mut i = start;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let num_start = i;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    let lower: Vec<u8> = s[i..].iter().take(8).map(u8::to_ascii_lowercase).collect();
    for word in ["infinity", "inf", "nan"] {
        if lower.starts_with(word.as_bytes()) {
            let end = i + word.len();
            let text = String::from_utf8_lossy(&s[num_start..end]).to_ascii_lowercase();
            let v = if text.contains("nan") {
                f64::NAN
            } else if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            return (v, end);
        }
    }
    let mut digits = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, start);
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    let text = String::from_utf8_lossy(&s[num_start..i]);
    let text = text.trim_end_matches('.');
    let v = text
        .strip_suffix('.')
        .unwrap_or(text)
        .parse::<f64>()
        .unwrap_or(0.0);
    (v, i)
}

/// `ParseISO8601Number`: a number with integer and fractional parts.
fn iso_number(s: &[u8], start: usize) -> DResult<(i64, f64, usize)> {
    let c = s.get(start).copied().unwrap_or(0);
    if !(c.is_ascii_digit() || c == b'-' || c == b'.') {
        return Err(Dterr::BadFormat);
    }
    let (val, end) = strtod(s, start);
    if end == start {
        return Err(Dterr::BadFormat);
    }
    if val.is_nan() || !(-1.0e15..=1.0e15).contains(&val) {
        return Err(Dterr::Overflow);
    }
    let ipart = if val >= 0.0 {
        val.floor() as i64
    } else {
        -((-val).floor() as i64)
    };
    Ok((ipart, val - ipart as f64, end))
}

/// `ISO8601IntegerWidth`.
fn iso_integer_width(s: &[u8], start: usize) -> usize {
    let mut i = start;
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    s[i.min(s.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count()
}

/// `DecodeISO8601Interval`: `P1Y2M3DT4H5M6S`, `P0001-02-03T04:05:06`, `P00010203T040506`.
fn decode_iso8601(s: &[u8]) -> DResult<ItmIn> {
    let mut itm = ItmIn::default();
    // The C code stops at a NUL byte.
    let s = match s.iter().position(|&c| c == 0) {
        Some(n) => &s[..n],
        None => s,
    };
    if s.len() < 2 || s[0] != b'P' {
        return Err(Dterr::BadFormat);
    }
    let ov = |ok: bool| if ok { Ok(()) } else { Err(Dterr::Overflow) };
    let mut datepart = true;
    let mut havefield = false;
    let mut i = 1;
    while i < s.len() {
        if s[i] == b'T' {
            datepart = false;
            havefield = false;
            i += 1;
            continue;
        }
        let fieldstart = i;
        let (mut val, mut fval, end) = iso_number(s, i)?;
        i = end;
        let unit = s.get(i).copied().unwrap_or(0);
        i += 1;
        if datepart {
            let mut alternative = false;
            match unit {
                b'Y' => {
                    ov(adjust_years(val, 1, &mut itm) && adjust_fract_years(fval, 1, &mut itm))?
                }
                b'M' => ov(adjust_months(val, &mut itm)
                    && adjust_fract_days(fval, DAYS_PER_MONTH, &mut itm))?,
                b'W' => ov(adjust_days(val, 7, &mut itm) && adjust_fract_days(fval, 7, &mut itm))?,
                b'D' => ov(adjust_days(val, 1, &mut itm)
                    && adjust_fract_micros(fval, USECS_PER_DAY, &mut itm))?,
                b'T' | 0 => {
                    if iso_integer_width(s, fieldstart) == 8 && !havefield {
                        ov(adjust_years(val / 10000, 1, &mut itm)
                            && adjust_months((val / 100) % 100, &mut itm)
                            && adjust_days(val % 100, 1, &mut itm)
                            && adjust_fract_micros(fval, USECS_PER_DAY, &mut itm))?;
                        if unit == 0 {
                            return Ok(itm);
                        }
                        datepart = false;
                        havefield = false;
                        continue;
                    }
                    alternative = true;
                }
                b'-' => alternative = true,
                _ => return Err(Dterr::BadFormat),
            }
            if alternative {
                if havefield {
                    return Err(Dterr::BadFormat);
                }
                ov(adjust_years(val, 1, &mut itm) && adjust_fract_years(fval, 1, &mut itm))?;
                if unit == 0 {
                    return Ok(itm);
                }
                if unit == b'T' {
                    datepart = false;
                    havefield = false;
                    continue;
                }
                (val, fval, i) = iso_number(s, i)?;
                ov(adjust_months(val, &mut itm)
                    && adjust_fract_days(fval, DAYS_PER_MONTH, &mut itm))?;
                // A `T` next starts the time part: the loop's head takes it.
                match s.get(i) {
                    None => return Ok(itm),
                    Some(b'T') => continue,
                    Some(b'-') => i += 1,
                    Some(_) => return Err(Dterr::BadFormat),
                }
                (val, fval, i) = iso_number(s, i)?;
                ov(adjust_days(val, 1, &mut itm)
                    && adjust_fract_micros(fval, USECS_PER_DAY, &mut itm))?;
                match s.get(i) {
                    None => return Ok(itm),
                    Some(b'T') => continue,
                    Some(_) => return Err(Dterr::BadFormat),
                }
            }
        } else {
            let mut alternative = false;
            match unit {
                b'H' => ov(adjust_micros(val, fval, USECS_PER_HOUR, &mut itm))?,
                b'M' => ov(adjust_micros(val, fval, USECS_PER_MINUTE, &mut itm))?,
                b'S' => ov(adjust_micros(val, fval, USECS_PER_SEC, &mut itm))?,
                0 => {
                    if iso_integer_width(s, fieldstart) == 6 && !havefield {
                        ov(adjust_micros(val / 10000, 0.0, USECS_PER_HOUR, &mut itm)
                            && adjust_micros((val / 100) % 100, 0.0, USECS_PER_MINUTE, &mut itm)
                            && adjust_micros(val % 100, 0.0, USECS_PER_SEC, &mut itm)
                            && adjust_fract_micros(fval, 1, &mut itm))?;
                        return Ok(itm);
                    }
                    alternative = true;
                }
                b':' => alternative = true,
                _ => return Err(Dterr::BadFormat),
            }
            if alternative {
                if havefield {
                    return Err(Dterr::BadFormat);
                }
                ov(adjust_micros(val, fval, USECS_PER_HOUR, &mut itm))?;
                if unit == 0 {
                    return Ok(itm);
                }
                (val, fval, i) = iso_number(s, i)?;
                ov(adjust_micros(val, fval, USECS_PER_MINUTE, &mut itm))?;
                match s.get(i) {
                    None => return Ok(itm),
                    Some(b':') => i += 1,
                    Some(_) => return Err(Dterr::BadFormat),
                }
                (val, fval, i) = iso_number(s, i)?;
                ov(adjust_micros(val, fval, USECS_PER_SEC, &mut itm))?;
                if i >= s.len() {
                    return Ok(itm);
                }
                return Err(Dterr::BadFormat);
            }
        }
        havefield = true;
    }
    Ok(itm)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn iv(s: &str) -> (i32, i32, i64) {
        let i = Interval::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        (i.months, i.days, i.micros)
    }

    #[test]
    fn common_forms() {
        assert_eq!(iv("1 hour"), (0, 0, USECS_PER_HOUR));
        assert_eq!(iv("1h"), (0, 0, USECS_PER_HOUR));
        assert_eq!(iv("90 seconds"), (0, 0, 90 * USECS_PER_SEC));
        assert_eq!(iv("1 week 6 days"), (0, 13, 0));
        assert_eq!(iv("1 hour 20 minutes"), (0, 0, 80 * USECS_PER_MINUTE));
        assert_eq!(iv("1 mon"), (1, 0, 0));
        assert_eq!(iv("1.5 hours"), (0, 0, 90 * USECS_PER_MINUTE));
        assert_eq!(iv("01:30:00"), (0, 0, 90 * USECS_PER_MINUTE));
        assert_eq!(iv("P1DT2H"), (0, 1, 2 * USECS_PER_HOUR));
        assert_eq!(iv("@ 1 day ago"), (0, -1, 0));
        assert_eq!(iv("1 2 hours"), (0, 1, 2 * USECS_PER_HOUR));
        assert_eq!(iv("1-2"), (14, 0, 0));
        assert_eq!(iv("4 year"), (48, 0, 0));
        assert_eq!(iv("234 minutes"), (0, 0, 234 * USECS_PER_MINUTE));
        assert_eq!(iv("1 microseconds"), (0, 0, 1));
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "234 bananas",
            "ok week",
            "1 hour 2 hours",
            "ago",
            "1 2",
            "1 quarter",
            "P",
            "infinity",
        ] {
            assert!(Interval::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "1 year 2 mons 3 days 04:05:06.5",
            "-1 day -00:00:00.25",
            "0",
            "-3 hours 1 minute",
            "1.000001 seconds",
        ] {
            let i = Interval::parse(s).unwrap();
            assert_eq!(Interval::parse(&i.to_string()).unwrap(), i, "{s} -> {i}");
        }
    }
}

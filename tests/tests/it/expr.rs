//! The expression language without a database: hand-derived next runs, a brute-force oracle,
//! rejections, canonical round trips and arbitrary input.
#![allow(clippy::print_stdout)]

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use qron::{ExprErrorKind, Schedule};
use qron_tests::Rng;

fn t(s: &str) -> DateTime<Utc> {
    let s = if s.len() == 16 {
        format!("{s}:00Z")
    } else {
        format!("{s}Z")
    };
    DateTime::parse_from_rfc3339(&s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// (expression, from, the next run strictly after `from`), each derived by hand from the rules:
/// 2024-01-01 is a Monday, 2024 a leap year, EU clocks change on 2024-03-31 and 2024-10-27.
const NEXT_RUNS: &[(&str, &str, &str)] = &[
    ("* * * * *", "2024-01-01T00:00", "2024-01-01T00:01"),
    ("* * * * *", "2024-01-01T00:00:30", "2024-01-01T00:01"),
    ("0 12 * * *", "2024-01-01T00:00", "2024-01-01T12:00"),
    ("0 12 * * *", "2024-01-01T12:00", "2024-01-02T12:00"),
    ("15 10 */5 * *", "2024-01-01T00:00", "2024-01-01T10:15"),
    ("15 10 */5 * *", "2024-01-01T10:15", "2024-01-06T10:15"),
    ("15 10 */5 * *", "2024-01-31T11:00", "2024-02-01T10:15"),
    ("15 10 * * 1", "2024-01-01T00:00", "2024-01-01T10:15"),
    ("15 10 * * 1", "2024-01-01T11:00", "2024-01-08T10:15"),
    ("5 0 * 8 *", "2024-01-01T00:00", "2024-08-01T00:05"),
    ("5 0 * 8 *", "2024-08-31T00:05", "2025-08-01T00:05"),
    ("15 14 1 * *", "2024-01-01T00:00", "2024-01-01T14:15"),
    ("15 14 1 * *", "2024-01-01T14:15", "2024-02-01T14:15"),
    ("0 22 * * 1-5", "2024-01-05T22:00", "2024-01-08T22:00"),
    ("0 22 * * 1-5", "2024-01-01T00:00", "2024-01-01T22:00"),
    ("0 0,12 1 */2 *", "2024-01-01T00:00", "2024-01-01T12:00"),
    ("0 0,12 1 */2 *", "2024-01-01T12:00", "2024-03-01T00:00"),
    ("0 4 8-14 * *", "2024-01-01T00:00", "2024-01-08T04:00"),
    ("0 4 8-14 * *", "2024-01-14T04:00", "2024-02-08T04:00"),
    // Day-of-month and day-of-week both restricted: either one (Vixie cron's OR).
    ("0 0 1,15 * 3", "2024-01-01T00:00", "2024-01-03T00:00"),
    ("0 0 1,15 * 3", "2024-01-03T00:00", "2024-01-10T00:00"),
    ("0 0 1,15 * 3", "2024-01-11T00:00", "2024-01-15T00:00"),
    ("0 0 1,15 * MON", "2024-01-02T00:00", "2024-01-08T00:00"),
    ("0 0 1,15 * MON-FRI", "2024-01-05T12:00", "2024-01-08T00:00"),
    (
        "0 0 1,15 AUG MON-FRI",
        "2024-01-01T00:00",
        "2024-08-01T00:00",
    ),
    (
        "0 0 1,15 AUG MON-FRI",
        "2024-08-01T00:00",
        "2024-08-02T00:00",
    ),
    (
        "0 0 1,15 JAN-FEB SUN",
        "2024-01-01T00:00",
        "2024-01-07T00:00",
    ),
    (
        "0 0 1,15 JAN-FEB SUN",
        "2024-02-25T00:00",
        "2025-01-01T00:00",
    ),
    ("23 0-20/2 * * *", "2024-01-01T00:00", "2024-01-01T00:23"),
    ("23 0-20/2 * * *", "2024-01-01T00:23", "2024-01-01T02:23"),
    ("23 0-20/2 * * *", "2024-01-01T20:23", "2024-01-02T00:23"),
    ("1-16/5 * * * *", "2024-01-01T00:00", "2024-01-01T00:01"),
    ("1-16/5 * * * *", "2024-01-01T00:11", "2024-01-01T00:16"),
    ("1-16/5 * * * *", "2024-01-01T00:16", "2024-01-01T01:01"),
    ("*/15 * * * *", "2024-01-01T00:07", "2024-01-01T00:15"),
    ("*/15 * * * *", "2024-01-01T00:45", "2024-01-01T01:00"),
    ("59 23 31 12 *", "2024-01-01T00:00", "2024-12-31T23:59"),
    ("59 23 31 12 *", "2024-12-31T23:59", "2025-12-31T23:59"),
    // Month ends and leap years.
    ("0 0 29 2 *", "2023-01-01T00:00", "2024-02-29T00:00"),
    ("0 0 29 2 *", "2024-03-01T00:00", "2028-02-29T00:00"),
    ("0 0 31 * *", "2024-04-01T00:00", "2024-05-31T00:00"),
    ("0 0 30 * *", "2024-02-01T00:00", "2024-03-30T00:00"),
    (
        "0 0 31 4,6,9,11,12 *",
        "2024-01-01T00:00",
        "2024-12-31T00:00",
    ),
    ("0 0 * * *", "2024-02-28T00:00", "2024-02-29T00:00"),
    ("0 0 * * *", "2023-02-28T00:00", "2023-03-01T00:00"),
    ("0 0 L * *", "2024-01-01T00:00", "reject"),
    // Weekday 7 is Sunday, like 0; ranges through 7 reach Sunday.
    ("0 0 * * 7", "2024-01-01T00:00", "2024-01-07T00:00"),
    ("0 0 * * 0", "2024-01-01T00:00", "2024-01-07T00:00"),
    ("0 0 * * 5-7", "2024-01-01T00:00", "2024-01-05T00:00"),
    ("0 0 * * 5-7", "2024-01-06T00:00", "2024-01-07T00:00"),
    ("0 0 * * 6-7", "2024-01-07T00:00", "2024-01-13T00:00"),
    ("0 0 * * 0-7", "2024-01-01T00:00", "2024-01-02T00:00"),
    // Names in any case.
    ("0 0 * jan mon", "2024-01-01T00:00", "2024-01-08T00:00"),
    (
        "0 0 * Jan-Mar sat,sun",
        "2024-03-31T00:00",
        "2025-01-04T00:00",
    ),
    ("0 0 1 dec *", "2024-01-01T00:00", "2024-12-01T00:00"),
    ("0 0 * * Thu", "2026-11-26T00:00", "2026-12-03T00:00"),
    ("0 0 * * fri", "2026-11-26T00:00", "2026-11-27T00:00"),
    // A field starting with `*` counts as unrestricted: Vixie ANDs the two day fields.
    ("0 0 */2 * 1", "2024-01-01T00:00", "2024-01-15T00:00"),
    ("0 0 1-31 * 1", "2024-01-01T00:00", "2024-01-02T00:00"),
    ("0 0 * * */2", "2024-01-01T00:00", "2024-01-02T00:00"),
    ("0 0 13 * 5", "2024-01-01T00:00", "2024-01-05T00:00"),
    ("0 0 13 * *", "2024-01-01T00:00", "2024-01-13T00:00"),
    ("0 0 * * 5", "2024-01-06T00:00", "2024-01-12T00:00"),
    // Lists, ranges and steps together.
    ("0,30 9-17/4 * * *", "2024-01-01T09:30", "2024-01-01T13:00"),
    ("0,30 9-17/4 * * *", "2024-01-01T17:30", "2024-01-02T09:00"),
    (
        "5,10-12,*/20 * * * *",
        "2024-01-01T00:12",
        "2024-01-01T00:20",
    ),
    ("0 0 1 1,7 *", "2024-01-01T00:00", "2024-07-01T00:00"),
    ("0 */6 * * *", "2024-01-01T05:59", "2024-01-01T06:00"),
    ("0 0 */10 * *", "2024-01-30T00:00", "2024-01-31T00:00"),
    ("0 0 */10 * *", "2024-01-31T00:00", "2024-02-01T00:00"),
    ("30 4 1-7 * 1", "2024-01-01T04:30", "2024-01-02T04:30"),
    ("0 12 * 2 *", "2024-02-29T12:00", "2025-02-01T12:00"),
    // Time zones: a slot in the spring-forward gap moves to the end of the gap; one in the
    // fall-back overlap fires once, at its first instant.
    (
        "TZ=Europe/Paris 30 2 * * *",
        "2024-03-30T12:00",
        "2024-03-31T01:00",
    ),
    (
        "TZ=Europe/Paris 30 2 * * *",
        "2024-03-31T01:00",
        "2024-04-01T00:30",
    ),
    (
        "TZ=Europe/Paris 30 2 * * *",
        "2024-10-26T12:00",
        "2024-10-27T00:30",
    ),
    (
        "TZ=Europe/Paris 30 2 * * *",
        "2024-10-27T00:30",
        "2024-10-28T01:30",
    ),
    (
        "TZ=Europe/Paris 30 2 * * *",
        "2024-10-27T01:00",
        "2024-10-28T01:30",
    ),
    (
        "TZ=America/New_York 0 9 * * *",
        "2024-01-01T00:00",
        "2024-01-01T14:00",
    ),
    (
        "TZ=America/New_York 0 9 * * *",
        "2024-07-01T00:00",
        "2024-07-01T13:00",
    ),
    (
        "TZ=America/New_York 30 2 * * *",
        "2024-03-09T12:00",
        "2024-03-10T07:00",
    ),
    (
        "TZ=Australia/Lord_Howe */30 * * * *",
        "2024-10-05T15:00",
        "2024-10-05T15:30",
    ),
    (
        "TZ=Australia/Lord_Howe */30 * * * *",
        "2024-10-05T15:30",
        "2024-10-05T16:00",
    ),
    // Intervals and aliases count from the slot.
    ("@every 10 minutes", "2024-01-01T00:00", "2024-01-01T00:10"),
    (
        "@every 1 minute 10 seconds",
        "2024-01-01T00:00",
        "2024-01-01T00:01:10",
    ),
    ("@monthly", "2024-01-01T00:00", "2024-02-01T00:00"),
    ("@monthly", "2024-01-31T00:00", "2024-02-29T00:00"),
    ("@yearly", "2024-02-29T00:00", "2025-02-28T00:00"),
    ("@annually", "2024-01-01T00:00", "2025-01-01T00:00"),
    ("@weekly", "2024-01-01T00:00", "2024-01-08T00:00"),
    ("@daily", "2024-01-01T00:00", "2024-01-02T00:00"),
    ("@hourly", "2024-01-01T00:00", "2024-01-01T01:00"),
    ("@minutely", "2024-01-01T00:00", "2024-01-01T00:01"),
    (
        "TZ=Europe/Paris @every 1 day",
        "2024-03-30T11:00",
        "2024-03-31T10:00",
    ),
    (
        "TZ=Europe/Paris @every 24 hours",
        "2024-03-30T11:00",
        "2024-03-31T11:00",
    ),
];

#[test]
fn next_runs_match_hand_derived_cases() {
    let mut checked = 0;
    for (expr, from, want) in NEXT_RUNS {
        let parsed = Schedule::parse(expr);
        if *want == "reject" {
            assert!(parsed.is_err(), "{expr} should be rejected");
            continue;
        }
        let s = parsed.unwrap_or_else(|e| panic!("{e}"));
        let from = t(from);
        assert_eq!(
            s.next_run(from, from, from),
            Some(t(want)),
            "{expr} after {from}"
        );
        if !expr.starts_with('@') && !expr.starts_with("TZ=Europe/Paris @") {
            assert_eq!(
                s.first_run(from),
                Some(t(want)),
                "first run of {expr} after {from}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 80, "only {checked} cases");
}

#[test]
fn every_hour_day_and_month_is_standard_cron() {
    let from = t("2023-12-31T23:30");
    for h in 0..24 {
        let s = Schedule::parse(&format!("0 {h} * * *")).unwrap();
        let want = Utc.with_ymd_and_hms(2024, 1, 1, h, 0, 0).unwrap();
        assert_eq!(s.first_run(from), Some(want), "hour {h}");
        assert_eq!(
            s.next_run(want, want, want),
            Some(want + Duration::days(1)),
            "hour {h}"
        );
    }
    for d in 1..=31 {
        let s = Schedule::parse(&format!("0 0 {d} * *")).unwrap();
        let want = Utc.with_ymd_and_hms(2024, 1, d, 0, 0, 0).unwrap();
        assert_eq!(s.first_run(from), Some(want), "day {d}");
    }
    for m in 1..=12 {
        let s = Schedule::parse(&format!("0 0 1 {m} *")).unwrap();
        let want = Utc.with_ymd_and_hms(2024, m, 1, 0, 0, 0).unwrap();
        assert_eq!(s.first_run(from), Some(want), "month {m}");
        let again = Utc.with_ymd_and_hms(2025, m, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next_run(want, want, want), Some(again), "month {m}");
    }
}

#[test]
fn one_off_schedules() {
    let start = t("2024-01-01T00:00");
    let at = Schedule::parse("@at 2022-08-30T11:14:22.607Z").unwrap();
    assert!(!at.is_recurring());
    assert_eq!(at.first_run(start), Some(t("2022-08-30T11:14:22.607")));
    assert_eq!(at.next_run(start, start, start), None);
    let at = Schedule::parse("@at 2004-10-19 10:23:54+02").unwrap();
    assert_eq!(at.first_run(start), Some(t("2004-10-19T08:23:54")));
    let at = Schedule::parse("@at 2027-01-01T09:00:00").unwrap();
    assert_eq!(
        at.first_run(start),
        Some(t("2027-01-01T09:00")),
        "no offset is UTC"
    );
    let after = Schedule::parse("@after 1 month 1 week 3 days").unwrap();
    // Jan 31 + 1 month = Feb 29 (clamped, 2024 is leap), + 10 days = Mar 10.
    assert_eq!(
        after.first_run(t("2024-01-31T10:00")),
        Some(t("2024-03-10T10:00"))
    );
    assert_eq!(after.next_run(start, start, start), None);
    // The job's start counts, not its creation: a start 1 s ahead with @after 100ms.
    let s = Schedule::parse("@after 100ms").unwrap();
    let begin = t("2024-01-01T00:00:01");
    assert_eq!(
        s.first_run(begin),
        Some(begin + Duration::milliseconds(100))
    );
}

#[test]
fn missed_slots_collapse_into_one_run() {
    let slot = t("2024-01-01T00:00");
    let every = Schedule::parse("@every 10 minutes").unwrap();
    // Not before its time: exactly one interval after the slot.
    assert_eq!(
        every.next_run(slot, slot, slot + Duration::seconds(1)),
        Some(t("2024-01-01T00:10"))
    );
    // Workers down for 3 days: the next slot after now, not 432 catch-up runs.
    let now = t("2024-01-04T00:05");
    assert_eq!(every.next_run(slot, slot, now), Some(t("2024-01-04T00:10")));
    let cron = Schedule::parse("0 * * * *").unwrap();
    assert_eq!(cron.next_run(slot, slot, now), Some(t("2024-01-04T01:00")));
    let monthly = Schedule::parse("@monthly").unwrap();
    assert_eq!(
        monthly.next_run(slot, slot, t("2024-05-15T00:00")),
        Some(t("2024-06-01T00:00"))
    );
    // No drift: the slots stay on the grid whatever the processing time.
    let mut s = slot;
    for k in 1..=20 {
        let late = s + Duration::milliseconds(2700);
        s = every.next_run(s, s, late).unwrap();
        assert_eq!(s, slot + Duration::minutes(10 * k));
    }
}

/// (expression, kind of error, a piece of text the message must show).
const REJECTED: &[(&str, ExprErrorKind, &str)] = &[
    ("", ExprErrorKind::Empty, "empty"),
    ("   ", ExprErrorKind::Empty, "empty"),
    ("15 10 * * ? *", ExprErrorKind::CronFieldCount, "5 fields"),
    ("15 10 L * ?", ExprErrorKind::CronSyntax, "Quartz"),
    ("15 10 ? * 6#3", ExprErrorKind::CronSyntax, "Quartz"),
    ("0 12 1/5 * ?", ExprErrorKind::CronSyntax, "Quartz"),
    ("11 11 11 11 ?", ExprErrorKind::CronSyntax, "`?`"),
    ("0 12 1/5 * *", ExprErrorKind::CronSyntax, "step needs"),
    ("0 0 15W * *", ExprErrorKind::CronSyntax, "Quartz"),
    ("0 0 * * 5L", ExprErrorKind::CronSyntax, "Quartz"),
    ("234 bananas", ExprErrorKind::CronFieldCount, "found 2"),
    ("ok week", ExprErrorKind::CronFieldCount, "5 fields"),
    (
        "@every 234 bananas",
        ExprErrorKind::BadInterval,
        "234 bananas",
    ),
    ("@after ok week", ExprErrorKind::BadInterval, "ok week"),
    ("@every", ExprErrorKind::BadInterval, "needs an interval"),
    ("@after", ExprErrorKind::BadInterval, "needs an interval"),
    ("@definitely", ExprErrorKind::UnknownKeyword, "@definitely"),
    (
        "@immediately",
        ExprErrorKind::UnknownKeyword,
        "@immediately",
    ),
    ("@daily 5", ExprErrorKind::UnknownKeyword, "nothing after"),
    (
        "@at 00:00:00.00 UTC",
        ExprErrorKind::BadTimestamp,
        "RFC 3339",
    ),
    (
        "@at not-a-timestamp",
        ExprErrorKind::BadTimestamp,
        "RFC 3339",
    ),
    (
        "@at 12/17/1997 07:37:16.00 PST",
        ExprErrorKind::BadTimestamp,
        "RFC 3339",
    ),
    (
        "@at Wed Dec 17 07:37:16 1997 PST",
        ExprErrorKind::BadTimestamp,
        "RFC 3339",
    ),
    ("@at now", ExprErrorKind::BadTimestamp, "RFC 3339"),
    ("@at infinity", ExprErrorKind::BadTimestamp, "RFC 3339"),
    (
        "@at 2024-02-30T00:00:00Z",
        ExprErrorKind::BadTimestamp,
        "not a calendar date",
    ),
    (
        "@at 2024-01-01T25:00:00Z",
        ExprErrorKind::BadTimestamp,
        "not a time of day",
    ),
    (
        "@at 2024-01-01T10:00:00 CET",
        ExprErrorKind::BadTimestamp,
        "CET",
    ),
    ("@at", ExprErrorKind::BadTimestamp, "needs a timestamp"),
    (
        "@at 2024-01-01T00:00:00+0\u{e9}30",
        ExprErrorKind::BadTimestamp,
        "not an offset",
    ),
    ("@every 0", ExprErrorKind::NonPositiveInterval, "positive"),
    (
        "@every 0 seconds",
        ExprErrorKind::NonPositiveInterval,
        "never stop",
    ),
    (
        "@every -1 hour",
        ExprErrorKind::NonPositiveInterval,
        "positive",
    ),
    (
        "@every 1 hour ago",
        ExprErrorKind::NonPositiveInterval,
        "positive",
    ),
    (
        "@every 1 day -1 hour",
        ExprErrorKind::NonPositiveInterval,
        "positive",
    ),
    ("0 0 30 2 *", ExprErrorKind::NeverFires, "never fires"),
    (
        "0 0 31 4,6,9,11 *",
        ExprErrorKind::NeverFires,
        "never fires",
    ),
    (
        "60 * * * *",
        ExprErrorKind::CronOutOfRange,
        "minute field: 60 is out of range 0-59",
    ),
    ("* 24 * * *", ExprErrorKind::CronOutOfRange, "hour field"),
    ("* * 0 * *", ExprErrorKind::CronOutOfRange, "day-of-month"),
    ("* * 32 * *", ExprErrorKind::CronOutOfRange, "day-of-month"),
    ("* * * 13 *", ExprErrorKind::CronOutOfRange, "month"),
    ("* * * * 8", ExprErrorKind::CronOutOfRange, "day-of-week"),
    ("30-10 * * * *", ExprErrorKind::CronInvertedRange, "30-10"),
    (
        "* * * * FRI-MON",
        ExprErrorKind::CronInvertedRange,
        "FRI-MON",
    ),
    ("*/0 * * * *", ExprErrorKind::CronZeroStep, "step of 0"),
    ("1-10/0 * * * *", ExprErrorKind::CronZeroStep, "step of 0"),
    ("* * * *", ExprErrorKind::CronFieldCount, "found 4"),
    ("* * * * * *", ExprErrorKind::CronFieldCount, "no seconds"),
    ("1,,2 * * * *", ExprErrorKind::CronSyntax, "empty list item"),
    ("* * * * MON-FRX", ExprErrorKind::CronSyntax, "FRX"),
    ("* * * foo *", ExprErrorKind::CronSyntax, "foo"),
    ("a * * * *", ExprErrorKind::CronSyntax, "`a`"),
    ("*/x * * * *", ExprErrorKind::CronSyntax, "step `x`"),
    (
        "TZ=Mars/Olympus 0 9 * * *",
        ExprErrorKind::UnknownTimeZone,
        "Mars/Olympus",
    ),
    ("TZ=Europe/Paris", ExprErrorKind::Empty, "nothing follows"),
    (
        "TZ=Europe/Paris @at 2027-01-01T00:00:00Z",
        ExprErrorKind::TimeZoneNotAllowed,
        "offset",
    ),
    (
        "TZ=Europe/Paris @after 1 hour",
        ExprErrorKind::TimeZoneNotAllowed,
        "TZ=",
    ),
];

#[test]
fn invalid_expressions_are_rejected_with_kind_and_position() {
    for (expr, kind, needle) in REJECTED {
        let err = Schedule::parse(expr).expect_err(expr);
        assert_eq!(err.kind(), *kind, "{expr}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(needle),
            "{expr}: {msg:?} should mention {needle:?}"
        );
        assert!(
            msg.contains(&format!("`{expr}`")),
            "{msg:?} should quote the expression"
        );
        assert!(
            err.position() <= expr.len(),
            "{expr}: position {}",
            err.position()
        );
        assert!(
            expr[err.position()..].starts_with(err.fragment()) || err.fragment() == "TZ=",
            "{expr}: fragment {:?} is not at {}",
            err.fragment(),
            err.position()
        );
    }
    // Positions point at the offending part.
    let at = |e: &str| Schedule::parse(e).unwrap_err().position();
    assert_eq!(at("0 0 32 * *"), 4);
    assert_eq!(at("0 0 * * MON-FRX"), 12);
    assert_eq!(at("@every 0"), 7);
    assert_eq!(at("  @nope"), 2);
    assert_eq!(at("*/0 * * * *"), 2);
    assert_eq!(at("TZ=Nowhere 0 * * * *"), 3);
}

/// Every accepted expression of these tests, and the Go version's conformance list.
fn accepted() -> Vec<String> {
    let mut all: Vec<String> = [
        "* * * * *",
        "0 12 * * *",
        "15 10 */5 * *",
        "15 10 * * 1",
        "5 0 * 8 *",
        "15 14 1 * *",
        "0 22 * * 1-5",
        "0 0,12 1 */2 *",
        "0 4 8-14 * *",
        "0 0 1,15 * 3",
        "0 0 1,15 * MON",
        "0 0 1,15 * MON-FRI",
        "0 0 1,15 AUG MON-FRI",
        "0 0 1,15 JAN-FEB SUN",
        "23 0-20/2 * * *",
        "@every 1 hours",
        "@every 234 minutes",
        "@every 4 year",
        "@every 3 week",
        "@after 1 hours",
        "@after 234 minutes",
        "@after 4 year",
        "@after 3 week",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@hourly",
        "@minutely",
        "@at 2022-08-30T11:14:22.607Z",
        "@at 2004-10-19 10:23:54+02",
        "@every 1.5 hours",
        "@every 01:30:00",
        "@every P1DT2H",
        "@every 1 week 6 days",
        "@after 0s",
        "@after -1 hour",
        "@at 2027-01-01",
        "@AT 2027-01-01T09:00:00+0130",
        "@Every 10S",
        "  0   9 * *   mon-fri  ",
        "TZ=Asia/Kolkata @every 90 minutes",
        "@every 100ms",
        "@every 1 mon -0 days",
        "@after 1 hour ago",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    all.extend(
        NEXT_RUNS
            .iter()
            .filter(|c| c.2 != "reject")
            .map(|c| c.0.to_owned()),
    );
    all
}

#[test]
fn canonical_text_round_trips() {
    let all = accepted();
    for expr in &all {
        let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{e}"));
        let canonical = s.to_string();
        let again = Schedule::parse(&canonical).unwrap_or_else(|e| panic!("{expr} -> {e}"));
        assert_eq!(again, s, "{expr} -> {canonical}");
        assert_eq!(
            again.to_string(),
            canonical,
            "canonical text is a fixed point"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }
    assert_eq!(
        Schedule::parse("@annually").unwrap(),
        Schedule::parse("@yearly").unwrap()
    );
    assert_eq!(
        Schedule::parse("0 0 * * 7").unwrap(),
        Schedule::parse("0 0 * * sun").unwrap()
    );
    assert_eq!(
        Schedule::parse("@every 90 minutes").unwrap().to_string(),
        "@every 1 hour 30 minutes"
    );
    assert_eq!(
        Schedule::parse("0 9 * * mon-fri").unwrap().to_string(),
        "0 9 * * 1-5"
    );
    assert!(serde_json::from_str::<Schedule>("\"@every 0s\"").is_err());
    println!(
        "{} expressions round-trip through their canonical text",
        all.len()
    );
}

#[test]
fn descriptions_are_short_and_readable() {
    let d = |e: &str| Schedule::parse(e).unwrap().describe();
    assert_eq!(d("@every 10 seconds"), "every 10 seconds");
    assert_eq!(d("@every 10s"), "every 10 seconds");
    assert_eq!(d("@after 1 hour"), "once, 1 hour after its start");
    assert_eq!(
        d("@at 2027-01-01T09:00:00+01:00"),
        "once, at 2027-01-01 08:00:00 UTC"
    );
    assert_eq!(
        d("TZ=Europe/Paris @daily"),
        "every 1 day (Europe/Paris time)"
    );
    let weekdays = d("0 9 * * MON-FRI");
    assert!(
        weekdays.contains("09:00") && weekdays.contains("Monday"),
        "{weekdays}"
    );
    assert!(weekdays.contains("Friday"), "{weekdays}");
}

// ------------------------------------------------------------------------------------------
// Property: crontab next runs against a brute-force scan written here, on random expressions.

struct Field {
    text: String,
    set: Vec<bool>,
}

fn random_field(rng: &mut Rng, min: u32, max: u32, names: &[&str]) -> Field {
    let mut set = vec![false; max as usize + 1];
    if rng.chance(0.3) {
        for v in min..=max {
            set[v as usize] = true;
        }
        return Field {
            text: "*".into(),
            set,
        };
    }
    let name_of = |rng: &mut Rng, v: u32| -> String {
        let base = if names.len() == 12 { 1 } else { 0 };
        if !names.is_empty() && v >= base && ((v - base) as usize) < names.len() && rng.chance(0.4)
        {
            let n = names[(v - base) as usize];
            if rng.chance(0.5) {
                n.to_uppercase()
            } else {
                n.to_owned()
            }
        } else {
            v.to_string()
        }
    };
    let mut items = Vec::new();
    for _ in 0..=rng.below(2) {
        let a = rng.range(i64::from(min), i64::from(max)) as u32;
        let b = rng.range(i64::from(a), i64::from(max)) as u32;
        match rng.below(4) {
            0 => {
                set[a as usize] = true;
                items.push(name_of(rng, a));
            }
            1 => {
                let step = rng.range(1, 12) as u32;
                let mut v = min;
                while v <= max {
                    set[v as usize] = true;
                    v += step;
                }
                items.push(format!("*/{step}"));
            }
            2 => {
                for v in a..=b {
                    set[v as usize] = true;
                }
                items.push(format!("{}-{}", name_of(rng, a), name_of(rng, b)));
            }
            _ => {
                let step = rng.range(1, 7) as u32;
                let mut v = a;
                while v <= b {
                    set[v as usize] = true;
                    v += step;
                }
                items.push(format!("{a}-{b}/{step}"));
            }
        }
    }
    Field {
        text: items.join(","),
        set,
    }
}

struct Case {
    expr: String,
    tz: Tz,
    fields: Vec<Field>,
}

impl Case {
    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.fields[2].set[d.day() as usize];
        let wd = d.weekday().num_days_from_sunday() as usize;
        let dow = self.fields[4].set[wd] || (wd == 0 && self.fields[4].set[7]);
        let month = self.fields[3].set[d.month() as usize];
        let dom_star = self.fields[2].text.starts_with('*');
        let dow_star = self.fields[4].text.starts_with('*');
        month
            && if dom_star || dow_star {
                dom && dow
            } else {
                dom || dow
            }
    }

    /// The first instant whose wall clock in the zone reads `local` or later, scanning minutes.
    fn instant_of(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut x = Utc.from_utc_datetime(&(local - Duration::hours(15)));
        // Far from the answer, stride an hour while the wall clock is hours behind.
        while x.with_timezone(&self.tz).naive_local() + Duration::hours(3) < local {
            x += Duration::hours(1);
        }
        loop {
            if x.with_timezone(&self.tz).naive_local() >= local {
                return x;
            }
            x += Duration::minutes(1);
        }
    }

    /// The first run strictly after `after`, day by day then minute by minute.
    fn brute_next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after_local = after.with_timezone(&self.tz).naive_local();
        let start = after_local.date() - Duration::days(1);
        for k in 0..(366 * 9) {
            let day = start + Duration::days(k);
            if !self.day_matches(day) {
                continue;
            }
            for h in 0..24 {
                if !self.fields[1].set[h as usize] {
                    continue;
                }
                for m in 0..60 {
                    if !self.fields[0].set[m as usize] {
                        continue;
                    }
                    let local = day.and_hms_opt(h, m, 0)?;
                    // Wall clocks jump by at most a few hours: such an early minute is past.
                    if local + Duration::hours(4) < after_local {
                        continue;
                    }
                    let at = self.instant_of(local);
                    if at > after && at.with_timezone(&self.tz).naive_local().date() >= day {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

fn random_case(rng: &mut Rng) -> Case {
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let fields = vec![
        random_field(rng, 0, 59, &[]),
        random_field(rng, 0, 23, &[]),
        random_field(rng, 1, 31, &[]),
        random_field(rng, 1, 12, MONTHS),
        random_field(rng, 0, 7, DAYS),
    ];
    let tz: Tz = rng
        .pick(&[
            "UTC",
            "UTC",
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ])
        .parse()
        .unwrap_or(chrono_tz::UTC);
    let body: Vec<&str> = fields.iter().map(|f| f.text.as_str()).collect();
    let expr = if tz == chrono_tz::UTC && rng.chance(0.5) {
        body.join(" ")
    } else {
        format!("TZ={} {}", tz.name(), body.join(" "))
    };
    Case { expr, tz, fields }
}

#[test]
fn crontab_next_runs_match_a_brute_force_scan() {
    let mut rng = Rng::new(0xc0ffee);
    let (mut compared, mut never) = (0, 0);
    while compared < 600 {
        let case = random_case(&mut rng);
        // Near DST changes half of the time.
        let from = if rng.chance(0.5) {
            let (m, d) = rng.pick(&[(3, 30), (3, 9), (10, 26), (11, 2), (10, 5), (4, 6)]);
            Utc.with_ymd_and_hms(
                rng.range(2023, 2027) as i32,
                m,
                d,
                rng.below(24) as u32,
                rng.below(60) as u32,
                rng.below(60) as u32,
            )
            .unwrap()
        } else {
            Utc.timestamp_opt(rng.range(1_600_000_000, 1_900_000_000), 0)
                .unwrap()
        };
        let want = case.brute_next(from);
        match Schedule::parse(&case.expr) {
            Ok(s) => {
                assert_eq!(s.first_run(from), want, "{} after {from}", case.expr);
                if let Some(w) = want {
                    // And the run after that one.
                    assert_eq!(
                        s.next_run(w, w, w),
                        case.brute_next(w),
                        "{} after {w}",
                        case.expr
                    );
                }
                compared += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ExprErrorKind::NeverFires, "{}: {e}", case.expr);
                assert_eq!(
                    want, None,
                    "{} was rejected but fires at {want:?}",
                    case.expr
                );
                never += 1;
            }
        }
    }
    println!(
        "compared {compared} random crontabs with a brute-force scan ({never} never-firing ones rejected)"
    );
}

// ------------------------------------------------------------------------------------------
// No panic on any input.

/// Runs the parser on `n` inputs: random bytes, and mutations of valid expressions.
pub fn parse_arbitrary(n: usize, seed: u64) {
    let seeds = accepted();
    let mut rng = Rng::new(seed);
    let alphabet: Vec<char> =
        "0123456789 */-,@:.+PTYMWDHSLW?#abcdefghijklmnopqrstuvwxyz=_\t\u{e9}\u{1F600}\0"
            .chars()
            .collect();
    for _ in 0..n {
        let input: String = if rng.chance(0.3) {
            let len = rng.below(40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let mut chars: Vec<char> = seeds[rng.below(seeds.len() as u64) as usize]
                .chars()
                .collect();
            for _ in 0..=rng.below(4) {
                let at = rng.below(chars.len() as u64 + 1) as usize;
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => {
                        chars[at] = alphabet[rng.below(alphabet.len() as u64) as usize]
                    }
                    _ => chars.insert(at, alphabet[rng.below(alphabet.len() as u64) as usize]),
                }
            }
            chars.into_iter().collect()
        };
        if let Ok(s) = Schedule::parse(&input) {
            let now = t("2024-06-01T00:00");
            if let Some(first) = s.first_run(now) {
                let _ = s.next_run(first, first, now);
            }
            let _ = s.describe();
            assert_eq!(
                Schedule::parse(&s.to_string()).as_ref(),
                Ok(&s),
                "{input:?}"
            );
        }
    }
}

#[test]
fn arbitrary_input_never_panics() {
    parse_arbitrary(100_000, 1);
}

/// The long run: `cargo test --release -p qron-tests --test it -- --ignored arbitrary_input_million`.
#[test]
#[ignore = "long: a million inputs; run it in release mode"]
fn arbitrary_input_million() {
    let seed = std::env::var("QRON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    parse_arbitrary(1_000_000, seed);
    println!("parsed 1,000,000 arbitrary inputs (seed {seed}) without a panic");
}

#[test]
fn hostile_expressions_are_refused_without_panic_or_echo() {
    // Regression (issue 13, defect 7): a step near u32::MAX panicked the parser; a NUL inside
    // an interval and a 1 µs @every were accepted; errors quoted the whole input.
    for step in ["4294967295", "4294967294", "4294967200"] {
        let s = Schedule::parse(&format!("*/{step} * * * *")).unwrap();
        // The step passes the range's end at once: minute 0 only.
        assert_eq!(s.to_string(), format!("*/{step} * * * *"));
        assert_eq!(
            s.next_run(
                t("2024-01-01T00:00"),
                t("2024-01-01T00:00"),
                t("2024-01-01T00:00")
            ),
            Some(t("2024-01-01T01:00"))
        );
    }
    // From a range's start past 0, the step overflowed.
    let s = Schedule::parse("5-59/4294967295 * * * *").unwrap();
    assert_eq!(
        s.next_run(
            t("2024-01-01T00:00"),
            t("2024-01-01T00:00"),
            t("2024-01-01T00:00")
        ),
        Some(t("2024-01-01T00:05"))
    );
    let kind = |e: &str| Schedule::parse(e).unwrap_err().kind();
    assert_eq!(kind("@every 1\0 second"), ExprErrorKind::InvalidCharacter);
    assert_eq!(kind("0 0 * * 1\u{7}"), ExprErrorKind::InvalidCharacter);
    assert_eq!(
        kind("@every 1 microsecond"),
        ExprErrorKind::IntervalTooShort
    );
    assert_eq!(
        kind("@every 9.999 milliseconds"),
        ExprErrorKind::IntervalTooShort
    );
    assert!(Schedule::parse("@every 10 milliseconds").is_ok());
    assert!(
        Schedule::parse("@every\t1 day").is_ok(),
        "a tab is white space"
    );
    let huge = format!("@every {}", "1 second ".repeat(100_000));
    let err = Schedule::parse(&huge).unwrap_err();
    assert_eq!(err.kind(), ExprErrorKind::TooLong);
    assert!(
        err.to_string().len() < 400,
        "{} bytes",
        err.to_string().len()
    );
    let long_cron = format!("{} * * * *", "0,".repeat(520) + "0");
    assert_eq!(kind(&long_cron), ExprErrorKind::TooLong);
    // A long offending part is quoted in part too.
    let err = Schedule::parse(&format!("@every {}", "x".repeat(1000))).unwrap_err();
    assert!(err.to_string().len() < 600, "{}", err);
}

/// The slot after `slot` of a job that started at `start`, when it runs on time.
fn next_slot(s: &Schedule, start: DateTime<Utc>, slot: DateTime<Utc>) -> DateTime<Utc> {
    s.next_run(start, slot, slot).unwrap()
}

#[test]
fn every_counts_its_slots_from_the_start_through_month_ends_and_dst() {
    // Regression (issue 13, defect 6): slots were each computed from the one before, so
    // @monthly from January 31 went to the 29th and stayed there, and a 02:30 Paris daily
    // became 03:30 at the spring change and never came back.
    let monthly = Schedule::parse("@monthly").unwrap();
    let start = t("2024-01-31T09:00");
    let mut slot = monthly.first_run(start).unwrap();
    let mut got = vec![slot];
    for _ in 0..4 {
        slot = next_slot(&monthly, start, slot);
        got.push(slot);
    }
    let want: Vec<_> = [
        "2024-02-29T09:00",
        "2024-03-31T09:00",
        "2024-04-30T09:00",
        "2024-05-31T09:00",
        "2024-06-30T09:00",
    ]
    .iter()
    .map(|s| t(s))
    .collect();
    assert_eq!(got, want);

    let daily = Schedule::parse("TZ=Europe/Paris @every 1 day").unwrap();
    let paris = |s: &str| {
        chrono_tz::Europe::Paris
            .from_local_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    };
    let start = paris("2024-03-29 02:30");
    let mut slot = daily.first_run(start).unwrap();
    let mut local = vec![];
    for _ in 0..4 {
        local.push(
            slot.with_timezone(&chrono_tz::Europe::Paris)
                .format("%m-%d %H:%M")
                .to_string(),
        );
        slot = next_slot(&daily, start, slot);
    }
    // 02:30 does not exist on March 31: that slot moves past the gap, the next is back.
    assert_eq!(
        local,
        ["03-30 02:30", "03-31 03:30", "04-01 02:30", "04-02 02:30"]
    );

    // Late: missed slots collapse, and the next one is still on the grid.
    let late = t("2024-05-15T00:00");
    assert_eq!(
        monthly.next_run(t("2024-01-31T09:00"), t("2024-02-29T09:00"), late),
        Some(t("2024-05-31T09:00"))
    );
    // A fixed interval far from its start lands on its grid.
    let every = Schedule::parse("@every 7 seconds").unwrap();
    let start = t("2020-01-01T00:00");
    let n = every.next_run(start, start, t("2024-01-01T00:00")).unwrap();
    assert_eq!((n - start).num_seconds() % 7, 0);
    assert!(n > t("2024-01-01T00:00") && n <= t("2024-01-01T00:00:07"));
}

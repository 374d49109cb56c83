//! `Interval` against the real server: parsing, and `timestamptz + interval` in UTC and in DST
//! zones. Every case must agree; the tests print how many they compared.
#![allow(clippy::print_stdout)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use qron::Interval;
use qron_tests::{Rng, TestDb};
use sqlx::postgres::types::PgInterval;

const UNITS: &[&str] = &[
    "microsecond",
    "microseconds",
    "us",
    "usec",
    "usecs",
    "useconds",
    "millisecond",
    "milliseconds",
    "ms",
    "msec",
    "msecs",
    "mseconds",
    "second",
    "seconds",
    "s",
    "sec",
    "secs",
    "minute",
    "minutes",
    "m",
    "min",
    "mins",
    "hour",
    "hours",
    "h",
    "hr",
    "hrs",
    "day",
    "days",
    "d",
    "week",
    "weeks",
    "w",
    "month",
    "months",
    "mon",
    "mons",
    "year",
    "years",
    "y",
    "yr",
    "yrs",
    "decade",
    "decades",
    "dec",
    "decs",
    "century",
    "centuries",
    "c",
    "cent",
    "millennium",
    "millennia",
    "mil",
    "mils",
    "quarter",
    "qtr",
    "timezone",
    "HOURS",
    "Mins",
    "DAYS",
    "Weeks",
    "hOuR",
    "microsecondsfoo",
    "millisecondz",
    "secondsx",
    "minutez",
    "bananas",
    "week_",
    "yearly",
    "ago",
    "invalid",
    "t",
    "z",
    "at",
    "on",
    "x",
    "moons",
];

const SEPARATORS: &[&str] = &[" ", " ", " ", "", "  ", "\t", ", ", ",", "_", "  "];

fn number(rng: &mut Rng) -> String {
    let sign = rng.pick(&["", "", "", "", "-", "+", "- ", "+ "]);
    let body = match rng.below(12) {
        0 => format!("{}.{}", rng.below(100), rng.below(1000)),
        1 => format!(".{}", rng.below(100)),
        2 => format!("{}.", rng.below(100)),
        3 => format!("{}", rng.below(10_000_000_000)),
        4 => "9223372036854775807".to_owned(),
        5 => format!("{}.{:06}", rng.below(5), rng.below(1_000_000)),
        6 => format!("0{}", rng.below(10)),
        _ => format!("{}", rng.below(100)),
    };
    format!("{sign}{body}")
}

fn clock(rng: &mut Rng) -> String {
    let sign = rng.pick(&["", "", "", "-", "+"]);
    match rng.below(7) {
        0 => format!("{sign}{:02}:{:02}", rng.below(30), rng.below(70)),
        1 => format!(
            "{sign}{}:{:02}:{:02}",
            rng.below(200),
            rng.below(60),
            rng.below(62)
        ),
        2 => format!(
            "{sign}{:02}:{:02}:{:02}.{}",
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(10_000_000)
        ),
        3 => format!(
            "{sign}{:02}:{:02}.{}",
            rng.below(60),
            rng.below(61),
            rng.below(1000)
        ),
        4 => format!("{sign}{}:", rng.below(10)),
        5 => format!("{sign}{}::{}", rng.below(10), rng.below(10)),
        _ => format!("{sign}{}-{}", rng.below(20), rng.below(14)),
    }
}

fn iso(rng: &mut Rng) -> String {
    let mut s = String::from("P");
    let n = |rng: &mut Rng| -> String {
        match rng.below(8) {
            0 => format!("{}.{}", rng.below(10), rng.below(100)),
            1 => format!("-{}", rng.below(50)),
            2 => format!("{}e{}", rng.below(5), rng.below(3)),
            _ => format!("{}", rng.below(100)),
        }
    };
    match rng.below(8) {
        0 => {
            return format!(
                "P{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                rng.below(3),
                rng.below(14),
                rng.below(40),
                rng.below(30),
                rng.below(61),
                rng.below(61)
            );
        }
        1 => {
            return format!(
                "P{:04}{:02}{:02}T{:02}{:02}{:02}",
                rng.below(3),
                rng.below(13),
                rng.below(32),
                rng.below(25),
                rng.below(60),
                rng.below(60)
            );
        }
        2 => return format!("P{}-{}", rng.below(5), rng.below(12)),
        _ => {}
    }
    for unit in ["Y", "M", "W", "D"] {
        if rng.chance(0.4) {
            s.push_str(&n(rng));
            s.push_str(unit);
        }
    }
    if rng.chance(0.6) {
        s.push('T');
        for unit in ["H", "M", "S"] {
            if rng.chance(0.5) {
                s.push_str(&n(rng));
                s.push_str(unit);
            }
        }
    }
    if rng.chance(0.1) {
        s.push_str(rng.pick(&["X", "1", " ", "T", "p"]));
    }
    s
}

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut b: Vec<char> = s.chars().collect();
    for _ in 0..=rng.below(2) {
        let at = rng.below(b.len() as u64 + 1) as usize;
        match rng.below(3) {
            0 if at < b.len() => {
                b.remove(at);
            }
            _ => b.insert(
                at,
                rng.pick(&['-', '+', ':', '.', '/', 'x', '@', '1', ' ', 'é', 'T', 'P']),
            ),
        }
    }
    b.into_iter().collect()
}

/// At least `n` interval texts: the spec's cases, then generated ones.
fn corpus(n: usize) -> Vec<String> {
    let mut out: Vec<String> = [
        "1 hour",
        "1h",
        "90 seconds",
        "1 week 6 days",
        "1 hour 20 minutes",
        "1 mon",
        "1.5 hours",
        "01:30:00",
        "P1DT2H",
        "1 hours",
        "234 minutes",
        "4 year",
        "3 week",
        "10s",
        "100ms",
        "1 minute 10 seconds",
        "1 month 1 week 3 days",
        "@ 1 day ago",
        "1 day ago",
        "-1 day",
        "1 day -1 hour",
        "1-2",
        "-1-2",
        "1 2:03:04",
        "1 +02:03",
        "P1Y2M3DT4H5M6S",
        "PT0.5S",
        "P0001-02-03T04:05:06",
        "P0001-02T04:05",
        "P0001-02",
        "P0001-02-03T",
        "P0001-02-03TT01",
        "P0001-02-03X",
        "P00010203T040506",
        "P1W",
        "P1.5M",
        "PT1H30M",
        "0",
        "0 days",
        "1.5 years",
        "0.1 years",
        "1.5 months",
        "1.75 weeks",
        "1.5 days",
        "1 millennium",
        "2 centuries",
        "3 decades",
        "1 quarter",
        "234 bananas",
        "ok week",
        "",
        "   ",
        "@",
        "ago",
        "1 ago",
        "1 hour ago ago",
        "1 hour 2 hours",
        "1 2",
        "infinity",
        "-infinity",
        "now",
        "1 day 1 week",
        "1 second 1 millisecond",
        "1.5 seconds 1 ms",
        "2147483647 days",
        "2147483648 days",
        "178000000 years",
        "-2147483648 months",
        "9223372036854775807 us",
        "1e3 seconds",
        "P1e2D",
        "P-1D",
        "PT",
        "P",
        "p1d",
        " P1D",
        "P1D ",
        "1:",
        "1::",
        "00:00:00.0000005",
        "1 day 01:00 1.5 days",
        "01:00 1.5 days",
        "@1 day",
        "1.",
        ".5 hour",
        "+1 hour",
        "- 1 hour",
        "1 hour-2",
        "h1",
        "x1",
        "1,000 seconds",
        "1 dec 2 mon",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut seen: std::collections::HashSet<String> = out.iter().cloned().collect();
    let mut rng = Rng::new(0x5eed_1234);
    while out.len() < n {
        let s = match rng.below(10) {
            0 => clock(&mut rng),
            1 => iso(&mut rng),
            2 => format!("{} {}", number(&mut rng), clock(&mut rng)),
            3 => {
                let base = out[rng.below(out.len() as u64) as usize].clone();
                mutate(&mut rng, &base)
            }
            _ => {
                let mut s = String::new();
                if rng.chance(0.1) {
                    s.push_str(rng.pick(&["@", "@ ", " "]));
                }
                for k in 0..=rng.below(3) {
                    if k > 0 {
                        s.push_str(rng.pick(SEPARATORS));
                    }
                    s.push_str(&number(&mut rng));
                    s.push_str(rng.pick(&[" ", " ", "", "  "]));
                    s.push_str(rng.pick(UNITS));
                }
                if rng.chance(0.15) {
                    s.push_str(rng.pick(&[" ago", " ago", "ago", " 01:02", " 1", " ago 1 hour"]));
                }
                s
            }
        };
        if !s.contains('\0') && seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

async fn pg_intervals(pool: &sqlx::PgPool, texts: &[String]) -> Vec<Option<Interval>> {
    sqlx::query(
        "CREATE FUNCTION pg_temp.try_interval(t text) RETURNS interval LANGUAGE plpgsql AS $$
         BEGIN RETURN t::interval; EXCEPTION WHEN others THEN RETURN NULL; END $$",
    )
    .execute(pool)
    .await
    .unwrap();
    let rows: Vec<Option<PgInterval>> = sqlx::query_scalar(
        "SELECT pg_temp.try_interval(t) FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
    )
    .bind(texts)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.map(Interval::from)).collect()
}

#[tokio::test]
async fn interval_parsing_agrees_with_postgres() {
    let db = TestDb::new().await;
    // One connection: the temporary function lives in its session.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(db.options())
        .await
        .unwrap();
    let texts = corpus(3000);
    let theirs = pg_intervals(&pool, &texts).await;
    let mut disagreements = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (text, pg) in texts.iter().zip(&theirs) {
        let ours = Interval::parse(text).ok();
        if [
            "1 quarter",
            "1 ago",
            "h1",
            "1:",
            "01:00 1.5 days",
            "1 2",
            "P1e2D",
            "1,000 seconds",
            "1 dec 2 mon",
            "1.5 seconds 1 ms",
            "00:00:00.0000005",
        ]
        .contains(&text.as_str())
        {
            println!("DEBUG {text:?} ours={ours:?} pg={pg:?}");
        }
        if ours != *pg {
            disagreements.push(format!("{text:?}: qron {ours:?}, PostgreSQL {pg:?}"));
        }
        if pg.is_some() {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    println!(
        "compared {} distinct interval texts with PostgreSQL ({accepted} accepted, {rejected} rejected): {} disagreements",
        texts.len(),
        disagreements.len()
    );
    assert!(
        accepted > 1000 && rejected > 500,
        "the corpus must exercise both sides"
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

fn instant(rng: &mut Rng) -> DateTime<Utc> {
    let base = match rng.below(4) {
        // Month ends and leap days.
        0 => {
            let (m, d) = rng.pick(&[(1, 31), (2, 28), (2, 29), (3, 31), (4, 30), (12, 31)]);
            let y = rng.range(1995, 2040) as i32;
            let d = d.min(qron_days_in_month(y, m));
            Utc.with_ymd_and_hms(y, m, d, rng.below(24) as u32, rng.below(60) as u32, 0)
                .unwrap()
        }
        // Around the European and American DST changes.
        1 => {
            let (m, d) = rng.pick(&[(3, 26), (3, 12), (10, 29), (11, 5), (3, 31), (10, 27)]);
            Utc.with_ymd_and_hms(
                rng.range(2000, 2035) as i32,
                m,
                d,
                rng.below(24) as u32,
                0,
                0,
            )
            .unwrap()
        }
        _ => Utc
            .timestamp_opt(rng.range(631_152_000, 2_208_988_800), 0)
            .unwrap(),
    };
    base + Duration::microseconds(rng.range(0, 59_999_999))
}

fn qron_days_in_month(y: i32, m: u32) -> u32 {
    let first = chrono::NaiveDate::from_ymd_opt(y, m, 1).unwrap();
    let next = if m == 12 {
        chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1).unwrap()
    } else {
        chrono::NaiveDate::from_ymd_opt(y, m + 1, 1).unwrap()
    };
    (next - first).num_days() as u32
}

fn interval(rng: &mut Rng) -> Interval {
    match rng.below(3) {
        0 => Interval::new(rng.range(-30, 30) as i32, 0, 0),
        1 => Interval::new(
            0,
            rng.range(-400, 400) as i32,
            rng.range(-86_400_000_000, 86_400_000_000) * rng.below(2) as i64,
        ),
        _ => Interval::new(
            rng.range(-24, 24) as i32,
            rng.range(-40, 40) as i32,
            rng.range(-100 * 3_600_000_000, 100 * 3_600_000_000),
        ),
    }
}

#[tokio::test]
async fn interval_arithmetic_agrees_with_postgres() {
    let db = TestDb::new().await;
    let mut rng = Rng::new(0xadd_5eed);
    let pairs: Vec<(DateTime<Utc>, Interval)> = (0..1500)
        .map(|_| (instant(&mut rng), interval(&mut rng)))
        .collect();
    let ts: Vec<DateTime<Utc>> = pairs.iter().map(|p| p.0).collect();
    let ivs: Vec<PgInterval> = pairs.iter().map(|p| p.1.into()).collect();
    let mut compared = 0;
    for zone in [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe",
    ] {
        let mut conn = db.pool.acquire().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("SET TimeZone = '{zone}'")))
            .execute(&mut *conn)
            .await
            .unwrap();
        let theirs: Vec<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT t + i FROM unnest($1::timestamptz[], $2::interval[]) WITH ORDINALITY AS u(t, i, n) ORDER BY n",
        )
        .bind(&ts)
        .bind(&ivs)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        sqlx::query("RESET TimeZone")
            .execute(&mut *conn)
            .await
            .unwrap();
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let mut bad = Vec::new();
        for ((t, i), pg) in pairs.iter().zip(&theirs) {
            let ours = if zone == "UTC" {
                i.add_to(*t)
            } else {
                i.add_to_in(*t, tz)
            };
            if ours != Some(*pg) {
                bad.push(format!(
                    "{t} + {i} in {zone}: qron {ours:?}, PostgreSQL {pg}"
                ));
            }
            compared += 1;
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
    println!("compared {compared} (instant + interval) sums with PostgreSQL in 4 zones: all equal");
}

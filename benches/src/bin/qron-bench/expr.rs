//! The `expr` scenario: parse and next-run cost per expression form.

use std::hint::black_box;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use qron::Schedule;

use crate::Figure;

const FORMS: &[(&str, &str)] = &[
    ("@at", "@at 2027-01-01T09:00:00+01:00"),
    ("@after", "@after 1 hour 20 minutes"),
    ("@every", "@every 10 seconds"),
    ("@every ISO 8601", "@every P1DT2H"),
    ("@every months", "@every 1 month"),
    ("alias", "@daily"),
    ("crontab */5", "*/5 * * * *"),
    ("crontab weekdays", "0 9 * * MON-FRI"),
    ("crontab dom|dow", "0 0 1,15 * 3"),
    ("crontab TZ=", "TZ=Europe/Paris 0 9 * * 1-5"),
];

/// Nanoseconds per call of `f`, the median of `batches` batches of `iterations` calls.
fn ns_per_op(iterations: u32, batches: u32, mut f: impl FnMut(u32)) -> f64 {
    let mut samples: Vec<f64> = (0..batches.max(1))
        .map(|_| {
            let start = Instant::now();
            for i in 0..iterations {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations.max(1))
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

pub fn run(iterations: u32, batches: u32) -> Vec<Figure> {
    let mut out = Vec::new();
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single();
    for (name, text) in FORMS {
        let parse = ns_per_op(iterations, batches, |_| {
            let _ = black_box(Schedule::parse(black_box(text)));
        });
        out.push(Figure {
            name: format!("parse {name}"),
            value: parse,
            unit: "ns/op",
        });
        let (Ok(schedule), Some(base)) = (Schedule::parse(text), base) else {
            continue;
        };
        let mut slot = base;
        let next = ns_per_op(iterations, batches, |_| {
            let run = if schedule.is_recurring() {
                schedule.next_run(slot, slot, slot)
            } else {
                schedule.first_run(slot)
            };
            slot = run.unwrap_or(base);
            black_box(slot);
        });
        out.push(Figure {
            name: format!("next run {name}"),
            value: next,
            unit: "ns/op",
        });
    }
    out
}

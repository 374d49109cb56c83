//! The overview's charts over time: per executor of the viewer's owner, its runs and failures,
//! how late they started, and its due jobs waiting under limits, over the last hour (a point a
//! minute) or the last day (a point every ten minutes); server-rendered SVG from the figures
//! the workers keep (`db::executor_stats_series`), read once per page.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::View;
use crate::db::{self, StatsPoint};

/// The span a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Range {
    /// The last hour, a point a minute.
    #[default]
    Hour,
    /// The last day, a point every ten minutes.
    Day,
}

impl Range {
    /// The seconds of one point, and the points.
    fn buckets(self) -> (i64, usize) {
        match self {
            Range::Hour => (60, 60),
            Range::Day => (600, 144),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Range::Hour => "last hour",
            Range::Day => "last day",
        }
    }
}

/// One executor's series, a value per bucket, oldest first.
struct Series {
    executor: String,
    runs: Vec<i64>,
    failures: Vec<i64>,
    late_avg_ms: Vec<i64>,
    /// The worst lateness over the span.
    late_max_ms: i64,
    waiting: Vec<i64>,
}

/// The series of `points` (ordered by executor and time) in `n` buckets of `secs` from `from`.
fn series(points: &[StatsPoint], from: DateTime<Utc>, secs: i64, n: usize) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for p in points {
        if out.last().is_none_or(|s| s.executor != p.executor) {
            out.push(Series {
                executor: p.executor.clone(),
                runs: vec![0; n],
                failures: vec![0; n],
                late_avg_ms: vec![0; n],
                late_max_ms: 0,
                waiting: vec![0; n],
            });
        }
        let Some(s) = out.last_mut() else { continue };
        let Ok(i) = usize::try_from((p.at - from).num_seconds().div_euclid(secs)) else {
            continue;
        };
        if i >= n {
            continue;
        }
        s.runs[i] += p.runs;
        s.failures[i] += p.failures;
        s.late_avg_ms[i] = if p.runs > 0 {
            p.late_ms_sum / p.runs
        } else {
            0
        };
        s.late_max_ms = s.late_max_ms.max(p.late_ms_max);
        s.waiting[i] = s.waiting[i].max(p.waiting);
    }
    out
}

/// The charts' section of the overview, for `view`'s owner over `range` up to `now` (the
/// database's clock).
pub(crate) async fn section(view: &View, range: Range, now: DateTime<Utc>) -> Markup {
    let (secs, n) = range.buckets();
    let span = chrono::Duration::seconds(secs * n as i64);
    // Buckets aligned on their size, the last one holding now.
    let end =
        DateTime::from_timestamp((now.timestamp().div_euclid(secs) + 1) * secs, 0).unwrap_or(now);
    let from = end - span;
    let owner = view.client.owner_name();
    let points = db::executor_stats_series(view.client.pool(), owner, from, secs).await;
    html! {
        section #charts aria-labelledby="charts-title" {
            h2 #charts-title { "Over time: " (range.name()) }
            p.muted {
                "Each executor's runs that ended (failed attempts in red), how late they started on average, "
                "and the most due jobs seen waiting while it had limits or a cap. "
                @for r in [Range::Hour, Range::Day] {
                    @if r == range { strong { (r.name()) } " " }
                    @else {
                        a href=(format!("{}?range={}", view.link("/"), if r == Range::Day { "day" } else { "hour" })) { (r.name()) } " "
                    }
                }
            }
            @match points {
                Err(e) => {
                    p.late role="status" { "The figures could not be read: " (db_error(&e)) }
                }
                Ok(points) if points.is_empty() => {
                    p.muted { "No run ended in the " (range.name()) "." }
                }
                Ok(points) => {
                    @for s in series(&points, from, secs, n) {
                        figure.charts data-executor=(s.executor) {
                            figcaption { strong { (s.executor) } }
                            (chart("runs", "runs", &s.runs, Some(&s.failures), ""))
                            (chart("lateness", &format!("late on average (worst {} ms)", s.late_max_ms), &s.late_avg_ms, None, " ms"))
                            (chart("waiting", "waiting under limits", &s.waiting, None, ""))
                        }
                    }
                }
            }
        }
    }
}

/// What a viewer is told of a database error (its details are in the log).
fn db_error(e: &sqlx::Error) -> &'static str {
    tracing::warn!(error = %e, "could not read the charts' figures");
    "the database did not answer"
}

const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 48.0;

/// A small chart of `values` (bars, with `over` drawn over them in red), named `kind`,
/// described as `label`, its values in `unit`.
fn chart(kind: &str, label: &str, values: &[i64], over: Option<&[i64]>, unit: &str) -> Markup {
    let peak = values.iter().copied().max().unwrap_or(0).max(1);
    let total: i64 = values.iter().sum();
    let step = WIDTH / values.len().max(1) as f64;
    let bar = |i: usize, v: i64| {
        let h = (v as f64 / peak as f64 * HEIGHT).max(if v > 0 { 1.0 } else { 0.0 });
        (i as f64 * step, HEIGHT - h, (step - 0.5).max(0.5), h)
    };
    let failed: i64 = over.map_or(0, |o| o.iter().sum());
    let described = match over {
        Some(_) => {
            format!("{label}: {total} in all, {failed} failed; at most {peak}{unit} a point")
        }
        None => format!("{label}: at most {peak}{unit} a point"),
    };
    html! {
        div.chart {
            span.chart-label { (label) ": peak " (peak) (unit) }
            svg data-chart=(kind) data-total=(total) data-failed=(failed)
                viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width=(WIDTH) height=(HEIGHT)
                role="img" aria-label=(described) {
                title { (described) }
                rect.frame x="0" y="0" width=(WIDTH) height=(HEIGHT) {}
                @for (i, v) in values.iter().enumerate() {
                    @if *v > 0 {
                        @let (x, y, w, h) = bar(i, *v);
                        rect.bar x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{w:.1}")) height=(format!("{h:.1}")) {}
                    }
                }
                @if let Some(over) = over {
                    @for (i, v) in over.iter().enumerate() {
                        @if *v > 0 {
                            @let (x, y, w, h) = bar(i, *v);
                            rect.failed x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{w:.1}")) height=(format!("{h:.1}")) {}
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_fall_in_their_buckets_and_the_chart_says_its_figures() {
        let from = DateTime::from_timestamp(6_000, 0).unwrap_or_default();
        let point = |executor: &str, secs: i64, runs: i64, failures: i64| StatsPoint {
            executor: executor.to_owned(),
            at: from + chrono::Duration::seconds(secs),
            runs,
            failures,
            late_ms_sum: runs * 10,
            late_ms_max: 30,
            waiting: 4,
        };
        let points = [
            point("a", 0, 5, 1),
            point("a", 120, 7, 0),
            point("a", 3_600, 9, 0),
            point("b", 60, 2, 2),
        ];
        let s = series(&points, from, 60, 60);
        assert_eq!(s.len(), 2);
        assert_eq!(&s[0].runs[..3], [5, 0, 7]);
        assert_eq!(s[0].runs.iter().sum::<i64>(), 12, "past the span: dropped");
        assert_eq!(s[0].late_avg_ms[2], 10);
        assert_eq!(s[0].late_max_ms, 30);
        assert_eq!(s[1].failures[1], 2);
        let svg = chart("runs", "runs", &s[0].runs, Some(&s[0].failures), "").into_string();
        assert!(svg.contains(r#"data-total="12""#), "{svg}");
        assert!(svg.contains(r#"data-failed="1""#), "{svg}");
        assert_eq!(svg.matches("class=\"bar\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("class=\"failed\"").count(), 1, "{svg}");
        assert!(svg.contains("runs: 12 in all, 1 failed"), "{svg}");
    }
}

//! The upcoming timeline: how many runs fall in each minute ahead, per executor, so that
//! "everything at midnight" stands out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Dash, View, layout};
use crate::{Schedule, db};

/// The most groups of alike jobs read for one timeline.
const MAX_GROUPS: i64 = 100_000;
/// The most occurrences computed for one timeline (a schedule every minute for a week is
/// 10,080).
const MAX_RUNS: usize = 1_000_000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Ask {
    #[serde(default)]
    range: String,
}

/// A range: its name, length, and the width of one bar.
struct Range {
    name: &'static str,
    length: Duration,
    bar: Duration,
}

const RANGES: &[(&str, i64, i64)] = &[("hour", 60, 1), ("day", 1_440, 15), ("week", 10_080, 60)];

/// One executor's runs in the range, by minute from the range's start.
#[derive(Default)]
struct Counts {
    per_minute: BTreeMap<i64, u64>,
    total: u64,
}

/// A timeline as counted: from when, each executor's runs, whether every run was counted.
pub(crate) struct Counted {
    start: DateTime<Utc>,
    by_executor: BTreeMap<String, Counts>,
    complete: bool,
    /// When it was counted, by this process's clock.
    at: Instant,
}

/// The timelines counted lately, by owner and range, shared by every viewer for a while (10 s
/// for the next hour, a minute for the next day or week): a viewer's reload does not read the
/// live jobs again.
#[derive(Default)]
pub(crate) struct Timelines {
    slots: Mutex<HashMap<(String, &'static str), Slot>>,
}

/// One owner's timeline for one range: locked while it is counted, so viewers who ask at the
/// same time wait for that count instead of starting their own.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Counted>>>>;

impl Timelines {
    /// The owner's timeline for `range`: the shared one while fresh, else counted now (once,
    /// however many viewers ask at the same time).
    async fn get(&self, client: &crate::Client, range: &Range) -> sqlx::Result<Arc<Counted>> {
        let ttl = if range.name == "hour" {
            Duration::seconds(10)
        } else {
            Duration::minutes(1)
        };
        let ttl = ttl.to_std().unwrap_or_default();
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Forget other owners' stale timelines as new ones come.
            slots.retain(|_, s| {
                s.try_lock()
                    .map_or(true, |c| c.as_ref().is_some_and(|c| c.at.elapsed() < ttl))
            });
            slots
                .entry((client.owner_name().to_owned(), range.name))
                .or_default()
                .clone()
        };
        let mut counted = slot.lock().await;
        if let Some(c) = counted.as_ref().filter(|c| c.at.elapsed() < ttl) {
            return Ok(c.clone());
        }
        // Whole minutes, from the current one.
        let now = Utc::now();
        let start = now
            - Duration::seconds(now.timestamp().rem_euclid(60))
            - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
        let until = start + range.length;
        let jobs = db::scheduled(client.pool(), client.owner_name(), until, MAX_GROUPS).await?;
        let read_all = (jobs.len() as i64) < MAX_GROUPS;
        let (by_executor, complete) = count(&jobs, start, until);
        let fresh = Arc::new(Counted {
            start,
            by_executor,
            complete: read_all && complete,
            at: Instant::now(),
        });
        *counted = Some(fresh.clone());
        Ok(fresh)
    }
}

pub(crate) async fn page(
    State(dash): State<Arc<Dash>>,
    view: View,
    ask: Result<Query<Ask>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ask = ask.map(|q| q.0).unwrap_or_default();
    let (name, minutes, bar) = RANGES
        .iter()
        .copied()
        .find(|(n, _, _)| *n == ask.range)
        .unwrap_or(RANGES[0]);
    let range = Range {
        name,
        length: Duration::minutes(minutes),
        bar: Duration::minutes(bar),
    };
    let body = match dash.timelines.get(&view.client, &range).await {
        Err(e) => {
            tracing::warn!(error = %e, "the dashboard's timeline failed");
            html! { p.error role="alert" { "The database did not answer; try again." } }
        }
        Ok(counted) => timeline(&view, &range, &counted),
    };
    view.page(layout::page(&view, "/upcoming", "Upcoming runs", body))
}

/// Each executor's runs between `start` and `until`; whether every run was counted.
fn count(
    groups: &[db::Scheduled],
    start: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (BTreeMap<String, Counts>, bool) {
    let mut schedules: HashMap<&str, Option<Schedule>> = HashMap::new();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut runs = 0usize;
    for group in groups {
        let jobs = u64::try_from(group.jobs).unwrap_or(0);
        let entry = counts.entry(group.executor.clone()).or_default();
        let mut add = |t: DateTime<Utc>| {
            // A job already due counts in the first minute.
            let minute = (t.max(start) - start).num_minutes();
            *entry.per_minute.entry(minute).or_default() += jobs;
            entry.total += jobs;
        };
        add(group.run_at);
        runs += 1;
        if !group.recurring {
            continue;
        }
        let schedule = schedules
            .entry(group.expr.as_str())
            .or_insert_with(|| Schedule::parse(&group.expr).ok());
        let Some(schedule) = schedule else { continue };
        let began = group.start_at.unwrap_or(group.run_at);
        let mut slot = group.run_at;
        while let Some(next) = schedule.next_run(began, slot, slot.max(start)) {
            if next >= until || next <= slot {
                break;
            }
            if runs >= MAX_RUNS {
                return (counts, false);
            }
            add(next);
            runs += 1;
            slot = next;
        }
    }
    (counts, true)
}

/// One executor's bars: the runs in each, and the most in one minute of each.
struct Bars {
    heights: Vec<u64>,
    peaks: Vec<u64>,
    tallest: u64,
    /// Runs per minute over the range, on average (rounded up).
    usual: u64,
}

fn bars(counts: &Counts, bars: i64, per_bar: i64) -> Bars {
    let n = usize::try_from(bars).unwrap_or(1).max(1);
    let mut heights = vec![0u64; n];
    let mut peaks = vec![0u64; n];
    for (m, c) in &counts.per_minute {
        let b = usize::try_from(*m / per_bar).unwrap_or(0).min(n - 1);
        heights[b] += c;
        peaks[b] = peaks[b].max(*c);
    }
    let minutes = u64::try_from(bars * per_bar).unwrap_or(1).max(1);
    Bars {
        tallest: heights.iter().copied().max().unwrap_or(1).max(1),
        heights,
        peaks,
        usual: counts.total.div_ceil(minutes),
    }
}

fn timeline(view: &super::View, range: &Range, counted: &Counted) -> Markup {
    let (start, by_executor, complete) = (counted.start, &counted.by_executor, counted.complete);
    let minutes = range.length.num_minutes();
    let per_bar = range.bar.num_minutes().max(1);
    let n = minutes / per_bar;
    html! {
        nav.pager aria-label="Range" {
            @for (name, _, _) in RANGES {
                @if *name == range.name { strong aria-current="page" { "next " (name) } }
                @else { a href=(format!("{}?range={name}", view.link("/upcoming"))) { "next " (name) } }
            }
        }
        p.muted { "From " (layout::time(start)) "; each bar is " (per_bar) " minute" @if per_bar > 1 { "s" }
            ", its height the runs in it; red marks a minute with many more runs than usual." }
        @if !complete { p.error role="alert" { "Too many runs to count them all: the timeline shows the first ones." } }
        @if by_executor.is_empty() { p.muted { "Nothing is scheduled in this range." } }
        @for (executor, counts) in by_executor {
            @let busiest = counts.per_minute.iter().max_by_key(|(m, c)| (**c, std::cmp::Reverse(**m)));
            @let b = bars(counts, n, per_bar);
            section.timeline data-executor=(executor) {
                h2 { (executor) ": " (counts.total) " run" @if counts.total != 1 { "s" } }
                @if let Some((m, c)) = busiest {
                    p.busiest { "Busiest minute: " (layout::time(start + Duration::minutes(*m))) " with " (c) " run" @if *c != 1 { "s" } "." }
                }
                svg viewBox=(format!("0 0 {n} 100")) preserveAspectRatio="none" role="img"
                    aria-label=(format!("{} runs of {executor} over the next {}", counts.total, range.name)) {
                    @for (i, h) in b.heights.iter().enumerate() {
                        @if *h > 0 {
                            @let height = (*h as f64 / b.tallest as f64 * 100.0).max(2.0);
                            @let peak = b.peaks[i] >= 10 && b.peaks[i] >= 3 * b.usual;
                            @let from = start + Duration::minutes(i as i64 * per_bar);
                            rect x=(i) y=(format!("{:.1}", 100.0 - height)) width="0.8" height=(format!("{height:.1}")) class=[peak.then_some("peak")] {
                                title { (from.format("%Y-%m-%d %H:%M UTC")) ": " (h) " runs, at most " (b.peaks[i]) " in one minute" }
                            }
                        }
                    }
                }
            }
        }
    }
}

//! The overview: each executor's figures from the shared cache, live over server-sent events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use futures_util::stream::{self, Stream};
use maud::{Markup, html};

use super::cache::Overview;
use super::charts;
use super::layout::{self, action_button};
use super::{Dash, View};

/// What the overview's address may say: the charts' span (`?range=day`).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct OverviewQuery {
    #[serde(default)]
    range: charts::Range,
}

pub(crate) async fn page(
    State(dash): State<Arc<Dash>>,
    Query(query): Query<OverviewQuery>,
    view: View,
) -> Response {
    let figures = dash.cache.get().await;
    let charts = charts::section(
        &view,
        query.range,
        figures.at.unwrap_or_else(chrono::Utc::now),
    )
    .await;
    let body = html! {
        p.muted {
            "Live jobs by status (retrying: ready jobs waiting for a later attempt, counted in ready too; each count opens its list); "
            "how late the oldest due job is; and over the last hour, "
            dfn { "ran" } ": the jobs whose latest run started within the hour and has ended, and "
            dfn { "failed" } ": those of them whose latest run failed, so never more than ran. A job counts once, however often it ran. "
            "Counted for every viewer at once, "
            span #overview-at { @if let Some(at) = figures.at { "at " (layout::time(at)) } @else { "not yet" } }
            ". "
            span #live aria-live="off" {}
        }
        div.scroll {
            table {
                caption.muted { "Executors of owner " (view.client.owner_name()) }
                thead { tr {
                    th scope="col" { "Executor" }
                    th.num scope="col" { "Ready" }
                    th.num scope="col" { "Retrying" }
                    th.num scope="col" { "Running" }
                    th.num scope="col" { "Stopped" }
                    th.num scope="col" { "Ran (1 h)" }
                    th.num scope="col" { "Failed (1 h)" }
                    th scope="col" { "Oldest due" }
                    th scope="col" { "Paused" }
                    th scope="col" { "Limits" }
                    th.hide-narrow scope="col" { "Workers" }
                } }
                tbody #overview-rows { (rows(&view, &figures)) }
            }
        }
        (charts)
    };
    view.page(layout::page(&view, "/", "Overview", body))
}

/// The overview's rows for the view's owner: its executors, and those a worker serves.
pub(crate) fn rows(view: &View, figures: &Overview) -> Markup {
    let owner = view.client.owner_name();
    let mine: Vec<_> = figures.rows.iter().filter(|r| r.owner == owner).collect();
    let mut names: Vec<&str> = mine.iter().map(|r| r.executor.as_str()).collect();
    for (_, served) in &figures.workers {
        for e in served {
            if !names.contains(&e.as_str()) {
                names.push(e);
            }
        }
    }
    names.sort_unstable();
    let now = figures.at.unwrap_or_else(chrono::Utc::now);
    html! {
        @if let Some(e) = &figures.error {
            tr { td colspan="11" .error role="alert" { "The last count failed (" (e) "); these figures are older." } }
        }
        @if names.is_empty() {
            tr { td colspan="11" .muted { "No jobs and no workers yet." } }
        }
        @for name in &names {
            @let row = mine.iter().find(|r| r.executor == *name);
            @let workers: Vec<&str> = figures.workers.iter()
                .filter(|(_, served)| served.iter().any(|e| e == name))
                .map(|(id, _)| id.as_str()).collect();
            @let jobs = format!("{}?executor={}", view.link("/jobs"), urlencode(name));
            @let due = row.is_some_and(|r| r.oldest_due_at.is_some());
            @let unserved = due && workers.is_empty();
            tr data-executor=(name) class=[unserved.then_some("unserved")] {
                th scope="row" { a href=(jobs) { (name) } }
                // Each count opens the list it counts.
                td.num data-count="ready" { a href=(format!("{jobs}&status=ready")) { (row.map_or(0, |r| r.ready)) } }
                td.num data-count="retrying" { a href=(format!("{jobs}&status=retrying")) { (row.map_or(0, |r| r.retrying)) } }
                td.num data-count="running" { a href=(format!("{jobs}&status=running")) { (row.map_or(0, |r| r.running)) } }
                td.num data-count="stopped" { a href=(format!("{jobs}&status=stopped")) { (row.map_or(0, |r| r.stopped)) } }
                // Activity, not states: no list matches them.
                td.num data-count="ran" { (row.map_or(0, |r| r.ran_hour)) }
                td.num data-count="failed" { (row.map_or(0, |r| r.failed_hour)) }
                td {
                    @match row.and_then(|r| r.oldest_due_at) {
                        Some(due) => {
                            @let late = now - due;
                            span class=@if late.num_seconds() >= 60 { "late" } { (layout::duration(late)) " late" }
                        }
                        None => span.muted { "none due" },
                    }
                }
                td {
                    @let paused = row.and_then(|r| r.paused_at);
                    @if let Some(at) = paused { span.badge { "paused" } " since " (layout::time(at)) " " }
                    @else { "no " }
                    @if !view.read_only {
                        @if paused.is_some() {
                            (action_button(view, "/executors/resume", "Resume", &[("executor", name)], None))
                        } @else {
                            (action_button(view, "/executors/pause", "Pause", &[("executor", name)], None))
                        }
                    }
                }
                td data-limits {
                    @let limits = figures.limits.iter().find(|l| l.executor == *name);
                    @if let Some(now) = limits {
                        @let l = &now.limits;
                        (l.to_string())
                        @let full = l.concurrency_limit().is_some_and(|n| now.taken >= i64::from(n));
                        ": " span data-taken { (now.taken) } " in use"
                        @if full { " " span.badge.late title="Every place is taken: due jobs wait for one" { "full" } }
                        @if let Some(rate) = l.rate_limit() {
                            @if rate.partition().is_some() {
                                ", " span data-rate-spent { (now.rate_spent) } " out of starts"
                            } @else if now.rate_spent > 0 {
                                " " span.badge.late data-rate-spent title="No start left until the rate's bucket refills: due jobs wait for it" { "at rate" }
                            }
                        }
                        " "
                    } @else { span.muted { "none " } }
                    @if let Some(cap) = figures.caps.iter().find(|c| c.executor == *name && c.owner == view.client.owner_name()) {
                        span data-owner-cap title="This owner's own cap on its jobs of the executor" {
                            "owner's cap " (cap.concurrency) ": " (cap.taken) " in use"
                        }
                        " "
                    }
                    @if view.admin && !view.read_only {
                        form.inline method="post" action=(view.link("/executors/limit")) {
                            input type="hidden" name="token" value=(view.token);
                            input type="hidden" name="executor" value=(name);
                            label { "at most " input type="number" name="concurrency" min="1" max="1000000" required size="6"
                                value=[limits.and_then(|l| l.limits.concurrency_limit())]; }
                            button type="submit" { "Limit" }
                        }
                        @if limits.is_some() {
                            (action_button(view, "/executors/unlimit", "Unlimit", &[("executor", name)], None))
                        }
                    }
                }
                td.hide-narrow {
                    @if unserved { strong.late data-unserved title="No live worker serves this executor: its due jobs wait" { "none: due jobs wait" } }
                    @else if workers.is_empty() { span.muted { "none" } }
                    // Workers serve every owner: their names (hosts, processes) are the
                    // operator's, shown to the client's own owner only.
                    @else if view.sees_fleet { span title=(workers.join("\n")) { (workers.len()) } }
                    @else { span { (workers.len()) } }
                }
            }
        }
    }
}

/// Server-sent events: the view's rows at each refresh of the shared figures.
pub(crate) async fn events(State(dash): State<Arc<Dash>>, view: View) -> Response {
    let rx = dash.cache.subscribe();
    let shutdown = dash.api.shutdown.clone();
    Sse::new(updates(view, rx).take_until(shutdown.cancelled_owned()))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn updates(
    view: View,
    rx: tokio::sync::watch::Receiver<Arc<Overview>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((view, rx), |(view, mut rx)| async move {
        rx.changed().await.ok()?;
        let figures = rx.borrow_and_update().clone();
        let html = rows(&view, &figures).into_string();
        Some((
            Ok(Event::default().event("overview").data(html)),
            (view, rx),
        ))
    })
}

/// `text` for a URL's query.
pub(crate) fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

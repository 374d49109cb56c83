//! The job list (the search's filters, keyset pages, actions on a selection) and a job's page.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::cache::Overview;
use super::layout::{self, action_button};
use super::overview::urlencode;
use super::{Dash, View, refuse};
use crate::{JobRow, JobStatus, Search, db};

/// Jobs per page.
const PAGE: i64 = 50;
/// The most jobs one selection acts on (a page's worth, with room).
pub(crate) const PAGE_MAX: usize = 2 * PAGE as usize;

/// The list's filters, from the query string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    executor: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    name: String,
    /// Created at or after (`YYYY-MM-DDTHH:MM`, UTC, as a `datetime-local` field sends it).
    #[serde(default)]
    from: String,
    /// Created before.
    #[serde(default)]
    to: String,
    /// Due (or last due, when finished) at or after.
    #[serde(default)]
    due_from: String,
    /// Due before.
    #[serde(default)]
    due_to: String,
    /// `yes`: recurring jobs only; `no`: one-off jobs only.
    #[serde(default)]
    recurring: String,
    /// Meta containing this JSON object.
    #[serde(default)]
    meta: String,
    /// Ids below this one (the next page).
    before: Option<i64>,
}

const STATUSES: &[JobStatus] = &[
    JobStatus::Ready,
    JobStatus::Waiting,
    JobStatus::Running,
    JobStatus::Stopped,
    JobStatus::Succeeded,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

impl Filters {
    /// The search these filters make, or what is wrong with one.
    fn search(&self) -> Result<Search, String> {
        let mut q = Search::new();
        if !self.executor.is_empty() {
            q = q.executor(self.executor.clone());
        }
        if self.status == "retrying" {
            q = q.retrying();
        } else if !self.status.is_empty() {
            let s = STATUSES
                .iter()
                .find(|s| s.as_str() == self.status)
                .ok_or_else(|| format!("unknown status `{}`", self.status))?;
            q = q.status(*s);
        }
        if !self.name.is_empty() {
            q = q.name_contains(self.name.clone());
        }
        let time = |field: &str, text: &str| -> Result<Option<DateTime<Utc>>, String> {
            if text.is_empty() {
                return Ok(None);
            }
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
                .map(|t| Some(t.and_utc()))
                .map_err(|_| format!("{field}: `{text}` is not a time such as 2026-11-29T09:00"))
        };
        q = q.created_between(time("from", &self.from)?, time("to", &self.to)?);
        q = q.run_between(
            time("due_from", &self.due_from)?,
            time("due_to", &self.due_to)?,
        );
        match self.recurring.as_str() {
            "" => {}
            "yes" => q = q.recurring(true),
            "no" => q = q.recurring(false),
            other => return Err(format!("recurring: `{other}` is neither yes nor no")),
        }
        if !self.meta.is_empty() {
            let meta: serde_json::Value =
                serde_json::from_str(&self.meta).map_err(|e| format!("meta: not JSON ({e})"))?;
            q = q.meta_contains(meta);
        }
        Ok(q)
    }

    /// The query string of these filters, for the next page's link.
    fn query(&self, before: Option<i64>) -> String {
        let mut parts: Vec<String> = [
            ("executor", &self.executor),
            ("status", &self.status),
            ("name", &self.name),
            ("from", &self.from),
            ("to", &self.to),
            ("due_from", &self.due_from),
            ("due_to", &self.due_to),
            ("recurring", &self.recurring),
            ("meta", &self.meta),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        parts.join("&")
    }
}

pub(crate) async fn list(
    State(dash): State<Arc<Dash>>,
    view: View,
    filters: Result<axum::extract::Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (filters, unreadable) = match filters {
        Ok(q) => (q.0, None),
        Err(e) => (Filters::default(), Some(e.body_text())),
    };
    // A query string that does not read, a filter the client refuses: said on the page.
    let found = match unreadable {
        Some(e) => Err(e),
        None => filters.search().and_then(|q| {
            view.client
                .search_checked(&q)
                .map(|q| (q, filters.before))
                .map_err(|e| e.to_string())
        }),
    };
    let (jobs, problem) = match found {
        Ok((q, before)) => match db::job_page(
            view.client.pool(),
            view.client.owner_name(),
            &q,
            before,
            PAGE + 1,
        )
        .await
        {
            Ok(jobs) => (jobs, None),
            Err(e) => {
                tracing::warn!(error = %e, "the dashboard's job list failed");
                (
                    Vec::new(),
                    Some("the database did not answer; try again".to_owned()),
                )
            }
        },
        Err(e) => (Vec::new(), Some(e)),
    };
    let more = jobs.len() as i64 > PAGE;
    let jobs = &jobs[..jobs.len().min(PAGE as usize)];
    let figures = dash.cache.get().await;
    let body = html! {
        (counts(&view, &figures, &filters))
        (filter_form(&view, &filters))
        @if let Some(p) = &problem { p.error role="alert" { (p) } }
        form method="post" action=(view.link("/jobs-selected")) data-confirm="Apply this action to every selected job?" {
            input type="hidden" name="token" value=(view.token);
            @if !view.read_only {
                div.actions {
                    label for="bulk-action" { "With the selected jobs: " }
                    select #bulk-action name="action" {
                        @for (value, label) in BULK { option value=(value) { (label) } }
                    }
                    button type="submit" { "Apply" }
                }
            }
            div.scroll { table #jobs {
                thead { tr {
                    @if !view.read_only { th scope="col" { input #select-all type="checkbox" aria-label="Select every job on this page"; } }
                    th.num scope="col" { "Id" }
                    th scope="col" { "Executor" }
                    th scope="col" { "Name" }
                    th scope="col" { "Status" }
                    th scope="col" { "Expression" }
                    th scope="col" { "Run at" }
                    th.num.hide-narrow scope="col" { "Attempt" }
                    th.hide-narrow scope="col" { "Last error" }
                } }
                tbody {
                    @if jobs.is_empty() && problem.is_none() { tr { td colspan="9" .muted { "No job matches." } } }
                    @for job in jobs { (row(&view, job)) }
                }
            } }
        }
        nav.pager aria-label="Pages" {
            @if filters.before.is_some() { a href=(format!("{}?{}", view.link("/jobs"), filters.query(None))) { "Newest" } }
            @if more { @if let Some(last) = jobs.last() {
                a rel="next" href=(format!("{}?{}", view.link("/jobs"), filters.query(Some(last.id)))) { "Older jobs" }
            } }
        }
    };
    view.page(layout::page(&view, "/jobs", "Jobs", body))
}

/// The live jobs of the listed executor (or of every one) by status, each a link to its list,
/// and the last hour's runs: the overview's shared figures, so that a look at the list never
/// makes the database count. Finished jobs are not counted (the history can hold millions).
fn counts(view: &View, figures: &Overview, f: &Filters) -> Markup {
    let owner = view.client.owner_name();
    let rows = figures
        .rows
        .iter()
        .filter(|r| r.owner == owner && (f.executor.is_empty() || r.executor == f.executor));
    let mut sum = [0_i64; 6];
    for r in rows {
        let add = [
            r.ready,
            r.retrying,
            r.running,
            r.stopped,
            r.ran_hour,
            r.failed_hour,
        ];
        for (total, n) in sum.iter_mut().zip(add) {
            *total += n;
        }
    }
    let list = |status: &str| {
        let mut q = Vec::new();
        if !f.executor.is_empty() {
            q.push(format!("executor={}", urlencode(&f.executor)));
        }
        if !status.is_empty() {
            q.push(format!("status={status}"));
        }
        format!("{}?{}", view.link("/jobs"), q.join("&"))
    };
    let states = [
        ("ready", "Ready", sum[0]),
        ("retrying", "Retrying", sum[1]),
        ("running", "Running", sum[2]),
        ("stopped", "Stopped", sum[3]),
    ];
    html! {
        nav.counts #counts aria-label="Jobs by status" {
            ul {
                li { @if f.status.is_empty() { a href=(list("")) aria-current="page" { "All" } } @else { a href=(list("")) { "All" } } }
                @for (status, label, n) in states {
                    li data-count=(status) {
                        @if f.status == status { a href=(list(status)) aria-current="page" { (label) " " strong { (n) } } }
                        @else { a href=(list(status)) { (label) " " strong { (n) } } }
                    }
                }
                li data-count="ran" { "Ran (1 h) " strong { (sum[4]) } }
                li data-count="failed" { "Failed (1 h) " strong { (sum[5]) } }
            }
            p.muted {
                @if f.executor.is_empty() { "Every executor" } @else { "Executor " code { (f.executor) } }
                ", counted "
                @if let Some(at) = figures.at { "at " (layout::time(at)) } @else { "not yet" }
                " (as on the overview: retrying jobs count in ready too; ran and failed are jobs whose latest run, started within the hour, has ended, and failed). Finished jobs are listed, not counted."
            }
        }
    }
}

/// The actions a selection can take: (form value, label).
pub(crate) const BULK: &[(&str, &str)] = &[
    ("retry", "Retry"),
    ("cancel", "Cancel"),
    ("run-now", "Run now"),
    ("stop", "Stop"),
    ("restart", "Restart"),
    ("delete", "Delete"),
];

fn filter_form(view: &View, f: &Filters) -> Markup {
    html! {
        form.filters method="get" action=(view.link("/jobs")) role="search" {
            div { label for="f-executor" { "Executor" } input #f-executor name="executor" value=(f.executor); }
            div { label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "any" }
                    @for s in STATUSES { option value=(s.as_str()) selected[f.status == s.as_str()] { (s.as_str()) } }
                    option value="retrying" selected[f.status == "retrying"] { "retrying" }
                }
            }
            div { label for="f-name" { "Name contains" } input #f-name name="name" value=(f.name); }
            div { label for="f-from" { "Created from (UTC)" } input #f-from type="datetime-local" name="from" value=(f.from); }
            div { label for="f-to" { "Created before (UTC)" } input #f-to type="datetime-local" name="to" value=(f.to); }
            div { label for="f-due-from" { "Due from (UTC)" } input #f-due-from type="datetime-local" name="due_from" value=(f.due_from); }
            div { label for="f-due-to" { "Due before (UTC)" } input #f-due-to type="datetime-local" name="due_to" value=(f.due_to); }
            div { label for="f-recurring" { "Schedule" }
                select #f-recurring name="recurring" {
                    option value="" { "any" }
                    option value="yes" selected[f.recurring == "yes"] { "recurring" }
                    option value="no" selected[f.recurring == "no"] { "one-off" }
                }
            }
            div { label for="f-meta" { "Meta contains (JSON)" } input #f-meta name="meta" value=(f.meta) placeholder="{\"team\": \"growth\"}"; }
            div { button type="submit" { "Filter" } }
        }
    }
}

fn row(view: &View, job: &JobRow) -> Markup {
    html! {
        tr data-id=(job.id) {
            @if !view.read_only { td { input type="checkbox" name="ids" value=(job.id) aria-label=(format!("Select job {}", job.id)); } }
            td.num { a href=(view.link(&format!("/jobs/{}", job.id))) { (job.id) } }
            td { (job.executor) }
            td { (job.name.as_deref().unwrap_or("–")) }
            td { (layout::job_status(job)) }
            td { code { (job.expr) } }
            td { (layout::time(job.run_at)) }
            td.num.hide-narrow { (job.attempt) "/" (job.max_attempts) }
            td.hide-narrow {
                // A succeeded job's errors are its history: a later attempt fixed them.
                @if job.status == JobStatus::Succeeded && job.last_error.is_some() {
                    span.muted.resolved title="a later attempt succeeded" { "resolved: " (cut(job.last_error.as_deref().unwrap_or(""), 70)) }
                } @else { (cut(job.last_error.as_deref().unwrap_or(""), 80)) }
            }
        }
    }
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

pub(crate) async fn show(
    view: View,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return refuse(StatusCode::NOT_FOUND, "no such job");
    };
    let job = match view.client.get(id).await {
        Ok(job) => job,
        Err(crate::Error::NotFound { .. }) => {
            return refuse(StatusCode::NOT_FOUND, &format!("job {id} not found"));
        }
        Err(e) => {
            tracing::warn!(error = %e, "the dashboard's job page failed");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer; try again",
            );
        }
    };
    // The workflow it is a step of, if any (not said when the database does not answer).
    let workflow = crate::db::job_workflow(view.client.pool(), view.client.owner_name(), job.id)
        .await
        .ok()
        .flatten();
    // The jobs it waits for (a batch's callback, a workflow's step), by status.
    let waits_for = crate::db::batch_results(view.client.pool(), job.id)
        .await
        .map(crate::BatchResults::from_rows)
        .unwrap_or_default();
    let body = html! {
        @if let Some((wf, name, step)) = &workflow {
            p #workflow { "Step " strong { (step) } " of workflow "
                a href=(view.link(&format!("/workflows/{wf}"))) { (name) " (" (wf) ")" } "." }
        }
        @if waits_for.total() > 0 { (batch_progress(&view, &waits_for)) }
        (job_page(&view, &job))
    };
    view.page(layout::page(
        &view,
        "/jobs",
        &format!("Job {}", job.id),
        body,
    ))
}

/// The jobs a job waits for (a batch's, for its callback): how many ended, by status, and the
/// first of those that did not succeed, each a link.
fn batch_progress(view: &View, r: &crate::BatchResults) -> Markup {
    let total = r.total();
    let ended = total - r.live.len();
    let unsuccessful: Vec<i64> = r
        .failed
        .iter()
        .chain(&r.cancelled)
        .chain(&r.deleted)
        .copied()
        .take(10)
        .collect();
    html! {
        section #batch {
            h2 { "Waits for " (total) " job" @if total != 1 { "s" } }
            p {
                progress max=(total) value=(ended) aria-label="Jobs ended" {}
                " " (ended) " of " (total) " ended"
                @for (label, n) in [("succeeded", r.succeeded.len()), ("failed", r.failed.len()),
                                    ("cancelled", r.cancelled.len()), ("deleted", r.deleted.len()),
                                    ("live", r.live.len())] {
                    @if n > 0 { " · " (n) " " (label) }
                }
            }
            @if !unsuccessful.is_empty() {
                p { "Did not succeed: "
                    @for (i, id) in unsuccessful.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(view.link(&format!("/jobs/{id}"))) { (id) }
                    }
                    @if r.failed.len() + r.cancelled.len() + r.deleted.len() > unsuccessful.len() { "…" }
                }
            }
        }
    }
}

fn job_page(view: &View, job: &JobRow) -> Markup {
    let validated = crate::validate(&job.expr, job.run_at, 9).ok();
    let live = job.finished_at.is_none();
    html! {
        @if !view.read_only { div.actions { (job_actions(view, job)) } }
        dl.facts {
            dt { "Executor" } dd { a href=(format!("{}?executor={}", view.link("/jobs"), urlencode(&job.executor))) { (job.executor) } }
            dt { "Name" } dd { (job.name.as_deref().unwrap_or("–")) }
            dt { "Status" } dd { (layout::job_status(job)) }
            dt { "Expression" } dd { code { (job.expr) } @if let Some(v) = &validated { " — " (v.description) } }
            dt { "Run at" } dd { (layout::time(job.run_at)) }
            dt { "Attempt" } dd { (job.attempt) " of " (job.max_attempts) " (" (job.executions) " executions in all)" }
            dt { "Timeout" } dd { (layout::duration(chrono::Duration::from_std(job.timeout).unwrap_or_default())) }
            dt { "Priority" } dd { (job.priority) @if job.priority == 0 { " (the highest)" } @else if job.priority == crate::LOWEST_PRIORITY { " (the lowest)" } }
            dt { "Created" } dd { (layout::time(job.created_at)) }
            dt { "Updated" } dd { (layout::time(job.updated_at)) " (revision " (job.revision) ")" }
            dt { "Last run" } dd { (layout::maybe_time(job.last_run_at)) }
            dt { "Finished" } dd { (layout::maybe_time(job.finished_at)) }
        }
        @if live {
            h2 { "Next runs" }
            ol #next-runs {
                li { (layout::time(job.run_at)) }
                @if job.recurring { @if let Some(v) = &validated { @for t in &v.next_runs { li { (layout::time(*t)) } } } }
            }
        }
        @if job.recurring {
            h2 { "Recent runs" }
            @if job.runs.is_empty() { p.muted { "None yet." } }
            @else {
                div.scroll { table #runs {
                    thead { tr { th scope="col" { "Slot" } th scope="col" { "Ended" } th scope="col" { "Outcome" } th.hide-narrow scope="col" { "Worker" } th scope="col" { "Error" } } }
                    tbody { @for r in job.runs.iter().rev() {
                        tr {
                            td { (layout::time(r.slot)) }
                            td { (layout::time(r.at)) }
                            td { span class={ "status status-" (r.outcome) } { (r.outcome) } }
                            td.hide-narrow { (r.worker.as_deref().unwrap_or("–")) }
                            td { (r.error.as_deref().unwrap_or("")) }
                        }
                    } }
                } }
            }
        }
        h2 { "Payload" }
        pre #payload { (pretty(&job.payload)) }
        h2 { "Meta" }
        pre #meta { (pretty(&crate::http::schema::shown_meta(&job.executor, job.meta.clone()))) }
        @if job.status == JobStatus::Succeeded && !job.errors.is_empty() {
            h2 { "Earlier errors" }
            p.muted.resolved { "Resolved: a later attempt succeeded." }
        } @else { h2 { "Errors" } }
        @if job.errors.is_empty() { p.muted { "None." } }
        @else {
            div.scroll { table #errors {
                thead { tr { th.num scope="col" { "Attempt" } th scope="col" { "At" } th scope="col" { "Worker" } th scope="col" { "Error" } } }
                tbody { @for e in job.errors.iter().rev() {
                    tr { td.num { (e.attempt) } td { (layout::time(e.at)) } td { (e.worker.as_deref().unwrap_or("–")) } td { (e.error) } }
                } }
            } }
        }
    }
}

/// The buttons for what can be done to `job` now.
fn job_actions(view: &View, job: &JobRow) -> Markup {
    let path = |action: &str| format!("/jobs/{}/{action}", job.id);
    let finished = job.finished_at.is_some();
    html! {
        @if finished { (action_button(view, &path("retry"), "Retry", &[], None)) }
        @if !finished {
            @if job.status == JobStatus::Ready { (action_button(view, &path("run-now"), "Run now", &[], None)) }
            @if job.status == JobStatus::Stopped { (action_button(view, &path("restart"), "Restart", &[], None)) }
            @else { (action_button(view, &path("stop"), "Stop", &[], None)) }
            (action_button(view, &path("cancel"), "Cancel", &[], Some("Cancel this job? It ends as cancelled.")))
        }
        (action_button(view, &path("delete"), "Delete", &[], Some("Delete this job for good?")))
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

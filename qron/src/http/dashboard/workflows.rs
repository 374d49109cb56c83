//! The workflows: a list of the owner's, newest first, and a workflow's page, which draws it as
//! a graph (server-rendered SVG: a node a step, coloured by its job's status and linked to the
//! job's page, an edge a dependency) beside its progress and its actions (cancel, retry).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::actions::{Answer, Fields, allowed, back_to, message_of, status_of};
use super::layout::{self, action_button};
use super::{Refusal, View, refuse};
use crate::{JobStatus, WorkflowInfo, WorkflowStatus, WorkflowStep};

/// Workflows per page of the list.
const PAGE: usize = 50;
/// The most steps drawn: a larger workflow shows its steps' counts and a table of its first
/// steps instead.
pub(crate) const MAX_DRAWN: usize = 300;

/// A node's size and the gaps between them, in the drawing's units (pixels at scale 1).
const NODE_W: f64 = 168.0;
const NODE_H: f64 = 34.0;
const GAP_X: f64 = 56.0;
const GAP_Y: f64 = 14.0;
const MARGIN: f64 = 8.0;
/// The most characters of a step's name written in its node (the whole name is its title).
const LABEL_CHARS: usize = 20;

/// The list's query: ids below `before` (the next page).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    before: Option<i64>,
}

/// `GET /workflows`: the owner's workflows, newest first, by pages.
pub(crate) async fn list(
    view: View,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let before = query.ok().and_then(|q| q.0.before);
    let found = view.client.workflows(before, PAGE + 1).await;
    let (rows, problem) = match found {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(message_of(&e))),
    };
    let more = rows.len() > PAGE;
    let rows = &rows[..rows.len().min(PAGE)];
    let body = html! {
        @if let Some(p) = &problem { p.error role="alert" { (p) } }
        div.scroll { table #workflows {
            thead { tr {
                th.num scope="col" { "Id" }
                th scope="col" { "Name" }
                th scope="col" { "Status" }
                th scope="col" { "Created" }
            } }
            tbody {
                @if rows.is_empty() && problem.is_none() { tr { td colspan="4" .muted { "No workflow yet." } } }
                @for w in rows {
                    tr data-id=(w.id) {
                        td.num { a href=(view.link(&format!("/workflows/{}", w.id))) { (w.id) } }
                        td { a href=(view.link(&format!("/workflows/{}", w.id))) { (w.name) } }
                        td { (workflow_status(w.status)) }
                        td { (layout::time(w.created_at)) }
                    }
                }
            }
        } }
        nav.pager aria-label="Pages" {
            @if before.is_some() { a href=(view.link("/workflows")) { "Newest" } }
            @if more { @if let Some(last) = rows.last() {
                a rel="next" href=(format!("{}?before={}", view.link("/workflows"), last.id)) { "Older workflows" }
            } }
        }
    };
    view.page(layout::page(&view, "/workflows", "Workflows", body))
}

/// `GET /workflows/{id}`: the workflow drawn, its progress, and its actions.
pub(crate) async fn show(
    view: View,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return refuse(StatusCode::NOT_FOUND, "no such workflow");
    };
    let wf = match view.client.workflow(id).await {
        Ok(wf) => wf,
        Err(e) => return refuse(status_of(&e), &message_of(&e)),
    };
    let (done, total) = wf.progress();
    let counts = status_counts(&wf.steps);
    let body = html! {
        @if !view.read_only { div.actions {
            @if wf.status == WorkflowStatus::Running {
                (action_button(&view, &format!("/workflows/{id}/cancel"), "Cancel what is left", &[], Some("Cancel every job of this workflow that has not ended?")))
            }
            @if matches!(wf.status, WorkflowStatus::Failed | WorkflowStatus::Cancelled)
                || counts.iter().any(|(s, _)| matches!(s, Some(JobStatus::Failed | JobStatus::Cancelled))) {
                (action_button(&view, &format!("/workflows/{id}/retry"), "Retry failed steps", &[], Some("Run this workflow's failed and cancelled steps again?")))
            }
        } }
        dl.facts {
            dt { "Name" } dd { (wf.name) }
            dt { "Status" } dd #workflow-status { (workflow_status(wf.status)) }
            dt { "Created" } dd { (layout::time(wf.created_at)) }
            dt { "Progress" } dd #progress {
                progress max=(total) value=(done) aria-label="Jobs ended" {}
                " " (done) " of " (total) " jobs ended"
                @for (status, n) in &counts { " · " (n) " " (status.map_or("deleted", JobStatus::as_str)) }
            }
        }
        @if wf.steps.len() <= MAX_DRAWN {
            h2 { "Graph" }
            div.scroll.workflow-graph { (graph(&view, &wf)) }
        } @else {
            p.muted { "This workflow has " (wf.steps.len()) " steps: it is drawn up to " (MAX_DRAWN) "; its first steps are listed below." }
        }
        h2 { "Steps" }
        div.scroll { table #steps {
            thead { tr {
                th scope="col" { "Step" } th.num scope="col" { "Job" } th scope="col" { "Executor" }
                th scope="col" { "Status" } th scope="col" { "After" }
            } }
            tbody {
                @for s in wf.steps.iter().take(MAX_DRAWN) {
                    tr {
                        td { (s.step) }
                        td.num { a href=(view.link(&format!("/jobs/{}", s.job))) { (s.job) } }
                        td { (s.executor.as_deref().unwrap_or("–")) }
                        td { (step_status(s.status)) }
                        td { (after_list(&s.after)) }
                    }
                }
            }
        } }
    };
    view.page(layout::page(
        &view,
        "/workflows",
        &format!("Workflow {id}"),
        body,
    ))
}

/// `POST /workflows/{id}/{cancel|retry}`: then back to the workflow.
pub(crate) async fn action(
    view: View,
    Path((id, action)): Path<(i64, String)>,
    parts: Parts,
    Form(fields): Form<Fields>,
) -> Answer {
    let view = allowed(view, &parts, &fields)?;
    let done = match action.as_str() {
        "cancel" => view.client.cancel_workflow(id).await.map(drop),
        "retry" => view.client.retry_workflow(id).await.map(drop),
        _ => return Err(Refusal(StatusCode::NOT_FOUND, "no such action".into())),
    };
    Ok(back_to(&view, &format!("/workflows/{id}"), done))
}

/// How many steps are in each status, in the order statuses are listed (deleted last).
fn status_counts(steps: &[WorkflowStep]) -> Vec<(Option<JobStatus>, usize)> {
    let order = [
        Some(JobStatus::Waiting),
        Some(JobStatus::Ready),
        Some(JobStatus::Running),
        Some(JobStatus::Stopped),
        Some(JobStatus::Succeeded),
        Some(JobStatus::Failed),
        Some(JobStatus::Cancelled),
        None,
    ];
    order
        .into_iter()
        .map(|s| (s, steps.iter().filter(|x| x.status == s).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn workflow_status(s: WorkflowStatus) -> Markup {
    html! { span class={ "status status-" (s.as_str()) } { (s.as_str()) } }
}

fn step_status(s: Option<JobStatus>) -> Markup {
    match s {
        Some(s) => layout::status(s),
        None => html! { span.status.status-deleted { "deleted" } },
    }
}

/// Where each step is drawn: its column (the longest chain of steps before it) and its row in
/// that column (fractional: a step sits level with the mean row of the steps it waits for, when
/// the steps above it leave room). Steps come in creation order, each after those it waits for;
/// within a column they are ordered by that mean row, which keeps the edges of chains and
/// fan-ins short and mostly level.
fn layout_steps(steps: &[WorkflowStep]) -> Vec<(usize, f64)> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.step.as_str(), i))
        .collect();
    let mut column = vec![0usize; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        column[i] = s
            .after
            .iter()
            .filter_map(|a| index.get(a.as_str()))
            .filter(|&&j| j < i)
            .map(|&j| column[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let columns = column.iter().copied().max().map_or(0, |c| c + 1);
    let mut row = vec![0f64; steps.len()];
    for c in 0..columns {
        let mut members: Vec<(Option<f64>, usize)> = (0..steps.len())
            .filter(|&i| column[i] == c)
            .map(|i| {
                let parents: Vec<f64> = steps[i]
                    .after
                    .iter()
                    .filter_map(|a| index.get(a.as_str()))
                    .filter(|&&j| column[j] < c)
                    .map(|&j| row[j])
                    .collect();
                let mean = (!parents.is_empty())
                    .then(|| parents.iter().sum::<f64>() / parents.len() as f64);
                (mean, i)
            })
            .collect();
        // Steps with parents by their mean row; the others (roots) after them, in order.
        members.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => x.total_cmp(&y).then(a.1.cmp(&b.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1),
        });
        let mut next = 0f64;
        for (mean, i) in members {
            row[i] = mean.map_or(next, |m| m.max(next));
            next = row[i] + 1.0;
        }
    }
    column.into_iter().zip(row).collect()
}

/// The workflow as an SVG graph: a node a step (a link to its job's page, coloured by status,
/// its name and status written in it), an arrow from each step to each step that waits for it.
fn graph(view: &View, wf: &WorkflowInfo) -> Markup {
    let places = layout_steps(&wf.steps);
    let at = |(c, r): (usize, f64)| {
        (
            MARGIN + c as f64 * (NODE_W + GAP_X),
            MARGIN + r * (NODE_H + GAP_Y),
        )
    };
    let columns = places.iter().map(|p| p.0 + 1).max().unwrap_or(1);
    let rows = places.iter().map(|p| p.1 + 1.0).fold(1.0, f64::max);
    let width = 2.0 * MARGIN + columns as f64 * NODE_W + (columns - 1) as f64 * GAP_X;
    let height = 2.0 * MARGIN + rows * NODE_H + (rows - 1.0) * GAP_Y;
    let index: HashMap<&str, usize> = wf
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.step.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    for (i, s) in wf.steps.iter().enumerate() {
        for a in &s.after {
            if let Some(&j) = index.get(a.as_str()) {
                let (x1, y1) = at(places[j]);
                let (x2, y2) = at(places[i]);
                let (x1, y1, x2, y2) = (x1 + NODE_W, y1 + NODE_H / 2.0, x2, y2 + NODE_H / 2.0);
                let mid = (x1 + x2) / 2.0;
                edges.push((
                    format!("M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}"),
                    format!("{a} → {}", s.step),
                ));
            }
        }
    }
    html! {
        svg #workflow-graph width=(format!("{width:.0}")) height=(format!("{height:.0}"))
            viewBox=(format!("0 0 {width:.0} {height:.0}")) role="img"
            aria-label=(format!("Workflow {}: {} steps, {} dependencies", wf.name, wf.steps.len(), edges.len())) {
            defs {
                marker #arrow viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto" {
                    path d="M0,0 L8,4 L0,8 z" {}
                }
            }
            @for (d, title) in &edges {
                path.edge d=(d) marker-end="url(#arrow)" { title { (title) } }
            }
            @for (s, place) in wf.steps.iter().zip(&places) {
                @let (x, y) = at(*place);
                @let status = s.status.map_or("deleted", JobStatus::as_str);
                a.node href=(view.link(&format!("/jobs/{}", s.job))) data-step=(s.step) data-status=(status) {
                    title { (s.step) ": job " (s.job) ", " (status) }
                    rect class={ "node-" (status) } x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(NODE_W) height=(NODE_H) rx="6" {}
                    text x=(format!("{:.1}", x + 8.0)) y=(format!("{:.1}", y + 14.0)) { (label(&s.step)) }
                    text.sub x=(format!("{:.1}", x + 8.0)) y=(format!("{:.1}", y + 28.0)) { (status) }
                }
            }
        }
    }
}

/// The steps a step waits for, as its row lists them: the first [`AFTER_LISTED`], then how many
/// more (a callback may wait for 100,000).
fn after_list(after: &[String]) -> String {
    let mut listed = after
        .iter()
        .take(AFTER_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if after.len() > AFTER_LISTED {
        listed.push_str(&format!(" and {} more", after.len() - AFTER_LISTED));
    }
    listed
}

/// The most steps a step's row names among those it waits for.
const AFTER_LISTED: usize = 10;

/// A step's name as its node shows it: cut to [`LABEL_CHARS`] characters.
fn label(step: &str) -> String {
    if step.chars().count() <= LABEL_CHARS {
        step.to_owned()
    } else {
        let mut s: String = step.chars().take(LABEL_CHARS - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, after: &[&str]) -> WorkflowStep {
        WorkflowStep {
            step: name.to_owned(),
            job: 0,
            executor: None,
            status: None,
            after: after.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_diamond_is_laid_out_in_three_columns_with_the_join_level_with_its_branches() {
        let steps = [
            step("a", &[]),
            step("b", &["a"]),
            step("c", &["a"]),
            step("d", &["b", "c"]),
            step("e", &[]),
            step("f", &["e"]),
        ];
        assert_eq!(
            layout_steps(&steps),
            [
                (0, 0.0),
                (1, 0.0),
                (1, 1.0),
                (2, 0.5),
                (0, 1.0),
                // below the branches, though level with `e` would be higher
                (1, 2.0)
            ]
        );
    }

    #[test]
    fn a_callbacks_row_names_ten_steps_it_waits_for_and_counts_the_rest() {
        let after: Vec<String> = (0..25).map(|i| format!("s{i}")).collect();
        assert_eq!(
            after_list(&after),
            "s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 15 more"
        );
        assert_eq!(after_list(&after[..2]), "s0, s1");
    }

    #[test]
    fn a_long_name_is_cut_in_its_node() {
        assert_eq!(label("fetch-1"), "fetch-1");
        assert_eq!(label(&"x".repeat(40)).chars().count(), LABEL_CHARS);
    }
}

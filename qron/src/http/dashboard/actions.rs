//! What operators do from the dashboard: forms posted from its pages, refused in read-only mode,
//! for other owners' jobs (not found), and from other sites.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::{Refusal, View, layout, refuse, same_site};
use crate::{Client, Error, JobRow};

/// A posted form's fields, in order (a selection repeats `ids`).
pub(super) type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The view of a posted form, or why it is refused: read-only mode, or not from the dashboard.
pub(super) fn allowed(view: View, parts: &Parts, fields: &Fields) -> Result<View, Refusal> {
    if view.read_only {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only".into(),
        ));
    }
    if !same_site(parts, view.origin.as_deref(), field(fields, "token")) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "this form did not come from the dashboard's own page; reload the page and try again"
                .into(),
        ));
    }
    Ok(view)
}

/// What an action answers: a page or a redirection, or a refusal.
pub(super) type Answer = Result<Response, Refusal>;

/// Applies `action` to job `id`.
async fn apply(client: &Client, id: i64, action: &str) -> crate::Result<JobRow> {
    match action {
        "retry" => client.retry(id).await,
        "cancel" => client.cancel(id).await,
        "run-now" => client.run_now(id).await,
        "stop" => client.stop(id).await,
        "restart" => client.restart(id).await,
        "delete" => client.delete(id).await,
        _ => Err(Error::InvalidArgument {
            field: "action",
            reason: format!("`{action}` is not an action"),
        }),
    }
}

/// The status an error answers with.
pub(super) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::WrongStatus { .. } | Error::RevisionMismatch { .. } => StatusCode::CONFLICT,
        Error::Database(_) | Error::Migrate(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// What a user may read of an error: its message, except the database's detail (logged).
pub(super) fn message_of(e: &Error) -> String {
    match e {
        Error::Database(_) | Error::Migrate(_) => {
            tracing::warn!(error = %e, "a dashboard action failed");
            "the database did not answer; try again".to_owned()
        }
        e => e.to_string(),
    }
}

/// `POST /jobs/{id}/{action}`: then back to the job (to the list after a delete).
pub(crate) async fn one(
    view: View,
    Path((id, action)): Path<(i64, String)>,
    parts: Parts,
    Form(fields): Form<Fields>,
) -> Answer {
    let view = allowed(view, &parts, &fields)?;
    let done = apply(&view.client, id, &action).await.map(drop);
    let back = if action == "delete" {
        "/jobs".to_owned()
    } else {
        format!("/jobs/{id}")
    };
    Ok(back_to(&view, &back, done))
}

/// What an action answers once done: back to `path` under the dashboard, or the page saying
/// why it was refused.
pub(super) fn back_to(view: &View, path: &str, done: crate::Result<()>) -> Response {
    match done {
        Ok(()) => Redirect::to(&view.link(path)).into_response(),
        Err(e) => refuse(status_of(&e), &message_of(&e)),
    }
}

/// `POST /jobs-selected`: one action on every selected job; a page says how each went.
pub(crate) async fn selected(view: View, parts: Parts, Form(fields): Form<Fields>) -> Answer {
    let view = allowed(view, &parts, &fields)?;
    let action = field(&fields, "action").to_owned();
    let ids: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| k == "ids")
        .filter_map(|(_, v)| v.parse().ok())
        .take(super::jobs::PAGE_MAX)
        .collect();
    if ids.is_empty() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "select at least one job".into(),
        ));
    }
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        results.push((id, apply(&view.client, id, &action).await));
    }
    let done = results.iter().filter(|(_, r)| r.is_ok()).count();
    let body = html! {
        p role="status" { (done) " of " (results.len()) " jobs: " (action) " done." }
        ul #results {
            @for (id, r) in &results {
                li { a href=(view.link(&format!("/jobs/{id}"))) { "job " (id) } ": "
                    @match r { Ok(_) => span.ok { "done" }, Err(e) => span.error { (message_of(e)) } } }
            }
        }
        p { a href=(view.link("/jobs")) { "Back to the jobs" } }
    };
    Ok(view.page(layout::page(&view, "/jobs", "Selected jobs", body)))
}

/// `POST /executors/{pause|resume|limit|unlimit}`: then back to the overview. Limits bind
/// every owner's jobs: the admin scope only.
pub(crate) async fn executor(
    view: View,
    Path(action): Path<String>,
    parts: Parts,
    Form(fields): Form<Fields>,
) -> Answer {
    let view = allowed(view, &parts, &fields)?;
    let executor = field(&fields, "executor");
    if matches!(action.as_str(), "limit" | "unlimit") && !view.admin {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "executors' limits bind every owner's jobs: only an admin may change them".into(),
        ));
    }
    let done = match action.as_str() {
        "pause" => view.client.pause_executor(executor).await,
        "resume" => view.client.resume_executor(executor).await,
        // The limit on all at once, keeping the executor's other limits (per key, rate).
        "limit" => match field(&fields, "concurrency").trim().parse::<u32>() {
            Ok(n) => match view.client.executor_limits(executor).await {
                Ok(limits) => {
                    let limits = limits.unwrap_or_default().concurrency(n);
                    view.client.set_executor_limits(executor, limits).await
                }
                Err(e) => Err(e),
            },
            Err(_) => Err(Error::InvalidArgument {
                field: "concurrency",
                reason: "give a whole number from 1 to 1,000,000".to_owned(),
            }),
        },
        "unlimit" => view
            .client
            .clear_executor_limits(executor)
            .await
            .map(|_| ()),
        _ => return Err(Refusal(StatusCode::NOT_FOUND, "no such action".into())),
    };
    Ok(back_to(&view, "/", done))
}

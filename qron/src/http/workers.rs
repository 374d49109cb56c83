//! Remote workers over plain JSON: `POST /workers/lease`, `/workers/complete` and
//! `/workers/heartbeat`, so that a worker in any language needs only an HTTP client (the same
//! three calls exist as GraphQL mutations).
//!
//! ```text
//! POST /workers/lease      {"executor": "email", "limit": 10, "lease_seconds": 60, "worker": "py-1"}
//!                       -> {"jobs": [{"id": 1, "token": "9b1c…", "payload": {...}, ...}]}
//! POST /workers/complete   {"outcomes": [{"id": 1, "token": "9b1c…", "result": "commit"},
//!                                        {"id": 2, "token": "04fe…", "result": "retry", "error": "busy", "delay_seconds": 30},
//!                                        {"id": 3, "token": "77a0…", "result": "fail", "error": "bad address"}]}
//!                       -> {"reported": [{"id": 1, "applied": true}, ...]}
//! POST /workers/heartbeat  {"leases": [{"id": 1, "token": "9b1c…"}], "lease_seconds": 60}
//!                       -> {"renewed": [1]}
//! ```
//!
//! Each call needs the [`worker`](super::Scope::Worker) or [`operate`](super::Scope::Operate)
//! scope; a worker limited to some executors leases, completes and renews their jobs only (an
//! outcome or a lease of another executor's job is reported as not applied, or not renewed).
//! An error answers 400 (or 403 for a scope that does not allow the call) with
//! `{"error": …, "code": …}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use super::access::{Access, Rejected};
use crate::client::checks::seconds;
use crate::{Error, RemoteOutcome};

fn default_limit() -> usize {
    10
}

fn default_lease() -> f64 {
    60.0
}

fn default_worker() -> String {
    "remote".to_owned()
}

#[derive(Deserialize)]
pub(super) struct LeaseBody {
    executor: String,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default = "default_lease")]
    lease_seconds: f64,
    #[serde(default = "default_worker")]
    worker: String,
}

#[derive(Deserialize)]
pub(super) struct CompleteBody {
    outcomes: Vec<RemoteOutcome>,
}

#[derive(Deserialize)]
pub(super) struct LeaseRef {
    id: i64,
    token: String,
}

#[derive(Deserialize)]
pub(super) struct HeartbeatBody {
    leases: Vec<LeaseRef>,
    #[serde(default = "default_lease")]
    lease_seconds: f64,
}

/// The request's access, when it may work on jobs (`executor`'s, when given), or the response
/// that refuses it.
fn worker(shared: &Shared, parts: &Parts, executor: Option<&str>) -> Result<Access, Rejected> {
    let access = shared.api.access(parts).map_err(Rejected::new)?;
    let allowed = access
        .worker()
        .map(|_| ())
        .and_then(|()| executor.map_or(Ok(()), |e| access.may_work_on(e)));
    match allowed {
        Ok(()) => Ok(access),
        Err(e) => Err(Rejected::new((
            StatusCode::FORBIDDEN,
            Json(json!({ "error": e.0, "code": "FORBIDDEN" })),
        ))),
    }
}

fn refused(e: Error) -> Response {
    let (status, code) = match &e {
        Error::InvalidArgument { .. } | Error::TooLarge { .. } | Error::Json(_) => {
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
        }
        _ if super::busy(&e) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    };
    let message = if code == "UNAVAILABLE" {
        super::BUSY.to_owned()
    } else if code == "INTERNAL" {
        tracing::error!(error = %e, "remote worker API: request failed");
        "internal error: see the server's log".to_owned()
    } else {
        e.to_string()
    };
    (status, Json(json!({ "error": message, "code": code }))).into_response()
}

pub(super) async fn lease(
    State(shared): State<Arc<Shared>>,
    parts: Parts,
    Json(body): Json<LeaseBody>,
) -> Response {
    let access = match worker(&shared, &parts, Some(&body.executor)) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let lease_time = match seconds("lease_time", body.lease_seconds) {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    match access
        .client
        .lease(&body.executor, body.limit, lease_time, &body.worker)
        .await
    {
        Ok(jobs) => Json(json!({ "jobs": jobs })).into_response(),
        Err(e) => refused(e),
    }
}

pub(super) async fn complete(
    State(shared): State<Arc<Shared>>,
    parts: Parts,
    Json(body): Json<CompleteBody>,
) -> Response {
    let access = match worker(&shared, &parts, None) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    match access
        .client
        .complete_limited(body.outcomes, access.executors())
        .await
    {
        Ok(reported) => Json(json!({ "reported": reported })).into_response(),
        Err(e) => refused(e),
    }
}

pub(super) async fn heartbeat(
    State(shared): State<Arc<Shared>>,
    parts: Parts,
    Json(body): Json<HeartbeatBody>,
) -> Response {
    let access = match worker(&shared, &parts, None) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let leases: Vec<(i64, String)> = body.leases.into_iter().map(|l| (l.id, l.token)).collect();
    let lease_time = match seconds("lease_time", body.lease_seconds) {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    match access
        .client
        .renew_leases_limited(&leases, lease_time, access.executors())
        .await
    {
        Ok(renewed) => Json(json!({ "renewed": renewed })).into_response(),
        Err(e) => refused(e),
    }
}

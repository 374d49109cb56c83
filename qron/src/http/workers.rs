//! Remote workers over plain JSON: `POST /workers/lease`, `/workers/complete` and
//! `/workers/heartbeat`, so that a worker in any language needs only an HTTP client (the same
//! three calls exist as GraphQL mutations).
//!
//! ```text
//! POST /workers/lease      {"executor": "email", "limit": 10, "lease_seconds": 60, "worker": "py-1"}
//!                       -> {"jobs": [{"id": 1, "token": 1, "payload": {...}, ...}]}
//! POST /workers/complete   {"outcomes": [{"id": 1, "token": 1, "result": "commit"},
//!                                        {"id": 2, "token": 5, "result": "retry", "error": "busy", "delay_seconds": 30},
//!                                        {"id": 3, "token": 2, "result": "fail", "error": "bad address"}]}
//!                       -> {"reported": [{"id": 1, "applied": true}, ...]}
//! POST /workers/heartbeat  {"leases": [{"id": 1, "token": 1}], "lease_seconds": 60}
//!                       -> {"renewed": [1]}
//! ```
//!
//! An error answers 400 (or 403 when the API is read-only) with `{"error": …, "code": …}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use crate::client::checks::seconds;
use crate::{Client, Error, RemoteOutcome};

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
    token: i64,
}

#[derive(Deserialize)]
pub(super) struct HeartbeatBody {
    leases: Vec<LeaseRef>,
    #[serde(default = "default_lease")]
    lease_seconds: f64,
}

/// Why a request may not change jobs: its owner was refused (with this status), or the API is
/// read-only.
enum Refusal {
    Owner(StatusCode),
    ReadOnly,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Owner(status) => status.into_response(),
            Refusal::ReadOnly => (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": "this API is read-only", "code": "FORBIDDEN" })),
            )
                .into_response(),
        }
    }
}

/// The client of a request that may change jobs.
fn writer(shared: &Shared, parts: &Parts) -> Result<Client, Refusal> {
    let access = shared.api.access(parts).map_err(Refusal::Owner)?;
    if access.read_only {
        return Err(Refusal::ReadOnly);
    }
    Ok(access.client)
}

fn refused(e: Error) -> Response {
    let (status, code) = match &e {
        Error::InvalidArgument { .. } | Error::TooLarge { .. } | Error::Json(_) => {
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    };
    let message = if code == "INTERNAL" {
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
    let client = match writer(&shared, &parts) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let lease_time = match seconds("lease_time", body.lease_seconds) {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    match client
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
    let client = match writer(&shared, &parts) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    match client.complete(body.outcomes).await {
        Ok(reported) => Json(json!({ "reported": reported })).into_response(),
        Err(e) => refused(e),
    }
}

pub(super) async fn heartbeat(
    State(shared): State<Arc<Shared>>,
    parts: Parts,
    Json(body): Json<HeartbeatBody>,
) -> Response {
    let client = match writer(&shared, &parts) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let leases: Vec<(i64, i64)> = body.leases.iter().map(|l| (l.id, l.token)).collect();
    let lease_time = match seconds("lease_time", body.lease_seconds) {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    match client.renew_leases(&leases, lease_time).await {
        Ok(renewed) => Json(json!({ "renewed": renewed })).into_response(),
        Err(e) => refused(e),
    }
}

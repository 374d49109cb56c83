//! Helpers of the HTTP tests: a router served on a loopback port, the remote workers' JSON
//! calls, and a worker for the HTTP executor.

use qron::{Client, HttpExecutor, Worker};
use reqwest::StatusCode;
use serde_json::Value;

/// Serves `app` at the root of a loopback port; its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Posts `body` to the remote workers' `path` (`lease`, `complete`, `heartbeat`) of the API at
/// `base`: the status and the JSON answer (`null` when it is not JSON).
pub async fn post_worker(base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/workers/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Runs the due `http` jobs with `exec` until none is left.
pub async fn run_http_worker(client: &Client, exec: HttpExecutor) {
    Worker::builder(client.clone())
        .executors(["http"])
        .http_executor(exec)
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
}

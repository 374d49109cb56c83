//! The HTTP executor (feature `http-executor`): jobs of executor `http` are sent to the web
//! endpoint their meta names, so that any service can run jobs without a qron worker of its
//! own.
//!
//! A job's meta says where: `url` (required), `method` (default `POST`), and `headers` (an
//! object of names to strings). The request's body is the job as JSON:
//!
//! ```json
//! {"id": 42, "executor": "http", "owner": "default", "name": null, "attempt": 1,
//!  "payload": {...}, "meta": {...}, "scheduled_at": "…", "due_at": "…"}
//! ```
//!
//! The reply decides the outcome:
//! - a `2xx` succeeds; its body may be JSON with any of `payload` (the job's next payload),
//!   `expr` (a new schedule), and `outcome` (`commit`, `retry` or `fail`, with `error`);
//! - any other status, a timeout (the job's run-time limit) or a transport error is retried
//!   with back-off, while attempts remain;
//! - a redirect to another host, or a reply body over the limit, fails the job: retrying would
//!   not change it.
//!
//! With a signing secret, each request carries `x-qron-signature: t=<unix seconds>,v1=<hex>`,
//! the HMAC-SHA256 of `"<t>.<body>"` under the secret: the receiver recomputes it, compares in
//! constant time, and refuses old timestamps.
//!
//! ```no_run
//! # fn demo(client: qron::Client) -> qron::Result<()> {
//! let worker = qron::Worker::builder(client)
//!     .http_executor(qron::HttpExecutor::new().concurrency(10).secret("s3cret"))
//!     .build()?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures_util::StreamExt as _;
use hmac::Mac as _;
use serde_json::{Value, json};

use crate::JobError;
use crate::handler::{Context, JobOptions};
use crate::registry::{HandlerFuture, Registration};

/// The state the HTTP executor's handler takes: its settings.
const STATES: &[crate::state::StateType] = &[crate::state::StateType::of::<HttpExecutor>()];

/// The executor name the HTTP executor serves.
pub const HTTP_EXECUTOR: &str = "http";

/// The largest reply body read, by default: 1 MiB.
pub const DEFAULT_MAX_REPLY: usize = 1 << 20;

/// The HTTP executor's settings; give it to
/// [`WorkerBuilder::http_executor`](crate::WorkerBuilder::http_executor).
///
/// ```
/// let e = qron::HttpExecutor::new().concurrency(20).max_reply(64 * 1024);
/// ```
#[derive(Clone)]
pub struct HttpExecutor {
    pub(crate) concurrency: usize,
    secret: Option<std::sync::Arc<[u8]>>,
    max_reply: usize,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExecutor")
            .field("concurrency", &self.concurrency)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("max_reply", &self.max_reply)
            .finish()
    }
}

impl Default for HttpExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpExecutor {
    /// Ten requests at once per worker, no signing, replies up to [`DEFAULT_MAX_REPLY`].
    ///
    /// ```
    /// let e = qron::HttpExecutor::new();
    /// ```
    pub fn new() -> Self {
        // Redirects within the same host are followed (a few); to another host, refused.
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt
                .previous()
                .first()
                .is_some_and(|first| first.host_str() == attempt.url().host_str());
            if !same_host {
                attempt.error("a redirect to another host is refused")
            } else if attempt.previous().len() > 5 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("qron/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            concurrency: 10,
            secret: None,
            max_reply: DEFAULT_MAX_REPLY,
            client,
        }
    }

    /// Requests in flight at once per worker process.
    ///
    /// ```
    /// let e = qron::HttpExecutor::new().concurrency(50);
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Signs every request with `secret` (see the module's docs).
    ///
    /// ```
    /// let e = qron::HttpExecutor::new().secret("s3cret");
    /// ```
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().into());
        self
    }

    /// The largest reply body read; a larger one fails the job.
    ///
    /// ```
    /// let e = qron::HttpExecutor::new().max_reply(64 * 1024);
    /// ```
    pub fn max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes;
        self
    }

    /// The registration the worker serves (it takes the settings as its state).
    pub(crate) fn registration(&self) -> Registration {
        Registration {
            executor: HTTP_EXECUTOR,
            type_name: "qron::HttpExecutor",
            options: JobOptions::default(),
            run,
            states: STATES,
        }
    }
}

fn run(ctx: Context, payload: Option<String>) -> HandlerFuture {
    Box::pin(async move {
        let Some(exec) = ctx.state::<HttpExecutor>() else {
            return Err(JobError::fail("the worker has no HttpExecutor settings"));
        };
        let payload: Value = match payload {
            Some(p) => serde_json::from_str(&p).map_err(JobError::fail)?,
            None => Value::Null,
        };
        send(&exec, &ctx, payload).await
    })
}

/// `hex(HMAC-SHA256(secret, "<t>.<body>"))`.
fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes a key of any length.
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn send(exec: &HttpExecutor, ctx: &Context, payload: Value) -> Result<(), JobError> {
    let meta = ctx.meta();
    let url = meta
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| JobError::fail("the job's meta has no `url` to send it to"))?;
    let url = reqwest::Url::parse(url)
        .map_err(|e| JobError::fail(format!("the job's `url` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(JobError::fail(format!(
            "the job's `url` must be http or https, not {}",
            url.scheme()
        )));
    }
    let method = meta.get("method").and_then(Value::as_str).unwrap_or("POST");
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|e| JobError::fail(format!("the job's `method` is not a method: {e}")))?;
    let body = serde_json::to_vec(&json!({
        "id": ctx.id(),
        "executor": ctx.executor(),
        "owner": ctx.owner(),
        "name": ctx.name(),
        "attempt": ctx.attempt(),
        "payload": payload,
        "meta": meta,
        "scheduled_at": ctx.scheduled_at(),
        "due_at": ctx.due_at(),
    }))
    .map_err(JobError::fail)?;
    let mut req = exec
        .client
        .request(method, url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(headers) = meta.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            let value = value
                .as_str()
                .ok_or_else(|| JobError::fail(format!("header `{name}` is not a string")))?;
            req = req.header(name.as_str(), value);
        }
    }
    if let Some(secret) = &exec.secret {
        let t = chrono::Utc::now().timestamp();
        req = req.header(
            "x-qron-signature",
            format!("t={t},v1={}", signature(secret, t, &body)),
        );
    }
    let reply = req.body(body).send().await.map_err(|e| {
        if e.is_redirect() {
            let to = e.url().map_or_else(String::new, |u| format!(" to {u}"));
            JobError::fail(format!(
                "the endpoint redirected{to}: refused (another host, or too many redirects)"
            ))
        } else if e.is_builder() {
            JobError::fail(format!("the request cannot be made: {e}"))
        } else {
            JobError::retry(format!("the request failed: {e}"))
        }
    })?;
    let status = reply.status();
    let mut stream = reply.bytes_stream();
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| JobError::retry(format!("the reply broke off: {e}")))?;
        if text.len() + chunk.len() > exec.max_reply {
            return Err(JobError::fail(format!(
                "the reply is over {} bytes",
                exec.max_reply
            )));
        }
        text.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let snippet = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
        return Err(JobError::retry(format!(
            "the endpoint answered {status}: {snippet}"
        )));
    }
    apply(ctx, &text)
}

/// What a `2xx` reply's body asks for.
fn apply(ctx: &Context, body: &[u8]) -> Result<(), JobError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(body) else {
        // A reply that is not a JSON object asks for nothing.
        return Ok(());
    };
    if let Some(p) = reply.get("payload") {
        ctx.set_payload(p)?;
    }
    if let Some(expr) = reply.get("expr").and_then(Value::as_str) {
        ctx.reschedule(expr)
            .map_err(|e| JobError::fail(format!("the reply's `expr`: {e}")))?;
    }
    let error = reply
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("the endpoint said so")
        .to_owned();
    match reply.get("outcome").and_then(Value::as_str) {
        None | Some("commit") => Ok(()),
        Some("retry") => Err(JobError::retry(error)),
        Some("fail") => Err(JobError::fail(error)),
        Some(other) => Err(JobError::fail(format!(
            "the reply's `outcome` is `{other}`: give commit, retry or fail"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_timestamp_and_the_body() {
        // Python's hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"key", 1_700_000_000, b"{}"),
            "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}

//! The HTTP executor (feature `http-executor`): jobs of executor `http` sent to the web
//! endpoint their meta names; see [`HttpExecutor`].

mod destination;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use hmac::Mac as _;
use serde_json::{Value, json};

use destination::{Destinations, Resolver};
use reply::{apply, refusal, retry_after, snippet};

use crate::JobError;
use crate::context::Context;
use crate::handler::HandlerFuture;
use crate::handler::JobOptions;
use crate::registry::Registration;

/// The state the HTTP executor's handler takes: its settings.
const STATES: &[crate::state::StateType] = &[crate::state::StateType::of::<HttpExecutor>()];

/// The executor name the HTTP executor serves.
pub const HTTP_EXECUTOR: &str = "http";

/// The largest reply body read, by default: 1 MiB.
pub const DEFAULT_MAX_REPLY: usize = 1 << 20;

/// A function from an owner to its signing secret (none: the owner's requests go unsigned).
type SecretFn = dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync;

/// The HTTP executor (feature `http-executor`): jobs of executor `http` are sent to the web
/// endpoint their meta names, so that any service can run jobs without a qron worker of its
/// own.
///
/// A job's meta says where: `url` (required), `method` (default `POST`), and `headers` (an
/// object of names to strings; `Host`, `Content-Length`, `Transfer-Encoding`, `Connection`,
/// the other hop-by-hop headers and `x-qron-*` are refused). The request's body is the job as
/// JSON (its meta without `headers`, which may hold secrets):
///
/// ```json
/// {"id": 42, "executor": "http", "owner": "default", "name": null, "attempt": 1,
///  "payload": {...}, "meta": {...}, "scheduled_at": "…", "due_at": "…"}
/// ```
///
/// # Where requests may go
///
/// Whoever can create a job chooses its URL, so by default the executor reaches public
/// addresses only: loopback, private, link-local, shared (CGNAT), unique-local, multicast,
/// reserved and cloud metadata addresses are refused, with the job failed at once and nothing
/// sent. The check is made on the address connected to (the resolver's answer, not the name),
/// so a name that resolves elsewhere by the time the job runs (DNS rebinding) is refused as
/// well. The operator opens what it needs: [`HttpExecutor::allow_hosts`] (host names, addresses
/// or ranges) and [`HttpExecutor::allow_private`]. Redirects are followed only to the same
/// scheme, host and port (at most 5), and re-checked; no proxy from the environment is used.
///
/// # Outcomes
///
/// The reply decides the outcome:
/// - a `2xx` succeeds; its body may be JSON with any of `payload` (the job's next payload),
///   `expr` (a new schedule), and `outcome` (`commit`, `retry` or `fail`, with `error`);
/// - `400`, `401`, `403`, `404`, `405`, `410`, `422` and the other `4xx` fail the job at once:
///   sending the same request again would get the same answer;
/// - `408`, `409`, `425`, `429` and `5xx`, a timeout (the job's run-time limit) or a transport
///   error are retried while attempts remain, after the reply's `Retry-After` (seconds or a
///   date, at most a day) when it has one, else after the back-off;
/// - a refused destination, a redirect elsewhere, or a reply body over the limit fails the
///   job: retrying would not change it.
///
/// An error keeps at most 200 bytes of the reply's text.
///
/// # Signatures
///
/// With a secret ([`HttpExecutor::secret`], or one per owner with
/// [`HttpExecutor::secret_for`]), each request carries the owner of the job in `x-qron-owner`
/// and `x-qron-signature: t=<unix seconds>,v2=<hex>`, the HMAC-SHA256 under the owner's secret
/// of
///
/// ```text
/// <t> "\n" <METHOD> "\n" <url> "\n" <owner> "\n" <body>
/// ```
///
/// A receiver recomputes it over what it received, compares in constant time, refuses a
/// timestamp more than a few minutes old, and checks that `x-qron-owner` is the tenant the
/// endpoint belongs to: a request signed for one owner cannot be replayed to another's
/// endpoint, to another URL or with another method.
///
/// ```
/// use hmac::{Hmac, Mac};
/// // The receiver's check, in Rust (any language's HMAC-SHA256 does the same).
/// fn verify(secret: &[u8], header: &str, method: &str, url: &str, owner: &str, body: &[u8], now: i64) -> bool {
///     let mut t = None;
///     let mut v2 = None;
///     for part in header.split(',') {
///         match part.split_once('=') {
///             Some(("t", x)) => t = x.parse::<i64>().ok(),
///             Some(("v2", x)) => v2 = Some(x),
///             _ => {}
///         }
///     }
///     let (Some(t), Some(v2)) = (t, v2) else { return false };
///     if (now - t).abs() > 300 {
///         return false; // too old: a replay
///     }
///     let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else { return false };
///     mac.update(format!("{t}\n{method}\n{url}\n{owner}\n").as_bytes());
///     mac.update(body);
///     let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
///     // Compare in constant time in production code (e.g. `subtle`, or Mac::verify_slice).
///     expected == v2
/// }
/// let sig = qron::HttpExecutor::sign(b"s3cret", 1_700_000_000, "POST", "https://hooks.example/jobs", "acme", b"{}");
/// let header = format!("t=1700000000,v2={sig}");
/// assert!(verify(b"s3cret", &header, "POST", "https://hooks.example/jobs", "acme", b"{}", 1_700_000_100));
/// assert!(!verify(b"s3cret", &header, "POST", "https://hooks.example/jobs", "globex", b"{}", 1_700_000_100));
/// ```
///
/// ```no_run
/// # fn demo(client: qron::Client) -> qron::Result<()> {
/// let worker = qron::Worker::builder(client)
///     .http_executor(
///         qron::HttpExecutor::new()
///             .concurrency(10)
///             .secret_for(|owner| std::env::var(format!("HOOK_SECRET_{owner}")).ok())
///             .allow_hosts(["hooks.internal", "10.20.0.0/16"]),
///     )
///     .build()?;
/// # Ok(()) }
/// ```
///
/// Give it to [`WorkerBuilder::http_executor`](crate::WorkerBuilder::http_executor):
///
/// ```
/// let e = qron::HttpExecutor::new().concurrency(20).max_reply(64 * 1024);
/// ```
#[derive(Clone)]
pub struct HttpExecutor {
    pub(crate) concurrency: usize,
    secret: Option<Arc<SecretFn>>,
    max_reply: usize,
    destinations: Arc<Destinations>,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExecutor")
            .field("concurrency", &self.concurrency)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("max_reply", &self.max_reply)
            .field("destinations", &self.destinations)
            .finish()
    }
}

impl Default for HttpExecutor {
    fn default() -> Self {
        Self::new()
    }
}

/// The headers a job's meta may not set: the request's framing and routing are the
/// executor's, and its signature headers are its own.
const REFUSED_HEADERS: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "content-type",
];

/// The HTTP client for `destinations`: its resolver checks every address, redirects stay on
/// the same scheme, host and port, and no proxy from the environment is used.
fn http_client(destinations: &Arc<Destinations>) -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if !same_origin {
            attempt.error("a redirect to another scheme, host or port is refused")
        } else if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .redirect(policy)
        .no_proxy()
        .dns_resolver(Arc::new(Resolver(destinations.clone())))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("qron/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

impl HttpExecutor {
    /// Ten requests at once per worker, no signing, replies up to [`DEFAULT_MAX_REPLY`],
    /// public destinations only.
    ///
    /// ```
    /// let e = qron::HttpExecutor::new();
    /// ```
    pub fn new() -> Self {
        let destinations = Arc::new(Destinations::default());
        Self {
            concurrency: 10,
            secret: None,
            max_reply: DEFAULT_MAX_REPLY,
            client: http_client(&destinations),
            destinations,
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

    /// Signs every request with `secret`, whatever its owner (see
    /// [Signatures](HttpExecutor#signatures)); [`HttpExecutor::secret_for`] gives each owner its own.
    ///
    /// ```
    /// let e = qron::HttpExecutor::new().secret("s3cret");
    /// ```
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref().to_vec();
        self.secret = Some(Arc::new(move |_: &str| Some(secret.clone())));
        self
    }

    /// Signs each owner's requests with its own secret, as `f` gives it (`None`: that owner's
    /// requests go unsigned), so that one tenant's endpoint cannot accept requests made for
    /// another.
    ///
    /// ```
    /// let e = qron::HttpExecutor::new().secret_for(|owner| match owner {
    ///     "acme" => Some(b"acme-secret".to_vec()),
    ///     _ => None,
    /// });
    /// ```
    pub fn secret_for<S: AsRef<[u8]>>(
        mut self,
        f: impl Fn(&str) -> Option<S> + Send + Sync + 'static,
    ) -> Self {
        self.secret = Some(Arc::new(move |owner: &str| {
            f(owner).map(|s| s.as_ref().to_vec())
        }));
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

    /// Allows these destinations whatever their kind: host names (`"hooks.internal"`, allowed
    /// whatever they resolve to), addresses (`"10.1.2.3"`, `"[::1]"`) and ranges
    /// (`"10.0.0.0/8"`). See [where requests may go](HttpExecutor#where-requests-may-go).
    ///
    /// ```
    /// let e = qron::HttpExecutor::new().allow_hosts(["hooks.internal", "10.20.0.0/16", "127.0.0.1"]);
    /// ```
    pub fn allow_hosts<I>(self, hosts: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut d = (*self.destinations).clone();
        for h in hosts {
            d.allow(h.as_ref());
        }
        self.set_destinations(d)
    }

    /// Allows loopback, private, link-local, shared (CGNAT) and unique-local addresses, when
    /// `yes` (for a deployment whose endpoints are all internal). Multicast, reserved and
    /// cloud metadata addresses still need [`HttpExecutor::allow_hosts`].
    ///
    /// ```
    /// let e = qron::HttpExecutor::new().allow_private(true);
    /// ```
    pub fn allow_private(self, yes: bool) -> Self {
        let mut d = (*self.destinations).clone();
        d.allow_private(yes);
        self.set_destinations(d)
    }

    fn set_destinations(mut self, d: Destinations) -> Self {
        self.destinations = Arc::new(d);
        self.client = http_client(&self.destinations);
        self
    }

    /// The signature of a request (see [Signatures](HttpExecutor#signatures)): the hex HMAC-SHA256
    /// under `secret` of `"<t>\n<METHOD>\n<url>\n<owner>\n<body>"`, for receivers' tests.
    ///
    /// ```
    /// let sig = qron::HttpExecutor::sign(b"key", 1_700_000_000, "POST", "https://x.example/", "acme", b"{}");
    /// assert_eq!(sig.len(), 64);
    /// ```
    pub fn sign(
        secret: &[u8],
        t: i64,
        method: &str,
        url: &str,
        owner: &str,
        body: &[u8],
    ) -> String {
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
            Ok(m) => m,
            // HMAC takes a key of any length.
            Err(_) => return String::new(),
        };
        mac.update(format!("{t}\n{method}\n{url}\n{owner}\n").as_bytes());
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
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

async fn send(exec: &HttpExecutor, ctx: &Context, payload: Value) -> Result<(), JobError> {
    let meta = ctx.meta();
    let (method, url) = destination(exec, meta)?;
    let mut headers = meta_headers(meta)?;
    let body = request_body(ctx, payload, meta)?;
    if let Some(secret) = exec.secret.as_ref().and_then(|f| f(ctx.owner())) {
        let t = chrono::Utc::now().timestamp();
        let sig = HttpExecutor::sign(
            &secret,
            t,
            method.as_str(),
            url.as_str(),
            ctx.owner(),
            &body,
        );
        let owner = reqwest::header::HeaderValue::from_str(ctx.owner())
            .map_err(|e| JobError::fail(format!("the owner cannot be sent in a header: {e}")))?;
        headers.insert("x-qron-owner", owner);
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("t={t},v2={sig}")) {
            headers.insert("x-qron-signature", v);
        }
    }
    let reply = exec
        .client
        .request(method, url)
        .headers(headers)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| request_error(&e))?;
    let status = reply.status();
    let wait = reply
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, chrono::Utc::now()));
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
    if status.is_success() {
        return apply(ctx, &text);
    }
    let error = format!("the endpoint answered {status}: {}", snippet(&text));
    let retried = status.is_server_error()
        || matches!(status.as_u16(), 408 | 409 | 425 | 429)
        || !status.is_client_error();
    Err(match (retried, wait) {
        (false, _) => JobError::fail(error),
        (true, Some(wait)) => JobError::retry_after(error, wait),
        (true, None) => JobError::retry(error),
    })
}

/// The meta's method (POST by default) and URL, an http(s) one whose address, when the URL
/// gives one, the operator allows (a name is checked when it resolves).
fn destination(
    exec: &HttpExecutor,
    meta: &Value,
) -> Result<(reqwest::Method, reqwest::Url), JobError> {
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
    // An address in the URL is connected to without the resolver: checked here.
    // (The URL's parser writes an IPv4 address in its canonical form: `127.1` is 127.0.0.1.)
    let host = url.host_str().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
        exec.destinations.check(host, ip).map_err(JobError::fail)?;
    }
    let method = meta.get("method").and_then(Value::as_str).unwrap_or("POST");
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|e| JobError::fail(format!("the job's `method` is not a method: {e}")))?;
    Ok((method, url))
}

/// The meta's headers: strings, none of those a job may not set.
fn meta_headers(meta: &Value) -> Result<reqwest::header::HeaderMap, JobError> {
    let mut headers = reqwest::header::HeaderMap::new();
    let Some(given) = meta.get("headers").and_then(Value::as_object) else {
        return Ok(headers);
    };
    for (name, value) in given {
        let value = value
            .as_str()
            .ok_or_else(|| JobError::fail(format!("header `{name}` is not a string")))?;
        let lower = name.to_ascii_lowercase();
        if REFUSED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-qron-") {
            return Err(JobError::fail(format!(
                "header `{name}` may not be set by a job's meta"
            )));
        }
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| JobError::fail(format!("header `{name}`: {e}")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|e| JobError::fail(format!("header `{name}`: {e}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The JSON body: the job, its payload, and its meta without the headers (which may hold
/// credentials: they are sent as headers, not in the body).
fn request_body(ctx: &Context, payload: Value, meta: &Value) -> Result<Vec<u8>, JobError> {
    let mut shown = meta.clone();
    if let Some(m) = shown.as_object_mut() {
        m.remove("headers");
    }
    serde_json::to_vec(&json!({
        "id": ctx.id(),
        "executor": ctx.executor(),
        "owner": ctx.owner(),
        "name": ctx.name(),
        "attempt": ctx.attempt(),
        "payload": payload,
        "meta": shown,
        "scheduled_at": ctx.scheduled_at(),
        "due_at": ctx.due_at(),
    }))
    .map_err(JobError::fail)
}

/// What a request that got no answer makes of the job: a refused destination or redirect,
/// or a request that cannot be made, fails it; anything else (a network error) retries it.
fn request_error(e: &reqwest::Error) -> JobError {
    if let Some(refused) = refusal(e) {
        JobError::fail(refused.clone())
    } else if e.is_redirect() {
        let to = e.url().map_or_else(String::new, |u| format!(" to {u}"));
        JobError::fail(format!(
            "the endpoint redirected{to}: refused (another scheme, host or port, or too many \
             redirects)"
        ))
    } else if e.is_builder() {
        JobError::fail(format!("the request cannot be made: {e}"))
    } else {
        JobError::retry(format!("the request failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's `hmac.new(b"key", b"1700000000\nPOST\nhttps://x.example/\nacme\n{}",
    /// hashlib.sha256).hexdigest()`.
    const PYTHON_SIG: &str = "975481a633599eb211a0f14e4e2495686751e68930c5e419296a12252b34ac56";

    #[test]
    fn the_signature_covers_the_method_the_url_the_owner_and_the_body() {
        let sign = |t, method, url, owner| HttpExecutor::sign(b"key", t, method, url, owner, b"{}");
        let sig = sign(1_700_000_000, "POST", "https://x.example/", "acme");
        assert_eq!(sig, PYTHON_SIG);
        // Each part changed alone changes the signature.
        for other in [
            sign(1_700_000_000, "PUT", "https://x.example/", "acme"),
            sign(1_700_000_000, "POST", "https://y.example/", "acme"),
            sign(1_700_000_000, "POST", "https://x.example/", "globex"),
            sign(1_700_000_001, "POST", "https://x.example/", "acme"),
        ] {
            assert_ne!(other, sig);
        }
    }
}

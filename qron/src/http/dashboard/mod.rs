//! The web dashboard (feature `dashboard`): server-rendered pages over a [`Client`], in an axum
//! [`Router`] the application mounts under any path, beside the API.
//!
//! ```no_run
//! # async fn demo(client: qron::Client) -> std::io::Result<()> {
//! // The same access policy as the API (see "Owners and access").
//! let api = qron::http::Api::new(client).owner(|req| {
//!     match req.headers.get("x-forwarded-user").and_then(|v| v.to_str().ok()) {
//!         Some("ops@acme.example") => Ok(qron::http::Owner::operate("acme")),
//!         Some(_) => Ok(qron::http::Owner::read("acme")),
//!         None => Err(axum::http::StatusCode::UNAUTHORIZED),
//!     }
//! });
//! let app = axum::Router::new()
//!     .nest("/qron/api", api.clone().router())
//!     // `nest_service`: `/qron` and `/qron/` both reach the overview (`nest` answers the
//!     // second with 404).
//!     .nest_service("/qron", api.dashboard());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! | page | what |
//! |---|---|
//! | `/` | per executor: live jobs by status (retrying apart), the jobs that ran and failed over the last hour, the oldest due job's lateness, paused or not, its limits across every worker and the places taken (set and cleared there by an `admin`), the workers serving it; live over server-sent events |
//! | `/jobs` | live jobs counted by status; the jobs, newest first, with the search's filters and keyset pages; actions on a selection |
//! | `/jobs/{id}` | one job: payload and meta, expression and its description, attempts and errors, the next 10 runs; its actions |
//! | `/workflows` | the owner's workflows, newest first, with their status |
//! | `/workflows/{id}` | a workflow drawn as a graph (a node a step, coloured by status and linked to its job; an arrow a dependency), its progress, and its actions (cancel what is left, retry the failed steps) |
//! | `/upcoming` | how many runs fall in each minute of the next hour, day or week, per executor |
//! | `/playground` | an expression checked as you type: the parser's error at its position, or its description and next runs in any zone |
//!
//! The figures of the overview come from one query for every owner, run in the background
//! every [refresh interval](crate::http::Api::refresh) while someone looks and shared by every
//! viewer: a viewer never makes the database count. Its scripts and styles are served by the
//! router itself (no CDN, no build step).
//!
//! The owner of each request and its scope are the [`Api`](crate::http::Api)'s policy's (a
//! request without one is refused with 401): a `read` scope, or
//! `Api::new(client).owner(f).read_only(true).dashboard()`, shows the pages without their
//! actions; a `worker` scope sees nothing. Actions are forms posted to the
//! dashboard; each must come from the dashboard's own pages (the browser's `Origin`, or
//! `Sec-Fetch-Site`, and a per-browser token in a `SameSite=Strict` cookie), so another site
//! cannot make a signed-in operator's browser act.

mod actions;
mod assets;
mod cache;
mod charts;
mod jobs;
mod layout;
mod overview;
mod playground;
mod upcoming;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::Api;
use super::access::{Denied, NO_POLICY, Rejected};
use crate::Client;

/// The dashboard over `client`, with the defaults of [`Api::new`]: `Api::new(client).dashboard()`,
/// which refuses every request that the application's own layer did not give an
/// [`Owner`](crate::http::Owner) extension.
///
/// ```no_run
/// # fn demo(client: qron::Client) {
/// let app: axum::Router = axum::Router::new().nest_service("/qron", qron::http::dashboard(client));
/// # }
/// ```
pub fn dashboard(client: Client) -> Router {
    Api::new(client).dashboard()
}

impl Api {
    /// The dashboard's router, with this API's owner function and read-only mode (see
    /// [the dashboard](crate::http::dashboard())).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let app: axum::Router = qron::http::Api::new(client).read_only(true).dashboard();
    /// # }
    /// ```
    pub fn dashboard(self) -> Router {
        let this = self.bounded();
        let cache = cache::Cache::new(this.client.clone(), this.refresh);
        let shared = Arc::new(Dash {
            api: this,
            cache,
            timelines: upcoming::Timelines::default(),
        });
        Router::new()
            .route("/", get(overview::page))
            .route("/events", get(overview::events))
            .route("/jobs", get(jobs::list))
            .route("/jobs/{id}", get(jobs::show))
            .route("/jobs/{id}/{action}", post(actions::one))
            .route("/jobs-selected", post(actions::selected))
            .route("/executors/{action}", post(actions::executor))
            .route("/workflows", get(workflows::list))
            .route("/workflows/{id}", get(workflows::show))
            .route("/workflows/{id}/{action}", post(workflows::action))
            .route("/upcoming", get(upcoming::page))
            .route("/playground", get(playground::page))
            .route("/playground/check", get(playground::check))
            .route("/assets/{file}", get(assets::serve))
            .layer(axum::middleware::map_response(super::security_headers))
            .with_state(shared)
    }
}

/// What every handler shares.
pub(crate) struct Dash {
    api: Api,
    cache: Arc<cache::Cache>,
    timelines: upcoming::Timelines,
}

/// Name of the cookie holding the per-browser token that actions carry.
const TOKEN_COOKIE: &str = "qron_token";

/// One request as the pages see it: whose it is, what it may do, where the dashboard is mounted.
pub(crate) struct View {
    /// The client, acting as the request's owner.
    pub(crate) client: Client,
    /// Whether actions are refused.
    pub(crate) read_only: bool,
    /// The path the dashboard is mounted at (`""` at the root, `/qron` when nested there).
    pub(crate) base: String,
    /// The token actions carry (the cookie's, or a new one set with the page).
    pub(crate) token: String,
    new_token: bool,
    /// Whether the viewer is the client's own owner, who may see the fleet's worker names.
    pub(crate) sees_fleet: bool,
    /// Whether the viewer may change what every owner shares (executors' limits).
    pub(crate) admin: bool,
    /// Whether the browser reached the dashboard over https (its cookie is then `Secure`).
    secure: bool,
    /// The dashboard's origin as the browser sees it, when the application said
    /// ([`Api::public_origin`], or trusted forwarded headers).
    pub(crate) origin: Option<String>,
}

impl Dash {
    /// The request's view, or the response that refuses it: the policy's, a page naming the
    /// missing policy, or a page saying the scope does not allow reading.
    pub(crate) fn view(&self, parts: &Parts) -> Result<View, Rejected> {
        let access = self.api.access(parts).map_err(|denied| match denied {
            Denied::NoPolicy => Rejected::new(refuse(StatusCode::UNAUTHORIZED, NO_POLICY)),
            Denied::Refused(response) => response,
        })?;
        if let Err(e) = access.reader() {
            return Err(Rejected::new(refuse(StatusCode::FORBIDDEN, &e.0)));
        }
        let read_only = !access.scope().may_operate();
        let admin = access.scope().may_administer();
        let sees_fleet = access.client.owner_name() == self.api.client.owner_name();
        let origin = self.api.origin(parts);
        let secure = origin.as_deref().is_some_and(|o| o.starts_with("https://"));
        let (token, new_token) = match cookie(parts, TOKEN_COOKIE) {
            Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (t.to_owned(), false)
            }
            _ => (new_token(), true),
        };
        Ok(View {
            client: access.client,
            read_only,
            sees_fleet,
            admin,
            secure,
            origin,
            base: base(parts),
            token,
            new_token,
        })
    }
}

/// Every handler's first extractor: the request's view, or its refusal.
impl axum::extract::FromRequestParts<Arc<Dash>> for View {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, dash: &Arc<Dash>) -> Result<Self, Rejected> {
        dash.view(parts)
    }
}

impl View {
    /// A page, with the token's cookie when the browser had none.
    pub(crate) fn page(&self, markup: maud::Markup) -> Response {
        let mut response = axum::response::Html(markup.into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // The pages' own scripts and styles only; no framing by other sites.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if self.new_token {
            let path = if self.base.is_empty() {
                "/"
            } else {
                &self.base
            };
            let secure = if self.secure { "; Secure" } else { "" };
            let cookie = format!(
                "{TOKEN_COOKIE}={}; Path={path}; HttpOnly; SameSite=Strict{secure}",
                self.token
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.insert(header::SET_COOKIE, v);
            }
        }
        response
    }

    /// `path` under the dashboard's mount point (the mount point itself for `/`, which a
    /// nested router answers without the trailing slash).
    pub(crate) fn link(&self, path: &str) -> String {
        match path {
            "/" if !self.base.is_empty() => self.base.clone(),
            _ => format!("{}{path}", self.base),
        }
    }
}

/// The mount point: the original path without the part the dashboard's router matched.
fn base(parts: &Parts) -> String {
    let inner = parts.uri.path();
    let original = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(inner, |o| o.0.path());
    let base = original.strip_suffix(inner).unwrap_or("");
    // Nested at `/qron`, the request for `/qron` reaches the router as `/`.
    let base = if inner == "/" && base.is_empty() && original != "/" {
        original
    } else {
        base
    };
    base.trim_end_matches('/').to_owned()
}

/// The value of cookie `name`.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// 128 random bits as hex, from the system's random source.
fn new_token() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Without the system's source, the process's hash keys and the time: unpredictable
        // enough for a token that the origin check backs.
        use std::hash::{BuildHasher as _, Hasher as _};
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(now_nanos() ^ i as u128);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Whether a posted form comes from the dashboard's own pages: the browser says the request is
/// same-origin (`Sec-Fetch-Site`, and an `Origin` that is the dashboard's `origin` when known,
/// else one naming this request's host), and the form carries the token of the browser's cookie.
pub(crate) fn same_site(parts: &Parts, origin: Option<&str>, token: &str) -> bool {
    let header = |name: &header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = header(&header::HOST);
    let origin_ok = match (header(&header::ORIGIN), origin, &host) {
        (Some(sent), Some(expected), _) => sent
            .trim_end_matches('/')
            .eq_ignore_ascii_case(expected.trim_end_matches('/')),
        (Some(sent), None, Some(host)) => sent
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        // A browser sends `Origin` with every form post; a request without one is no browser's.
        _ => false,
    };
    let fetch_site_ok = match header(&header::HeaderName::from_static("sec-fetch-site")) {
        Some(site) => site == "same-origin",
        None => true,
    };
    let cookie_token = cookie(parts, TOKEN_COOKIE);
    origin_ok
        && fetch_site_ok
        && cookie_token
            .is_some_and(|c| !token.is_empty() && constant_eq(c.as_bytes(), token.as_bytes()))
}

/// Equality in time independent of where the inputs differ.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A refusal as a small page.
pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::response::Html(layout::error_page(message).into_string()),
    )
        .into_response()
}

/// Why a request is refused: its status and what the page says.
#[derive(Debug)]
pub(crate) struct Refusal(
    pub(crate) StatusCode,
    pub(crate) std::borrow::Cow<'static, str>,
);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, &self.1)
    }
}

//! The management API over HTTP (feature `http`): every [`Client`] operation as GraphQL, with
//! GraphiQL to explore it, in an axum [`Router`] the application mounts where it likes.
//!
//! ```no_run
//! # async fn demo(client: qron::Client) -> std::io::Result<()> {
//! use qron::http::{Api, Owner};
//! // Who may do what is the application's choice: see "Owners and access".
//! let api = Api::new(client).owner(|req| match req.headers.get("authorization") {
//!     Some(v) if v == "Bearer s3cret" => Ok(Owner::operate("acme")),
//!     _ => Err(axum::http::StatusCode::UNAUTHORIZED),
//! });
//! let app = axum::Router::new().nest("/qron", api.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! | path | what |
//! |---|---|
//! | `GET /` (the mount point itself: `/qron` when nested there) | GraphiQL, with its scripts and styles served from here (no CDN) |
//! | `POST /graphql` | the GraphQL API, as `application/json` (queries: `job`, `jobs`, `validate`, `executors`; mutations: `createJob`, `createJobs`, `updateJob`, `deleteJob`, `stopJob`, `restartJob`, `retryJob`, `cancelJob`, `runJobNow`, `pauseExecutor`, `resumeExecutor`, and for remote workers `lease`, `complete`, `heartbeat`) |
//! | `GET /graphql/schema` | the schema in SDL |
//! | `POST /workers/lease`, `/workers/complete`, `/workers/heartbeat` | remote workers over plain JSON (see [`workers`]) |
//!
//! With the `dashboard` feature, [`Api::dashboard`] is the web dashboard, under the same
//! policy: the [dashboard guide](crate::guide::dashboard) says what it shows, how to mount it
//! and how to protect it.
//!
//! # Owners and access
//!
//! Every operation acts for one owner (tenant), as [`Client::owner`] does; another owner's job
//! answers not-found, by id and by name. Who the owner of a request is, and its [`Scope`]
//! (`worker`, `read`, `operate`, or `admin` for the settings every owner shares, such as
//! executors' limits), comes from the application, never from the request alone, by one of:
//! - [`Api::owner`]: a function of the request's head (its session cookie, its token, its
//!   host) that returns the [`Owner`], or refuses the request with any response (a status, a
//!   `WWW-Authenticate` challenge, a redirect to the application's login page);
//! - a tower layer of the application that inserts an [`Owner`] into the request's
//!   extensions (it wins over the function): the place for a check that needs `.await`;
//! - [`Api::allow_anonymous`]: every request acts as the client's owner with every scope, for
//!   a trusted machine only (`qron dev` uses it on loopback).
//!
//! **With none of them, every request is refused with 401** and a message naming these three
//! calls: an API or dashboard mounted without a thought for access gives nothing away.
//! GraphiQL, the schema's SDL and introspection sit behind the same policy;
//! [`Api::introspection`] turns introspection off. [`Api::read_only`] caps every scope to
//! `read`. A header such as `X-Owner` is trusted only if the application's function chooses to
//! read it.
//!
//! # Limits
//!
//! Request bodies over [`DEFAULT_MAX_BODY`] are refused (413), queries nested deeper than
//! [`MAX_DEPTH`] or costing more than [`MAX_COMPLEXITY`] fields are refused, and a page holds
//! at most [`MAX_PAGE`](crate::MAX_PAGE) jobs.

mod access;
#[cfg(feature = "dashboard")]
mod dashboard;
mod graphiql;
mod graphql;
mod schema;
pub mod workers;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Client;

pub use access::{Owner, Scope};
#[cfg(feature = "dashboard")]
pub use dashboard::dashboard;
pub use schema::{Mutation, QronSchema, Query, schema};

/// The largest request body accepted, by default: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// How often the dashboard's figures are counted while someone looks, by default.
#[cfg(feature = "dashboard")]
pub const DEFAULT_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);
/// The deepest query accepted (GraphiQL's own introspection query is 13 deep).
pub const MAX_DEPTH: usize = 20;
/// The most fields a query may ask for: a list of jobs counts its fields once per job its
/// `limit` asks for, so a full page of 1,000 jobs may ask for 50 fields of each.
pub const MAX_COMPLEXITY: usize = 50_000;
/// The most fields at the root of one request (aliases included): each may be a query of its
/// own.
pub const MAX_ROOT_FIELDS: usize = 20;
/// The largest answer, by default: 16 MiB of JSON. A request whose jobs' payloads and meta
/// would go past it is answered with an error instead.
pub const DEFAULT_MAX_ANSWER: usize = 16 << 20;
/// How many database connections the API and the dashboard use at most, by default: a pool of
/// their own, beside the client's, so that no request mix holds the connections a worker's
/// heartbeat and outcomes need.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// The longest a statement of the API may run, by default (PostgreSQL's `statement_timeout`
/// on the API's own connections).
pub const DEFAULT_STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The management API's settings: who the owner of a request is and what it may do, whether
/// mutations are allowed, and the limits. [`router`] is `Api::new(client).router()`.
///
/// ```no_run
/// # fn demo(client: qron::Client) {
/// use axum::http::StatusCode;
/// use qron::http::Owner;
/// let api = qron::http::Api::new(client)
///     .owner(|req| {
///         // The application's own check: here, a tenant header set by a trusted proxy.
///         req.headers
///             .get("x-tenant")
///             .and_then(|v| v.to_str().ok())
///             .map(Owner::read)
///             .ok_or(StatusCode::UNAUTHORIZED)
///     })
///     .router();
/// # }
/// ```
#[derive(Clone)]
pub struct Api {
    client: Client,
    policy: access::Policy,
    read_only: bool,
    introspection: bool,
    max_body: usize,
    max_answer: usize,
    max_connections: u32,
    statement_timeout: std::time::Duration,
    /// The client on the API's own pool, made by the first router or dashboard built (clones
    /// share it).
    bounded: Arc<std::sync::OnceLock<Client>>,
    #[cfg(feature = "dashboard")]
    refresh: std::time::Duration,
    /// Cancelled when the application shuts down: the dashboard's live streams end then.
    shutdown: tokio_util::sync::CancellationToken,
    /// The dashboard's origin as browsers see it, when set.
    public_origin: Option<String>,
    /// Whether `X-Forwarded-Host` and `X-Forwarded-Proto` are believed.
    trust_forwarded: bool,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .field("read_only", &self.read_only)
            .field("introspection", &self.introspection)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// The management API over `client`, with the defaults of [`Api::new`]: it refuses every
/// request that the application's own layer did not give an [`Owner`] extension.
///
/// ```no_run
/// # fn demo(client: qron::Client) {
/// let app: axum::Router = axum::Router::new().nest("/qron", qron::http::router(client));
/// # }
/// ```
pub fn router(client: Client) -> Router {
    Api::new(client).router()
}

impl Api {
    /// The API over `client`, with no access policy yet: until [`Api::owner`] or
    /// [`Api::allow_anonymous`] is called, only a request carrying an [`Owner`] extension
    /// (inserted by the application's layer) is let in, the others answer 401. Mutations
    /// allowed within each owner's scope; introspection on; bodies up to
    /// [`DEFAULT_MAX_BODY`].
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client);
    /// # }
    /// ```
    pub fn new(client: Client) -> Self {
        Self {
            client,
            policy: access::Policy::Unset,
            read_only: false,
            introspection: true,
            max_body: DEFAULT_MAX_BODY,
            max_answer: DEFAULT_MAX_ANSWER,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            bounded: Arc::default(),
            #[cfg(feature = "dashboard")]
            refresh: DEFAULT_REFRESH,
            shutdown: tokio_util::sync::CancellationToken::new(),
            public_origin: None,
            trust_forwarded: false,
        }
    }

    /// The origin browsers reach the dashboard at (`"https://admin.example.com"`), when a
    /// proxy in front rewrites the `Host` header: the dashboard's actions check the browser's
    /// `Origin` against it (instead of against `Host`), and its cookie is `Secure` under https.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).public_origin("https://admin.example.com");
    /// # }
    /// ```
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// Believes `X-Forwarded-Host` and `X-Forwarded-Proto` for the dashboard's origin, when
    /// `yes`: only behind a proxy that sets them and drops a client's own (off by default).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).trust_forwarded_headers(true);
    /// # }
    /// ```
    pub fn trust_forwarded_headers(mut self, yes: bool) -> Self {
        self.trust_forwarded = yes;
        self
    }

    /// The dashboard's origin for this request, when the application said what it is.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) fn origin(&self, parts: &Parts) -> Option<String> {
        if let Some(o) = &self.public_origin {
            return Some(o.clone());
        }
        if !self.trust_forwarded {
            return None;
        }
        let first = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned())
        };
        let host = first("x-forwarded-host")?;
        let proto = first("x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
        Some(format!("{proto}://{host}"))
    }

    /// Ends the dashboard's live streams when `token` is cancelled: an open tab holds a
    /// server-sent-events connection, which a graceful shutdown (axum's
    /// `with_graceful_shutdown`) would otherwise wait for until the tab is closed. Cancel the
    /// token when the shutdown starts.
    ///
    /// ```no_run
    /// # async fn wait_for_signal() {}
    /// # async fn demo(client: qron::Client) -> std::io::Result<()> {
    /// let stop = tokio_util::sync::CancellationToken::new();
    /// let app = qron::http::Api::new(client).allow_anonymous().shutdown_on(stop.clone()).dashboard();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(async move {
    ///         wait_for_signal().await; // Ctrl-C, SIGTERM: the application's own
    ///         stop.cancel();
    ///     })
    ///     .await
    /// # }
    /// ```
    pub fn shutdown_on(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// How the owner of a request is found: `f` gets the request's head and returns its
    /// [`Owner`] (a name and a [`Scope`]), or the response that refuses it: a status (401,
    /// 403), a `WWW-Authenticate` challenge, a redirect to the application's login page.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// use axum::http::{StatusCode, header};
    /// use axum::response::{IntoResponse, Redirect};
    /// use qron::http::Owner;
    /// let api = qron::http::Api::new(client).owner(|req| {
    ///     match req.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
    ///         Some("Bearer ops-token") => Ok(Owner::operate("acme")),
    ///         Some("Bearer worker-token") => Ok(Owner::worker("acme").executors(["email"])),
    ///         Some(_) => Err(StatusCode::FORBIDDEN.into_response()),
    ///         None => Err(Redirect::to("/login").into_response()),
    ///     }
    /// });
    /// # }
    /// ```
    pub fn owner<E: IntoResponse>(
        mut self,
        f: impl Fn(&Parts) -> Result<Owner, E> + Send + Sync + 'static,
    ) -> Self {
        self.policy = access::Policy::Function(Arc::new(move |parts| {
            f(parts).map_err(access::Rejected::new)
        }));
        self
    }

    /// Lets every request in, as the client's owner with every scope: for a trusted machine
    /// only (a loopback port in development, as `qron dev` does), never a network.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).allow_anonymous();
    /// # }
    /// ```
    pub fn allow_anonymous(mut self) -> Self {
        self.policy = access::Policy::Anonymous;
        self
    }

    /// Whether GraphQL introspection (and the SDL at `graphql/schema`) is served to the
    /// requests the policy lets in (default: yes; GraphiQL's docs pane needs it).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).introspection(false);
    /// # }
    /// ```
    pub fn introspection(mut self, yes: bool) -> Self {
        self.introspection = yes;
        self
    }

    /// Refuses every mutation (queries only), when `yes`: every owner's scope is capped to
    /// [`Scope::Read`].
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).read_only(true);
    /// # }
    /// ```
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// The largest request body accepted, in bytes.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).max_body(4 << 20);
    /// # }
    /// ```
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The largest answer in bytes (default [`DEFAULT_MAX_ANSWER`]).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).max_answer(4 << 20);
    /// # }
    /// ```
    pub fn max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// The API's own database pool: at most `n` connections (default
    /// [`DEFAULT_MAX_CONNECTIONS`], at least 1), each statement stopped by the server after
    /// `statement_timeout` (default [`DEFAULT_STATEMENT_TIMEOUT`]). A request that waits over
    /// 5 s for a connection is answered 503.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).connections(8, std::time::Duration::from_secs(5));
    /// # }
    /// ```
    pub fn connections(mut self, n: u32, statement_timeout: std::time::Duration) -> Self {
        self.max_connections = n.max(1);
        self.statement_timeout = statement_timeout.max(std::time::Duration::from_millis(1));
        self.bounded = Arc::default();
        self
    }

    /// This API with its client on the API's own bounded pool.
    fn bounded(mut self) -> Self {
        let client = self
            .bounded
            .get_or_init(|| {
                let millis = self.statement_timeout.as_millis().to_string();
                let options = (*self.client.pool().connect_options())
                    .clone()
                    .options([("statement_timeout", millis)]);
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(self.max_connections)
                    .min_connections(0)
                    .acquire_timeout(std::time::Duration::from_secs(5))
                    .connect_lazy_with(options);
                self.client.with_pool(pool)
            })
            .clone();
        self.client = client;
        self
    }

    /// How often the dashboard counts its figures while someone looks (default
    /// [`DEFAULT_REFRESH`]; at least 100 ms): one query for all viewers each time.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let app = qron::http::Api::new(client).refresh(std::time::Duration::from_secs(5)).dashboard();
    /// # }
    /// ```
    #[cfg(feature = "dashboard")]
    pub fn refresh(mut self, every: std::time::Duration) -> Self {
        self.refresh = every.max(std::time::Duration::from_millis(100));
        self
    }

    /// The axum router: GraphiQL at its root, the API at `graphql`.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let app: axum::Router = qron::http::Api::new(client).router();
    /// # }
    /// ```
    pub fn router(self) -> Router {
        let max_body = self.max_body;
        let this = self.bounded();
        let state = Arc::new(Shared {
            schema: schema::build(),
            api: this,
        });
        Router::new()
            .route("/", get(graphql::graphiql_page))
            .route("/assets/{file}", get(graphiql::asset))
            .route("/graphql", post(graphql::post))
            .route("/graphql/schema", get(graphql::sdl))
            .route("/workers/lease", post(workers::lease))
            .route("/workers/complete", post(workers::complete))
            .route("/workers/heartbeat", post(workers::heartbeat))
            .layer(axum::middleware::map_response(security_headers))
            .layer(DefaultBodyLimit::max(max_body))
            .with_state(state)
    }

    /// The request's owner and what it may do.
    fn access(&self, parts: &Parts) -> Result<access::Access, access::Denied> {
        self.policy.access(&self.client, self.read_only, parts)
    }
}

struct Shared {
    schema: QronSchema,
    api: Api,
}

/// The headers every answer of the API and the dashboard carries unless it set its own: no
/// content sniffing, no framing by other sites, no referrer to other sites, and for a page a
/// content security policy allowing this origin's scripts and styles only (GraphiQL's page
/// has one inline style).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if html {
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                 frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
            ));
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// What a request that found the API's database busy is told.
pub(crate) const BUSY: &str = "the API's database connections are all busy, or the statement \
     ran past the API's statement timeout: try again shortly, or narrow the request";

/// Whether `e` is the API's pool or statement timeout: the request may be tried again.
pub(crate) fn busy(e: &crate::Error) -> bool {
    match e {
        crate::Error::Database(sqlx::Error::PoolTimedOut) | crate::Error::Timeout { .. } => true,
        // 57014: query_canceled, as a statement timeout ends a statement.
        crate::Error::Database(sqlx::Error::Database(d)) => d.code().as_deref() == Some("57014"),
        _ => false,
    }
}

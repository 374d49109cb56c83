//! The management API over HTTP (feature `http`): every [`Client`] operation as GraphQL, with
//! GraphiQL to explore it, in an axum [`Router`] the application mounts where it likes.
//!
//! ```no_run
//! # async fn demo(client: qron::Client) -> std::io::Result<()> {
//! // Behind the application's own authentication: see "Owners and access".
//! let app = axum::Router::new().nest("/qron", qron::http::router(client));
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
//! # Owners and access
//!
//! Every operation acts for one owner (tenant), as [`Client::owner`] does; another owner's job
//! answers not-found, by id and by name. Who the owner of a request is comes from the
//! application, never from the request alone:
//! - [`Api::owner`]: a function of the request's head (its session cookie, its token, its
//!   host) that returns the owner, or refuses the request with a status;
//! - or a tower layer of the application that inserts an [`Owner`] extension into the request
//!   (it wins over the function);
//! - [`Api::read_only`] refuses every mutation.
//!
//! **Without either, every request acts as the client's owner (`default`), and anyone who can
//! reach the router can create, change and delete jobs: mount it behind the application's own
//! authentication.** A header such as `X-Owner` is trusted only if the application's function
//! chooses to read it.
//!
//! # Limits
//!
//! Request bodies over [`DEFAULT_MAX_BODY`] are refused (413), queries nested deeper than
//! [`MAX_DEPTH`] or costing more than [`MAX_COMPLEXITY`] fields are refused, and a page holds
//! at most [`MAX_PAGE`](crate::MAX_PAGE) jobs.

#[cfg(feature = "dashboard")]
mod dashboard;
mod graphiql;
mod schema;
pub mod workers;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Client;

#[cfg(feature = "dashboard")]
pub use dashboard::dashboard;
pub use schema::{Mutation, QronSchema, Query, schema};

/// The largest request body accepted, by default: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// How often the dashboard's figures are counted while someone looks, by default.
#[cfg(feature = "dashboard")]
pub const DEFAULT_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);
/// The deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// The most fields a query may ask for (a list counts its fields once per item asked).
pub const MAX_COMPLEXITY: usize = 5_000;

/// The owner a request acts for, as the application's tower layer inserts it into the request's
/// extensions (see [Owners and access](self#owners-and-access)).
///
/// ```
/// let owner = qron::http::Owner("acme".to_owned());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(pub String);

type OwnerFn = dyn Fn(&Parts) -> Result<String, StatusCode> + Send + Sync;

/// The management API's settings: who the owner of a request is, whether mutations are
/// allowed, and the body limit. [`router`] is `Api::new(client).router()`.
///
/// ```no_run
/// # fn demo(client: qron::Client) {
/// use axum::http::StatusCode;
/// let api = qron::http::Api::new(client)
///     .owner(|req| {
///         // The application's own check: here, a tenant header set by a trusted proxy.
///         req.headers
///             .get("x-tenant")
///             .and_then(|v| v.to_str().ok())
///             .map(str::to_owned)
///             .ok_or(StatusCode::UNAUTHORIZED)
///     })
///     .read_only(false)
///     .router();
/// # }
/// ```
#[derive(Clone)]
pub struct Api {
    client: Client,
    owner: Option<Arc<OwnerFn>>,
    read_only: bool,
    max_body: usize,
    #[cfg(feature = "dashboard")]
    refresh: std::time::Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("client", &self.client)
            .field("owner", &self.owner.as_ref().map(|_| "a function"))
            .field("read_only", &self.read_only)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// The management API over `client`, with the defaults of [`Api::new`].
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
    /// The API over `client`: every request acts as the client's owner unless
    /// [`Api::owner`] or an [`Owner`] extension says otherwise; mutations allowed; bodies up
    /// to [`DEFAULT_MAX_BODY`].
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client);
    /// # }
    /// ```
    pub fn new(client: Client) -> Self {
        Self {
            client,
            owner: None,
            read_only: false,
            max_body: DEFAULT_MAX_BODY,
            #[cfg(feature = "dashboard")]
            refresh: DEFAULT_REFRESH,
        }
    }

    /// How the owner of a request is found: `f` gets the request's head and returns the owner,
    /// or the status to refuse the request with (401, 403, …).
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let api = qron::http::Api::new(client).owner(|_req| Ok("acme".to_owned()));
    /// # }
    /// ```
    pub fn owner(
        mut self,
        f: impl Fn(&Parts) -> Result<String, StatusCode> + Send + Sync + 'static,
    ) -> Self {
        self.owner = Some(Arc::new(f));
        self
    }

    /// Refuses every mutation (queries only), when `yes`.
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
        let state = Arc::new(Shared {
            schema: schema::build(),
            api: self,
        });
        Router::new()
            .route("/", get(graphiql::page))
            .route("/assets/{file}", get(graphiql::asset))
            .route("/graphql", post(graphql_post))
            .route("/graphql/schema", get(sdl))
            .route("/workers/lease", post(workers::lease))
            .route("/workers/complete", post(workers::complete))
            .route("/workers/heartbeat", post(workers::heartbeat))
            .layer(DefaultBodyLimit::max(max_body))
            .with_state(state)
    }

    /// The request's owner and whether it may change anything.
    fn access(&self, parts: &Parts) -> Result<schema::Access, StatusCode> {
        let owner = match (parts.extensions.get::<Owner>(), &self.owner) {
            (Some(Owner(o)), _) => o.clone(),
            (None, Some(f)) => f(parts)?,
            (None, None) => self.client.owner_name().to_owned(),
        };
        Ok(schema::Access {
            client: self.client.owner(owner),
            read_only: self.read_only,
        })
    }
}

struct Shared {
    schema: QronSchema,
    api: Api,
}

async fn graphql_post(
    State(shared): State<Arc<Shared>>,
    parts: Parts,
    // Read whole, within the body limit (a larger body is refused with 413).
    body: axum::body::Bytes,
) -> Response {
    // JSON only: a browser cannot send it across sites without the server's consent (CORS),
    // so a page elsewhere cannot make a signed-in operator's browser change jobs.
    let json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the GraphQL request as application/json",
        )
            .into_response();
    }
    let access = match shared.api.access(&parts) {
        Ok(access) => access,
        Err(status) => return status.into_response(),
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a GraphQL request: {e}"),
            )
                .into_response();
        }
    };
    let response = shared.schema.execute(request.data(access)).await;
    axum::Json(response).into_response()
}

async fn sdl(State(shared): State<Arc<Shared>>) -> String {
    shared.schema.sdl()
}

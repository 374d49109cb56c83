//! qron in a web application: an axum server whose sign-up enqueues a welcome mail inside
//! the sign-up's own transaction, handlers that take the application's pool and mailer as
//! `State`, a recurring job, a long export that checkpoints when told to stop, qron's dashboard
//! and API under `/admin` behind the application's own login, and one graceful shutdown for
//! the server and the worker.
//!
//! ```text
//! ADMIN_PASSWORD=s3cret cargo run -p qron-examples --bin axum_app   # on 127.0.0.1:3000
//! cargo run -p qron-examples --bin axum_app -- 127.0.0.1:0          # any free port (printed)
//! curl -X POST localhost:3000/signup -H 'content-type: application/json' -d '{"email":"a@b.c"}'
//! curl localhost:3000/users/1
//! open http://localhost:3000/admin                                  # sign in as admin
//! ```
//!
//! The admin area: `/admin` is the dashboard, `/admin/api` GraphiQL and the GraphQL API. A
//! browser sends no token when it navigates, so the access policy answers a request without a
//! session with a redirect to `/login`, whose form sets a session cookie (`ADMIN_PASSWORD`, or a
//! random password printed at start-up). HTTP Basic is the two-line alternative: the policy
//! answers `401` with `WWW-Authenticate: Basic realm="qron"` and the browser asks for the
//! password itself (see `basic_auth_policy`).
//!
//! It connects to `DATABASE_URL`, or starts a throwaway PostgreSQL when that is unset. It prints
//! `listening on http://ADDRESS` once it serves, and stops on Ctrl-C or SIGTERM: the server
//! finishes its requests, the worker its jobs (a long export saves its progress and goes back
//! to the queue), and the outcomes are written.
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use qron::{Client, Context, JobError, OnConflict, Worker};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// The application's mailer (here: an outbox in memory).
#[derive(Clone, Default)]
struct Mailer {
    outbox: Arc<Mutex<Vec<String>>>,
}

impl Mailer {
    fn send(&self, to: &str, subject: &str) {
        if let Ok(mut outbox) = self.outbox.lock() {
            outbox.push(format!("{to}: {subject}"));
        }
    }

    fn sent(&self) -> Vec<String> {
        self.outbox.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

#[derive(Serialize, Deserialize)]
struct Welcome {
    user_id: i64,
}

/// The welcome mail: the pool and the mailer are the application's, given to the worker.
/// (`qron::State` is named in full beside axum's `State` of the routes.)
#[qron::job(
    executor = "welcome_mail",
    max_attempts = 5,
    backoff(base = "1s", max = "1m")
)]
async fn welcome_mail(
    qron::State(pool): qron::State<PgPool>,
    qron::State(mailer): qron::State<Mailer>,
    msg: Welcome,
) -> Result<(), JobError> {
    let email: String = sqlx::query_scalar("SELECT email FROM app_users WHERE id = $1")
        .bind(msg.user_id)
        .fetch_one(&pool)
        .await?;
    mailer.send(&email, "welcome!");
    sqlx::query("UPDATE app_users SET welcomed = true WHERE id = $1")
        .bind(msg.user_id)
        .execute(&pool)
        .await?;
    Ok(())
}

/// Every second: the number of users, for the stats page.
#[qron::job(executor = "user_stats")]
async fn user_stats(qron::State(pool): qron::State<PgPool>, _: ()) -> Result<(), JobError> {
    sqlx::query(
        "INSERT INTO app_stats (id, users, at) VALUES (1, (SELECT count(*) FROM app_users), now())
         ON CONFLICT (id) DO UPDATE SET users = EXCLUDED.users, at = EXCLUDED.at",
    )
    .execute(&pool)
    .await?;
    Ok(())
}

/// A long export, one step at a time; told to stop (the worker is shutting down, or its time
/// is nearly up), it saves how far it got and goes back to the queue to resume from there.
#[derive(Serialize, Deserialize)]
struct ExportPlan {
    done: u64,
    total: u64,
}

/// How far the running export got, for the progress page.
#[derive(Clone, Default)]
struct Progress(Arc<AtomicU64>);

#[qron::job(executor = "export", timeout = "1h")]
async fn export(
    ctx: Context,
    qron::State(progress): qron::State<Progress>,
    mut job: ExportPlan,
) -> Result<(), JobError> {
    while job.done < job.total {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(10)) => {
                job.done += 1;
                progress.0.store(job.done, Ordering::Relaxed);
            }
            () = ctx.cancelled() => {
                ctx.set_payload(&job)?;
                tracing::info!(done = job.done, "export interrupted: progress saved");
                return Err(JobError::retry_in(Duration::ZERO));
            }
        }
    }
    Ok(())
}

#[derive(Clone)]
struct App {
    pool: PgPool,
    client: Client,
    mailer: Mailer,
    progress: Progress,
}

#[derive(Deserialize)]
struct SignUp {
    email: String,
}

/// Creates the user and enqueues the welcome mail in one transaction: both or neither.
async fn sign_up(
    State(app): State<App>,
    Json(form): Json<SignUp>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let mut tx = app.pool.begin().await?;
    let id: i64 = sqlx::query_scalar("INSERT INTO app_users (email) VALUES ($1) RETURNING id")
        .bind(&form.email)
        .fetch_one(&mut *tx)
        .await?;
    WelcomeMail::schedule_with(&mut *tx, "@after 0s", Welcome { user_id: id }).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))))
}

async fn user(
    State(app): State<App>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, AppError> {
    let row: Option<(String, bool)> =
        sqlx::query_as("SELECT email, welcomed FROM app_users WHERE id = $1")
            .bind(id)
            .fetch_optional(&app.pool)
            .await?;
    let (email, welcomed) = row.ok_or(AppError::NotFound)?;
    Ok(Json(
        serde_json::json!({ "id": id, "email": email, "welcomed": welcomed }),
    ))
}

async fn outbox(State(app): State<App>) -> Json<Vec<String>> {
    Json(app.mailer.sent())
}

async fn stats(State(app): State<App>) -> Result<Json<serde_json::Value>, AppError> {
    let users: Option<i64> = sqlx::query_scalar("SELECT users FROM app_stats WHERE id = 1")
        .fetch_optional(&app.pool)
        .await?;
    Ok(Json(serde_json::json!({ "users": users })))
}

async fn export_progress(State(app): State<App>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "done": app.progress.0.load(Ordering::Relaxed) }))
}

#[derive(Deserialize)]
struct NewExport {
    steps: u64,
}

async fn start_export(
    State(app): State<App>,
    Json(form): Json<NewExport>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let job = Export::schedule_with(
        &app.client,
        "@after 0s",
        ExportPlan {
            done: 0,
            total: form.steps,
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job": job.id })),
    ))
}

/// The admin sessions, by cookie value (in memory: a real application keeps them in its own
/// session store).
#[derive(Clone, Default)]
struct Sessions(Arc<Mutex<std::collections::HashSet<String>>>);

/// The admin area's login: its password, and the sessions it opened.
#[derive(Clone)]
struct Admin {
    password: String,
    sessions: Sessions,
}

const SESSION_COOKIE: &str = "app_session";

/// 128 random bits as hex, from the system's random source (a real application uses its
/// session library's).
fn random_token() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Whether the request carries an open session's cookie.
    fn signed_in(&self, req: &Parts) -> bool {
        let Ok(open) = self.0.lock() else {
            return false;
        };
        req.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == SESSION_COOKIE && open.contains(v))
    }
}

/// qron's access policy for the admin area: a signed-in session operates the default owner's
/// jobs; anyone else is sent to the login page (a full response, not just a status).
fn session_policy(sessions: Sessions) -> impl Fn(&Parts) -> Result<qron::http::Owner, Redirect> {
    move |req| {
        if sessions.signed_in(req) {
            Ok(qron::http::Owner::operate(qron::DEFAULT_OWNER))
        } else {
            Err(Redirect::to("/login"))
        }
    }
}

/// The two-line alternative: HTTP Basic, the browser prompting for the password. Used when
/// `ADMIN_AUTH=basic` (`expected` is `"Basic " + base64("admin:" + password)`).
/// The challenge that makes a browser ask for a user and a password.
type Challenge = ([(header::HeaderName, &'static str); 1], StatusCode);

fn basic_auth_policy(expected: String) -> impl Fn(&Parts) -> Result<qron::http::Owner, Challenge> {
    move |req| match req.headers.get(header::AUTHORIZATION) {
        Some(v) if v.as_bytes() == expected.as_bytes() => {
            Ok(qron::http::Owner::operate(qron::DEFAULT_OWNER))
        }
        _ => Err((
            [(header::WWW_AUTHENTICATE, "Basic realm=\"qron\"")],
            StatusCode::UNAUTHORIZED,
        )),
    }
}

async fn login_page() -> Html<&'static str> {
    Html(
        r#"<!doctype html><title>Sign in</title>
<form method="post" action="/login">
<label>Password <input type="password" name="password" autofocus></label>
<button>Sign in</button>
</form>"#,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    password: String,
}

async fn login(State(admin): State<Admin>, Form(form): Form<LoginForm>) -> Response {
    if form.password != admin.password {
        return (StatusCode::UNAUTHORIZED, "wrong password").into_response();
    }
    let token = random_token();
    if let Ok(mut open) = admin.sessions.0.lock() {
        open.insert(token.clone());
    }
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
    let mut response = Redirect::to("/admin").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// What a route can fail with.
enum AppError {
    NotFound,
    Qron(qron::Error),
    Db(sqlx::Error),
}

impl From<qron::Error> for AppError {
    fn from(e: qron::Error) -> Self {
        AppError::Qron(e)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Db(e)
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND.into_response(),
            AppError::Qron(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            AppError::Db(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());

    let opts = tokio::task::spawn_blocking(qron::embedded::connect_options_from_env).await??;
    let pool = PgPool::connect_with(opts).await?;
    let client = Client::new(pool.clone());
    client.migrate().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS app_users (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             email text NOT NULL,
             welcomed boolean NOT NULL DEFAULT false);
         CREATE TABLE IF NOT EXISTS app_stats (
             id int PRIMARY KEY, users bigint NOT NULL, at timestamptz NOT NULL);",
    )
    .execute(&pool)
    .await?;
    // Named: every start-up schedules it once.
    UserStats::schedule_with(&client, "@every 1 second", ())
        .name("user_stats")
        .on_conflict(OnConflict::Keep)
        .await?;

    let (mailer, progress) = (Mailer::default(), Progress::default());
    let worker = Worker::builder(client.clone())
        .executors(["welcome_mail", "user_stats", "export"])
        .state(pool.clone())
        .state(mailer.clone())
        .state(progress.clone())
        .build()?;
    let stopper = worker.stopper();
    let worker = tokio::spawn(worker.run());

    // The admin area: qron's dashboard and API behind the application's login.
    let admin = Admin {
        password: std::env::var("ADMIN_PASSWORD").unwrap_or_else(|_| {
            let p = random_token();
            println!("admin password: {p}");
            p
        }),
        sessions: Sessions::default(),
    };
    let stop_streams = tokio_util::sync::CancellationToken::new();
    let api = qron::http::Api::new(client.clone()).shutdown_on(stop_streams.clone());
    let api = match std::env::var("ADMIN_AUTH").as_deref() {
        Ok("basic") => api.owner(basic_auth_policy(
            std::env::var("ADMIN_BASIC").unwrap_or_default(),
        )),
        _ => api.owner(session_policy(admin.sessions.clone())),
    };
    let admin_area = Router::new()
        .route("/login", get(login_page).post(login))
        .with_state(admin)
        .nest("/admin/api", api.clone().router())
        .nest_service("/admin", api.dashboard());

    let app = Router::new()
        .route("/signup", post(sign_up))
        .route("/users/{id}", get(user))
        .route("/outbox", get(outbox))
        .route("/stats", get(stats))
        .route("/exports", post(start_export))
        .route("/exports/progress", get(export_progress))
        .with_state(App {
            pool: pool.clone(),
            client,
            mailer,
            progress,
        })
        .merge(admin_area);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{}", listener.local_addr()?);

    // One signal stops both: the server finishes its requests, the worker its jobs.
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        // An open dashboard tab's live stream ends, so the server's shutdown does not wait.
        stop_streams.cancel();
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    stopper.soft();
    worker.await??;
    pool.close().await;
    println!("stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

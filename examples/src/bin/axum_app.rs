//! qron in a web application: an axum server whose sign-up enqueues a welcome mail inside
//! the sign-up's own transaction, handlers that take the application's pool and mailer as
//! `State`, a recurring job, a long export that checkpoints when told to stop, and one
//! graceful shutdown for the server and the worker.
//!
//! ```text
//! cargo run -p qron-examples --bin axum_app                # on 127.0.0.1:3000
//! cargo run -p qron-examples --bin axum_app -- 127.0.0.1:0 # any free port (printed)
//! curl -X POST localhost:3000/signup -H 'content-type: application/json' -d '{"email":"a@b.c"}'
//! curl localhost:3000/users/1
//! ```
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
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
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
        });
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{}", listener.local_addr()?);

    // One signal stops both: the server finishes its requests, the worker its jobs.
    let shutdown = async {
        shutdown_signal().await;
        tracing::info!("shutting down");
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

//! Testing an application's jobs: a fresh, migrated database per test, and what a test asks
//! of it ("did sign-up enqueue the email?").
//!
//! Behind the `testing` feature, which turns on `embedded`: add qron to your dev-dependencies
//! with it.
//!
//! ```toml
//! [dev-dependencies]
//! qron = { version = "*", features = ["testing"] }
//! ```
//!
//! Each [`TestDb`] is a copy of a template database migrated once per test process (and once
//! per migration set, across processes), so tests run in parallel without seeing each other's
//! jobs. The server is `DATABASE_URL`'s when it is set, otherwise a throwaway one started from
//! the machine's PostgreSQL binaries and removed when the process exits (see [`crate::embedded`]).
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize, Debug)] struct Welcome { user_id: i64 }
//! # #[qron::job(executor = "email")]
//! # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
//! # async fn demo() -> qron::Result<()> {
//! // In a #[tokio::test]:
//! let db = qron::testing::TestDb::new().await?;
//! let client = db.client();
//! let mut tx = db.pool().begin().await?;
//! Email::schedule_with(&mut *tx, "@after 1 hour", Welcome { user_id: 7 }).await?;
//! // Seen inside the test's own transaction, before it commits:
//! qron::testing::assert_enqueued::<Email>(&mut *tx, |w| w.user_id == 7).await;
//! tx.commit().await?;
//! assert_eq!(qron::testing::enqueued::<Email>(client.pool()).await?.len(), 1);
//! # Ok(()) }
//! ```

mod drain;
pub use drain::{MAX_DRAIN_ROUNDS, drain, drain_with};

use crate::schema::sql;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use tokio::sync::OnceCell;

use crate::{Client, Error, Job, Result};

/// A database of its own for one test: a copy of the migrated template, dropped (with its
/// connections) when the value is.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// let db = qron::testing::TestDb::new().await?;
/// let job = db.client().get(1).await;
/// assert!(job.is_err()); // a fresh database: no job 1
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestDb {
    pool: PgPool,
    name: String,
    admin: PgConnectOptions,
}

impl TestDb {
    /// A fresh copy of the migrated template.
    ///
    /// # Errors
    /// [`Error::Embedded`] or [`Error::PostgresNotFound`] when no server could be started, or a database error.
    ///
    /// ```no_run
    /// # async fn demo() -> qron::Result<()> {
    /// let db = qron::testing::TestDb::new().await?;
    /// # Ok(()) }
    /// ```
    pub async fn new() -> Result<Self> {
        let admin = admin_options().await?;
        let template = template(&admin).await?;
        Self::create(admin, Some(template)).await
    }

    /// A fresh database without qron's schema (for testing migrations).
    ///
    /// # Errors
    /// As [`TestDb::new`].
    ///
    /// ```no_run
    /// # async fn demo() -> qron::Result<()> {
    /// let db = qron::testing::TestDb::empty().await?;
    /// qron::migrate(db.pool()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn empty() -> Result<Self> {
        let admin = admin_options().await?;
        Self::create(admin, None).await
    }

    async fn create(admin: PgConnectOptions, template: Option<&str>) -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "qron_test_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_subsec_nanos()
        );
        let mut conn = PgConnection::connect_with(&admin).await?;
        let sql = match template {
            Some(t) => format!(r#"CREATE DATABASE "{name}" TEMPLATE "{t}""#),
            None => format!(r#"CREATE DATABASE "{name}" TEMPLATE template0"#),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(admin.clone().database(&name))
            .await?;
        Ok(Self { pool, name, admin })
    }

    /// A pool connected to the test's database.
    ///
    /// ```no_run
    /// # async fn demo(db: qron::testing::TestDb) -> qron::Result<()> {
    /// sqlx::query("SELECT 1").execute(db.pool()).await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A client on the test's database, acting for the default owner.
    ///
    /// ```no_run
    /// # async fn demo(db: qron::testing::TestDb) {
    /// let client = db.client();
    /// # }
    /// ```
    pub fn client(&self) -> Client {
        Client::new(self.pool.clone())
    }

    /// The database's name.
    ///
    /// ```no_run
    /// # fn demo(db: qron::testing::TestDb) {
    /// assert!(db.name().starts_with("qron_test_"));
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection URL of the test's database, for a child process (`DATABASE_URL` with its
    /// database replaced, or the throwaway server's).
    ///
    /// # Errors
    /// As [`TestDb::new`], when the throwaway server is not running.
    ///
    /// ```no_run
    /// # fn demo(db: qron::testing::TestDb) -> qron::Result<()> {
    /// let child = std::process::Command::new("my-app").env("DATABASE_URL", db.url()?).spawn();
    /// # Ok(()) }
    /// ```
    pub fn url(&self) -> Result<String> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(with_database(&url, &self.name)),
            _ => Ok(crate::embedded::EmbeddedPostgres::shared()?.url_for(&self.name)),
        }
    }

    /// Connection options for the test's database (for a second pool, or a child process).
    ///
    /// ```no_run
    /// # async fn demo(db: qron::testing::TestDb) -> qron::Result<()> {
    /// let other = sqlx::PgPool::connect_with(db.options()).await?;
    /// # Ok(()) }
    /// ```
    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop cannot await, and may run on a runtime that is shutting down: drop the database
        // from a thread of its own. FORCE ends the pool's connections.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect_with(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                )))
                .execute(&mut conn)
                .await
                .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

/// `url` naming `database` instead of its own: the path after the host, before any query.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_from = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_from..]
        .find('/')
        .map_or(base.len(), |i| authority_from + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Options for the server's maintenance database: `DATABASE_URL`, or the throwaway server.
async fn admin_options() -> Result<PgConnectOptions> {
    tokio::task::spawn_blocking(crate::embedded::connect_options_from_env)
        .await
        .map_err(|e| Error::Embedded {
            action: "start the test server",
            detail: e.to_string(),
        })?
}

/// The template's name: one per migration set, so a changed migration gets a new template.
fn template_name() -> String {
    let mut h = DefaultHasher::new();
    for m in crate::migrator().iter() {
        m.version.hash(&mut h);
        m.checksum.hash(&mut h);
    }
    format!("qron_template_{:016x}", h.finish())
}

/// The migrated template, made by the first test of the process that needs it (under an
/// advisory lock, so that concurrent test processes agree).
async fn template(admin: &PgConnectOptions) -> Result<&'static str> {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_try_init(|| async {
            let name = template_name();
            let mut conn = PgConnection::connect_with(admin).await?;
            sqlx::query("SELECT pg_advisory_lock(hashtext('qron_tests_template'))")
                .execute(&mut conn)
                .await?;
            let made = make_template(admin, &mut conn, &name).await;
            sqlx::query("SELECT pg_advisory_unlock(hashtext('qron_tests_template'))")
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            made.map(|()| name)
        })
        .await
        .map(String::as_str)
}

async fn make_template(
    admin: &PgConnectOptions,
    conn: &mut PgConnection,
    name: &str,
) -> Result<()> {
    let ready: Option<bool> =
        sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    if ready == Some(true) {
        return Ok(());
    }
    // Absent, or left half-made by a killed run.
    for sql in [
        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
        format!(r#"CREATE DATABASE "{name}" TEMPLATE template0"#),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin.clone().database(name))
        .await?;
    let migrated = crate::migrate(&pool).await;
    pool.close().await;
    migrated?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"ALTER DATABASE "{name}" WITH IS_TEMPLATE true"#
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The payloads of `J`'s jobs waiting to run (ready or paused, of every owner), oldest run
/// time first. It reads through `ex`, so a test sees the jobs its own open transaction made.
///
/// # Errors
/// A database error, or [`Error::InvalidArgument`] (`payload`) for a stored payload that does not decode as
/// `J::Payload`.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user_id: i64 }
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(pool: sqlx::PgPool) -> qron::Result<()> {
/// let waiting: Vec<Welcome> = qron::testing::enqueued::<Email>(&pool).await?;
/// # Ok(()) }
/// ```
pub async fn enqueued<'e, J: Job>(ex: impl PgExecutor<'e>) -> Result<Vec<J::Payload>> {
    let payloads: Vec<String> = sqlx::query_scalar(sql("SELECT payload::text FROM qron.jobs
          WHERE executor = $1 AND status IN ('ready', 'stopped')
          ORDER BY run_at, id"))
    .bind(J::EXECUTOR)
    .fetch_all(ex)
    .await?;
    payloads
        .iter()
        .map(|p| {
            serde_json::from_str(p).map_err(|e| Error::InvalidArgument {
                field: "payload",
                reason: format!("a job of `{}` does not decode: {e}", J::EXECUTOR),
            })
        })
        .collect()
}

/// Panics unless a job of `J` waiting to run has a payload for which `matches` is true; the
/// message lists the payloads there are. Reads through `ex`, as [`enqueued`].
///
/// # Panics
/// When no waiting job matches, or the jobs cannot be read.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize, Debug)] struct Welcome { user_id: i64 }
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(pool: sqlx::PgPool) {
/// qron::testing::assert_enqueued::<Email>(&pool, |w| w.user_id == 7).await;
/// # }
/// ```
#[track_caller]
pub fn assert_enqueued<'e, J: Job>(
    ex: impl PgExecutor<'e> + 'e,
    matches: impl Fn(&J::Payload) -> bool + 'e,
) -> impl std::future::Future<Output = ()> + 'e
where
    J::Payload: std::fmt::Debug,
{
    let caller = std::panic::Location::caller();
    async move {
        let payloads = match enqueued::<J>(ex).await {
            Ok(p) => p,
            Err(e) => panic!(
                "{caller}: could not read the enqueued jobs of `{}`: {e}",
                J::EXECUTOR
            ),
        };
        assert!(
            payloads.iter().any(&matches),
            "{caller}: no enqueued job of `{}` matches; waiting: {payloads:?}",
            J::EXECUTOR
        );
    }
}

/// What [`run_due`] ran: each job as it is afterwards, and the worker's counts.
#[derive(Debug)]
#[non_exhaustive]
pub struct Ran {
    /// The jobs that were due, by id, as they are now: `Succeeded` or `Failed` (one-off jobs),
    /// `Ready` again (a retry, a recurring job's next run), with their
    /// [errors](crate::JobRow::errors).
    pub jobs: Vec<crate::JobRow>,
    /// The worker's counts (executions succeeded, failed, retried, snoozed…).
    pub metrics: std::sync::Arc<crate::Metrics>,
}

impl Ran {
    /// Executions that succeeded.
    ///
    /// ```no_run
    /// # async fn demo(ran: qron::testing::Ran) { assert_eq!(ran.succeeded(), 1); }
    /// ```
    pub fn succeeded(&self) -> u64 {
        self.metrics.succeeded()
    }

    /// Executions that failed for good.
    ///
    /// ```no_run
    /// # async fn demo(ran: qron::testing::Ran) { assert_eq!(ran.failed(), 0); }
    /// ```
    pub fn failed(&self) -> u64 {
        self.metrics.failed()
    }

    /// Executions that failed and will be retried.
    ///
    /// ```no_run
    /// # async fn demo(ran: qron::testing::Ran) { assert_eq!(ran.retried(), 0); }
    /// ```
    pub fn retried(&self) -> u64 {
        self.metrics.retried()
    }
}

/// Runs `J`'s due jobs (of every owner) in a worker of its own until none is left due, and
/// returns what happened to each ([`Ran`]). A retry due at once runs again; one whose back-off
/// has not passed is left (see [`run_due_at`]). The worker has no application state: for a job
/// that takes [`State`](crate::State), see [`run_due_with`].
///
/// # Errors
/// As [`Worker::run_until_idle`](crate::Worker::run_until_idle).
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user_id: i64 }
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// Email::schedule_with(&client, "@after 0s", Welcome { user_id: 7 }).await?;
/// let ran = qron::testing::run_due::<Email>(&client).await?;
/// assert_eq!(ran.succeeded(), 1);
/// assert_eq!(ran.jobs[0].status, qron::JobStatus::Succeeded);
/// # Ok(()) }
/// ```
pub async fn run_due<J: Job>(client: &Client) -> Result<Ran> {
    run_due_ahead::<J>(
        crate::Worker::builder(client.clone()),
        chrono::Duration::zero(),
    )
    .await
}

/// As [`run_due`], on a worker the test set up: the [`State`](crate::State)s its jobs take (a
/// pool, a mailer), and any setting. `J` is added to it, and it serves `J`'s executor only.
///
/// # Errors
/// As [`run_due`]; [`Error::InvalidArgument`] when `J` takes a
/// state the worker was not given.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user_id: i64 }
/// # #[derive(Clone)] struct Mailer;
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome, mailer: qron::State<Mailer>) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// Email::schedule_with(&client, "@after 0s", Welcome { user_id: 7 }).await?;
/// let worker = qron::Worker::builder(client.clone()).state(Mailer);
/// assert_eq!(qron::testing::run_due_with::<Email>(worker).await?.succeeded(), 1);
/// # Ok(()) }
/// ```
pub async fn run_due_with<J: Job>(worker: crate::WorkerBuilder) -> Result<Ran> {
    run_due_ahead::<J>(worker, chrono::Duration::zero()).await
}

/// As [`run_due_at`], on a worker the test set up (see [`run_due_with`]).
///
/// # Errors
/// As [`run_due_with`]; [`Error::InvalidArgument`] naming `at` outside the years 1 to 9999.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user_id: i64 }
/// # #[derive(Clone)] struct Mailer;
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome, mailer: qron::State<Mailer>) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// Email::schedule_with(&client, "@after 1 hour", Welcome { user_id: 7 }).await?;
/// let later = chrono::Utc::now() + chrono::Duration::minutes(61);
/// let worker = qron::Worker::builder(client.clone()).state(Mailer);
/// assert_eq!(qron::testing::run_due_at_with::<Email>(worker, later).await?.succeeded(), 1);
/// # Ok(()) }
/// ```
pub async fn run_due_at_with<J: Job>(
    worker: crate::WorkerBuilder,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Ran> {
    if let Some(reason) = crate::limits::time_problem(at) {
        return Err(Error::InvalidArgument {
            field: "at",
            reason,
        });
    }
    let now = crate::db::server_now(worker.client.pool()).await?;
    run_due_ahead::<J>(worker, (at - now).max(chrono::Duration::zero())).await
}

/// As [`run_due`], as if it were `at` (by the database's clock): jobs due by then run, and
/// every time the worker writes (next runs, retries, the history) counts from then. For
/// "an hour later, the reminder went out".
///
/// # Errors
/// As [`run_due`]; [`Error::InvalidArgument`] naming `at` outside the years 1 to 9999.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user_id: i64 }
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// Email::schedule_with(&client, "@after 1 hour", Welcome { user_id: 7 }).await?;
/// assert_eq!(qron::testing::run_due::<Email>(&client).await?.succeeded(), 0);
/// let later = chrono::Utc::now() + chrono::Duration::minutes(61);
/// assert_eq!(qron::testing::run_due_at::<Email>(&client, later).await?.succeeded(), 1);
/// # Ok(()) }
/// ```
pub async fn run_due_at<J: Job>(client: &Client, at: chrono::DateTime<chrono::Utc>) -> Result<Ran> {
    run_due_at_with::<J>(crate::Worker::builder(client.clone()), at).await
}

pub(crate) async fn run_due_ahead<J: Job>(
    worker: crate::WorkerBuilder,
    ahead: chrono::Duration,
) -> Result<Ran> {
    let client = worker.client.clone();
    let now = crate::db::server_now(client.pool()).await? + ahead;
    let due: Vec<i64> = sqlx::query_scalar(sql(
        "SELECT id FROM qron.jobs WHERE status = 'ready' AND executor = $1 AND run_at <= $2",
    ))
    .bind(J::EXECUTOR)
    .bind(now)
    .fetch_all(client.pool())
    .await?;
    let mut builder = worker.job::<J>().executors([J::EXECUTOR]);
    builder.ahead = ahead;
    let worker = builder.build()?;
    let metrics = worker.metrics();
    worker.run_until_idle().await?;
    let jobs = sqlx::query_as(sql(
        "SELECT * FROM qron.jobs_all WHERE id = ANY($1) ORDER BY id",
    ))
    .bind(&due)
    .fetch_all(client.pool())
    .await?;
    Ok(Ran { jobs, metrics })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_names_another_database_keeping_its_host_and_options() {
        for (url, want) in [
            ("postgres://u:p@h:5432/app", "postgres://u:p@h:5432/t1"),
            (
                "postgres://u@h/app?sslmode=disable",
                "postgres://u@h/t1?sslmode=disable",
            ),
            ("postgres://h", "postgres://h/t1"),
            ("postgres:///app?host=/tmp", "postgres:///t1?host=/tmp"),
        ] {
            assert_eq!(super::with_database(url, "t1"), want, "{url}");
        }
    }
}

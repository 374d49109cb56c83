//! Test harness: one fresh, migrated database per test, on `DATABASE_URL` or on a throwaway
//! server.
//!
//! ```no_run
//! # async fn demo() {
//! let db = qron_tests::TestDb::new().await;
//! sqlx::query("SELECT count(*) FROM qron.jobs").execute(&db.pool).await.unwrap();
//! # }
//! ```
//!
//! The first test of a process migrates a template database (once per migration set, under an
//! advisory lock, so concurrent test processes agree); every test then gets a copy of it, which
//! is fast, and tests run in parallel without seeing each other's jobs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fault;
pub mod http;
pub mod jobs;
pub mod logs;

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// A database of its own for one test, dropped when the test ends: the library's
/// [`qron::testing::TestDb`], with its pool and name at hand.
pub struct TestDb {
    /// A pool connected to the test's database.
    pub pool: PgPool,
    /// The database's name.
    pub name: String,
    inner: qron::testing::TestDb,
}

impl TestDb {
    /// A fresh copy of the migrated template.
    pub async fn new() -> Self {
        Self::wrap(qron::testing::TestDb::new().await)
    }

    /// A fresh database without qron's schema (for migration tests).
    pub async fn empty() -> Self {
        Self::wrap(qron::testing::TestDb::empty().await)
    }

    fn wrap(db: qron::Result<qron::testing::TestDb>) -> Self {
        let inner = db.unwrap_or_else(|e| panic!("no database for the test: {e}"));
        Self {
            pool: inner.pool().clone(),
            name: inner.name().to_owned(),
            inner,
        }
    }

    /// Connection options for this test's database.
    pub fn options(&self) -> PgConnectOptions {
        self.inner.options()
    }
}

/// Options for the server's maintenance database: `DATABASE_URL`, or the throwaway server.
pub async fn admin_options() -> PgConnectOptions {
    tokio::task::spawn_blocking(qron::embedded::connect_options_from_env)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("no database for the tests: {e}"))
}

/// A small deterministic random source for generated test corpora (SplitMix64): the same seed
/// gives the same cases on every machine.
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A worker running in the background of a test.
pub struct Running {
    /// Stops it.
    pub stopper: qron::Stopper,
    /// Its counters.
    pub metrics: std::sync::Arc<qron::Metrics>,
    task: tokio::task::JoinHandle<qron::Result<()>>,
}

impl Running {
    /// Starts `worker` on the test's runtime.
    pub fn start(worker: qron::Worker) -> Self {
        let stopper = worker.stopper();
        let metrics = worker.metrics();
        Self {
            stopper,
            metrics,
            task: tokio::spawn(worker.run()),
        }
    }

    /// Starts `worker`, and waits (up to 10 s) until it has looked for jobs once: idle, with
    /// its connections open.
    pub async fn started(worker: qron::Worker) -> Self {
        let running = Self::start(worker);
        let metrics = running.metrics.clone();
        wait_for(
            "the worker to look for jobs",
            std::time::Duration::from_secs(10),
            || async { metrics.polls() > 0 },
        )
        .await;
        running
    }

    /// Soft-stops the worker and waits until it has written every outcome.
    pub async fn stop(self) {
        self.stopper.soft();
        self.task.await.unwrap().unwrap();
    }
}

/// Polls `check` every 10 ms until it holds; panics, naming `what`, after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The number of rows `sql` counts.
pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Asserts that each of `tables` holds no row (what a refused call must leave).
pub async fn assert_empty(pool: &PgPool, tables: &[&str]) {
    for table in tables {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table} holds rows");
    }
}

/// Waits (a bounded poll, as [`wait_for`]) until the history holds `n` finished jobs.
pub async fn wait_for_history(pool: &PgPool, n: i64, limit: std::time::Duration) {
    wait_for(
        &format!("{n} finished job(s) in the history"),
        limit,
        || async { count(pool, "SELECT count(*) FROM qron.jobs_history").await == n },
    )
    .await;
}

impl TestDb {
    /// A connection URL of the server (`DATABASE_URL`, or the throwaway server's), for a child
    /// process to pair with [`TestDb::name`].
    pub fn server_url() -> String {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => qron::embedded::EmbeddedPostgres::shared()
                .map(|pg| pg.url())
                .unwrap_or_else(|e| panic!("no database: {e}")),
        }
    }
}

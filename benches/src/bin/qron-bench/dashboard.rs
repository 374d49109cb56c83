//! `dashboard`: the dashboard under load. `viewers` browsers poll the overview every second
//! against `jobs` live jobs for `seconds`; PostgreSQL's `pg_stat_statements` counts the overview's
//! count query (one per refresh interval is the goal, whatever the viewers), and each page's
//! render time is timed on its own.

use std::time::{Duration, Instant};

use qron::{Client, NewJob};
use sqlx::Connection as _;

use crate::Figure;
use crate::queue::{Res, fig, percentile};

/// Executors the jobs are spread over.
const EXECUTORS: u64 = 10;
/// How often the dashboard counts.
const REFRESH: Duration = Duration::from_secs(1);

pub async fn dashboard(jobs: u64, viewers: usize, seconds: u64) -> Res<Vec<Figure>> {
    let (_server, admin, name, pool) = stats_database("dashboard", 16).await?;

    // The jobs: spread over executors and over the next day; a few due.
    let client = Client::new(pool.clone());
    let t = Instant::now();
    let chunk = 20_000;
    let mut made = 0;
    while made < jobs {
        let n = chunk.min(jobs - made);
        client
            .create_many((made..made + n).map(|i| {
                let expr = match i % 100 {
                    0 => "@every 1 hour".to_owned(),
                    1 => "@after 0 seconds".to_owned(),
                    m => format!("@after {} minutes", m * 14),
                };
                NewJob::new(format!("executor-{}", i % EXECUTORS), expr)
            }))
            .await?;
        made += n;
    }
    let seeded = t.elapsed();
    sqlx::query("VACUUM ANALYZE qron.jobs")
        .execute(&pool)
        .await?;
    let first_job: i64 = sqlx::query_scalar("SELECT min(id) FROM qron.jobs")
        .fetch_one(&pool)
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = qron::http::Api::new(client)
        .allow_anonymous()
        .refresh(REFRESH)
        .dashboard();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    // The cache's first count, before the clock starts.
    http.get(&base).send().await?.error_for_status()?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&pool)
        .await?;

    // The viewers: each loads the overview every second.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..viewers.max(1) {
        let (http, base) = (http.clone(), base.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut times = Vec::new();
            while started.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                times.push(load(&http, &base).await?);
            }
            Ok::<Vec<i64>, reqwest::Error>(times)
        });
    }
    let mut under_load = Vec::new();
    while let Some(r) = tasks.join_next().await {
        under_load.extend(r??);
    }
    let elapsed = started.elapsed();
    let (calls, mean_ms): (i64, f64) = sqlx::query_as(
        "SELECT COALESCE(sum(calls), 0)::bigint, COALESCE(avg(mean_exec_time), 0)::float8
           FROM pg_stat_statements
          WHERE query LIKE '%AS ran_hour%' AND query LIKE '%jobs_history%'",
    )
    .fetch_one(&pool)
    .await?;

    // Each page alone, one request at a time.
    let pages = [
        ("overview", base.clone()),
        ("jobs (first page)", format!("{base}/jobs")),
        (
            "jobs (filtered by executor)",
            format!("{base}/jobs?executor=executor-3"),
        ),
        ("job page", format!("{base}/jobs/{first_job}")),
        ("upcoming (hour)", format!("{base}/upcoming?range=hour")),
        (
            "playground",
            format!("{base}/playground?expr=0+9+*+*+MON-FRI&tz=Europe%2FParis"),
        ),
    ];
    let mut out = vec![
        fig(format!("seeded {jobs} jobs"), seeded.as_secs_f64(), "s"),
        fig(
            format!(
                "overview count queries, {viewers} viewers, {}s",
                elapsed.as_secs()
            ),
            calls as f64,
            "calls",
        ),
        fig(
            "overview count queries per refresh interval",
            calls as f64 / (elapsed.as_secs_f64() / REFRESH.as_secs_f64()),
            "calls",
        ),
        fig("overview count query, mean", mean_ms, "ms"),
    ];
    under_load.sort_unstable();
    out.push(fig("overview under load, p50", pct(&under_load, 0.5), "ms"));
    out.push(fig(
        "overview under load, p99",
        pct(&under_load, 0.99),
        "ms",
    ));
    for (page, url) in pages {
        let mut times = Vec::new();
        for _ in 0..20 {
            times.push(load(&http, &url).await?);
        }
        times.sort_unstable();
        out.push(fig(format!("{page}, p50"), pct(&times, 0.5), "ms"));
        out.push(fig(format!("{page}, p95"), pct(&times, 0.95), "ms"));
        // The first request of the upcoming timeline counts it; the next ones share it.
        out.push(fig(format!("{page}, max"), pct(&times, 1.0), "ms"));
    }
    server.abort();
    drop_stats_database(&admin, &name, pool).await?;
    Ok(out)
}

/// A fresh, migrated database named for `tag` with `pg_stat_statements` (to count the queries a
/// scenario makes): on `DATABASE_URL`'s server if it preloads the extension, else on a server
/// of its own (kept while the first value lives). Also the server's options, the database's
/// name and a pool of `connections` on it.
pub async fn stats_database(
    tag: &str,
    connections: u32,
) -> Res<(
    Option<qron::embedded::EmbeddedPostgres>,
    sqlx::postgres::PgConnectOptions,
    String,
    sqlx::PgPool,
)> {
    let given = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let opts = url.parse::<sqlx::postgres::PgConnectOptions>()?;
            let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
            let preloaded: String = sqlx::query_scalar("SHOW shared_preload_libraries")
                .fetch_one(&mut conn)
                .await?;
            preloaded.contains("pg_stat_statements").then_some(opts)
        }
        _ => None,
    };
    let (server, admin) = match given {
        Some(opts) => (None, opts),
        None => {
            let pg = tokio::task::spawn_blocking(|| {
                qron::embedded::EmbeddedPostgres::builder()
                    .setting("shared_preload_libraries", "pg_stat_statements")
                    .start()
            })
            .await??;
            let opts = pg.connect_options();
            (Some(pg), opts)
        }
    };
    let name = format!("qron_bench_{tag}_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut conn)
        .await?;
    drop(conn);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(admin.clone().database(&name))
        .await?;
    qron::migrate(&pool).await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&pool)
        .await?;
    Ok((server, admin, name, pool))
}

/// Drops the database [`stats_database`] made, once `pool` is closed.
pub async fn drop_stats_database(
    admin: &sqlx::postgres::PgConnectOptions,
    name: &str,
    pool: sqlx::PgPool,
) -> Res<()> {
    pool.close().await;
    let mut conn = sqlx::PgConnection::connect_with(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// The `p` quantile of sorted microseconds, in milliseconds.
fn pct(sorted: &[i64], p: f64) -> f64 {
    percentile(sorted, p) / 1000.0
}

/// Loads `url` whole (the body read): how long it took, in microseconds.
async fn load(http: &reqwest::Client, url: &str) -> Result<i64, reqwest::Error> {
    let t = Instant::now();
    http.get(url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok(micros(t))
}

/// Microseconds since `t`.
fn micros(t: Instant) -> i64 {
    i64::try_from(t.elapsed().as_micros()).unwrap_or(i64::MAX)
}

//! The database scenarios: the raw-SQL floor, enqueue, throughput, latency, recurring lateness,
//! throughput under a held xmin horizon, and a worker's memory.

use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use qron::{Client, JobError, NewJob, Worker};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool};

use crate::Figure;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A job that does nothing.
#[qron::job(executor = "bench_noop_failed", concurrency = 1000, history = "failed")]
async fn bench_noop_failed(_: ()) -> Result<(), JobError> {
    Ok(())
}

/// The executor of the no-op job whose history keeps `history`.
fn noop_executor(history: qron::History) -> &'static str {
    match history {
        qron::History::Failed => "bench_noop_failed",
        _ => "bench_noop",
    }
}

#[qron::job(executor = "bench_noop", concurrency = 1000)]
async fn bench_noop(_: ()) -> Result<(), JobError> {
    Ok(())
}

/// A job whose payload is a large string, decoded and dropped (`memory --payload-bytes`).
#[qron::job(executor = "bench_blob", concurrency = 100)]
async fn bench_blob(blob: String) -> Result<(), JobError> {
    std::hint::black_box(blob.len());
    Ok(())
}

/// Records how late it started against its slot, in microseconds.
#[qron::job(executor = "bench_probe", concurrency = 1000)]
async fn bench_probe(ctx: qron::Context, _: ()) -> Result<(), JobError> {
    record_lateness(ctx.scheduled_at())
}

/// Records how late, in microseconds, a run started after `due`.
fn record_lateness(due: chrono::DateTime<Utc>) -> Result<(), JobError> {
    let late = (Utc::now() - due).num_microseconds().unwrap_or(i64::MAX);
    lateness()
        .lock()
        .map_err(|_| JobError::fail("poisoned"))?
        .push(late);
    Ok(())
}

/// Fails its first attempt (a 50 ms back-off), then records how late its retry started.
#[qron::job(
    executor = "bench_retry",
    concurrency = 1000,
    backoff(base = "50ms", max = "50ms")
)]
async fn bench_retry(ctx: qron::Context, _: ()) -> Result<(), JobError> {
    if ctx.attempt() == 1 {
        return Err(JobError::retry("the first attempt always fails"));
    }
    record_lateness(ctx.due_at())
}

/// p50, p99 and max of sorted lateness in microseconds, as figures in milliseconds.
fn lateness_figures(label: &str, sorted: &[i64]) -> Vec<Figure> {
    let max = sorted.last().copied().unwrap_or(0) as f64;
    vec![
        fig(
            format!("{label} p50"),
            percentile(sorted, 0.5) / 1000.0,
            "ms",
        ),
        fig(
            format!("{label} p99"),
            percentile(sorted, 0.99) / 1000.0,
            "ms",
        ),
        fig(format!("{label} max"), max / 1000.0, "ms"),
    ]
}

/// The lateness recorded so far, sorted.
fn sorted_lateness() -> Res<Vec<i64>> {
    let mut l = lateness().lock().map_err(|_| "poisoned")?.clone();
    l.sort_unstable();
    Ok(l)
}

fn lateness() -> &'static Mutex<Vec<i64>> {
    static L: OnceLock<Mutex<Vec<i64>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

/// The server's options: `DATABASE_URL`, or the throwaway server.
fn server() -> Res<PgConnectOptions> {
    Ok(qron::embedded::connect_options_from_env()?)
}

/// A fresh, migrated database for one scenario; its name and a pool on it.
pub async fn fresh(tag: &str, connections: u32) -> Res<(String, PgPool)> {
    let admin = tokio::task::spawn_blocking(server).await??;
    let name = format!("qron_bench_{tag}_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
    )))
    .execute(&mut conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(admin.database(&name))
        .await?;
    qron::migrate(&pool).await?;
    Ok((name, pool))
}

/// Another pool of `connections` on database `name` (made by [`fresh`]): a worker of its own,
/// as another process would have.
pub async fn another_pool(name: &str, connections: u32) -> Res<PgPool> {
    let admin = tokio::task::spawn_blocking(server).await??;
    Ok(PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(admin.database(name))
        .await?)
}

pub async fn drop_db(name: &str, pool: PgPool) -> Res<()> {
    pool.close().await;
    let admin = tokio::task::spawn_blocking(server).await??;
    let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

pub fn fig(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
    Figure {
        name: name.into(),
        value,
        unit,
    }
}

/// The median of some measurements.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The `p` quantile of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

/// Process CPU time (user + system).
fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    match usage {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// The raw-SQL floor: the same table shape, bulk insert, then `tasks` loops of "lease a batch
/// with SKIP LOCKED, delete it in one statement".
pub async fn floor(jobs: u64, batches: &[u64], tasks: usize) -> Res<Vec<Figure>> {
    let (name, pool) = fresh("floor", tasks as u32 + 2).await?;
    let mut out = Vec::new();
    for &batch in batches {
        let insert = floor_insert(&pool, jobs).await?;
        let rate = floor_process(&pool, batch, tasks).await?;
        out.push(fig(
            format!("floor insert (batch {batch})"),
            insert,
            "rows/s",
        ));
        out.push(fig(
            format!("floor process (batch {batch}, {tasks} tasks)"),
            rate,
            "jobs/s",
        ));
    }
    drop_db(&name, pool).await?;
    Ok(out)
}

/// The floor's table, emptied: the same columns, constraints and indexes as qron.jobs.
async fn floor_table(pool: &PgPool) -> Res<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS floor_jobs (LIKE qron.jobs INCLUDING ALL);
         -- the floor's own lease order, indexed as qron's is
         CREATE INDEX IF NOT EXISTS floor_jobs_lease ON floor_jobs (executor, run_at, id)
             WHERE status = 'ready';
         TRUNCATE floor_jobs;",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The executor of the floor's rows: the one of qron's, so that both store the same keys.
const FLOOR_EXECUTOR: &str = <BenchNoop as qron::Job>::EXECUTOR;

/// The floor's insert: one `INSERT … SELECT generate_series` of `jobs` due rows; rows/s.
async fn floor_insert(pool: &PgPool, jobs: u64) -> Res<f64> {
    floor_table(pool).await?;
    let t = Instant::now();
    sqlx::query(
        "INSERT INTO floor_jobs (executor, expr, recurring, run_at, slot_at, payload)
         SELECT $2, '@after 0 seconds', false, now(), now(), 'null'
           FROM generate_series(1, $1)",
    )
    .bind(jobs as i64)
    .bind(FLOOR_EXECUTOR)
    .execute(pool)
    .await?;
    Ok(jobs as f64 / t.elapsed().as_secs_f64())
}

/// The floor's lease: `batch` due rows taken with `FOR UPDATE SKIP LOCKED`, in one statement;
/// their ids.
async fn floor_lease(pool: &PgPool, batch: u64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "UPDATE floor_jobs j SET status = 'running', attempt = j.attempt + 1,
                lease_expires_at = now() + j.timeout
          WHERE j.id = ANY(ARRAY(
                SELECT id FROM floor_jobs
                 WHERE status = 'ready' AND executor = $2 AND run_at <= now()
                 ORDER BY run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED))
         RETURNING j.id",
    )
    .bind(batch as i64)
    .bind(FLOOR_EXECUTOR)
    .fetch_all(pool)
    .await
}

/// The floor's processing of the rows [`floor_insert`] left: `tasks` loops leasing `batch`
/// rows and deleting them; jobs/s.
async fn floor_process(pool: &PgPool, batch: u64, tasks: usize) -> Res<f64> {
    sqlx::query("VACUUM ANALYZE floor_jobs")
        .execute(pool)
        .await?;
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let ids = floor_lease(&pool, batch).await?;
                if ids.is_empty() {
                    return Ok::<_, sqlx::Error>(());
                }
                sqlx::query("DELETE FROM floor_jobs WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&pool)
                    .await?;
                done.fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE floor_jobs").execute(pool).await?;
    Ok(rate)
}

/// The same-work floor's table of finished rows: qron's history shape, with its id index.
async fn floor_history_table(pool: &PgPool) -> Res<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS floor_history (LIKE qron.jobs);
         CREATE INDEX IF NOT EXISTS floor_history_id ON floor_history (id);
         TRUNCATE floor_history;",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// `jobs` due rows in the floor's table (see [`floor_insert`]), analysed.
pub async fn floor_fill(pool: &PgPool, jobs: u64) -> Res<()> {
    floor_insert(pool, jobs).await?;
    sqlx::query("VACUUM ANALYZE floor_jobs")
        .execute(pool)
        .await?;
    Ok(())
}

/// The same-work floor (issue 31): `tasks` loops, each leasing `batch` rows with `SKIP
/// LOCKED` (as [`floor_process`]) and then moving them to an indexed history table in one
/// `DELETE … RETURNING` → `INSERT` statement, until `work` rows have moved (or none is left);
/// jobs/s.
pub async fn floor_moving(pool: &PgPool, batch: u64, tasks: usize, work: u64) -> Res<f64> {
    floor_history_table(pool).await?;
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < work {
                let ids = floor_lease(&pool, batch).await?;
                if ids.is_empty() {
                    break;
                }
                sqlx::query(
                    "WITH done AS (DELETE FROM floor_jobs WHERE id = ANY($1) RETURNING *)
                     INSERT INTO floor_history SELECT * FROM done",
                )
                .bind(&ids)
                .execute(&pool)
                .await?;
                done.fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    sqlx::raw_sql("DROP TABLE floor_jobs; DROP TABLE floor_history;")
        .execute(pool)
        .await?;
    Ok(rate)
}

/// The same-work floor's rate on a fresh database of `jobs` rows, all moved.
pub async fn floor_same_work(jobs: u64) -> Res<f64> {
    let (name, pool) = fresh("floor", 6).await?;
    floor_fill(&pool, jobs).await?;
    let rate = floor_moving(&pool, 1000, 4, jobs).await?;
    drop_db(&name, pool).await?;
    Ok(rate)
}

/// The floor's best processing rate (batches of 1,000, 4 loops), measured now on a fresh
/// database, for the ratios of a qron run.
pub async fn floor_best(jobs: u64) -> Res<f64> {
    let (name, pool) = fresh("floor", 6).await?;
    floor_insert(&pool, jobs).await?;
    let rate = floor_process(&pool, 1000, 4).await?;
    drop_db(&name, pool).await?;
    Ok(rate)
}

/// Enqueue: bulk through `schedule_many`, and one at a time from `callers` concurrent tasks.
pub async fn enqueue(jobs: u64, callers: usize, rounds: usize) -> Res<Vec<Figure>> {
    let (name, pool) = fresh("enqueue", callers as u32 + 2).await?;
    let client = Client::new(pool.clone());
    qron::init(client.clone());
    // Rounds of the floor's insert and qron's, one after the other on the same database: the
    // machine's noise (±20% between runs here) touches both alike, and medians damp it. Every
    // other round puts qron first, so that neither pays more often for what the other left
    // (dirty pages, WAL) than the other does.
    let (mut floors, mut bulks, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        let qron_first = round % 2 == 1;
        let mut bulk = 0.0;
        if qron_first {
            bulk = bulk_enqueue(&pool, jobs).await?;
        }
        let floor = floor_insert(&pool, jobs).await?;
        sqlx::query("DROP TABLE floor_jobs").execute(&pool).await?;
        if !qron_first {
            bulk = bulk_enqueue(&pool, jobs).await?;
        }
        floors.push(floor);
        bulks.push(bulk);
        ratios.push(100.0 * bulk / floor);
    }
    let (floor, bulk, ratio) = (median(floors), median(bulks), median(ratios));
    sqlx::query("TRUNCATE qron.jobs").execute(&pool).await?;
    let single_jobs = (jobs / 10).max(callers as u64);
    let per = single_jobs / callers as u64;
    let t = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..callers {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per {
                BenchNoop::schedule_with(&client, "@after 1 hour", ()).await?;
            }
            Ok::<_, qron::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let single = (per * callers as u64) as f64 / t.elapsed().as_secs_f64();
    drop_db(&name, pool).await?;
    Ok(vec![
        fig("floor insert (same run)", floor, "rows/s"),
        fig("enqueue bulk (schedule_many)", bulk, "jobs/s"),
        fig("enqueue bulk / floor insert", ratio, "%"),
        fig(
            format!("enqueue one at a time ({callers} callers)"),
            single,
            "jobs/s",
        ),
    ])
}

/// `jobs` jobs through one `schedule_many` into an empty table; jobs/s.
async fn bulk_enqueue(pool: &PgPool, jobs: u64) -> Res<f64> {
    let t = Instant::now();
    BenchNoop::schedule_many((0..jobs).map(|_| ("@after 1 hour", ()))).await?;
    let rate = jobs as f64 / t.elapsed().as_secs_f64();
    sqlx::query("TRUNCATE qron.jobs").execute(pool).await?;
    Ok(rate)
}

/// Throughput: `jobs` due no-op jobs processed by `workers` worker processes.
pub async fn throughput(jobs: u64, workers: usize, hold_xmin: bool) -> Res<Vec<Figure>> {
    throughput_with(jobs, workers, hold_xmin, None, qron::History::All).await
}

/// [`throughput`] at a given concurrency (in process only; default: the job's 1,000) and with
/// a given history policy (`All` or `Failed`).
pub async fn throughput_with(
    jobs: u64,
    workers: usize,
    hold_xmin: bool,
    concurrency: Option<usize>,
    history: qron::History,
) -> Res<Vec<Figure>> {
    let tag = if hold_xmin { "bloat" } else { "throughput" };
    let (name, pool) = fresh(tag, 8).await?;
    let client = Client::new(pool.clone());
    let executor = noop_executor(history);
    client
        .create_many((0..jobs).map(|_| NewJob::new(executor, "@after 0s")))
        .await?;
    sqlx::query("VACUUM ANALYZE qron.jobs")
        .execute(&pool)
        .await?;
    // A long transaction elsewhere holds the xmin horizon: vacuum cannot clean behind it.
    let mut holder = None;
    if hold_xmin {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT count(*) FROM qron.jobs")
            .execute(&mut *tx)
            .await?;
        holder = Some(tx);
    }
    let cpu0 = cpu_time();
    let t = Instant::now();
    if workers <= 1 {
        let mut builder = Worker::builder(client.clone()).executors([executor]);
        if let Some(n) = concurrency {
            builder = builder.concurrency(executor, n);
        }
        let worker = builder.build()?;
        let stopper = worker.stopper();
        let metrics = worker.metrics();
        let run = tokio::spawn(worker.run());
        wait_written(&metrics, jobs).await?;
        stopper.soft();
        run.await??;
    } else {
        let exe = std::env::current_exe()?;
        let url = server_url()?;
        let mut children = Vec::new();
        for _ in 0..workers {
            children.push(
                std::process::Command::new(&exe)
                    .args(["serve", "--url", &url, "--database", &name])
                    .spawn()?,
            );
        }
        wait_drained(&pool).await?;
        for mut c in children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
    let elapsed = t.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    let dead: i64 = sqlx::query_scalar(
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'qron' AND relname = 'jobs'",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or(0);
    drop(holder);
    drop_db(&name, pool).await?;
    let label = if hold_xmin {
        "throughput, xmin held".to_owned()
    } else if concurrency.is_some() || history != qron::History::All {
        format!(
            "throughput (1 worker, concurrency {}, history {})",
            concurrency.unwrap_or(1000),
            if history == qron::History::Failed {
                "failed"
            } else {
                "all"
            }
        )
    } else {
        format!(
            "throughput ({workers} worker process{})",
            if workers > 1 { "es" } else { "" }
        )
    };
    let mut out = vec![fig(
        label.clone(),
        jobs as f64 / elapsed.as_secs_f64(),
        "jobs/s",
    )];
    if workers <= 1 {
        out.push(fig(
            format!("{label}: worker CPU per job"),
            cpu.as_secs_f64() * 1e6 / jobs as f64,
            "µs",
        ));
    }
    out.push(fig(
        format!("{label}: dead tuples per job"),
        dead as f64 / jobs as f64,
        "tuples",
    ));
    Ok(out)
}

fn server_url() -> Res<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => Ok(u),
        _ => Ok(qron::embedded::EmbeddedPostgres::shared()?.url()),
    }
}

/// Runs one worker of `bench_noop` at `concurrency` on `pool` until it has stored `jobs`
/// outcomes, stops it and drops the run's database `name`; the jobs per second.
pub async fn noop_throughput(name: &str, pool: PgPool, concurrency: usize, jobs: u64) -> Res<f64> {
    let worker = qron::Worker::builder(qron::Client::new(pool.clone()))
        .executors(["bench_noop"])
        .concurrency("bench_noop", concurrency)
        .build()?;
    let elapsed = run_until_written(worker, jobs, jobs).await?;
    drop_db(name, pool).await?;
    Ok(jobs as f64 / elapsed.as_secs_f64())
}

/// Runs `worker` until it has stored `jobs` outcomes (the time that took), then until it has
/// stored `all` (at least `jobs`), and stops it.
pub async fn run_until_written(worker: qron::Worker, jobs: u64, all: u64) -> Res<Duration> {
    let (stopper, metrics) = (worker.stopper(), worker.metrics());
    let t = Instant::now();
    let run = tokio::spawn(worker.run());
    wait_written(&metrics, jobs).await?;
    let elapsed = t.elapsed();
    wait_written(&metrics, all).await?;
    stopper.soft();
    run.await??;
    Ok(elapsed)
}

/// Waits until `worker` has stored `jobs` outcomes. It reads the worker's own counter, so the
/// wait puts no load on the database the run is measuring.
pub async fn wait_written(metrics: &qron::Metrics, jobs: u64) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while metrics.written() < jobs {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {jobs} outcomes stored in 10 minutes",
                metrics.written()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Whether no job is left in `qron.jobs` (each one-off job leaves it in the statement that
/// stores its outcome). Both probes walk a small partial index, so asking costs the server
/// little while worker processes run.
async fn drained(pool: &PgPool) -> Res<bool> {
    let left: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM qron.jobs
                         WHERE status = 'ready' AND executor IN ('bench_noop', 'bench_blob'))
             OR EXISTS (SELECT 1 FROM qron.jobs WHERE lease_expires_at IS NOT NULL)",
    )
    .fetch_one(pool)
    .await?;
    Ok(!left)
}

/// Waits until [`drained`].
async fn wait_drained(pool: &PgPool) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !drained(pool).await? {
        if Instant::now() > deadline {
            return Err("jobs still left after 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A worker process for the multi-process scenarios: serves the bench jobs until SIGTERM.
pub async fn serve(
    url: &str,
    database: &str,
    executor: &str,
    concurrency: Option<usize>,
) -> Res<()> {
    let opts = PgConnectOptions::from_str(url)?.database(database);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await?;
    let mut builder = Worker::builder(Client::new(pool)).executors([executor]);
    if let Some(n) = concurrency {
        builder = builder.concurrency(executor, n);
    }
    let worker = builder.build()?;
    let stopper = worker.stopper();
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
        stopper.soft();
    });
    worker.run().await?;
    Ok(())
}

/// Latency: an idle worker (1 s poll), jobs enqueued at `rate` per second for `seconds`;
/// enqueue-to-start percentiles.
pub async fn latency(rate: u64, seconds: u64) -> Res<Vec<Figure>> {
    let (name, pool) = fresh("latency", 8).await?;
    let client = Client::new(pool.clone());
    lateness().lock().map_err(|_| "poisoned")?.clear();
    let worker = Worker::builder(client.clone())
        .executors(["bench_probe", "bench_retry"])
        .poll_interval(Duration::from_secs(1))
        .build()?;
    let stopper = worker.stopper();
    let metrics = worker.metrics();
    let run = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for _ in 0..total {
        tick.tick().await;
        BenchProbe::schedule_with(&client, "@after 0s", ()).await?;
    }
    wait_written(&metrics, total).await?;
    let mut out = lateness_figures(
        &format!("latency ({rate}/s, 1 s poll)"),
        &sorted_lateness()?,
    );

    // Jobs the worker itself makes due again: a recurring job's next slot, against the slot.
    lateness().lock().map_err(|_| "poisoned")?.clear();
    let recurring: Vec<NewJob> = (0..10)
        .map(|_| NewJob::new("bench_probe", "@every 100 milliseconds"))
        .collect();
    let ids = client.create_many(recurring).await?;
    tokio::time::sleep(Duration::from_secs(seconds.min(10))).await;
    for id in ids {
        client.delete(id).await?;
    }
    let l = sorted_lateness()?;
    out.push(fig(
        "recurring slot runs (10 × @every 100ms)".to_owned(),
        l.len() as f64,
        "runs",
    ));
    out.extend(lateness_figures("recurring slot to start (1 s poll)", &l));

    // A retry, against the end of its back-off.
    lateness().lock().map_err(|_| "poisoned")?.clear();
    let retries = (rate * seconds.min(10) / 4).max(1);
    let written = metrics.written();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(4.0 / rate as f64));
    for _ in 0..retries {
        tick.tick().await;
        BenchRetry::schedule_with(&client, "@after 0s", ()).await?;
    }
    // Two outcomes each: the failure, then the retry's success.
    wait_written(&metrics, written + 2 * retries).await?;
    let l = sorted_lateness()?;
    out.extend(lateness_figures("retry back-off to start (1 s poll)", &l));

    stopper.soft();
    run.await??;
    drop_db(&name, pool).await?;
    Ok(out)
}

/// Recurring: `jobs` `@every 1 second` jobs for `seconds`; lateness of each run against its slot.
pub async fn recurring(jobs: u64, seconds: u64) -> Res<Vec<Figure>> {
    let (name, pool) = fresh("recurring", 8).await?;
    let client = Client::new(pool.clone());
    lateness().lock().map_err(|_| "poisoned")?.clear();
    client
        .create_many((0..jobs).map(|_| NewJob::new("bench_probe", "@every 1 second")))
        .await?;
    // As many slots as jobs: the scenario measures how late the scheduler starts a run, not
    // how long a run waits behind a concurrency limit.
    let worker = Worker::builder(client.clone())
        .executors(["bench_probe"])
        .concurrency("bench_probe", usize::try_from(jobs)?)
        .build()?;
    let stopper = worker.stopper();
    let run = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stopper.soft();
    run.await??;
    let l = sorted_lateness()?;
    drop_db(&name, pool).await?;
    let mut out = vec![fig(
        format!("recurring runs ({jobs} jobs, {seconds} s)"),
        l.len() as f64,
        "runs",
    )];
    out.extend(lateness_figures("recurring lateness", &l));
    Ok(out)
}

/// Memory: a worker process serving `jobs` due jobs with concurrency `concurrency`; its peak
/// resident set.
pub async fn memory(jobs: u64, concurrency: usize, payload_bytes: usize) -> Res<Vec<Figure>> {
    let (name, pool) = fresh("memory", 4).await?;
    let client = Client::new(pool.clone());
    let executor = if payload_bytes == 0 {
        client
            .create_many((0..jobs).map(|_| NewJob::new("bench_noop", "@after 0s")))
            .await?;
        "bench_noop"
    } else {
        // A JSON string of `payload_bytes` bytes, quotes included; 100 jobs per transaction.
        let blob = serde_json::Value::String("x".repeat(payload_bytes.saturating_sub(2)));
        for from in (0..jobs).step_by(100) {
            let n = (jobs - from).min(100);
            client
                .create_many(
                    (0..n).map(|_| NewJob::new("bench_blob", "@after 0s").payload(blob.clone())),
                )
                .await?;
        }
        "bench_blob"
    };
    let exe = std::env::current_exe()?;
    let url = server_url()?;
    let child = std::process::Command::new(&exe)
        .args([
            "serve",
            "--url",
            &url,
            "--database",
            &name,
            "--executor",
            executor,
            "--concurrency",
            &concurrency.to_string(),
        ])
        .spawn()?;
    let pid = child.id();
    let mut peak_kib = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(peak_kib);
        }
        if drained(&pool).await? || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut child = child;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    drop_db(&name, pool).await?;
    Ok(vec![fig(
        if payload_bytes == 0 {
            format!("worker peak RSS ({jobs} jobs, concurrency {concurrency})")
        } else {
            format!(
                "worker peak RSS ({jobs} jobs of {payload_bytes} bytes, concurrency {concurrency})"
            )
        },
        peak_kib as f64 / 1024.0,
        "MiB",
    )])
}

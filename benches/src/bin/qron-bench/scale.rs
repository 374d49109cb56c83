//! Scale (issue 31): qron's cost as the backlog grows. For each number of jobs waiting, built on
//! the server with `generate_series` (not through the API): one worker at a concurrency works
//! through a share of them (its leases timed: p50 and p99), beside the same-work floor on the
//! same backlog; and one-job enqueues from concurrent callers, beside a raw single-row insert
//! loop on the same connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qron::{Client, NewJob, Worker};
use sqlx::PgPool;

use crate::Figure;
use crate::plot::{Series, line_chart};
use crate::queue::{Res, drop_db, fig, floor_fill, floor_moving, fresh, percentile, wait_written};

/// The executor of the backlog.
const EXECUTOR: &str = "bench_noop";

/// `n` due jobs of [`EXECUTOR`] written by the server, as qron writes them (one owner).
async fn backlog(pool: &PgPool, n: u64) -> Res<()> {
    sqlx::query(
        "INSERT INTO qron.jobs (executor, owner, expr, recurring, run_at, slot_at, payload, bytes)
         SELECT $2, 'default', '@after 0s', false, now() - interval '1 minute', now(),
                'null'::jsonb, 4
           FROM generate_series(1, $1)",
    )
    .bind(n as i64)
    .bind(EXECUTOR)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE qron.jobs")
        .execute(pool)
        .await?;
    Ok(())
}

/// For each of `sizes` jobs waiting: qron's throughput working through `work` of them (one
/// worker at `concurrency`) and its leases' p50 and p99, the same-work floor's on the same
/// backlog, and one-job enqueues from 16 callers for 3 s.
pub async fn scale(
    sizes: &[u64],
    work: u64,
    concurrency: usize,
    batch: Option<usize>,
) -> Res<Vec<Figure>> {
    let mut out = Vec::new();
    for &size in sizes {
        let work = work.min(size);
        let (name, pool) = fresh("scale", 20).await?;
        backlog(&pool, size).await?;
        let (rate, p50, p99) = throughput(&pool, concurrency, work, batch).await?;
        out.push(fig(
            format!("{size} waiting: throughput (concurrency {concurrency}, {work} jobs)"),
            rate,
            "jobs/s",
        ));
        out.push(fig(
            format!("{size} waiting: the worker's leases, p50"),
            p50,
            "ms",
        ));
        out.push(fig(
            format!("{size} waiting: the worker's leases, p99"),
            p99,
            "ms",
        ));
        let raw = raw_insert_rate(&pool, 16, Duration::from_secs(3)).await?;
        let one = enqueue_rate(&pool, 16, Duration::from_secs(3)).await?;
        out.push(fig(
            format!("{size} waiting: one-job enqueue, 16 callers"),
            one,
            "jobs/s",
        ));
        out.push(fig(
            format!("{size} waiting: raw single-row INSERT, 16 callers"),
            raw,
            "rows/s",
        ));
        out.push(fig(
            format!("{size} waiting: one-job enqueue / raw INSERT"),
            100.0 * one / raw,
            "%",
        ));
        drop_db(&name, pool).await?;
        // The same-work floor on a backlog of the same size.
        let (name, pool) = fresh("scale_floor", 8).await?;
        floor_fill(&pool, size).await?;
        let floor = floor_moving(&pool, 1000, 4, work).await?;
        out.push(fig(
            format!("{size} waiting: same-work floor (lease 1,000, move to history, 4 loops)"),
            floor,
            "jobs/s",
        ));
        out.push(fig(
            format!("{size} waiting: qron / same-work floor"),
            100.0 * rate / floor,
            "%",
        ));
        drop_db(&name, pool).await?;
    }
    Ok(out)
}

/// One worker at `concurrency` (with `batch` jobs per lease and per outcome batch at most, or
/// the default) until it has stored `work` outcomes: jobs/s, and its leases'
/// p50 and p99 in milliseconds (each from the statement's start to its answer).
async fn throughput(
    pool: &PgPool,
    concurrency: usize,
    work: u64,
    batch: Option<usize>,
) -> Res<(f64, f64, f64)> {
    let mut builder = Worker::builder(Client::new(pool.clone()))
        .executors([EXECUTOR])
        .concurrency(EXECUTOR, concurrency);
    if let Some(n) = batch {
        builder = builder.batch_size(n);
    }
    let worker = builder.build()?;
    let (stopper, metrics) = (worker.stopper(), worker.metrics());
    let run = tokio::spawn(worker.run());
    // Timed from the tenth outcome on: the worker's start (its first connections, the
    // limits' and pauses' look) is not the backlog's cost.
    let first = work / 10;
    wait_written(&metrics, first).await?;
    let t = Instant::now();
    wait_written(&metrics, work).await?;
    let elapsed = t.elapsed();
    stopper.soft();
    run.await??;
    let mut micros: Vec<i64> = metrics
        .lease_times()
        .iter()
        .map(|d| d.as_micros() as i64)
        .collect();
    micros.sort_unstable();
    Ok((
        (work - first) as f64 / elapsed.as_secs_f64(),
        percentile(&micros, 0.5) / 1000.0,
        percentile(&micros, 0.99) / 1000.0,
    ))
}

/// One-job enqueues (`Client::create`) from `callers` tasks for `span`; jobs/s.
async fn enqueue_rate(pool: &PgPool, callers: usize, span: Duration) -> Res<f64> {
    let client = Client::new(pool.clone());
    calls_per_second(callers, span, move || {
        let client = client.clone();
        async move {
            client
                .create(NewJob::new(EXECUTOR, "@after 1 hour"))
                .await?;
            Ok(())
        }
    })
    .await
}

/// A raw single-row `INSERT` of a job's row (what `Client::create` writes, without its checks,
/// its expression's parse or its read-back) from `callers` tasks on the same pool for `span`;
/// rows/s.
async fn raw_insert_rate(pool: &PgPool, callers: usize, span: Duration) -> Res<f64> {
    let pool = pool.clone();
    calls_per_second(callers, span, move || {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO qron.jobs
                        (executor, owner, expr, recurring, run_at, slot_at, payload, bytes,
                         scheduled)
                 VALUES ($1, 'default', '@after 1 hour', false, now() + interval '1 hour',
                         now() + interval '1 hour', 'null'::jsonb, 4, true)",
            )
            .bind(EXECUTOR)
            .execute(&pool)
            .await?;
            Ok(())
        }
    })
    .await
}

/// `call` made over and over by `callers` tasks for `span`: calls a second.
async fn calls_per_second<F, Fut>(callers: usize, span: Duration, call: F) -> Res<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Res<()>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + span;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (call, done) = (call.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                call().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64())
}

/// Charts of `figures` (of [`scale`], at `sizes`) as SVG: throughput, qron's and the same-work
/// floor's, and the worker's lease times, against the jobs waiting.
pub fn charts(figures: &[Figure], sizes: &[u64]) -> (String, String) {
    let find = |size: u64, what: &str| {
        let prefix = format!("{size} waiting: {what}");
        figures
            .iter()
            .find(|f| f.name.starts_with(&prefix))
            .map(|f| (size as f64, f.value))
    };
    let series = |label: &str, what: &str| Series {
        label: label.to_owned(),
        points: sizes.iter().filter_map(|&s| find(s, what)).collect(),
    };
    let throughput = line_chart(
        "Throughput as the backlog grows (one worker, concurrency 100)",
        "jobs waiting",
        "jobs/s",
        &[
            series("qron", "throughput"),
            series("same-work floor", "same-work floor"),
        ],
    );
    let leases = line_chart(
        "The worker's lease statement as the backlog grows",
        "jobs waiting",
        "ms",
        &[
            series("p50", "the worker's leases, p50"),
            series("p99", "the worker's leases, p99"),
        ],
    );
    (throughput, leases)
}

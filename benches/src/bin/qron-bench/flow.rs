//! Flow control: what priorities, unique jobs and limits cost. Throughput with every job at one
//! priority and with the ten priorities mixed (the lease's order is the same index either way),
//! and under a global limit that never binds; the share of a binding per-key limit's capacity
//! used; and enqueue with unique keys beside plain enqueue, then again with every key taken.

use std::time::{Duration, Instant};

use qron::{Client, ExecutorLimits, JobError, NewJob, Unique};

use crate::Figure;
use crate::queue::{Res, another_pool, drop_db, fig, fresh, noop_throughput};

/// A customer's job of `ms` milliseconds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sleep {
    customer: u64,
    ms: u64,
}

/// The time the sleeping jobs' handlers ran, in microseconds, summed.
static SLEPT_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sleeps as long as its payload says: a job that holds its place under a limit. (A timer
/// wakes it on the next millisecond's tick at the earliest: the time it ran is kept.)
#[qron::job(executor = "bench_sleep", concurrency = 1000)]
async fn bench_sleep(job: Sleep) -> Result<(), JobError> {
    std::hint::black_box(job.customer);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_millis(job.ms)).await;
    let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
    SLEPT_US.fetch_add(us, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Customers of the per-key limit's run, places per customer, and each job's sleep.
const CUSTOMERS: u64 = 50;
const PER_CUSTOMER: u32 = 2;
const SLEEP_MS: u64 = 10;

/// `jobs` due no-op jobs run by one worker at `concurrency`, at one priority and then at ten
/// mixed; then `enqueued` jobs enqueued in batches plain, unique, and unique again (every key
/// held: all duplicates).
pub async fn flow(jobs: u64, concurrency: usize, enqueued: u64) -> Res<Vec<Figure>> {
    let mut out = Vec::new();
    for (label, levels) in [("one priority", 1), ("ten priorities mixed", 10)] {
        let (name, pool) = fresh("flow", 8).await?;
        insert(&pool, jobs, levels).await?;
        let rate = noop_throughput(&name, pool, concurrency, jobs).await?;
        out.push(fig(
            format!("throughput, {label} (concurrency {concurrency})"),
            rate,
            "jobs/s",
        ));
    }
    // A global limit far above what one worker runs: what the limited lease costs when it
    // never binds.
    let (name, pool) = fresh("flow_limited", 8).await?;
    insert(&pool, jobs, 1).await?;
    Client::new(pool.clone())
        .set_executor_limits(
            "bench_noop",
            ExecutorLimits::new().concurrency(qron::MAX_EXECUTOR_LIMIT),
        )
        .await?;
    let rate = noop_throughput(&name, pool, concurrency, jobs).await?;
    out.push(fig(
        format!("throughput, a global limit that never binds (concurrency {concurrency})"),
        rate,
        "jobs/s",
    ));
    for at_random in [false, true] {
        out.extend(per_key_capacity(jobs.min(20_000), 1, at_random).await?);
        out.extend(per_key_capacity(jobs.min(20_000), 4, at_random).await?);
    }
    let (name, pool) = fresh("flow_enqueue", 4).await?;
    let client = Client::new(pool.clone());
    let job = |i: u64, unique: bool| {
        let job = NewJob::new("bench_noop", "@after 1 hour")
            .payload(serde_json::json!({ "customer": i, "note": "x" }));
        if unique {
            job.unique(Unique::by_keys(["customer"]))
        } else {
            job
        }
    };
    for (label, unique) in [
        ("plain", false),
        ("unique", true),
        ("unique, all duplicates", true),
    ] {
        let t = Instant::now();
        for chunk in (0..enqueued).collect::<Vec<_>>().chunks(10_000) {
            client
                .create_many_report(chunk.iter().map(|i| job(*i, unique)))
                .await?;
        }
        out.push(fig(
            format!("enqueue in batches of 10,000, {label}"),
            enqueued as f64 / t.elapsed().as_secs_f64(),
            "jobs/s",
        ));
    }
    drop_db(&name, pool).await?;
    Ok(out)
}

/// `jobs` due no-op jobs at `levels` priorities (from 5 down, with the default aging's step),
/// built on the server.
async fn insert(pool: &sqlx::PgPool, jobs: u64, levels: i64) -> Res<()> {
    let step = i64::try_from(qron::DEFAULT_PRIORITY_AGING.as_micros())? / 9;
    sqlx::query(
        "INSERT INTO qron.jobs (executor, expr, recurring, run_at, slot_at, priority,
                                priority_delay)
         SELECT 'bench_noop', '@after 0s', false, now(), now(), p, p * $3
           FROM (SELECT (5 + g) % $2 + CASE WHEN $2 = 1 THEN 5 ELSE 0 END AS p
                   FROM generate_series(1, $1) g) s",
    )
    .bind(i64::try_from(jobs)?)
    .bind(levels)
    .bind(step)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE qron.jobs")
        .execute(pool)
        .await?;
    Ok(())
}

/// `jobs` jobs of 5 to 15 ms (10 on average), of 50 customers, under a limit of 2 per customer,
/// run by `workers` workers (each with a pool of its own, as processes would have) with twice as
/// many slots in all as places: the share of the limit's capacity (100 places over the run, from
/// its first lease to its last outcome) used, three ways: by the jobs' nominal times (100 places
/// of 10 ms each, 10,000 jobs a second), by the time their handlers ran (which a timer's tick
/// makes longer than nominal), and by the places held in the rows, sampled every 10 ms while
/// jobs wait.
async fn per_key_capacity(jobs: u64, workers: usize, at_random: bool) -> Res<Vec<Figure>> {
    let (name, pool) = fresh("flow_per_key", 8).await?;
    // The customers in turn (job g is customer g % 50), or at random (a hash of g), as an
    // application's are: then each customer's jobs lie unevenly in the queue, and the
    // customer with the most work bounds what any order could use.
    sqlx::query(
        "INSERT INTO qron.jobs (executor, expr, recurring, run_at, slot_at, payload, bytes)
         SELECT 'bench_sleep', '@after 0s', false, now(), now(), p, length(p::text)
           FROM (SELECT jsonb_build_object(
                            'customer',
                            CASE WHEN $4 THEN (hashint8(g) & 2147483647) % $2 ELSE g % $2 END,
                            'ms', $3::bigint / 2 + (g * 7919) % ($3::bigint + 1)) AS p
                   FROM generate_series(1, $1) g) s",
    )
    .bind(i64::try_from(jobs)?)
    .bind(i64::try_from(CUSTOMERS)?)
    .bind(i64::try_from(SLEEP_MS)?)
    .bind(at_random)
    .execute(&pool)
    .await?;
    let bound: f64 = sqlx::query_scalar(
        "SELECT (avg(w) / max(w))::float8 FROM (
             SELECT sum((payload ->> 'ms')::bigint) AS w FROM qron.jobs
              GROUP BY payload ->> 'customer') c",
    )
    .fetch_one(&pool)
    .await?;
    // The limit first: a new partition keys the waiting jobs (their rows written anew); the
    // table is then compacted, as the queue of an application that set its limit before
    // enqueueing is.
    Client::new(pool.clone())
        .set_executor_limits(
            "bench_sleep",
            ExecutorLimits::new().per_field("customer", PER_CUSTOMER),
        )
        .await?;
    sqlx::query("VACUUM (FULL, ANALYZE) qron.jobs")
        .execute(&pool)
        .await?;
    let places = CUSTOMERS as f64 * f64::from(PER_CUSTOMER);
    let mut fleet = Vec::new();
    for _ in 0..workers {
        let own = another_pool(&name, 8).await?;
        let worker = qron::Worker::builder(Client::new(own.clone()))
            .executors(["bench_sleep"])
            .concurrency("bench_sleep", 2 * places as usize / workers)
            .build()?;
        fleet.push((worker, own));
    }
    SLEPT_US.store(0, std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    let mut runs = Vec::new();
    let mut handles = Vec::new();
    for (worker, own) in fleet {
        handles.push((worker.stopper(), worker.metrics()));
        runs.push((tokio::spawn(worker.run()), own));
    }
    let sampler = tokio::spawn(held_while_waiting(pool.clone()));
    let deadline = Instant::now() + Duration::from_secs(600);
    while handles.iter().map(|(_, m)| m.written()).sum::<u64>() < jobs {
        if Instant::now() > deadline {
            return Err("the per-key run did not finish in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    for (stopper, _) in &handles {
        stopper.soft();
    }
    for (run, own) in runs {
        run.await??;
        own.close().await;
    }
    let held = sampler.await??;
    drop_db(&name, pool).await?;
    let capacity = places * 1000.0 / SLEEP_MS as f64;
    let slept = SLEPT_US.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
    let who = if workers == 1 {
        "one worker".to_owned()
    } else {
        format!("{workers} workers")
    };
    let order = if at_random { "at random" } else { "in turn" };
    let what = format!(
        "a binding limit of {PER_CUSTOMER} per customer ({CUSTOMERS} customers {order}, jobs \
         of {SLEEP_MS} ms on average, {who}): its capacity used"
    );
    Ok(vec![
        fig(
            format!("{what}, at most (the busiest customer's work against the average)"),
            100.0 * bound,
            "%",
        ),
        fig(
            format!("{what}, by the jobs' nominal times"),
            100.0 * (jobs as f64 / elapsed) / capacity,
            "%",
        ),
        fig(
            format!("{what}, by the time the handlers ran"),
            100.0 * slept / (places * elapsed),
            "%",
        ),
        fig(
            format!("{what}, by the places held in the rows while jobs wait"),
            100.0 * held / places,
            "%",
        ),
    ])
}

/// The places the sleeping jobs hold (a running job and its successor hold one), on average
/// over samples every 10 ms taken while some of them wait, until none is left.
async fn held_while_waiting(pool: sqlx::PgPool) -> Res<f64> {
    let (mut sum, mut samples) = (0i64, 0i64);
    loop {
        let (held, waiting): (i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FILTER (WHERE place IS NULL)
                            + count(DISTINCT place) FILTER (WHERE place IS NOT NULL)
                       FROM qron.jobs
                      WHERE executor = 'bench_sleep' AND limit_key IS NOT NULL
                        AND lease_expires_at > now()),
                    EXISTS (SELECT 1 FROM qron.jobs
                             WHERE executor = 'bench_sleep' AND status = 'ready')",
        )
        .fetch_one(&pool)
        .await?;
        if !waiting {
            break;
        }
        sum += held;
        samples += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(sum as f64 / samples.max(1) as f64)
}

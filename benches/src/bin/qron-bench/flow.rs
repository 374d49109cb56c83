//! Flow control: what priorities and unique jobs cost. Throughput with every job at one
//! priority and with the ten priorities mixed (the lease's order is the same index either way),
//! and enqueue with unique keys beside plain enqueue, then again with every key taken.

use std::time::Instant;

use qron::{Client, NewJob, Unique};

use crate::Figure;
use crate::queue::{Res, drop_db, fig, fresh, noop_throughput};

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

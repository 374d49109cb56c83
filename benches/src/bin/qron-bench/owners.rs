//! Owners: throughput with the due jobs spread over many owners (each lease shares itself
//! between them), and what a pause and a resume cost with a large backlog.

use std::time::Instant;

use qron::Client;

use crate::Figure;
use crate::queue::{Res, drop_db, fig, fresh, noop_throughput};

/// `jobs` due no-op jobs spread evenly over each count of `owners`, beside `idle` other owners
/// with one job each due in an hour (a tenant's daily job), run by one worker at
/// `concurrency`; then a pause and a resume of one owner's executor with `backlog` ready jobs.
pub async fn owners(
    jobs: u64,
    owners: &[u64],
    idle: u64,
    concurrency: usize,
    backlog: u64,
) -> Res<Vec<Figure>> {
    let mut out = Vec::new();
    for &k in owners {
        let (name, pool) = fresh("owners", 8).await?;
        insert(&pool, jobs, k).await?;
        if idle > 0 {
            // Through the client, as an application writes them.
            let client = Client::new(pool.clone());
            for i in 0..idle {
                client
                    .owner(format!("idle-{i}"))
                    .create(qron::NewJob::new("bench_noop", "@after 1 hour"))
                    .await?;
            }
            sqlx::query("VACUUM ANALYZE qron.jobs")
                .execute(&pool)
                .await?;
        }
        let rate = noop_throughput(&name, pool, concurrency, jobs).await?;
        out.push(fig(
            format!("throughput, {k} owners, {idle} idle (concurrency {concurrency})"),
            rate,
            "jobs/s",
        ));
    }
    let (name, pool) = fresh("pause", 4).await?;
    insert(&pool, backlog, 1).await?;
    let client = Client::new(pool.clone()).owner("owner-0");
    let t = Instant::now();
    client.pause_executor("bench_noop").await?;
    out.push(fig(
        format!("pause with {backlog} ready jobs"),
        t.elapsed().as_secs_f64() * 1e3,
        "ms",
    ));
    let t = Instant::now();
    client.resume_executor("bench_noop").await?;
    out.push(fig(
        format!("resume with {backlog} ready jobs"),
        t.elapsed().as_secs_f64() * 1e3,
        "ms",
    ));
    drop_db(&name, pool).await?;
    Ok(out)
}

/// `jobs` due no-op jobs, owned in turn by `owners` owners, built on the server.
async fn insert(pool: &sqlx::PgPool, jobs: u64, owners: u64) -> Res<()> {
    sqlx::query(
        "INSERT INTO qron.jobs (executor, owner, expr, recurring, run_at, slot_at)
         SELECT 'bench_noop', 'owner-' || (g % $2), '@after 0s', false, now(), now()
           FROM generate_series(1, $1) g",
    )
    .bind(i64::try_from(jobs)?)
    .bind(i64::try_from(owners.max(1))?)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE qron.jobs")
        .execute(pool)
        .await?;
    Ok(())
}

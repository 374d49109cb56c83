//! Scenario 7, the soak (not in the default run): `QRON_SOAK_SECONDS` (default 600) of mixed
//! work — one-off jobs created every second (no-ops, 5–50 ms, and some that fail their first
//! attempt), recurring jobs — under a fault every 20 s in turn: a worker killed, the database
//! restarted as after a crash, every connection killed. Every 10 s it prints what was
//! enqueued, executed, run twice and lost, and the workers' memory. Run it with
//!
//! ```sh
//! cargo test --release -p qron-tests --test reliability -- --ignored soak --nocapture
//! ```

use std::time::{Duration, Instant};

use qron::Client;
use qron_tests::Rng;
use qron_tests::fault::{Poison, Report, fault_job, fault_job_on};
use serde_json::json;
use sqlx::PgPool;

use crate::{ONE_AT_A_TIME, durable_fleet, durable_server, poll_until};

/// Resident memory of a process, in KiB (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn one_offs_left(pool: &PgPool) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM qron.jobs WHERE NOT recurring)")
        .fetch_one(pool)
        .await
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 10-minute soak: run it on purpose (see the module's doc)"]
async fn soak() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let seconds: u64 = std::env::var("QRON_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let (pg, pool) = durable_server().await;
    let c = Client::new(pool.clone());
    c.create_many((0..50).map(|_| fault_job_on("@every 2 seconds", 0)))
        .await
        .unwrap();
    let mut fleet = durable_fleet(&pg);
    for _ in 0..3 {
        fleet.spawn();
    }
    let mut rng = Rng::new(157);
    let mut ids: Vec<i64> = Vec::new();
    let mut first_rss: Option<u64> = None;
    let mut last_rss = 0;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for second in 0..seconds {
        tick.tick().await;
        let batch = (0..200).map(|i| match i % 10 {
            0 => fault_job(0).payload(json!({ "sleep_ms": 0, "poison": Poison::Flaky })),
            1..=4 => fault_job(5 + rng.below(46)),
            _ => fault_job(0),
        });
        // The database may be restarting: a batch that cannot be created is not counted.
        if let Ok(created) = c.create_many(batch).await {
            ids.extend(created);
        }
        if second % 20 == 19 {
            match (second / 20) % 3 {
                0 => {
                    fleet.kill_one(&mut rng);
                    fleet.spawn();
                }
                1 => {
                    let p = pg.clone();
                    let _ = tokio::task::spawn_blocking(move || p.restart_immediate()).await;
                }
                _ => {
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    )
                    .execute(&pool)
                    .await;
                }
            }
        }
        if second % 10 == 9 {
            let rss: u64 = fleet
                .children
                .iter()
                .filter_map(|c| rss_kib(c.id()))
                .max()
                .unwrap_or(0);
            first_rss.get_or_insert(rss);
            last_rss = rss;
            let executed: i64 = sqlx::query_scalar("SELECT count(*) FROM public.executions")
                .fetch_one(&pool)
                .await
                .unwrap_or(-1);
            // One-off jobs only (recurring ones run every 2 s); a tenth of them fail their
            // first attempt on purpose.
            let twice: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT job_id FROM public.executions
                   WHERE job_id = ANY($1) GROUP BY job_id HAVING count(*) > 1) d",
            )
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
            let lost: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM unnest($1::bigint[]) AS u(id)
                  WHERE NOT EXISTS (SELECT 1 FROM qron.jobs j WHERE j.id = u.id)
                    AND NOT EXISTS (SELECT 1 FROM qron.jobs_history h WHERE h.id = u.id)",
            )
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
            eprintln!(
                "soak {:>4}s: {} enqueued, {executed} executions, {twice} one-off jobs run twice \
                 (a tenth fail once on purpose), {lost} lost, largest worker {} MiB",
                started.elapsed().as_secs(),
                ids.len(),
                rss / 1024
            );
        }
    }
    assert!(
        poll_until(Duration::from_secs(60), || async {
            !one_offs_left(&pool).await
        })
        .await,
        "one-off jobs left a minute after the end"
    );
    fleet.stop();
    let report = Report::of(&pool, &ids).await;
    eprintln!("soak: {report:?}");
    report.assert_each_job_once_except_killed(&fleet.killed);
    let first = first_rss.unwrap_or(0);
    assert!(
        last_rss <= first.max(1) * 3,
        "worker memory grew from {first} KiB to {last_rss} KiB"
    );
    pool.close().await;
}

//! Scenario 6, tenants: one owner's jobs carry the largest values the API accepts (a 1 MiB
//! payload, meta nested to the depth limit, the longest timeout, the most attempts) in the
//! same queue as another owner's ordinary jobs. Every job of both runs once; how late the
//! ordinary ones started is reported, and bounded. (That an owner cannot reach another's jobs
//! through any client operation is `it::client::owners_never_reach_each_others_jobs`; that
//! values which would break a shared statement are refused where they enter is
//! `it::isolation`.)

use std::time::Duration;

use qron::{Client, MAX_JSON_DEPTH, MAX_TIMEOUT};
use qron_tests::Rng;
use qron_tests::fault::{Fleet, Report, fault_job};
use serde_json::{Value, json};

use crate::{drained, poll_until, scaled, scenario};

fn nested(depth: usize) -> Value {
    (1..depth).fold(json!(0), |v, _| json!([v]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owners_largest_jobs_do_not_hold_up_another_owners() {
    let (_turn, db) = scenario().await;
    let c = Client::new(db.pool.clone());
    // The largest payload the client accepts by default: 1 MiB of JSON, less the rest of it.
    let pad = "x".repeat(qron::DEFAULT_MAX_JSON_BYTES - 64);
    let heavy = c
        .owner("heavy")
        .create_many((0..20).map(|_| {
            fault_job(0)
                .payload(json!({ "sleep_ms": 0, "pad": pad }))
                .meta(json!({ "deep": nested(MAX_JSON_DEPTH - 1) }))
                .timeout(MAX_TIMEOUT)
                .max_attempts(1000)
        }))
        .await
        .unwrap();
    let mut rng = Rng::new(156);
    let light = c
        .owner("light")
        .create_many((0..scaled(1_000)).map(|_| fault_job(rng.below(5))))
        .await
        .unwrap();
    let mut fleet = Fleet::new(&db, env!("CARGO_BIN_EXE_qron-test-worker"), &[]).await;
    fleet.spawn();
    fleet.spawn();
    assert!(
        poll_until(Duration::from_secs(60), || drained(&db.pool)).await,
        "not every job finished: {:?}",
        Report::of(&db.pool, &light).await
    );
    fleet.stop();
    let all: Vec<i64> = heavy.iter().chain(light.iter()).copied().collect();
    let report = Report::of(&db.pool, &all).await;
    // How late the light owner's jobs started against their run time, in milliseconds.
    let (p50, p99, max): (f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY late),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY late), max(late)
           FROM (SELECT extract(epoch FROM e.started_at - h.run_at)::float8 * 1000 AS late
                   FROM public.executions e JOIN qron.jobs_history h ON h.id = e.job_id
                  WHERE h.owner = 'light') l",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    eprintln!(
        "tenants: {} heavy and {} light jobs, {} finished; light jobs started {p50:.0} ms late \
         (p50), {p99:.0} ms (p99), {max:.0} ms (max)",
        heavy.len(),
        light.len(),
        report.finished
    );
    report.assert_each_job_once_except_killed(&Default::default());
    assert!(report.ran_twice.is_empty(), "{report:?}");
    // The light jobs were all due at once: the last of them waits for the others, not for
    // the heavy owner's. A bound generous for this machine, far under a heavy job's lease.
    assert!(max < 15_000.0, "a light job started {max:.0} ms late");
}

//! A fan-in across a crash: two worker processes run a batch of 10,000 jobs (`qron::Batch`:
//! jobs and edges written with `COPY`) that one callback waits for, and one of them is killed
//! with SIGKILL half-way. The callback runs exactly once, after the
//! last of them ended, and counts how they ended right.

use std::time::{Duration, Instant};

use qron::{Batch, Client};
use qron_tests::Rng;
use qron_tests::fault::{Fleet, Report, TALLIES_TABLE, fault_job};

use crate::{drained, poll_until, scaled, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_runs_once_after_the_last_job_of_its_fan_in_though_a_worker_was_killed() {
    let (_turn, db) = scenario().await;
    sqlx::query(TALLIES_TABLE).execute(&db.pool).await.unwrap();
    let c = Client::new(db.pool.clone());
    let n = scaled(10_000);
    // One job in a hundred fails for good; the others take 0–4 ms.
    let mut rng = Rng::new(32);
    let jobs = (0..n).map(|i| {
        let job = fault_job(rng.below(5));
        if i % 100 == 7 {
            job.payload(serde_json::json!({ "sleep_ms": 0, "poison": "fail" }))
        } else {
            job
        }
    });
    let mut batch = Batch::new();
    for job in jobs {
        batch.add_job(job);
    }
    batch.on_finish_job(
        fault_job(0).payload(serde_json::json!({ "sleep_ms": 0, "poison": "tally" })),
    );
    let created = batch.create(&c).await.unwrap();
    let (ids, callback) = (created.jobs, created.callback);
    let failing = (0..n).filter(|i| i % 100 == 7).count() as i64;
    let mut fleet = Fleet::new(
        &db,
        env!("CARGO_BIN_EXE_qron-test-worker"),
        &[("QRON_TEST_RESCUE_MS", "200")],
    )
    .await;
    fleet.spawn();
    fleet.spawn();
    // Half-way, one of them dies.
    let executions = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM public.executions")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let half = i64::try_from(n / 2).unwrap();
    assert!(
        poll_until(Duration::from_secs(60), || async {
            executions().await >= half
        })
        .await,
        "half the jobs did not run within a minute"
    );
    let killed = fleet.kill_one(&mut rng);
    fleet.spawn();
    let started = Instant::now();
    let done = poll_until(Duration::from_secs(120), || async {
        drained(&db.pool).await
            && sqlx::query_scalar::<_, bool>(
                "SELECT NOT EXISTS (SELECT 1 FROM qron.jobs WHERE id = $1)",
            )
            .bind(callback)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    })
    .await;
    fleet.stop();
    let report = Report::of(&db.pool, &ids).await;
    assert!(
        done,
        "not done {:?} after the kill: {report:?}",
        started.elapsed()
    );
    eprintln!(
        "fan-in: {n} jobs, killed {killed:?} half-way; {} finished, {} lost, {} ran twice",
        report.finished,
        report.lost.len(),
        report.ran_twice.len()
    );
    assert!(report.lost.is_empty(), "{report:?}");
    // The callback ran once, after every job it waited for had ended, and counted them.
    let tallies: Vec<(i64, i64)> =
        sqlx::query_as("SELECT succeeded, failed FROM public.tallies WHERE job_id = $1")
            .bind(callback)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let ended = c.get(callback).await;
    assert_eq!(
        tallies,
        [(i64::try_from(n).unwrap() - failing, failing)],
        "the callback: {ended:?}"
    );
    let late: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM qron.jobs_history h, public.tallies t
          WHERE h.id = ANY($1) AND h.finished_at > t.at",
    )
    .bind(&ids)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(late, 0, "jobs ended after the callback ran");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM public.executions WHERE job_id = $1")
        .bind(callback)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 1);
}

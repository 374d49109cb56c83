//! Scenario 3, clock skew: a worker process whose clock runs two minutes ahead (libfaketime,
//! from Debian's `faketime` package) beside a worker on the right time. Every time the workers
//! act on is the database's, so the skewed one runs no job early and takes over no lease the
//! other still holds.

use std::time::Duration;

use qron::Client;
use qron_tests::fault::{Fleet, Report, faketime_env, fault_job_on};
use qron_tests::{TestDb, count};

use crate::{drained, poll_until, scenario};

/// How early an execution may be recorded against its run time: the worker's estimate of the
/// database's clock is good to within a round trip.
const TOLERANCE_MS: f64 = 5.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_two_minutes_ahead_runs_nothing_early_and_takes_over_no_held_lease() {
    let Some(skew) = faketime_env("+120s") else {
        panic!("this scenario needs libfaketime: install Debian's `faketime` package");
    };
    let (_turn, db) = scenario().await;
    // Long jobs for the worker on time: leases that must not be taken over.
    let (long, mut fleet) = held_by_a_worker_on_time(&db, 3000).await;
    let skew: Vec<(&str, &str)> = skew.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let skewed = fleet.spawn_with(&skew);
    // Jobs due over the next seconds, for the skewed worker (the other one is busy).
    let later = due_soon_then_drained(&db, &mut fleet).await;

    let early = started_early(&db).await;
    let by_skewed = count_by(&db, skewed).await;
    let ids: Vec<i64> = long.iter().chain(later.iter()).copied().collect();
    let report = Report::of(&db.pool, &ids).await;
    eprintln!(
        "skew: {} jobs, {by_skewed} run by the worker two minutes ahead, {} early, {} ran twice",
        ids.len(),
        early.len(),
        report.ran_twice.len()
    );
    assert!(
        by_skewed > 0,
        "the skewed worker ran nothing: the scenario proves nothing"
    );
    assert!(
        early.is_empty(),
        "jobs started before their run time (job, ms early): {early:?}"
    );
    // Nothing ran twice: no lease of the worker on time was taken over.
    report.assert_each_job_once_except_killed(&Default::default());
    assert!(report.ran_twice.is_empty(), "{report:?}");
}

/// The executions recorded by process `pid`.
/// 60 jobs due over the next seconds (500 ms to 3.45 s from now), run until every job finished;
/// then the fleet stops. Their ids.
pub(crate) async fn due_soon_then_drained(db: &TestDb, fleet: &mut Fleet) -> Vec<i64> {
    let later = Client::new(db.pool.clone())
        .create_many(
            (0..60).map(|i| fault_job_on(&format!("@after {} milliseconds", 500 + 50 * i), 0)),
        )
        .await
        .unwrap();
    assert!(
        poll_until(Duration::from_secs(30), || drained(&db.pool)).await,
        "not every job finished"
    );
    fleet.stop();
    later
}

pub(crate) async fn count_by(db: &TestDb, pid: u32) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM public.executions WHERE pid = $1")
        .bind(i32::try_from(pid).unwrap())
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// 20 jobs of `ms` milliseconds (a 6 s limit), started by a worker process on the right time
/// (20 slots, rescuing every 100 ms): leases another worker must not take over. Their ids, and
/// the fleet the test adds its other worker to.
pub(crate) async fn held_by_a_worker_on_time(db: &TestDb, ms: u64) -> (Vec<i64>, Fleet) {
    let long = Client::new(db.pool.clone())
        .create_many((0..20).map(|_| fault_job_on("@after 0s", ms).timeout(Duration::from_secs(6))))
        .await
        .unwrap();
    let mut fleet = Fleet::new(
        db,
        env!("CARGO_BIN_EXE_qron-test-worker"),
        &[
            ("QRON_TEST_CONCURRENCY", "20"),
            ("QRON_TEST_RESCUE_MS", "100"),
        ],
    )
    .await;
    fleet.spawn();
    assert!(
        poll_until(Duration::from_secs(20), || async {
            count(&db.pool, "SELECT count(*) FROM public.executions").await == 20
        })
        .await,
        "the worker on time did not start its jobs"
    );
    (long, fleet)
}

/// The executions that started before their job's run time, beyond [`TOLERANCE_MS`]: (job,
/// milliseconds early).
pub(crate) async fn started_early(db: &TestDb) -> Vec<(i64, f64)> {
    sqlx::query_as(
        "SELECT e.job_id, extract(epoch FROM h.run_at - e.started_at)::float8 * 1000
           FROM public.executions e JOIN qron.jobs_history h ON h.id = e.job_id
          WHERE e.started_at < h.run_at - make_interval(secs => $1 / 1000)",
    )
    .bind(TOLERANCE_MS)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

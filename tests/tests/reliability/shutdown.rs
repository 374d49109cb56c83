//! Scenario 4, shutdown: SIGTERM to a worker process with 500 handlers in flight. With the
//! database up, every outcome is written before the process exits; with the database
//! unreachable, the process still exits within its grace period and flush timeout, and the jobs
//! come back when their leases run out.

use std::time::{Duration, Instant};

use qron::Client;
use qron_tests::TestDb;
use qron_tests::fault::{Fleet, Report, fault_job};
use sqlx::Connection as _;

use crate::{drained, executions_reach, poll_until, scenario};

const IN_FLIGHT: usize = 500;
const GRACE: Duration = Duration::from_secs(5);
const FLUSH: Duration = Duration::from_secs(2);

/// A database with `IN_FLIGHT` one-second jobs, and a worker process running all of them.
async fn all_in_flight() -> (
    tokio::sync::MutexGuard<'static, ()>,
    TestDb,
    Vec<i64>,
    Fleet,
) {
    let (turn, db) = scenario().await;
    let ids = Client::new(db.pool.clone())
        .create_many((0..IN_FLIGHT).map(|_| fault_job(1000)))
        .await
        .unwrap();
    let mut fleet = Fleet::new(
        &db,
        env!("CARGO_BIN_EXE_qron-test-worker"),
        &[
            ("QRON_TEST_CONCURRENCY", "500"),
            ("QRON_TEST_GRACE_MS", "5000"),
            ("QRON_TEST_FLUSH_MS", "2000"),
            ("QRON_TEST_RESCUE_MS", "200"),
        ],
    )
    .await;
    fleet.spawn();
    assert!(
        executions_reach(&db.pool, IN_FLIGHT as i64, Duration::from_secs(30)).await,
        "not every handler started"
    );
    (turn, db, ids, fleet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_with_the_database_up_writes_every_outcome() {
    let (_turn, db, ids, mut fleet) = all_in_flight().await;
    let t = Instant::now();
    fleet.stop();
    let took = t.elapsed();
    // Right after the exit, with nothing else running: every outcome is there.
    let report = Report::of(&db.pool, &ids).await;
    eprintln!("shutdown (database up): exited {took:?} after SIGTERM; {report:?}");
    assert!(took < GRACE, "the worker took {took:?} to exit");
    report.assert_each_job_once_except_killed(&fleet.killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_with_the_database_down_exits_in_time_and_loses_nothing() {
    let (_turn, db, ids, mut fleet) = all_in_flight().await;
    // The database becomes unreachable: no new connection, and the open ones end.
    let mut admin = sqlx::PgConnection::connect_with(&qron_tests::admin_options().await)
        .await
        .unwrap();
    let allow = |on: bool| {
        sqlx::AssertSqlSafe(format!(
            r#"ALTER DATABASE "{}" WITH ALLOW_CONNECTIONS {on}"#,
            db.name
        ))
    };
    sqlx::query(allow(false)).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db.name)
        .execute(&mut admin)
        .await
        .unwrap();
    let stopped: Vec<u32> = fleet.children.iter().map(std::process::Child::id).collect();
    let t = Instant::now();
    fleet.stop();
    let took = t.elapsed();
    sqlx::query(allow(true)).execute(&mut admin).await.unwrap();
    assert!(
        took < GRACE + FLUSH,
        "the worker took {took:?} to exit with the database down"
    );
    // The outcomes it could not write come back by lease expiry, to a new worker.
    fleet.spawn();
    assert!(
        poll_until(Duration::from_secs(30), || drained(&db.pool)).await,
        "the jobs did not come back"
    );
    fleet.stop();
    let report = Report::of(&db.pool, &ids).await;
    eprintln!("shutdown (database down): exited {took:?} after SIGTERM; {report:?}");
    // The stopped process's executions count as those of a process that died: their outcomes
    // were lost with the connection.
    let mut lost_outcomes = fleet.killed.clone();
    lost_outcomes.extend(stopped);
    report.assert_each_job_once_except_killed(&lost_outcomes);
}

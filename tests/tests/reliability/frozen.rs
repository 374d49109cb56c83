//! Scenario 3, a frozen worker: a worker process stopped with SIGSTOP for longer than its
//! leases, then resumed. Another worker takes its jobs only once their leases have run out, and
//! the frozen worker's late outcomes change nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use qron::Client;
use qron_tests::count;
use qron_tests::fault::{Fleet, Report, fault_job};

use crate::{drained, executions_reach, poll_until, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_loses_its_leases_only_when_they_expire_and_its_late_outcomes_change_nothing()
 {
    let (_turn, db) = scenario().await;
    let ids = Client::new(db.pool.clone())
        .create_many((0..200).map(|_| fault_job(500)))
        .await
        .unwrap();
    let mut fleet = Fleet::new(
        &db,
        env!("CARGO_BIN_EXE_qron-test-worker"),
        &[
            ("QRON_TEST_CONCURRENCY", "50"),
            ("QRON_TEST_RESCUE_MS", "200"),
        ],
    )
    .await;
    let frozen = fleet.spawn();
    assert!(
        executions_reach(&db.pool, 50, Duration::from_secs(20)).await,
        "the first worker did not start its jobs"
    );
    let pid = Pid::from_raw(i32::try_from(frozen).unwrap());
    kill(pid, Signal::SIGSTOP).unwrap();
    // What it holds as it freezes, and until when.
    let held: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, lease_expires_at FROM qron.jobs
          WHERE lease_owner LIKE '%:' || $1 || ':%' AND lease_expires_at IS NOT NULL",
    )
    .bind(frozen.to_string())
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!held.is_empty(), "the frozen worker held no lease");
    let last_expiry = held.iter().map(|h| h.1).max().unwrap();

    // Another worker serves the rest, and the frozen one's jobs once their leases expire.
    fleet.spawn();
    assert!(
        poll_until(Duration::from_secs(30), || drained(&db.pool)).await,
        "the frozen worker's jobs did not come back"
    );
    // Frozen past its leases (and past the others' completion): then it wakes and finishes.
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(now > last_expiry, "the run ended before the leases expired");
    kill(pid, Signal::SIGCONT).unwrap();
    fleet.stop();

    // No held lease was taken over: every later execution of a held job started after the
    // lease it interrupted had expired.
    let early: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT e.job_id, e.started_at, h.expiry
           FROM public.executions e
           JOIN unnest($1::bigint[], $2::timestamptz[]) AS h(id, expiry) ON h.id = e.job_id
          WHERE e.pid <> $3 AND e.started_at < h.expiry",
    )
    .bind(held.iter().map(|h| h.0).collect::<Vec<_>>())
    .bind(held.iter().map(|h| h.1).collect::<Vec<_>>())
    .bind(i32::try_from(frozen).unwrap())
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        early.is_empty(),
        "held leases taken over before they expired (job, started, expiry): {early:?}"
    );
    // Late outcomes changed nothing: each job finished once, by the worker that took it over.
    let report = Report::of(&db.pool, &ids).await;
    eprintln!(
        "frozen: {} leases held at the freeze, {} enqueued, {} finished, {} ran twice",
        held.len(),
        report.enqueued,
        report.finished,
        report.ran_twice.len()
    );
    let frozen_set = std::collections::BTreeSet::from([frozen]);
    report.assert_each_job_once_except_killed(&frozen_set);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM (SELECT id FROM qron.jobs_history GROUP BY id HAVING count(*) > 1) d"
        )
        .await,
        0,
        "a job finished twice"
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM qron.jobs").await, 0);
}

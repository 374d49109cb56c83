//! One clock (issue 13, defect 5): due times, leases and rescue follow the database server's
//! clock, whatever the clock of the host a worker or client runs on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use qron::{Client, JobStatus, NewJob, Worker};
use qron_tests::jobs::{Mode, key, probe, script_job};
use qron_tests::{Running, TestDb, wait_for, wait_for_history};

fn script(executor: &str, expr: &str, k: &str, mode: Mode) -> NewJob {
    script_job(executor, expr, k, mode)
}

fn two_minutes_fast() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(120)
}

fn two_minutes_slow() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::seconds(120)
}

async fn server_now(db: &TestDb) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn worker(db: &TestDb, executor: &str, clock: qron::HostClock) -> Running {
    Running::start(
        Worker::builder(Client::new(db.pool.clone()))
            .executors([executor])
            .poll_interval(Duration::from_millis(100))
            .rescue_interval(Duration::from_millis(50))
            .host_clock(clock)
            .build()
            .unwrap(),
    )
}

/// A 5 s job of probe `k`, held by a worker with a good clock for seconds to come.
async fn held_by_an_honest_worker(db: &TestDb, k: &str) -> (qron::JobRow, Running) {
    let held = Client::new(db.pool.clone())
        .create(script("act_lease", "@after 0s", k, Mode::Hang).timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    let honest = worker(db, "act_lease", Utc::now);
    wait_for("the lease", Duration::from_secs(5), || async {
        probe(k).started() == 1
    })
    .await;
    (held, honest)
}

#[tokio::test]
async fn a_worker_whose_clock_is_fast_neither_runs_jobs_early_nor_takes_held_leases() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("skew");
    let (held, honest) = held_by_an_honest_worker(&db, &k).await;
    // Due in 90 s by the database's clock: 30 s ago by the fast host's.
    let later = c
        .create(script("act", "@after 90s", &k, Mode::Ok))
        .await
        .unwrap();
    let now = c
        .create(script("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    let fast_act = worker(&db, "act", two_minutes_fast);
    let fast_lease = worker(&db, "act_lease", two_minutes_fast);
    wait_for_history(&db.pool, 1, Duration::from_secs(5)).await;
    assert_eq!(c.get(now.id).await.unwrap().status, JobStatus::Succeeded);
    // A window for the fault to show: the fast rescuer passes ten times, the fast producer
    // leases five times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.get(later.id).await.unwrap().status, JobStatus::Ready);
    assert_eq!(
        fast_lease.metrics.rescued(),
        0,
        "a lease still held was taken over"
    );
    assert_eq!(
        probe(&k).started(),
        2,
        "the held job ran once, the later job not yet"
    );
    let job = c.get(held.id).await.unwrap();
    assert_eq!((job.status, job.executions), (JobStatus::Running, 1));
    for w in [honest, fast_act, fast_lease] {
        w.stopper.hard();
    }
}

/// How far the stepping host's clock was set forward (seconds).
static STEP: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// A host whose clock is right until the test steps it (an NTP step, a resumed VM, `date -s`).
fn stepping() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(STEP.load(std::sync::atomic::Ordering::Relaxed))
}

#[tokio::test]
async fn a_step_of_a_workers_host_clock_neither_runs_jobs_early_nor_takes_held_leases() {
    // Issue 29, defect 1.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("step");
    let (held, honest) = held_by_an_honest_worker(&db, &k).await;
    // The workers measure the server's time while their host's clock is right: the first job
    // runs, so they have.
    let stepped_act = worker(&db, "act", stepping);
    let stepped_lease = worker(&db, "act_lease", stepping);
    let first = c
        .create(script("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    wait_for_history(&db.pool, 1, Duration::from_secs(5)).await;
    assert_eq!(c.get(first.id).await.unwrap().status, JobStatus::Succeeded);
    // Then their host's clock jumps ten minutes ahead.
    STEP.store(600, std::sync::atomic::Ordering::Relaxed);
    let later = c
        .create(script("act", "@after 90s", &k, Mode::Ok))
        .await
        .unwrap();
    // A window for the fault to show: the stepped rescuer passes ten times, the producer
    // leases five times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c.get(later.id).await.unwrap().status,
        JobStatus::Ready,
        "a job due in 90 s ran early"
    );
    assert_eq!(
        stepped_lease.metrics.rescued(),
        0,
        "a lease still held was taken over"
    );
    let job = c.get(held.id).await.unwrap();
    assert_eq!((job.status, job.executions), (JobStatus::Running, 1));
    assert_eq!(probe(&k).started(), 2, "the held job and the first one ran");
    for w in [honest, stepped_act, stepped_lease] {
        w.stopper.hard();
    }
}

#[tokio::test]
async fn a_client_whose_clock_is_wrong_schedules_by_the_database_clock() {
    let db = TestDb::new().await;
    for clock in [two_minutes_fast as qron::HostClock, two_minutes_slow] {
        let c = Client::builder(db.pool.clone()).host_clock(clock).build();
        let before = server_now(&db).await;
        let j = c.create(NewJob::new("e", "@after 90s")).await.unwrap();
        let after = server_now(&db).await;
        let lo = before + chrono::Duration::seconds(89);
        let hi = after + chrono::Duration::seconds(91);
        assert!(
            j.run_at > lo && j.run_at < hi,
            "due {} for a job created between {before} and {after}",
            j.run_at
        );
        let many = c
            .create_many(vec![NewJob::new("e", "@after 90s")])
            .await
            .unwrap();
        let j = c.get(many[0]).await.unwrap();
        assert!(j.run_at > lo && j.run_at < hi + chrono::Duration::seconds(1));
    }
}

//! Long jobs: a heartbeat keeps their leases while they run, and `Context::cancelled` tells
//! them to wrap up on a soft stop or near their run-time limit.

use std::time::Duration;

use qron::{Client, JobStatus, Worker};
use qron_tests::jobs::{Mode, Script, key, probe, script_job};
use qron_tests::{Running, TestDb, wait_for};

fn worker(c: &Client, lease: Duration) -> Running {
    Running::start(
        Worker::builder(c.clone())
            .executors(["act_lease"])
            .lease_time(lease)
            .rescue_interval(Duration::from_millis(100))
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_job_running_past_many_lease_times_keeps_its_lease_and_runs_once() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("heartbeat-keep");
    // 4 s of work with leases of 1 s: without renewals the lease (1 s and 2 s of slack) would
    // run out and the rescuer beside it take the job over.
    let id = c
        .create(
            script_job("act_lease", "@after 0s", &k, Mode::Sleep(4000))
                .timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .id;
    let w = worker(&c, Duration::from_secs(1));
    wait_for("the job to finish", Duration::from_secs(30), || async {
        c.get(id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    let job = c.get(id).await.unwrap();
    assert_eq!((job.executions, job.attempt), (1, 1));
    assert_eq!(probe(&k).started(), 1);
    assert_eq!(w.metrics.rescued(), 0);
    w.stop().await;
}

#[tokio::test]
async fn a_soft_stop_tells_running_handlers_to_checkpoint() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("cancel-stop");
    let id = c
        .create(
            script_job("act_lease", "@after 0s", &k, Mode::Checkpoint)
                .timeout(Duration::from_secs(600)),
        )
        .await
        .unwrap()
        .id;
    let w = worker(&c, Duration::from_secs(30));
    wait_for("the handler to start", Duration::from_secs(20), || async {
        probe(&k).started() == 1
    })
    .await;
    let stopping = std::time::Instant::now();
    w.stop().await;
    // The handler wrapped up at once, not at the end of the 30 s grace.
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    let job = c.get(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Ready);
    assert_eq!(job.attempt, 0, "a checkpoint is not a failed attempt");
    let script: Script = serde_json::from_value(job.payload).unwrap();
    assert_eq!(
        (script.count, script.mode),
        (1, Mode::Ok),
        "the checkpoint was kept"
    );

    // The next worker resumes from the checkpoint.
    let w = worker(&c, Duration::from_secs(30));
    wait_for("the job to finish", Duration::from_secs(20), || async {
        c.get(id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    w.stop().await;
}

#[tokio::test]
async fn a_handler_is_told_to_wrap_up_a_tenth_before_its_run_time_limit() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("cancel-limit");
    let id = c
        .create(
            script_job("act_lease", "@after 0s", &k, Mode::Checkpoint)
                .timeout(Duration::from_secs(6)),
        )
        .await
        .unwrap()
        .id;
    let w = worker(&c, Duration::from_secs(30));
    wait_for("the job to finish", Duration::from_secs(20), || async {
        c.get(id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    w.stop().await;
    // Told 600 ms before the 6 s limit: it checkpointed instead of timing out.
    let ran = probe(&k).values.lock().unwrap().clone();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!((5000..6000).contains(&ran[0]), "told after {} ms", ran[0]);
    let job = c.get(id).await.unwrap();
    assert_eq!(job.executions, 2);
    assert!(job.errors.is_empty(), "no timeout: {:?}", job.errors);
}

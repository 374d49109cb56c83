//! An operator's actions across two worker processes (issue 17): cancel tells the process
//! running the job, retry runs a failed job again to success, and a pause holds on every
//! worker and across their restart, while another owner's jobs of the executor run.

use std::time::{Duration, Instant};

use qron::{Client, JobStatus};
use qron_tests::fault::{CANCELLED_TABLE, Fleet, fault_job};
use qron_tests::{count, wait_for};
use serde_json::json;

/// Waits until job `id` of `c`'s owner has `status`.
async fn status_becomes(c: &Client, id: i64, status: JobStatus) {
    wait_for(
        &format!("job {id} to be {status:?}"),
        Duration::from_secs(20),
        || async { c.get(id).await.unwrap().status == status },
    )
    .await;
}

/// Waits until `n` workers are registered.
async fn workers_registered(pool: &sqlx::PgPool, n: i64) {
    wait_for(
        &format!("{n} registered workers"),
        Duration::from_secs(20),
        || async { count(pool, "SELECT count(*) FROM qron.workers").await == n },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_holds_across_two_worker_processes() {
    let (_turn, db) = crate::scenario().await;
    sqlx::query(CANCELLED_TABLE)
        .execute(&db.pool)
        .await
        .unwrap();
    let c = Client::new(db.pool.clone());
    let acme = c.owner("acme");
    let mut fleet = Fleet::new(
        &db,
        env!("CARGO_BIN_EXE_qron-test-worker"),
        &[("QRON_TEST_RESCUE_MS", "200")],
    )
    .await;
    fleet.spawn();
    fleet.spawn();
    workers_registered(&db.pool, 2).await;

    // Cancel: the process running the job tells its handler within a second.
    let job = c
        .create(
            fault_job(0)
                .payload(json!({ "sleep_ms": 0, "poison": "until_cancelled" }))
                .timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    wait_for("the job to start", Duration::from_secs(20), || async {
        count(&db.pool, "SELECT count(*) FROM public.executions").await == 1
    })
    .await;
    let asked = Instant::now();
    assert_eq!(c.cancel(job.id).await.unwrap().status, JobStatus::Cancelled);
    wait_for("the handler to be told", Duration::from_secs(1), || async {
        count(&db.pool, "SELECT count(*) FROM public.cancelled").await == 1
    })
    .await;
    eprintln!("cancel: the handler was told in {:?}", asked.elapsed());

    // Retry: a job that failed for good runs again, and succeeds.
    let failing = c
        .create(
            fault_job(0)
                .payload(json!({ "sleep_ms": 0, "poison": "nul_error" }))
                .max_attempts(1),
        )
        .await
        .unwrap();
    status_becomes(&c, failing.id, JobStatus::Failed).await;
    c.retry_with_payload(failing.id, json!({ "sleep_ms": 0 }))
        .await
        .unwrap();
    status_becomes(&c, failing.id, JobStatus::Succeeded).await;

    // Pause: within a second every worker leases none of the owner's jobs of the executor,
    // even those no statement held (a bulk insert); another owner's run as before.
    c.pause_executor("fault").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await; // the bound the pause promises
    let waiting = c.create_many((0..20).map(|_| fault_job(0))).await.unwrap();
    let theirs = acme.create(fault_job(0)).await.unwrap();
    status_becomes(&acme, theirs.id, JobStatus::Succeeded).await;

    // It holds across a restart of both workers.
    fleet.stop();
    workers_registered(&db.pool, 0).await;
    fleet.spawn();
    fleet.spawn();
    workers_registered(&db.pool, 2).await;
    let theirs = acme.create(fault_job(0)).await.unwrap();
    status_becomes(&acme, theirs.id, JobStatus::Succeeded).await;
    for id in &waiting {
        let j = c.get(*id).await.unwrap();
        assert_eq!((j.status, j.executions), (JobStatus::Ready, 0), "job {id}");
    }

    // The executors' figures are the rows'.
    let fault = c
        .executors()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.executor == "fault")
        .unwrap();
    assert!(fault.is_paused());
    assert_eq!((fault.ready, fault.running, fault.stopped), (20, 0, 0));
    assert_eq!(fault.workers.len(), 2, "{fault:?}");
    assert!(fault.lateness.is_some());

    // Resume: the held jobs run.
    c.resume_executor("fault").await.unwrap();
    for id in &waiting {
        status_becomes(&c, *id, JobStatus::Succeeded).await;
    }
    fleet.stop();
}

//! An operator's actions: run a waiting job now, run a finished one again, and messages that
//! say what happened to a finished job rather than "not found".

use qron::{Client, Error, JobRef, JobStatus, JobUpdate, NewJob, Worker};
use qron_tests::TestDb;
use qron_tests::jobs::{Mode, key, script_job};

/// Runs the due jobs of `act` until none is left.
async fn run_due(c: &Client) {
    Worker::builder(c.clone())
        .executors(["act"])
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
}

#[tokio::test]
async fn run_now_makes_a_waiting_job_due_and_keeps_a_recurring_schedule() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("run-now");
    let later = c
        .create(script_job("act", "@after 1 hour", &k, Mode::Ok).name("later"))
        .await
        .unwrap();
    let hourly = c
        .create(script_job("act", "0 * * * *", &k, Mode::Ok))
        .await
        .unwrap();
    run_due(&c).await;
    assert_eq!(c.get(later.id).await.unwrap().executions, 0, "not due yet");

    c.run_now(JobRef::named("act", "later")).await.unwrap();
    let moved = c.run_now(hourly.id).await.unwrap();
    assert!(moved.run_at <= chrono::Utc::now());
    run_due(&c).await;
    assert_eq!(c.get(later.id).await.unwrap().status, JobStatus::Succeeded);
    // The recurring job's waiting occurrence ran now instead of at its time; the next one
    // follows the schedule.
    let hourly_after = c.get(hourly.id).await.unwrap();
    assert_eq!(hourly_after.executions, 1);
    assert_eq!(
        hourly_after.run_at,
        hourly.run_at + chrono::Duration::hours(1)
    );

    // Not for a paused job, nor a finished one, nor another owner's.
    c.stop(hourly.id).await.unwrap();
    let paused = c.run_now(hourly.id).await.unwrap_err();
    assert!(
        matches!(&paused, Error::WrongStatus { status, .. } if status == "paused"),
        "{paused}"
    );
    let finished = c.run_now(later.id).await.unwrap_err();
    assert_eq!(
        finished.to_string(),
        format!(
            "job {} is succeeded: it has finished; use retry to run it again",
            later.id
        )
    );
    let other = c.owner("acme").run_now(hourly.id).await.unwrap_err();
    assert!(matches!(other, Error::NotFound { .. }), "{other}");
}

#[tokio::test]
async fn retry_runs_a_finished_job_again_with_a_fresh_attempt_budget() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("retry");
    // `act` allows 3 attempts: this one fails each of them.
    let job = c
        .create(script_job("act", "@after 0s", &k, Mode::Fail).max_attempts(1))
        .await
        .unwrap();
    run_due(&c).await;
    let failed = c.get(job.id).await.unwrap();
    assert_eq!((failed.status, failed.errors.len()), (JobStatus::Failed, 1));

    // What the operator is told on the way: the job finished, retry it.
    let stop = c.stop(job.id).await.unwrap_err();
    assert_eq!(
        stop.to_string(),
        format!(
            "job {} is failed: it has finished; use retry to run it again",
            job.id
        )
    );
    let update = c
        .update(job.id, JobUpdate::new().max_attempts(3))
        .await
        .unwrap_err();
    assert!(matches!(update, Error::WrongStatus { .. }), "{update}");

    // Retried with a payload that succeeds: same id, attempts afresh, history kept.
    let payload = serde_json::to_value(qron_tests::jobs::Script::new(&k, Mode::Ok)).unwrap();
    let again = c.retry_with_payload(job.id, payload).await.unwrap();
    assert_eq!(
        (again.id, again.status, again.attempt),
        (job.id, JobStatus::Ready, 0)
    );
    assert_eq!(again.errors.len(), 1, "the error history stays");
    let live = c.retry(job.id).await.unwrap_err();
    assert!(
        matches!(&live, Error::WrongStatus { status, .. } if status == "ready"),
        "{live}"
    );
    run_due(&c).await;
    let done = c.get(job.id).await.unwrap();
    assert_eq!((done.status, done.executions), (JobStatus::Succeeded, 2));
    let history: i64 = qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs_history").await;
    assert_eq!(history, 1, "one row per job");
}

#[tokio::test]
async fn retry_by_name_refuses_a_name_taken_since_and_other_owners() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("retry-name");
    c.create(script_job("act", "@after 0s", &k, Mode::Ok).name("report"))
        .await
        .unwrap();
    run_due(&c).await;
    assert_eq!(
        c.owner("acme")
            .retry(JobRef::named("act", "report"))
            .await
            .unwrap_err()
            .to_string(),
        "job named `report` of executor `act` not found for owner `acme`"
    );
    // A new job took the name meanwhile.
    c.create(NewJob::new("act", "@after 1 hour").name("report"))
        .await
        .unwrap();
    // By name, the live one is found first: it has not finished.
    let live = c.retry(JobRef::named("act", "report")).await.unwrap_err();
    assert!(matches!(live, Error::WrongStatus { .. }), "{live}");
    let finished: i64 = qron_tests::count(&db.pool, "SELECT id FROM qron.jobs_history").await;
    let taken = c.retry(finished).await.unwrap_err();
    assert!(matches!(taken, Error::AlreadyExists { .. }), "{taken}");
}

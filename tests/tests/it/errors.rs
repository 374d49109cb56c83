//! Failures a handler reports: every error type through `?` or as its return type, a snooze,
//! the error history, and the log lines of retries and failures.

use std::time::Duration;

use qron::{Client, Context, JobError, JobStatus, NewJob, Worker};
use qron_tests::{Running, TestDb, wait_for};
use serde::{Deserialize, Serialize};

fn worker(db: &TestDb, executors: &[&str]) -> qron::WorkerBuilder {
    Worker::builder(Client::new(db.pool.clone()))
        .executors(executors.iter().copied())
        .poll_interval(Duration::from_millis(100))
}

#[derive(Debug, Serialize, Deserialize)]
struct Input {
    text: String,
}

/// `?` on a `std::error::Error` in a `JobError` handler.
#[qron::job(executor = "err_std", max_attempts = 1)]
async fn err_std(msg: Input) -> Result<(), JobError> {
    let _: i64 = msg.text.parse()?;
    Ok(())
}

/// `?` on an `anyhow::Error` in a `JobError` handler.
#[qron::job(executor = "err_anyhow_q", max_attempts = 1)]
async fn err_anyhow_q(msg: Input) -> Result<(), JobError> {
    Err(anyhow::anyhow!("{}", msg.text).context("anyhow outer"))?;
    Ok(())
}

/// An `anyhow::Result` handler.
#[qron::job(executor = "err_anyhow", max_attempts = 1)]
async fn err_anyhow(msg: Input) -> anyhow::Result<()> {
    let n: i64 = msg
        .text
        .parse()
        .map_err(|e| anyhow::Error::new(e).context("parse"))?;
    anyhow::ensure!(n > 0, "not positive");
    Ok(())
}

/// An `eyre::Result` handler.
#[qron::job(executor = "err_eyre", max_attempts = 1)]
async fn err_eyre(msg: Input) -> eyre::Result<()> {
    Err(eyre::eyre!("{}", msg.text).wrap_err("eyre outer"))
}

/// A handler returning a boxed error.
#[qron::job(executor = "err_box", max_attempts = 1)]
async fn err_box(msg: Input) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err(msg.text.into())
}

/// The application's own error, with a cause.
#[derive(Debug)]
enum MailError {
    Smtp(std::io::Error),
}

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailError::Smtp(_) => write!(f, "smtp send"),
        }
    }
}

impl std::error::Error for MailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MailError::Smtp(e) => Some(e),
        }
    }
}

#[qron::job(executor = "err_own", max_attempts = 1)]
async fn err_own(msg: Input) -> Result<(), MailError> {
    Err(MailError::Smtp(std::io::Error::other(msg.text)))
}

/// `JobError::fail` and `retry` take the same errors.
#[qron::job(executor = "err_fail_anyhow", max_attempts = 3)]
async fn err_fail_anyhow(msg: Input) -> Result<(), JobError> {
    Err(JobError::fail(anyhow::anyhow!("{}", msg.text)))
}

#[tokio::test]
async fn every_error_type_fails_its_job_with_its_whole_chain() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let input = |t: &str| Input { text: t.to_owned() };
    let jobs = [
        (
            ErrStd::schedule_with(&c, "@after 0s", input("x"))
                .await
                .unwrap()
                .id,
            "invalid digit found in string",
        ),
        (
            ErrAnyhowQ::schedule_with(&c, "@after 0s", input("root cause"))
                .await
                .unwrap()
                .id,
            "anyhow outer: root cause",
        ),
        (
            ErrAnyhow::schedule_with(&c, "@after 0s", input("y"))
                .await
                .unwrap()
                .id,
            "parse: invalid digit found in string",
        ),
        (
            ErrAnyhow::schedule_with(&c, "@after 0s", input("-3"))
                .await
                .unwrap()
                .id,
            "not positive",
        ),
        (
            ErrEyre::schedule_with(&c, "@after 0s", input("eyre root"))
                .await
                .unwrap()
                .id,
            "eyre outer: eyre root",
        ),
        (
            ErrBox::schedule_with(&c, "@after 0s", input("boxed"))
                .await
                .unwrap()
                .id,
            "boxed",
        ),
        (
            ErrOwn::schedule_with(&c, "@after 0s", input("connection reset"))
                .await
                .unwrap()
                .id,
            "smtp send: connection reset",
        ),
        (
            ErrFailAnyhow::schedule_with(&c, "@after 0s", input("gone for good"))
                .await
                .unwrap()
                .id,
            "gone for good",
        ),
    ];
    let running = Running::start(
        worker(
            &db,
            &[
                "err_std",
                "err_anyhow_q",
                "err_anyhow",
                "err_eyre",
                "err_box",
                "err_own",
                "err_fail_anyhow",
            ],
        )
        .build()
        .unwrap(),
    );
    for (id, error) in jobs {
        wait_for(
            &format!("job {id} to fail"),
            Duration::from_secs(10),
            || async { c.get(id).await.unwrap().status == JobStatus::Failed },
        )
        .await;
        let job = c.get(id).await.unwrap();
        assert_eq!(
            job.last_error.as_deref(),
            Some(error),
            "job {id} ({})",
            job.executor
        );
        // Failed at its first attempt, though `err_fail_anyhow` allows three.
        assert_eq!(job.attempt, 1, "job {id} ({})", job.executor);
        assert_eq!(job.errors.len(), 1, "job {id}");
        assert_eq!(job.errors[0].error, error);
    }
    running.stop().await;
}

/// Snoozes at its first execution, succeeds at its second.
#[qron::job(executor = "snoozer", max_attempts = 1)]
async fn snoozer(ctx: Context, _msg: Input) -> Result<(), JobError> {
    if ctx.executions() == 1 {
        return Err(JobError::retry_in(Duration::from_millis(1500)));
    }
    Ok(())
}

#[tokio::test]
async fn a_snooze_runs_the_job_again_later_without_counting_an_attempt() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = Snoozer::schedule_with(
        &c,
        "@after 0s",
        Input {
            text: String::new(),
        },
    )
    .await
    .unwrap();
    let running = Running::start(worker(&db, &["snoozer"]).build().unwrap());
    // Written back ready, more than a second before it runs again (250 ms of which it may
    // spend leased ahead). The row is judged as read when it was ready: read again later, it
    // may already be leased for its second run (attempt 1), as a loaded CI run once showed.
    // It is judged by itself, too: a ready row that was leased once (`last_run_at`) is the
    // snoozed one. The metric alone is not enough, as it may count the snooze after this read
    // saw the row still waiting for its first run (another loaded CI run).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let snoozed = loop {
        let j = c.get(job.id).await.unwrap();
        if j.status == JobStatus::Ready && j.last_run_at.is_some() {
            break j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the snooze"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(running.metrics.snoozed(), 1);
    assert_eq!(snoozed.attempt, 0, "a snooze does not count");
    assert!(snoozed.run_at > snoozed.last_run_at.unwrap() + chrono::Duration::milliseconds(1400));
    wait_for("the second run", Duration::from_secs(10), || async {
        c.get(job.id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    running.stop().await;
    let done = c.get(job.id).await.unwrap();
    // Two executions, though it allows one attempt: the snooze did not use it up.
    assert_eq!((done.executions, done.attempt), (2, 1));
    assert_eq!(done.last_error, None);
    assert!(done.errors.is_empty());
}

/// Fails every attempt with its attempt number.
#[qron::job(
    executor = "always_fails",
    max_attempts = 21,
    backoff(base = "1ms", max = "1ms")
)]
async fn always_fails(ctx: Context, _msg: Input) -> Result<(), JobError> {
    Err(JobError::retry(format!("failure {}", ctx.attempt())))
}

#[tokio::test]
async fn a_job_keeps_the_errors_of_its_last_twenty_attempts() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = AlwaysFails::schedule_with(
        &c,
        "@after 0s",
        Input {
            text: String::new(),
        },
    )
    .await
    .unwrap();
    let w = worker(&db, &["always_fails"]).build().unwrap();
    let worker_id = w.id().to_owned();
    let running = Running::start(w);
    wait_for("21 failed attempts", Duration::from_secs(30), || async {
        c.get(job.id).await.unwrap().status == JobStatus::Failed
    })
    .await;
    running.stop().await;
    let done = c.get(job.id).await.unwrap();
    assert_eq!(done.attempt, 21);
    assert_eq!(done.errors.len(), qron::MAX_ERRORS_KEPT);
    let attempts: Vec<i32> = done.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(
        attempts,
        (2..=21).collect::<Vec<_>>(),
        "the oldest is dropped"
    );
    for e in &done.errors {
        assert_eq!(e.error, format!("failure {}", e.attempt));
        assert_eq!(e.worker.as_deref(), Some(worker_id.as_str()));
    }
    assert!(done.errors.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(done.last_error.as_deref(), Some("failure 21"));
}

/// Fails with a retry at its first attempt, for good at its second.
#[qron::job(
    executor = "logged",
    max_attempts = 2,
    backoff(base = "1ms", max = "1ms")
)]
async fn logged(ctx: Context, msg: Input) -> Result<(), JobError> {
    Err(JobError::retry(format!("{} {}", msg.text, ctx.attempt())))
}

// A current-thread runtime (the default): the worker's tasks log on the test's thread.
#[tokio::test]
async fn a_retry_logs_a_warning_and_a_final_failure_an_error_naming_the_job() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = Logged::schedule_with(
        &c,
        "@after 0s",
        Input {
            text: "mailbox full".into(),
        },
    )
    .name("welcome-7")
    .owner("tenant-a")
    .await
    .unwrap();
    let ((), events) = qron_tests::logs::capture(async {
        let running = Running::start(worker(&db, &["logged"]).build().unwrap());
        wait_for("the failure", Duration::from_secs(10), || async {
            c.owner("tenant-a").get(job.id).await.unwrap().status == JobStatus::Failed
        })
        .await;
        running.stop().await;
    })
    .await;
    let about_job = |level: tracing::Level| -> Vec<&qron_tests::logs::Event> {
        events
            .iter()
            .filter(|e| e.level == level && e.fields.get("job.id") == Some(&job.id.to_string()))
            .collect()
    };
    let warnings = about_job(tracing::Level::WARN);
    let errors = about_job(tracing::Level::ERROR);
    assert_eq!(warnings.len(), 1, "{events:#?}");
    assert_eq!(errors.len(), 1, "{events:#?}");
    let (w, e) = (&warnings[0].fields, &errors[0].fields);
    for (f, field, value) in [
        (w, "error", "mailbox full 1"),
        (w, "attempt", "1"),
        (w, "executor", "logged"),
        (w, "owner", "tenant-a"),
        (w, "name", "welcome-7"),
        (e, "error", "mailbox full 2"),
        (e, "attempt", "2"),
        (e, "owner", "tenant-a"),
    ] {
        assert_eq!(
            f.get(field).map(String::as_str),
            Some(value),
            "{field} in {f:?}"
        );
    }
    // The retry says when it runs next; the final failure has no next run.
    assert!(
        w.get("next_run").is_some_and(|t| t.starts_with("20")),
        "{w:?}"
    );
    assert_eq!(e.get("next_run"), None, "{e:?}");
}

#[tokio::test]
async fn a_hand_edited_error_history_does_not_stop_the_job_from_failing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = ErrStd::schedule_with(&c, "@after 0s", Input { text: "x".into() })
        .await
        .unwrap();
    // Written around the client: not an array.
    sqlx::query("UPDATE qron.jobs SET errors = '\"edited\"' WHERE id = $1")
        .bind(job.id)
        .execute(&db.pool)
        .await
        .unwrap();
    let running = Running::start(worker(&db, &["err_std"]).build().unwrap());
    wait_for("the job to fail", Duration::from_secs(10), || async {
        c.get(job.id).await.unwrap().status == JobStatus::Failed
    })
    .await;
    running.stop().await;
    let done = c.get(job.id).await.unwrap();
    assert_eq!(
        done.last_error.as_deref(),
        Some("invalid digit found in string")
    );
    assert_eq!(done.errors.len(), 1, "{:?}", done.errors);
}

#[tokio::test]
async fn jobs_of_an_executor_no_worker_serves_are_reported() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // A typo in the executor's name: no worker will ever serve it.
    for _ in 0..3 {
        c.create(NewJob::new("welcom", "@at 2020-01-01T00:00:00Z"))
            .await
            .unwrap();
    }
    let capture = qron_tests::logs::start();
    let w = Running::start(
        Worker::builder(c.clone())
            .executors(["welcome"])
            .unserved_after(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    let reported = || {
        capture
            .events()
            .into_iter()
            .find(|e| e.level == tracing::Level::WARN && e.field("executor") == Some("welcom"))
    };
    wait_for("the report", Duration::from_secs(10), || async {
        reported().is_some()
    })
    .await;
    let event = reported().unwrap();
    assert_eq!(event.field("due"), Some("3"));
    assert!(
        event
            .field("oldest_due")
            .unwrap()
            .starts_with("2020-01-01T00:00:00")
    );
    assert!(
        event
            .field("message")
            .is_some_and(|m| m.contains("no running worker serves")),
        "{event:?}"
    );
    // The executor the worker serves is not reported.
    assert!(
        !capture
            .events()
            .iter()
            .any(|e| e.field("executor") == Some("welcome") && e.level == tracing::Level::WARN)
    );
    let registered = || qron_tests::count(&db.pool, "SELECT count(*) FROM qron.workers");
    assert_eq!(registered().await, 1, "the running worker is registered");
    w.stop().await;
    assert_eq!(registered().await, 0, "a stopped worker removes itself");
}

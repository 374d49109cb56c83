//! The testing kit (`qron::testing`), used from tests exactly as its documentation shows.

use qron::testing::{TestDb, assert_enqueued, enqueued};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Welcome {
    user_id: i64,
}

#[qron::job(executor = "kit_email")]
async fn kit_email(msg: Welcome) -> Result<(), qron::JobError> {
    let _ = msg;
    Ok(())
}

#[tokio::test]
async fn the_kit_sees_jobs_enqueued_in_the_tests_own_transaction() -> qron::Result<()> {
    let db = TestDb::new().await?;
    let client = db.client();
    let mut tx = db.pool().begin().await?;
    KitEmail::schedule_with(&mut *tx, "@after 1 hour", Welcome { user_id: 7 }).await?;
    // Inside the transaction, before it commits.
    assert_enqueued::<KitEmail>(&mut *tx, |w| w.user_id == 7).await;
    // Not yet visible outside it.
    assert!(enqueued::<KitEmail>(client.pool()).await?.is_empty());
    tx.commit().await?;
    assert_eq!(
        enqueued::<KitEmail>(client.pool()).await?,
        vec![Welcome { user_id: 7 }]
    );
    Ok(())
}

#[tokio::test]
async fn assert_enqueued_fails_naming_the_executor_and_what_is_waiting() {
    let db = TestDb::new().await.unwrap();
    KitEmail::schedule_with(&db.client(), "@after 1 hour", Welcome { user_id: 1 })
        .await
        .unwrap();
    let pool = db.pool().clone();
    let failed = tokio::spawn(async move {
        assert_enqueued::<KitEmail>(&pool, |w| w.user_id == 7).await;
    })
    .await
    .unwrap_err();
    let panic = failed.into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("no enqueued job of `kit_email` matches")
            && message.contains("Welcome { user_id: 1 }")
            && message.contains("testing.rs"),
        "{message}"
    );
}

#[tokio::test]
async fn each_test_database_is_its_own() -> qron::Result<()> {
    let (a, b) = (TestDb::new().await?, TestDb::new().await?);
    assert_ne!(a.name(), b.name());
    KitEmail::schedule_with(&a.client(), "@after 1 hour", Welcome { user_id: 1 }).await?;
    assert_eq!(enqueued::<KitEmail>(a.pool()).await?.len(), 1);
    assert!(enqueued::<KitEmail>(b.pool()).await?.is_empty());
    let name = a.name().to_owned();
    let admin = b.options().database("postgres");
    drop(a);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&sqlx::PgPool::connect_with(admin).await?)
        .await?;
    assert_eq!(left, 0, "a dropped TestDb drops its database");
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct Reminder {
    fail: bool,
}

#[qron::job(
    executor = "kit_reminder",
    max_attempts = 2,
    backoff(base = "1h", max = "1h")
)]
async fn kit_reminder(msg: Reminder) -> Result<(), qron::JobError> {
    if msg.fail {
        return Err(qron::JobError::retry("the provider is down"));
    }
    Ok(())
}

#[tokio::test]
async fn run_due_runs_what_is_due_and_leaves_the_rest() -> qron::Result<()> {
    let db = TestDb::new().await?;
    let client = db.client();
    KitReminder::schedule_with(&client, "@after 0s", Reminder { fail: false }).await?;
    KitReminder::schedule_with(&client, "@after 0s", Reminder { fail: true }).await?;
    let later = KitReminder::schedule_with(&client, "@after 1 hour", Reminder { fail: false })
        .await?
        .id;
    let ran = qron::testing::run_due::<KitReminder>(&client).await?;
    assert_eq!((ran.succeeded(), ran.retried()), (1, 1));
    // Each job as it is now: the one that failed waits for its retry, with its error.
    let statuses: Vec<qron::JobStatus> = ran.jobs.iter().map(|j| j.status).collect();
    assert_eq!(
        statuses,
        [qron::JobStatus::Succeeded, qron::JobStatus::Ready]
    );
    assert_eq!(ran.jobs[1].errors[0].error, "the provider is down");
    // The retry waits out its hour of back-off, as does the later job.
    assert_eq!(enqueued::<KitReminder>(client.pool()).await?.len(), 2);
    assert_eq!(client.get(later).await?.status, qron::JobStatus::Ready);
    let again = qron::testing::run_due::<KitReminder>(&client).await?;
    assert_eq!(again.succeeded() + again.retried() + again.failed(), 0);

    // Two hours on: the later job runs, and the retry fails for good (its last attempt).
    let at = chrono::Utc::now() + chrono::Duration::hours(2);
    let ran = qron::testing::run_due_at::<KitReminder>(&client, at).await?;
    assert_eq!((ran.succeeded(), ran.failed()), (1, 1));
    assert_eq!(ran.jobs.len(), 2);
    assert!(enqueued::<KitReminder>(client.pool()).await?.is_empty());
    let finished = client.get(later).await?;
    assert_eq!(finished.status, qron::JobStatus::Succeeded);
    assert!(finished.finished_at.unwrap() > at - chrono::Duration::minutes(1));
    Ok(())
}

#[tokio::test]
async fn run_until_idle_returns_once_every_due_job_is_written() -> qron::Result<()> {
    let db = TestDb::new().await?;
    let client = db.client();
    let jobs = (0..200).map(|i| {
        qron::NewJob::new("kit_email", "@after 0s").payload(serde_json::json!({ "user_id": i }))
    });
    client.create_many(jobs).await?;
    let worker = qron::Worker::builder(client.clone())
        .executors(["kit_email"])
        .build()?;
    let metrics = worker.metrics();
    worker.run_until_idle().await?;
    assert_eq!(metrics.succeeded(), 200);
    // Written, not only run: every job is in the history.
    let finished: i64 = sqlx::query_scalar("SELECT count(*) FROM qron.jobs_history")
        .fetch_one(client.pool())
        .await?;
    assert_eq!(finished, 200);
    Ok(())
}

/// Retries once, after as many milliseconds as its `user_id` says, then succeeds.
#[qron::job(executor = "kit_retry_after")]
async fn kit_retry_after(ctx: qron::Context, msg: Welcome) -> Result<(), qron::JobError> {
    if ctx.attempt() == 1 {
        let delay = std::time::Duration::from_millis(u64::try_from(msg.user_id).unwrap_or(0));
        return Err(qron::JobError::retry_after("not yet", delay));
    }
    Ok(())
}

#[tokio::test]
async fn run_until_idle_runs_a_retry_due_within_the_lease_ahead_and_leaves_a_later_one()
-> qron::Result<()> {
    let db = TestDb::new().await?;
    let client = db.client();
    // Due again 100 ms after its first attempt: within the worker's lease-ahead (250 ms), so
    // the worker is not idle yet. Under a limit that binds, the worker leases only due jobs,
    // so the retry waits unleased until it is due: the worker returned then. (Without a limit
    // it returned only when it looked between a retry's outcome and its lease ahead, now and
    // then: a test elsewhere failed for it, with back-offs of a few milliseconds.)
    client
        .set_executor_limits(
            "kit_retry_after",
            qron::ExecutorLimits::new().concurrency(1),
        )
        .await?;
    let soon = client
        .create(
            qron::NewJob::new("kit_retry_after", "@after 0s")
                .payload(serde_json::json!({ "user_id": 100 })),
        )
        .await?;
    // Due again in an hour: left for later.
    let later = client
        .create(
            qron::NewJob::new("kit_retry_after", "@after 0s")
                .payload(serde_json::json!({ "user_id": 3_600_000 })),
        )
        .await?;
    let worker = qron::Worker::builder(client.clone())
        .executors(["kit_retry_after"])
        .build()?;
    let metrics = worker.metrics();
    tokio::time::timeout(std::time::Duration::from_secs(30), worker.run_until_idle())
        .await
        .expect("run_until_idle returned")?;
    assert_eq!(metrics.succeeded(), 1);
    assert_eq!(
        client.get(soon.id).await?.status,
        qron::JobStatus::Succeeded
    );
    let waiting = client.get(later.id).await?;
    assert_eq!(waiting.status, qron::JobStatus::Ready);
    assert_eq!(waiting.attempt, 1);
    Ok(())
}

/// What the stateful job below was given, and what it saw.
#[derive(Clone)]
struct Outbox(std::sync::Arc<std::sync::Mutex<Vec<i64>>>);

#[qron::job(executor = "kit_stateful")]
async fn kit_stateful(
    msg: Welcome,
    qron::State(outbox): qron::State<Outbox>,
) -> Result<(), qron::JobError> {
    outbox.0.lock().unwrap().push(msg.user_id);
    Ok(())
}

#[tokio::test]
async fn run_due_with_gives_a_job_its_state_and_travels_in_time() {
    let db = TestDb::new().await.unwrap();
    let client = db.client();
    KitStateful::schedule_with(&client, "@after 0s", Welcome { user_id: 1 })
        .await
        .unwrap();
    KitStateful::schedule_with(&client, "@after 1 hour", Welcome { user_id: 2 })
        .await
        .unwrap();
    // Without its state, the worker is refused, naming what is missing.
    match qron::testing::run_due::<KitStateful>(&client).await {
        Err(qron::Error::InvalidArgument { field, reason }) => {
            assert_eq!(field, "state");
            assert!(reason.contains("Outbox"), "{reason}");
        }
        other => panic!("{:?}", other.map(|r| r.jobs)),
    }
    let outbox = Outbox(Default::default());
    let worker = || qron::Worker::builder(client.clone()).state(outbox.clone());
    let ran = qron::testing::run_due_with::<KitStateful>(worker())
        .await
        .unwrap();
    assert_eq!((ran.succeeded(), ran.jobs.len()), (1, 1));
    assert_eq!(*outbox.0.lock().unwrap(), [1]);
    let later = chrono::Utc::now() + chrono::Duration::minutes(61);
    let ran = qron::testing::run_due_at_with::<KitStateful>(worker(), later)
        .await
        .unwrap();
    assert_eq!(ran.succeeded(), 1);
    assert_eq!(*outbox.0.lock().unwrap(), [1, 2]);
}

#[tokio::test]
async fn run_due_at_a_time_past_the_jobs_range_is_refused_by_name() -> qron::Result<()> {
    // Regression: `run_due_at(…, DateTime::MAX_UTC)` panicked ("`DateTime + TimeDelta`
    // overflowed"). The last instant of year 9999 works; past it, a typed error, and nothing ran.
    let db = TestDb::new().await?;
    let client = db.client();
    let job = KitReminder::schedule_with(&client, "@after 1 hour", Reminder { fail: false })
        .await?
        .id;
    for at in [
        chrono::DateTime::<chrono::Utc>::MAX_UTC,
        chrono::DateTime::<chrono::Utc>::MIN_UTC,
    ] {
        let err = qron::testing::run_due_at::<KitReminder>(&client, at)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, qron::Error::InvalidArgument { field, .. } if *field == "at"),
            "{err}"
        );
    }
    assert_eq!(client.get(job).await?.status, qron::JobStatus::Ready);
    let last = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .unwrap()
        .to_utc();
    let ran = qron::testing::run_due_at::<KitReminder>(&client, last).await?;
    assert_eq!(ran.succeeded(), 1);
    Ok(())
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Flaky {
    spawn: bool,
}

/// Fails its first two attempts (with an hour's back-off), then succeeds, enqueueing one more
/// of its kind when asked.
#[qron::job(
    executor = "kit_flaky",
    max_attempts = 3,
    backoff(base = "1h", max = "1h")
)]
async fn kit_flaky(
    ctx: qron::Context,
    qron::State(client): qron::State<qron::Client>,
    msg: Flaky,
) -> Result<(), qron::JobError> {
    if ctx.attempt() < 3 {
        return Err(qron::JobError::retry("not yet"));
    }
    if msg.spawn {
        KitFlaky::enqueue_with(&client, Flaky { spawn: false }).await?;
    }
    Ok(())
}

#[tokio::test]
async fn drain_runs_retries_at_once_and_the_jobs_they_enqueue_until_none_is_due() {
    let db = TestDb::new().await.unwrap();
    let client = db.client();
    let first = KitFlaky::enqueue_with(&client, Flaky { spawn: true })
        .await
        .unwrap();
    // run_due leaves a retry to its back-off.
    let worker = qron::Worker::builder(client.clone()).state(client.clone());
    let once = qron::testing::run_due_with::<KitFlaky>(worker.clone())
        .await
        .unwrap();
    assert_eq!((once.retried(), once.succeeded()), (1, 0));
    assert_eq!(once.jobs[0].status, qron::JobStatus::Ready);

    // drain: the retries at once, then the job it enqueued.
    let ran = qron::testing::drain_with::<KitFlaky>(worker).await.unwrap();
    assert_eq!(ran.succeeded(), 2, "{:?}", ran.jobs);
    assert_eq!(ran.retried(), 3, "one left, and two of the spawned job");
    assert_eq!(ran.jobs.len(), 2);
    assert!(
        ran.jobs
            .iter()
            .all(|j| j.status == qron::JobStatus::Succeeded)
    );
    assert_eq!(ran.jobs[0].id, first.id);
    assert_eq!(ran.jobs[0].errors.len(), 2, "the attempts counted");
}

#[tokio::test]
async fn a_missing_state_names_the_testing_kits_calls() {
    let db = TestDb::new().await.unwrap();
    let client = db.client();
    KitFlaky::enqueue_with(&client, Flaky { spawn: false })
        .await
        .unwrap();
    let e = qron::testing::run_due::<KitFlaky>(&client)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(".state(value)") && e.contains("run_due_with") && e.contains("drain_with"),
        "{e}"
    );
}

#[tokio::test]
async fn a_job_waiting_for_its_retry_is_shown_as_retrying_everywhere() {
    let db = TestDb::new().await.unwrap();
    let client = db.client();
    let job = KitFlaky::enqueue_with(&client, Flaky { spawn: false })
        .await
        .unwrap();
    let fresh = KitEmail::enqueue_with(&client, Welcome { user_id: 1 })
        .await
        .unwrap();
    let worker = qron::Worker::builder(client.clone()).state(client.clone());
    qron::testing::run_due_with::<KitFlaky>(worker)
        .await
        .unwrap();

    // Rust: a filter of its own, and the row says so.
    let row = client.get(job.id).await.unwrap();
    assert!(row.is_retrying() && !client.get(fresh.id).await.unwrap().is_retrying());
    let found = client
        .search(&qron::Search::new().retrying())
        .await
        .unwrap();
    assert_eq!(
        found.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [job.id]
    );

    // GraphQL.
    let api = qron::http::Api::new(client.clone()).allow_anonymous();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .nest("/api", api.clone().router())
        .nest_service("/ops", api.dashboard());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/graphql"))
        .json(&serde_json::json!({
            "query": "{ jobs(filter: { retrying: true }) { jobs { id retrying status } } }"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["data"]["jobs"]["jobs"],
        serde_json::json!([{ "id": job.id, "retrying": true, "status": "READY" }]),
        "{answer}"
    );

    // The dashboard: the list's filter and its rows, and the overview's counts as links; an
    // executor with due jobs and no live worker stands out.
    let list = reqwest::get(format!("{base}/ops/jobs?status=retrying"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains(&format!("data-id=\"{}\"", job.id)), "{list}");
    assert!(
        !list.contains(&format!("data-id=\"{}\"", fresh.id)),
        "{list}"
    );
    assert!(list.contains("status-retrying"), "{list}");
    let overview = reqwest::get(format!("{base}/ops"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        overview.contains("/ops/jobs?executor=kit_email&amp;status=ready"),
        "{overview}"
    );
    assert!(
        overview.contains("data-unserved"),
        "kit_email has a due job and no worker"
    );
}

#[tokio::test]
async fn a_succeeded_jobs_errors_are_shown_as_resolved_history() {
    let db = TestDb::new().await.unwrap();
    let client = db.client();
    let job = KitFlaky::enqueue_with(&client, Flaky { spawn: false })
        .await
        .unwrap();
    let worker = qron::Worker::builder(client.clone()).state(client.clone());
    let ran = qron::testing::drain_with::<KitFlaky>(worker).await.unwrap();
    assert_eq!(ran.jobs[0].status, qron::JobStatus::Succeeded);
    assert_eq!(ran.jobs[0].errors.len(), 2);
    let api = qron::http::Api::new(client.clone()).allow_anonymous();
    let base =
        qron_tests::http::serve(axum::Router::new().nest_service("/ops", api.dashboard())).await;
    let page = |path: String| {
        let url = format!("{base}{path}");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let shown = page(format!("/ops/jobs/{}", job.id)).await;
    assert!(
        shown.contains("Earlier errors") && shown.contains("Resolved: a later attempt succeeded."),
        "{shown}"
    );
    let list = page("/ops/jobs?executor=kit_flaky".to_owned()).await;
    assert!(list.contains("resolved: not yet"), "{list}");
}

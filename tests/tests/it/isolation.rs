//! One job's bad data stops no other job (issue 13, defects 2–4): values PostgreSQL cannot
//! store are refused where they enter, an outcome the server refuses fails its own job only, a
//! row that would break the shared lease is clamped, and an edit made while a job runs never
//! makes it run again.

use std::time::Duration;

use chrono::Utc;
use qron::{Client, Error, JobStatus, JobUpdate, NewJob, Worker};
use qron_tests::jobs::{Mode, Script, key, probe, script_job};
use qron_tests::{Running, TestDb, count, wait_for, wait_for_history};
use serde_json::{Value, json};

fn script(expr: &str, k: &str, mode: Mode) -> NewJob {
    script_job("act", expr, k, mode)
}

fn worker(db: &TestDb) -> Running {
    Running::start(
        Worker::builder(Client::new(db.pool.clone()))
            .executors(["act"])
            .poll_interval(Duration::from_millis(100))
            .rescue_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
}

/// A JSON value nested `depth` arrays deep.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

/// Soft-stops `running`, failing the test if that takes over 10 s (a wedged writer never
/// returns).
async fn stop_within(running: Running) {
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("the soft stop returned within 10 s");
}

#[tokio::test]
async fn an_outcome_postgres_cannot_store_fails_its_own_job_only() {
    // Regression (defect 2): each of these outcomes was retried forever by the completer, the
    // batches behind it were never written, and the soft stop never returned.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("unstorable");
    let nul_error = c
        .create(script(
            "@after 0s",
            &k,
            Mode::FailWith("bad<NUL>byte".into()),
        ))
        .await
        .unwrap();
    let nul_payload = c
        .create(script(
            "@after 0s",
            &k,
            Mode::SetPayload(r#"{ "s": "nul<NUL>here" }"#.into()),
        ))
        .await
        .unwrap();
    let mut long = Script::new(
        &k,
        Mode::Reschedule(format!("{} * * * *", "0,".repeat(520) + "0")),
    );
    long.count = 1;
    let long_expr = c
        .create(NewJob::new("act", "@after 0s").payload(serde_json::to_value(&long).unwrap()))
        .await
        .unwrap();
    c.create_many((0..50).map(|_| script("@after 0s", &k, Mode::Ok)))
        .await
        .unwrap();
    let running = worker(&db);
    wait_for_history(&db.pool, 53, Duration::from_secs(20)).await;
    stop_within(running).await;
    let done = |id| {
        let c = c.clone();
        async move { c.get(id).await.unwrap() }
    };
    let j = done(nul_error.id).await;
    assert_eq!((j.status, j.executions), (JobStatus::Failed, 1));
    assert_eq!(j.last_error.as_deref(), Some("bad\u{FFFD}byte"));
    let j = done(nul_payload.id).await;
    assert_eq!((j.status, j.executions), (JobStatus::Failed, 1));
    assert!(
        j.last_error.unwrap().contains("NUL character"),
        "{:?}",
        j.payload
    );
    let j = done(long_expr.id).await;
    assert_eq!((j.status, j.executions), (JobStatus::Failed, 1));
    assert!(j.last_error.unwrap().contains("over the limit of 1024"));
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs_history WHERE status = 'succeeded' AND executions = 1"
        )
        .await,
        50
    );
}

#[tokio::test]
async fn an_outcome_the_server_refuses_is_recorded_as_a_failure_of_that_job() {
    // Regression (defect 2): a value the checks let through but the server refuses (here a
    // constraint the test adds) wedged the writer; it now fails that job alone, with the
    // server's reason, and every other outcome is written.
    let db = TestDb::new().await;
    sqlx::query(
        "ALTER TABLE qron.jobs ADD CONSTRAINT test_refuses
           CHECK (last_error IS NULL OR last_error NOT LIKE '%poison%')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let c = Client::new(db.pool.clone());
    let k = key("refused");
    let slot = Utc::now() - chrono::Duration::minutes(61);
    let poisoned = c
        .create(script("@every 1 hour", &k, Mode::FailWith("poison".into())).start_at(slot))
        .await
        .unwrap();
    c.create_many((0..40).map(|_| script("@after 0s", &k, Mode::Ok)))
        .await
        .unwrap();
    let running = worker(&db);
    wait_for_history(&db.pool, 40, Duration::from_secs(20)).await;
    wait_for(
        "the refused outcome's replacement",
        Duration::from_secs(10),
        || async { c.get(poisoned.id).await.unwrap().status == JobStatus::Ready },
    )
    .await;
    stop_within(running).await;
    let j = c.get(poisoned.id).await.unwrap();
    assert_eq!(j.executions, 1, "ran once, not again by lease expiry");
    assert_eq!(j.run_at, poisoned.run_at + chrono::Duration::hours(1));
    let error = j.last_error.unwrap();
    assert!(
        error.contains("could not store") && error.contains("test_refuses"),
        "{error}"
    );
}

#[tokio::test]
async fn one_owners_rows_cannot_stop_another_owners_jobs() {
    // Regression (defect 3): each of these made the lease statement fail for the whole
    // executor, on every worker, or orphaned a leased batch.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let evil = c.owner("evil");
    let k = key("tenant");
    // Refused where they enter, with the field named.
    let refused = [
        evil.create(script("@after 0s", &k, Mode::Ok).timeout(Duration::MAX))
            .await
            .err(),
        evil.create(script("@after 0s", &k, Mode::Ok).meta(json!({ "deep": nested(200) })))
            .await
            .err(),
        evil.create(NewJob::new("act", "@after 0s").payload(nested(200)))
            .await
            .err(),
    ];
    for (e, field) in refused.into_iter().zip(["timeout", "meta", "payload"]) {
        match e {
            Some(Error::InvalidArgument { field: f, .. }) if f == field => {}
            other => panic!("{field}: {other:?}"),
        }
    }
    // A job waiting for its retry whose attempt limit is lowered below the attempts it made.
    let lowered = evil
        .create(script("@after 0s", &k, Mode::Ok).max_attempts(5))
        .await
        .unwrap();
    sqlx::query("UPDATE qron.jobs SET attempt = 3 WHERE id = $1")
        .bind(lowered.id)
        .execute(&db.pool)
        .await
        .unwrap();
    evil.update(lowered.id, JobUpdate::new().max_attempts(2))
        .await
        .unwrap();
    // A meta nested past the decoder's limit, written around the client.
    let deep: i64 = sqlx::query_scalar(
        "INSERT INTO qron.jobs (executor, owner, expr, recurring, run_at, slot_at, payload, meta)
         VALUES ('act', 'evil', '@after 0 seconds', false, now(), now(), $1::jsonb, $2::jsonb)
         RETURNING id",
    )
    .bind(serde_json::to_string(&Script::new(&k, Mode::Ok)).unwrap())
    .bind(serde_json::to_string(&json!({ "deep": nested(200) })).unwrap())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    c.create_many((0..20).map(|_| script("@after 0s", &k, Mode::Ok)))
        .await
        .unwrap();
    let running = worker(&db);
    wait_for_history(&db.pool, 22, Duration::from_secs(20)).await;
    stop_within(running).await;
    let good = c
        .search(&qron::Search::new().status(JobStatus::Succeeded).limit(100))
        .await
        .unwrap();
    assert_eq!(good.total, 20, "every job of the other owner ran");
    assert_eq!(
        evil.get(lowered.id).await.unwrap().status,
        JobStatus::Succeeded
    );
    let j = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT status::text, last_error FROM qron.jobs_history WHERE id = $1",
    )
    .bind(deep)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(j.0, "failed");
    assert!(j.1.unwrap().contains("meta does not decode"));
}

#[tokio::test]
async fn an_edit_while_a_job_runs_never_runs_it_again() {
    // Regression (defect 4): a meta-only update while the handler ran made every one-off job
    // run a second time after it had succeeded.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("edit");
    let ids = c
        .create_many((0..20).map(|_| script("@after 0s", &k, Mode::Sleep(500))))
        .await
        .unwrap();
    let slot = Utc::now() - chrono::Duration::minutes(61);
    let recurring = c
        .create(script("@every 1 hour", &k, Mode::Sleep(500)).start_at(slot))
        .await
        .unwrap();
    let running = worker(&db);
    wait_for("21 handlers running", Duration::from_secs(10), || async {
        probe(&k).started() == 21
    })
    .await;
    for id in ids.iter().copied().chain([recurring.id]) {
        c.update(id, JobUpdate::new().meta(json!({ "edited": true })))
            .await
            .unwrap();
    }
    wait_for_history(&db.pool, 20, Duration::from_secs(10)).await;
    wait_for(
        "the recurring job's outcome",
        Duration::from_secs(10),
        || async { c.get(recurring.id).await.unwrap().status == JobStatus::Ready },
    )
    .await;
    stop_within(running).await;
    assert_eq!(probe(&k).started(), 21, "each job ran once");
    for id in ids {
        let j = c.get(id).await.unwrap();
        assert_eq!((j.status, j.executions), (JobStatus::Succeeded, 1));
        assert_eq!(j.meta, json!({ "edited": true }));
    }
    let j = c.get(recurring.id).await.unwrap();
    assert_eq!(j.executions, 1);
    assert_eq!(j.meta, json!({ "edited": true }));
    assert_eq!(j.run_at, recurring.run_at + chrono::Duration::hours(1));
}

#[tokio::test]
async fn a_recurring_job_whose_schedule_gives_no_next_run_ends_failed() {
    // Regression (defect 7): a recurring job whose stored expression no longer parses, or has
    // no next slot, ran back to back.
    let db = TestDb::new().await;
    let k = key("noslot");
    let payload = serde_json::to_string(&Script::new(&k, Mode::Ok)).unwrap();
    let mut ids = Vec::new();
    for expr in ["not a schedule", "@every 1000000 years"] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO qron.jobs (executor, expr, recurring, run_at, slot_at, payload)
             VALUES ('act', $1, true, now(), now(), $2::jsonb) RETURNING id",
        )
        .bind(expr)
        .bind(&payload)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let running = worker(&db);
    wait_for_history(&db.pool, 2, Duration::from_secs(10)).await;
    stop_within(running).await;
    let c = Client::new(db.pool.clone());
    for id in ids {
        let j = c.get(id).await.unwrap();
        assert_eq!(
            (j.status, j.executions),
            (JobStatus::Failed, 1),
            "{}",
            j.expr
        );
        assert!(j.last_error.unwrap().contains("no next run"));
    }
    assert_eq!(probe(&k).started(), 2);
}

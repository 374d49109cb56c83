//! Fairness between owners: one owner's backlog does not hold back another owner's jobs.

use std::time::Duration;

use qron::{Client, Worker};
use qron_tests::TestDb;
use qron_tests::jobs::{Mode, Script, key, probe, script_jobs};

#[tokio::test]
async fn an_owners_backlog_does_not_hold_back_another_owners_jobs() {
    // Owner A has 100,000 jobs due since a minute; owner B adds 10 while a worker (10 slots,
    // 2 ms jobs: 20 s of A's backlog) is busy with A's. The lease shares itself between the
    // owners with due jobs, so B's 10 start within a second instead of after A's backlog.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let (ka, kb) = (key("fair-a"), key("fair-b"));
    let payload = serde_json::to_string(&Script::new(&ka, Mode::Sleep(2))).unwrap();
    sqlx::query(
        "INSERT INTO qron.jobs (executor, owner, expr, recurring, run_at, slot_at, payload, bytes)
         SELECT 'act', 'A', '@after 0s', false, now() - interval '1 minute', now(), $1::jsonb,
                length($1)
           FROM generate_series(1, 100000)",
    )
    .bind(&payload)
    .execute(&db.pool)
    .await
    .unwrap();
    let worker = Worker::builder(c.clone())
        .executors(["act"])
        .concurrency("act", 10)
        .build()
        .unwrap();
    let running = qron_tests::Running::start(worker);
    let (a, b) = (probe(&ka), probe(&kb));
    qron_tests::wait_for("A's jobs running", Duration::from_secs(10), || async {
        a.started() >= 100
    })
    .await;
    let created = chrono::Utc::now();
    c.owner("B")
        .create_many(script_jobs("act", 10, &kb, Mode::Ok))
        .await
        .unwrap();
    qron_tests::wait_for("B's 10 jobs started", Duration::from_secs(5), || async {
        b.started() >= 10
    })
    .await;
    running.stop().await;
    let last = b.starts.lock().unwrap().iter().map(|s| s.2).max().unwrap();
    assert!(
        last - created < chrono::Duration::seconds(1),
        "B's last job started {} ms after it was created",
        (last - created).num_milliseconds()
    );
}

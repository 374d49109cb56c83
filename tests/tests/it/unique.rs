//! Unique jobs: one job per key, decided by the database, in every enqueue path.

use std::sync::Arc;
use std::time::Duration;

use qron::{Client, Created, Error, JobStatus, NewJob, Unique};
use qron_tests::TestDb;
use qron_tests::jobs::{Greeting, Welcome};
use serde_json::json;

fn sync(customer: i64, reason: &str) -> NewJob {
    NewJob::new("sync", "@after 0s")
        .payload(json!({ "customer_id": customer, "reason": reason }))
        .unique(Unique::by_keys(["customer_id"]))
}

async fn jobs(db: &TestDb) -> i64 {
    qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs").await
}

/// Runs `n` enqueues at once, each on its own connection, released together.
async fn at_once<F, Fut>(n: usize, enqueue: F) -> Vec<Created>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Created> + Send + 'static,
{
    let gate = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let gate = gate.clone();
            let run = enqueue(i);
            tokio::spawn(async move {
                gate.wait().await;
                run.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn one_created(created: &[Created]) {
    assert_eq!(
        created.iter().filter(|c| !c.duplicate).count(),
        1,
        "{created:?}"
    );
    assert!(created.iter().all(|c| c.id == created[0].id), "{created:?}");
}

#[tokio::test]
async fn concurrent_enqueues_of_one_key_create_one_job_in_every_path() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // One at a time.
    let created = at_once(16, |i| {
        let c = c.clone();
        async move {
            let j = c.create(sync(1, &format!("r{i}"))).await.unwrap();
            Created::from(&j)
        }
    })
    .await;
    one_created(&created);
    // In batches (each also holding jobs of other keys and the same key twice).
    let created = at_once(16, |i| {
        let c = c.clone();
        async move {
            let batch = [sync(2, "a"), sync(100 + i as i64, "b"), sync(2, "c")];
            let got = c.create_many_report(batch).await.unwrap();
            assert!(got[2].duplicate && got[2].id == got[0].id, "{got:?}");
            assert!(!got[1].duplicate);
            got[0]
        }
    })
    .await;
    one_created(&created);
    // In the caller's transactions.
    let created = at_once(16, |i| {
        let c = c.clone();
        async move {
            let mut tx = c.pool().begin().await.unwrap();
            let j = c
                .create_with(&mut *tx, sync(3, &format!("r{i}")))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            Created::from(&j)
        }
    })
    .await;
    one_created(&created);
    // Typed, through a transaction.
    let created = at_once(16, |_| {
        let c = c.clone();
        async move {
            let mut tx = c.pool().begin().await.unwrap();
            let greeting = Greeting {
                key: "unique".into(),
                user_id: 4,
            };
            let j = Welcome::schedule_with(&mut tx, "@after 0s", greeting)
                .unique(Unique::by_payload())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            Created::from(&j)
        }
    })
    .await;
    one_created(&created);
    // 3 keys of `sync` (1, 2, 3), the 16 batches' own ones, and the typed job.
    assert_eq!(jobs(&db).await, 3 + 16 + 1);
}

#[tokio::test]
async fn a_key_is_held_while_its_job_is_in_the_counted_statuses() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let first = c.create(sync(1, "a")).await.unwrap();
    assert!(!first.duplicate);
    let again = c.create(sync(1, "b")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.id, first.id);
    assert_eq!(again.payload["reason"], "a", "the holder, unchanged");
    // Another owner's key is its own.
    let other = c.owner("other").create(sync(1, "a")).await.unwrap();
    assert!(!other.duplicate);
    // Stopped counts by default; cancelled does not.
    c.stop(first.id).await.unwrap();
    assert!(c.create(sync(1, "c")).await.unwrap().duplicate);
    c.cancel(first.id).await.unwrap();
    let next = c.create(sync(1, "d")).await.unwrap();
    assert!(!next.duplicate);
    assert_ne!(next.id, first.id);
    // Counting only ready jobs: a stopped holder lets a new job in.
    let ready_only = || {
        NewJob::new("reindex", "@after 0s").unique(Unique::by_executor().states([JobStatus::Ready]))
    };
    let held = c.create(ready_only()).await.unwrap();
    assert!(c.create(ready_only()).await.unwrap().duplicate);
    c.stop(held.id).await.unwrap();
    assert!(!c.create(ready_only()).await.unwrap().duplicate);
    // A deleted holder lets a new job in.
    let gone = c.create(sync(9, "a")).await.unwrap();
    c.delete(gone.id).await.unwrap();
    assert!(!c.create(sync(9, "b")).await.unwrap().duplicate);
}

#[tokio::test]
async fn a_period_is_the_keys_and_ends_it() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let hourly = || {
        NewJob::new("report", "@after 0s")
            .payload(json!({ "month": "2026-11" }))
            .unique(Unique::by_payload().period(Duration::from_secs(3600)))
    };
    let first = c.create(hourly()).await.unwrap();
    let until: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT until FROM qron.job_uniques")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(until.timestamp() % 3600, 0, "the end of an hour: {until}");
    assert!(until > first.created_at && until <= first.created_at + chrono::Duration::hours(1));
    // Within the hour: the same job (unless the hour just turned, which makes a new key).
    let again = c.create(hourly()).await.unwrap();
    let turned = chrono::Utc::now() >= until;
    assert!(again.duplicate || turned);
}

#[tokio::test]
async fn bad_unique_options_are_refused_naming_the_field_and_write_nothing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let refused = |e: Error| match e {
        Error::InvalidArgument { field, .. } => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let unknown_key = NewJob::new("sync", "@after 0s")
        .payload(json!({ "customer_id": 1 }))
        .unique(Unique::by_keys(["customer"]));
    assert_eq!(
        refused(c.create(unknown_key.clone()).await.unwrap_err()),
        "unique.keys"
    );
    let short = NewJob::new("sync", "@after 0s")
        .unique(Unique::by_payload().period(Duration::from_millis(500)));
    assert_eq!(refused(c.create(short).await.unwrap_err()), "unique.period");
    let named = sync(1, "a").name("n");
    assert_eq!(refused(c.create(named).await.unwrap_err()), "unique");
    // A bad job in a batch: nothing of the batch is written.
    let batch = vec![sync(1, "a"), NewJob::new("plain", "@after 0s"), unknown_key];
    assert_eq!(
        refused(c.create_many(batch).await.unwrap_err()),
        "unique.keys"
    );
    assert_eq!(jobs(&db).await, 0);
    let keys = qron_tests::count(&db.pool, "SELECT count(*) FROM qron.job_uniques").await;
    assert_eq!(keys, 0);
}

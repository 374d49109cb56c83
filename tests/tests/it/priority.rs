//! Priorities: declared, set per job, refused out of range; a worker runs higher priorities
//! first.

use std::time::Duration;

use crate::refused;
use qron::{Client, NewJob};
use qron_tests::TestDb;
use qron_tests::jobs::Urgent;

#[tokio::test]
async fn a_priority_comes_from_the_job_its_executor_or_the_default_and_is_checked() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let declared = Urgent::schedule_with(&c, "@after 1 hour", ())
        .await
        .unwrap();
    assert_eq!(declared.priority, 1);
    let own = Urgent::schedule_with(&c, "@after 1 hour", ())
        .priority(7)
        .await
        .unwrap();
    assert_eq!(own.priority, 7);
    let plain = c
        .create(NewJob::new("other", "@after 1 hour"))
        .await
        .unwrap();
    assert_eq!(plain.priority, qron::DEFAULT_PRIORITY);
    let before = qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs").await;
    let high = NewJob::new("other", "@after 1 hour").priority(10);
    assert_eq!(
        refused(c.create(high.clone()).await.unwrap_err()),
        "priority"
    );
    assert_eq!(
        refused(c.create_many([high]).await.unwrap_err()),
        "priority"
    );
    let no_aging = Client::builder(db.pool.clone())
        .priority_aging(Duration::ZERO)
        .build();
    let job = NewJob::new("other", "@after 1 hour");
    assert_eq!(
        refused(no_aging.create(job).await.unwrap_err()),
        "priority_aging"
    );
    let after = qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs").await;
    assert_eq!(after, before, "nothing written");
    // An update changes it, checked.
    let changed = c
        .update(plain.id, qron::JobUpdate::new().priority(0))
        .await
        .unwrap();
    assert_eq!(changed.priority, 0);
    let bad = qron::JobUpdate::new().priority(12);
    assert_eq!(
        refused(c.update(plain.id, bad).await.unwrap_err()),
        "priority"
    );
    assert_eq!(c.get(plain.id).await.unwrap().priority, 0);
    // A retried job keeps its priority.
    let failed = c
        .create(NewJob::new("other", "@after 0s").priority(2))
        .await
        .unwrap();
    c.cancel(failed.id).await.unwrap();
    assert_eq!(c.retry(failed.id).await.unwrap().priority, 2);
}

#[tokio::test]
async fn a_worker_runs_the_higher_priorities_of_a_backlog_first() {
    // 200 jobs of the default priority due since a minute, then 5 of priority 0 due now: with
    // one slot, the 5 run first, though the others were due longer (by less than the aging
    // bound: a level is 10 minutes / 9).
    use qron_tests::jobs::{Greeting, Welcome, key, probe};
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("priority");
    let greet = |user_id| Greeting {
        key: k.clone(),
        user_id,
    };
    let backlog = (0..200).map(|i| {
        NewJob::new("welcome", "@after -1 minute").payload(serde_json::to_value(greet(i)).unwrap())
    });
    c.create_many(backlog).await.unwrap();
    for i in 1000..1005 {
        Welcome::schedule_with(&c, "@after 0s", greet(i))
            .priority(0)
            .await
            .unwrap();
    }
    let worker = qron::Worker::builder(c.clone())
        .executors(["welcome"])
        .concurrency("welcome", 1)
        .build()
        .unwrap();
    let running = qron_tests::Running::start(worker);
    let p = probe(&k);
    let ran = || p.values.lock().unwrap().clone();
    qron_tests::wait_for("every job ran", Duration::from_secs(30), || async {
        ran().len() >= 205
    })
    .await;
    running.stop().await;
    let first: Vec<i64> = ran()[..5].to_vec();
    assert!(first.iter().all(|v| *v >= 1000), "ran first: {first:?}");
}

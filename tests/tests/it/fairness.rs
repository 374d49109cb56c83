//! Fairness between owners: one owner's backlog does not hold back another owner's jobs; a
//! lease's jobs start in its rounds; weights share a worker; an owner's cap holds.

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
    let running = ten_slots(&c);
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

/// 400 no-op jobs each of owners A and C (A's first, so older), with probe keys.
async fn two_owners_backlogs(c: &Client) -> (String, String) {
    let (ka, kc) = (key("round-a"), key("round-c"));
    for (owner, k) in [("A", &ka), ("C", &kc)] {
        c.owner(owner)
            .create_many(script_jobs("act", 400, k, Mode::Ok))
            .await
            .unwrap();
    }
    (ka, kc)
}

/// A worker of 10 slots for `act`.
fn ten_slots(c: &Client) -> qron_tests::Running {
    let worker = Worker::builder(c.clone())
        .executors(["act"])
        .concurrency("act", 10)
        .build()
        .unwrap();
    qron_tests::Running::start(worker)
}

/// Once every job of probes `ka` and `kc` started: how many of the first 200 starts were
/// `ka`'s.
async fn first_200_of(ka: &str, kc: &str) -> usize {
    let (a, cc) = (probe(ka), probe(kc));
    qron_tests::wait_for("every job", Duration::from_secs(60), || async {
        a.started() >= 400 && cc.started() >= 400
    })
    .await;
    let mut starts: Vec<(chrono::DateTime<chrono::Utc>, bool)> = Vec::new();
    for (p, is_a) in [(&a, true), (&cc, false)] {
        starts.extend(p.starts.lock().unwrap().iter().map(|s| (s.2, is_a)));
    }
    starts.sort();
    starts[..200].iter().filter(|s| s.1).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_share_a_worker_by_their_weights_and_an_owners_cap_holds() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    c.set_owner_weight("A", 3).await.unwrap();
    // B caps its jobs at 2 at once; C's are not capped.
    c.owner("B").set_owner_cap("act", 2).await.unwrap();
    let (ka, kc) = two_owners_backlogs(&c).await;
    let kb = key("cap-b");
    c.owner("B")
        .create_many(script_jobs("act", 40, &kb, Mode::Sleep(20)))
        .await
        .unwrap();
    let running = ten_slots(&c);
    let b = probe(&kb);
    // B's leased jobs sampled every 10 ms while they run.
    let mut most_b = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while b.started() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B: {} of 40",
            b.started()
        );
        let leased: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM qron.jobs WHERE owner = 'B' AND lease_expires_at IS NOT NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        most_b = most_b.max(leased);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Of A's and C's first 200 starts, A (weight 3) has about three quarters.
    let of_a = first_200_of(&ka, &kc).await;
    running.stop().await;
    assert!(
        most_b <= 2,
        "B had {most_b} leased at once under its cap of 2"
    );
    eprintln!(
        "fairness: A (weight 3) had {of_a} of the first 200 starts; B at most {most_b} at once"
    );
    assert!((130..=170).contains(&of_a), "A had {of_a} of the first 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_of_one_lease_start_in_its_rounds_not_in_queue_order() {
    // A's 400 jobs are older than C's: the lease takes both owners' in equal shares, and the
    // worker starts them in the same rounds (one of A's, one of C's...), not A's first.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let (ka, kc) = two_owners_backlogs(&c).await;
    let running = ten_slots(&c);
    let of_a = first_200_of(&ka, &kc).await;
    running.stop().await;
    assert!(
        (80..=120).contains(&of_a),
        "A had {of_a} of the first 200 starts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_key_two_owners_share_goes_to_both_in_turn() {
    // Under a limit of 1 per value of a payload field, A's 30 jobs and B's 5 hold the same
    // value: its one place goes to the two owners in turn, not to whichever took it first
    // until its jobs are done.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    c.set_executor_limits("act", qron::ExecutorLimits::new().per_field("key", 1))
        .await
        .unwrap();
    let k = key("shared-key");
    for (owner, n) in [("A", 30), ("B", 5)] {
        c.owner(owner)
            .create_many(script_jobs("act", n, &k, Mode::Sleep(5)))
            .await
            .unwrap();
    }
    let of_b: Vec<i64> = sqlx::query_scalar("SELECT id FROM qron.jobs WHERE owner = 'B'")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let running = ten_slots(&c);
    let p = probe(&k);
    qron_tests::wait_for("the 35 jobs started", Duration::from_secs(30), || async {
        p.started() >= 35
    })
    .await;
    running.stop().await;
    let mut starts = p.starts.lock().unwrap().clone();
    starts.sort_by_key(|s| s.2);
    let order: String = starts
        .iter()
        .map(|s| if of_b.contains(&s.0) { 'B' } else { 'A' })
        .collect();
    eprintln!("fairness: a shared key's starts by owner {order}");
    // Until B's last job, neither owner runs more than two in a row.
    let until_b_done = order.rfind('B').unwrap() + 1;
    let longest = order.as_bytes()[..until_b_done]
        .chunk_by(|x, y| x == y)
        .map(<[u8]>::len)
        .max()
        .unwrap();
    assert!(longest <= 2, "starts by owner: {order}");
    assert_eq!(p.max_running.load(std::sync::atomic::Ordering::SeqCst), 1);
}

//! The producer's invariants at concurrency 1, 10 and 200: handlers running at once never
//! exceed the concurrency, jobs leased and not started never exceed the prefetch bound, and a
//! soft stop hands those jobs back at once. (A worker killed with a full buffer: `rescue.rs`.)

use std::time::Duration;

use qron::{Client, Worker};
use qron_tests::jobs::{Mode, key, probe, script_jobs};
use qron_tests::{Running, TestDb, count, wait_for, wait_for_history};

fn worker(db: &TestDb, concurrency: usize) -> qron::WorkerBuilder {
    Worker::builder(Client::new(db.pool.clone()))
        .executors(["act"])
        .concurrency("act", concurrency)
        .poll_interval(Duration::from_millis(100))
}

#[tokio::test]
async fn handlers_and_buffered_jobs_stay_within_their_bounds() {
    const PREFETCH: usize = 40;
    // Jobs long enough that leases land while the slots are busy (which is when jobs wait).
    for (n, total, ms) in [(1, 300, 2), (10, 400, 5), (200, 2000, 20)] {
        let db = TestDb::new().await;
        let c = Client::new(db.pool.clone());
        let k = key("bounds");
        c.create_many(script_jobs("act", total, &k, Mode::Sleep(ms)))
            .await
            .unwrap();
        let running = Running::start(worker(&db, n).prefetch(PREFETCH).build().unwrap());
        let metrics = running.metrics.clone();
        // The worker's own view, sampled while it runs: never more handlers than slots.
        let sampler = {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut most = 0;
                loop {
                    most = most.max(metrics.in_flight());
                    if metrics.written() >= total as u64 {
                        return most;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        wait_for_history(&db.pool, total as i64, Duration::from_secs(60)).await;
        let sampled = sampler.await.unwrap();
        running.stop().await;
        let p = probe(&k);
        assert_eq!(p.started(), total, "concurrency {n}: each job ran");
        let max = p.max_running.load(std::sync::atomic::Ordering::SeqCst);
        assert!(max <= n as i64, "concurrency {n}: {max} handlers at once");
        assert!(sampled <= n as i64, "concurrency {n}: {sampled} in flight");
        if n > 1 {
            assert!(max >= 2, "concurrency {n}: the slots ran side by side");
        }
        let peak = metrics.buffered_peak();
        assert!(
            peak as usize <= PREFETCH,
            "concurrency {n}: {peak} jobs leased and waiting, over the prefetch of {PREFETCH}"
        );
        assert!(peak > 0, "concurrency {n}: the reserve was used");
        assert_eq!(
            count(
                &db.pool,
                "SELECT count(*) FROM qron.jobs_history WHERE executions <> 1 OR status <> 'succeeded'"
            )
            .await,
            0,
            "concurrency {n}: each job once, succeeded"
        );
    }
}

#[tokio::test]
async fn prefetch_zero_leases_only_into_free_slots() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("no-prefetch");
    c.create_many(script_jobs("act", 60, &k, Mode::Sleep(2)))
        .await
        .unwrap();
    let running = Running::start(worker(&db, 3).prefetch(0).build().unwrap());
    let metrics = running.metrics.clone();
    wait_for_history(&db.pool, 60, Duration::from_secs(30)).await;
    running.stop().await;
    // A lease counts as buffered until its jobs start: at most the free slots.
    assert!(metrics.buffered_peak() <= 3, "{}", metrics.buffered_peak());
}

#[tokio::test]
async fn a_soft_stop_hands_buffered_jobs_back_at_once() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("hand-back");
    let total = 200;
    c.create_many(script_jobs("act", total, &k, Mode::Sleep(20)))
        .await
        .unwrap();
    let running = Running::start(worker(&db, 1).build().unwrap());
    let metrics = running.metrics.clone();
    // 20 ms jobs on one slot: a reserve of about 12.
    wait_for("a reserve", Duration::from_secs(10), || async {
        metrics.buffered() >= 2
    })
    .await;
    running.stop().await;
    // Back at once, not when their leases run out: nothing is left running, and what did not
    // run is ready with nothing counted.
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status <> 'ready' OR lease_expires_at IS NOT NULL"
        )
        .await,
        0
    );
    let finished = count(&db.pool, "SELECT count(*) FROM qron.jobs_history").await;
    let ready = count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs WHERE attempt = 0 AND executions = 0 AND lease_owner IS NULL",
    )
    .await;
    assert_eq!(
        finished + ready,
        total as i64,
        "every job finished or ready"
    );
    assert!(metrics.handed_back() >= 2, "{}", metrics.handed_back());
    assert_eq!(
        metrics.leased() as i64,
        finished + metrics.handed_back() as i64,
        "what was leased either finished or went back"
    );
    assert_eq!(
        probe(&k).started() as i64,
        finished,
        "only finished jobs ran"
    );
    assert_eq!(metrics.buffered(), 0);
}

#[tokio::test]
async fn the_largest_prefetch_is_a_bound_like_any_other() {
    // A value at its type's limit: the reserve stays what the pace allows, and the sums the
    // producer makes with it neither overflow nor wrap.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("max-prefetch");
    c.create_many(script_jobs("act", 40, &k, Mode::Sleep(2)))
        .await
        .unwrap();
    let worker = worker(&db, 2).prefetch(usize::MAX).build().unwrap();
    let stopper = worker.stopper();
    let run = tokio::spawn(worker.run());
    wait_for_history(&db.pool, 40, Duration::from_secs(20)).await;
    stopper.soft();
    run.await.unwrap().unwrap();
    assert_eq!(probe(&k).started(), 40);
}

/// `n` due jobs of `act` that wait at probe `k`'s gate, each padded with `pad` bytes.
fn gated_jobs(k: &str, n: usize, pad: usize) -> impl Iterator<Item = qron::NewJob> {
    script_jobs("act", n, k, Mode::GateFirst)
        .into_iter()
        .map(move |job| {
            let mut payload =
                serde_json::to_value(qron_tests::jobs::Script::new(k, Mode::GateFirst)).unwrap();
            payload["pad"] = serde_json::Value::String("x".repeat(pad));
            job.payload(payload).timeout(Duration::from_secs(60))
        })
}

#[tokio::test]
async fn jobs_held_by_a_worker_stay_within_its_memory_budget() {
    // 100 jobs of about 1,000,000 bytes each, 100 slots: the default budget of 64 MiB holds 67
    // of them at most, leased and running, however many slots are free.
    const PAD: usize = 1_000_000;
    const BUDGET: usize = 64 * 1024 * 1024;
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("bytes");
    c.create_many(gated_jobs(&k, 100, PAD)).await.unwrap();
    let running = Running::start(worker(&db, 100).build().unwrap());
    let p = probe(&k);
    // Sampled from the rows while the handlers wait at the gate: jobs leased (running or
    // waiting in the buffer) never hold more bytes than the budget.
    let mut most = 0;
    let mut samples_after_fill = 0;
    while samples_after_fill < 50 {
        let leased = count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'running'",
        )
        .await;
        most = most.max(leased);
        if p.running.load(std::sync::atomic::Ordering::SeqCst) >= 40 {
            samples_after_fill += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        most as usize * PAD <= BUDGET,
        "{most} jobs of {PAD} bytes leased at once, over the budget of {BUDGET}"
    );
    assert!(
        most >= 50,
        "the budget was used: {most} jobs leased at most"
    );
    p.open_gate();
    wait_for_history(&db.pool, 100, Duration::from_secs(60)).await;
    running.stop().await;
    assert_eq!(p.started(), 100, "each job ran once");
}

#[tokio::test]
async fn a_worker_short_of_memory_waits_for_bytes_instead_of_asking_again() {
    // Room for two jobs of about 1 MB, both held at a gate, and more of them due: the next
    // lease cannot take any until one of the two ends. The producer waits for that (or its
    // poll interval, here 100 ms) rather than leasing again and again.
    const PAD: usize = 1_000_000;
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("short-of-memory");
    c.create_many(gated_jobs(&k, 20, PAD)).await.unwrap();
    let running = Running::start(
        worker(&db, 10)
            .memory_budget(2 * PAD + PAD / 2)
            .build()
            .unwrap(),
    );
    let metrics = running.metrics.clone();
    let p = probe(&k);
    wait_for("two jobs at the gate", Duration::from_secs(10), || async {
        p.running.load(std::sync::atomic::Ordering::SeqCst) == 2
    })
    .await;
    // Leases over one second, while nothing can fit.
    let before = metrics.polls();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leases = metrics.polls() - before;
    assert!(
        leases <= 30,
        "{leases} leases in a second with no room for a job"
    );
    assert_eq!(
        p.running.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "still two"
    );
    p.open_gate();
    wait_for_history(&db.pool, 20, Duration::from_secs(60)).await;
    running.stop().await;
    assert_eq!(p.started(), 20, "each job ran once");
}

//! Executor limits in one worker: refused out of range with nothing written; set while the
//! worker runs, they bind from its next lease; cleared, the jobs run at full speed again.

use std::time::Duration;

use crate::refused;
use qron::{Client, ExecutorLimits, MAX_EXECUTOR_LIMIT, RateLimit, Worker};
use qron_tests::TestDb;
use qron_tests::jobs::{Mode, key, probe, script_jobs};

#[tokio::test]
async fn limits_out_of_range_are_refused_naming_the_field_and_write_nothing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    for (limits, field) in [
        (ExecutorLimits::new(), "limits"),
        (ExecutorLimits::new().concurrency(0), "concurrency"),
        (
            ExecutorLimits::new().concurrency(MAX_EXECUTOR_LIMIT + 1),
            "concurrency",
        ),
        (ExecutorLimits::new().per_owner(0), "partition_concurrency"),
        (
            ExecutorLimits::new().per_field("customer\0id", 2),
            "partition_field",
        ),
        (
            ExecutorLimits::new().rate(RateLimit::per_second(0)),
            "rate_limit",
        ),
        (
            ExecutorLimits::new().rate(RateLimit::new(5, Duration::from_millis(500))),
            "rate_period",
        ),
        (
            ExecutorLimits::new()
                .concurrency(3)
                .rate(RateLimit::per_second(5).burst(6)),
            "rate_burst",
        ),
        (
            ExecutorLimits::new().rate(RateLimit::per_second(5).per_field("")),
            "rate_partition_field",
        ),
    ] {
        let e = c.set_executor_limits("act", limits).await.unwrap_err();
        assert_eq!(refused(e), field);
    }
    let e = c
        .set_executor_limits("", ExecutorLimits::new().concurrency(1))
        .await
        .unwrap_err();
    assert_eq!(refused(e), "executor");
    assert_eq!(c.executor_limits("act").await.unwrap(), None);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM qron.executor_limits")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    // Set, read back, replaced, cleared.
    let limits = ExecutorLimits::new()
        .concurrency(3)
        .per_field("customer_id", 1);
    c.set_executor_limits("act", limits.clone()).await.unwrap();
    assert_eq!(c.executor_limits("act").await.unwrap(), Some(limits));
    c.set_executor_limits("act", ExecutorLimits::new().per_owner(2))
        .await
        .unwrap();
    assert_eq!(
        c.executor_limits("act").await.unwrap(),
        Some(ExecutorLimits::new().per_owner(2))
    );
    let rated = ExecutorLimits::new().rate(RateLimit::per_minute(100).per_field("customer_id"));
    c.set_executor_limits("act", rated.clone()).await.unwrap();
    let back = c.executor_limits("act").await.unwrap().unwrap();
    assert_eq!(back.rate_limit().map(RateLimit::burst_size), Some(5));
    assert_eq!(back.to_string(), rated.to_string());
    assert!(c.clear_executor_limits("act").await.unwrap());
    assert!(!c.clear_executor_limits("act").await.unwrap());
    assert_eq!(c.executor_limits("act").await.unwrap(), None);
}

/// The most jobs of `act` leased at once, sampled every 10 ms until `started` reach `n`.
async fn most_leased_until(pool: &sqlx::PgPool, n: usize, started: impl Fn() -> usize) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut most = 0;
    while started() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} started",
            started()
        );
        let leased: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM qron.jobs
              WHERE executor = 'act' AND lease_expires_at IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        most = most.max(leased);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_set_while_a_worker_runs_binds_its_next_leases_and_clearing_it_lifts_it() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("limited");
    let p = probe(&k);
    let worker = Worker::builder(c.clone())
        .executors(["act"])
        .concurrency("act", 20)
        .build()
        .unwrap();
    let running = qron_tests::Running::start(worker);
    // Unlimited: 20 at once.
    c.create_many(script_jobs("act", 200, &k, Mode::Sleep(20)))
        .await
        .unwrap();
    let before = most_leased_until(&db.pool, 60, || p.started()).await;
    assert!(before > 3, "unlimited, only {before} at once");
    // Limited to 3: the worker hands back the jobs it held leased and not started; once those
    // that had started have ended, never more than 3.
    c.set_executor_limits("act", ExecutorLimits::new().concurrency(3))
        .await
        .unwrap();
    let settled = p.started() + 40;
    most_leased_until(&db.pool, settled, || p.started()).await;
    let under = most_leased_until(&db.pool, settled + 60, || p.started()).await;
    assert!(under <= 3, "{under} leased at once under a limit of 3");
    // Cleared: more than 3 again, with enough work left to show it.
    c.clear_executor_limits("act").await.unwrap();
    c.create_many(script_jobs("act", 100, &k, Mode::Sleep(20)))
        .await
        .unwrap();
    let after = most_leased_until(&db.pool, 300, || p.started()).await;
    assert!(after > 3, "limits cleared, only {after} at once");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_spreads_a_workers_starts_at_its_rate() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // 20 a second, one at a time: a start every 50 ms, however many slots are free.
    c.set_executor_limits(
        "act",
        ExecutorLimits::new().rate(RateLimit::per_second(20).burst(1)),
    )
    .await
    .unwrap();
    let k = key("rated");
    let p = probe(&k);
    c.create_many(script_jobs("act", 30, &k, Mode::Ok))
        .await
        .unwrap();
    let worker = Worker::builder(c.clone())
        .executors(["act"])
        .concurrency("act", 20)
        .build()
        .unwrap();
    let running = qron_tests::Running::start(worker);
    qron_tests::wait_for("30 starts", Duration::from_secs(30), || async {
        p.started() >= 30
    })
    .await;
    running.stop().await;
    let mut starts: Vec<_> = p.starts.lock().unwrap().iter().map(|s| s.2).collect();
    starts.sort();
    // 29 gaps of 50 ms at least (a lease counts its start before the handler's, a few
    // milliseconds apart: 40 ms between two handlers' starts at the least), and not much
    // more: the worker leases again as the bucket refills.
    let span = (starts[29] - starts[0]).num_milliseconds();
    assert!(span >= 29 * 40, "30 starts in {span} ms");
    assert!(span <= 29 * 50 * 2, "30 starts took {span} ms");
    let mut tightest = i64::MAX;
    for w in starts.windows(3) {
        tightest = tightest.min((w[2] - w[0]).num_milliseconds());
    }
    eprintln!(
        "rate: 30 starts at 20 a second in {span} ms, three within {tightest} ms at the least"
    );
    assert!(tightest >= 60, "three starts within {tightest} ms");
}

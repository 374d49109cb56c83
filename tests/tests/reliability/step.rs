//! Scenario 3b, a stepped clock (issue 29, defect 1): a worker process whose host clock is
//! right when it starts, then jumps ten minutes ahead while it runs (an NTP step, a resumed
//! VM, `date -s`; libfaketime reading its offset from a file, the monotonic clock untouched as
//! a real step leaves it), beside a worker on the right time holding long jobs. The stepped
//! worker counts from the server's time with the monotonic clock, and finds expired leases by
//! the server's `now()`: it runs no job early and takes over no lease the other holds.

use std::time::Duration;

use qron::Client;
use qron_tests::count;
use qron_tests::fault::{Report, faketime_env, fault_job_on};

use crate::skew::{count_by, due_soon_then_drained, held_by_a_worker_on_time, started_early};
use crate::{poll_until, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_clock_steps_ten_minutes_ahead_runs_nothing_early_and_takes_over_no_lease() {
    let Some(base) = faketime_env("+0") else {
        panic!("this scenario needs libfaketime: install Debian's `faketime` package");
    };
    let (_turn, db) = scenario().await;
    let c = Client::new(db.pool.clone());
    let offset = Offset::new();
    std::fs::write(offset.path(), "+0\n").unwrap();
    let (long, mut fleet) = held_by_a_worker_on_time(&db, 4000).await;
    // The stepped worker: the offset read from the file (at most once a second), the
    // monotonic clock left alone.
    let path = offset.path().to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> =
        base.into_iter().filter(|(k, _)| k != "FAKETIME").collect();
    env.extend([
        ("FAKETIME_TIMESTAMP_FILE".to_owned(), path),
        ("FAKETIME_CACHE_DURATION".to_owned(), "1".to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let stepped = fleet.spawn_with(&env);
    // It works on the right time first: a job due now runs there or on the other worker.
    let first = c
        .create_many((0..5).map(|_| fault_job_on("@after 0s", 0)))
        .await
        .unwrap();
    assert!(
        poll_until(Duration::from_secs(20), || async {
            count(&db.pool, "SELECT count(*) FROM public.executions").await == 25
        })
        .await,
        "the first jobs did not run"
    );
    // Then its host's clock jumps ten minutes ahead.
    std::fs::write(offset.path(), "+600\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = due_soon_then_drained(&db, &mut fleet).await;

    let early = started_early(&db).await;
    let by_stepped = count_by(&db, stepped).await;
    let ids: Vec<i64> = long.iter().chain(&first).chain(&later).copied().collect();
    let report = Report::of(&db.pool, &ids).await;
    eprintln!(
        "step: {} jobs, {by_stepped} run by the worker whose clock stepped, {} early, {} ran twice",
        ids.len(),
        early.len(),
        report.ran_twice.len()
    );
    assert!(
        by_stepped > 0,
        "the stepped worker ran nothing: the scenario proves nothing"
    );
    assert!(
        early.is_empty(),
        "jobs started before their run time (job, ms early): {early:?}"
    );
    report.assert_each_job_once_except_killed(&Default::default());
    assert!(report.ran_twice.is_empty(), "{report:?}");
}

/// The file the stepped worker's libfaketime reads its offset from; removed at the end.
struct Offset(std::path::PathBuf);

impl Offset {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "qron-step-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        )))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Offset {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

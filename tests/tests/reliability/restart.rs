//! Scenario 2, the database goes away: an immediate restart (as after a crash), a fast one,
//! then every connection killed each second, while two worker processes run. Nothing is lost,
//! nothing runs twice, and the workers resume by themselves; how long that takes is reported.

use std::time::{Duration, Instant};

use qron::Client;
use qron_tests::Rng;
use qron_tests::fault::{Report, fault_job};
use sqlx::PgPool;

use crate::{ONE_AT_A_TIME, drained, durable_fleet, durable_server, poll_until, scaled};

async fn finished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM qron.jobs_history")
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

/// Waits until at least `n` jobs have finished (at most 30 s).
async fn wait_finished(pool: &PgPool, n: i64, what: &str) {
    assert!(
        poll_until(Duration::from_secs(30), || async {
            finished(pool).await >= n
        })
        .await,
        "{what}: fewer than {n} jobs finished in 30 s"
    );
}

/// How long until one more job finishes after `from` (at most 30 s).
async fn time_to_resume(pool: &PgPool, from: Instant) -> Duration {
    let before = finished(pool).await;
    assert!(
        poll_until(Duration::from_secs(30), || async {
            finished(pool).await > before
        })
        .await,
        "the workers did not resume within 30 s"
    );
    from.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_connection_kills_lose_nothing_and_repeat_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (pg, pool) = durable_server().await;
    let c = Client::new(pool.clone());
    let mut rng = Rng::new(152);
    let n = scaled(6_000);
    let ids = c
        .create_many((0..n).map(|_| fault_job(50 + rng.below(100))))
        .await
        .unwrap();
    let mut fleet = durable_fleet(&pg);
    fleet.spawn();
    fleet.spawn();
    let n = n as i64;

    wait_finished(&pool, n / 4, "before the immediate restart").await;
    let restarting = pg.clone();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || restarting.restart_immediate())
        .await
        .unwrap()
        .unwrap();
    let immediate = time_to_resume(&pool, t).await;

    wait_finished(&pool, n / 2, "before the fast restart").await;
    let restarting = pg.clone();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .unwrap();
    let fast = time_to_resume(&pool, t).await;

    // Every other connection killed each second, until the queue is drained.
    let started = Instant::now();
    let mut kills = 0;
    loop {
        if poll_until(Duration::from_secs(1), || drained(&pool)).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not done a minute into the connection kills: {:?}",
            Report::of(&pool, &ids).await
        );
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .execute(&pool)
        .await;
        kills += 1;
    }
    fleet.stop();
    let report = Report::of(&pool, &ids).await;
    eprintln!(
        "restart: {} enqueued, {} finished, {} lost, {} ran twice; resumed {immediate:?} after \
         the immediate restart began, {fast:?} after the fast one; {kills} rounds of connection \
         kills",
        report.enqueued,
        report.finished,
        report.lost.len(),
        report.ran_twice.len()
    );
    // No process died: a job ran twice only when its handler asked, because its record of
    // the execution may not have been written.
    report.assert_each_job_once_except_killed(&fleet.killed);
    pool.close().await;
}

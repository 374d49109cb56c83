//! Scenario 5, poison: among 2,000 jobs, handlers that always panic or never return, outcomes
//! PostgreSQL cannot store (a NUL character in an error, in a new payload), payloads that no
//! longer decode, and recurring jobs whose stored expression was edited by hand into nonsense.
//! Each of those ends failed with a readable error after its attempts; the others all succeed,
//! once each.

use std::time::{Duration, Instant};

use qron::{Client, NewJob};
use qron_tests::Rng;
use qron_tests::fault::{Fleet, Poison, Report, fault_job, fault_job_on};
use serde_json::json;

use crate::{poll_until, scaled, scenario};

const EACH: usize = 40;

fn poisoned(poison: Poison) -> NewJob {
    fault_job(0)
        .payload(json!({ "sleep_ms": 0, "poison": poison }))
        .max_attempts(2)
        .timeout(Duration::from_millis(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_jobs_fail_alone_with_a_readable_error() {
    let (_turn, db) = scenario().await;
    let c = Client::new(db.pool.clone());
    let mut rng = Rng::new(155);
    let good = c
        .create_many((0..scaled(1_800)).map(|_| fault_job(rng.below(5))))
        .await
        .unwrap();
    let mut bad: Vec<(&str, Vec<i64>)> = Vec::new();
    for (what, poison) in [
        ("panics", Poison::Panic),
        ("never returns", Poison::Hang),
        ("NUL in its error", Poison::NulError),
        ("NUL in its new payload", Poison::NulPayload),
    ] {
        let ids = c
            .create_many((0..EACH).map(|_| poisoned(poison)))
            .await
            .unwrap();
        bad.push((what, ids));
    }
    let undecodable = c
        .create_many((0..EACH).map(|_| {
            fault_job(0)
                .payload(json!({ "sleep_ms": "soon" }))
                .max_attempts(2)
        }))
        .await
        .unwrap();
    bad.push(("payload that does not decode", undecodable));
    // Recurring jobs whose stored expression is then edited by hand into nonsense.
    let nonsense = c
        .create_many((0..EACH).map(|_| fault_job_on("@every 1 second", 0).max_attempts(2)))
        .await
        .unwrap();
    sqlx::query("UPDATE qron.jobs SET expr = 'every now and then' WHERE id = ANY($1)")
        .bind(&nonsense)
        .execute(&db.pool)
        .await
        .unwrap();
    bad.push(("expression edited into nonsense", nonsense));

    let mut fleet = Fleet::new(
        &db,
        env!("CARGO_BIN_EXE_qron-test-worker"),
        &[("QRON_TEST_RESCUE_MS", "200")],
    )
    .await;
    let started = Instant::now();
    fleet.spawn();
    fleet.spawn();
    let all: Vec<i64> = good
        .iter()
        .chain(bad.iter().flat_map(|(_, ids)| ids.iter()))
        .copied()
        .collect();
    let done = poll_until(Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM qron.jobs_history WHERE id = ANY($1)")
            .bind(&all)
            .fetch_one(&db.pool)
            .await
            .unwrap_or(0)
            == all.len() as i64
    })
    .await;
    let took = started.elapsed();
    fleet.stop();
    assert!(
        done,
        "not every job ended: {:?}",
        Report::of(&db.pool, &all).await
    );

    // The good ones: all succeeded, once each.
    let report = Report::of(&db.pool, &good).await;
    eprintln!(
        "poison: {} good jobs succeeded of {}, {} poisoned, all ended in {took:?}; the good \
         ones at {:.0} jobs/s",
        report.finished,
        report.enqueued,
        all.len() - good.len(),
        good.len() as f64 / took.as_secs_f64()
    );
    report.assert_each_job_once_except_killed(&Default::default());
    assert!(report.ran_twice.is_empty(), "{report:?}");
    // Each poisoned one: failed, with an error a person can read.
    for (what, ids) in &bad {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, status::text, last_error FROM qron.jobs_history WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), ids.len(), "{what}: not all ended");
        for (id, status, error) in rows {
            let error = error.unwrap_or_default();
            assert!(
                status == "failed" && !error.trim().is_empty() && !error.contains('\0'),
                "{what}: job {id} ended {status} with error {error:?}"
            );
        }
    }
}

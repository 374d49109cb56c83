#![allow(clippy::unwrap_used)]

use super::*;
use crate::registry::Registration;
use crate::testing::TestDb;
use crate::{JobOptions, NewJob};

fn noop() -> Registration {
    Registration {
        executor: "noop",
        type_name: "noop",
        options: JobOptions::default(),
        run: |_, _| Box::pin(async { Ok(()) }),
        states: &[],
    }
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn run_once_leases_into_the_free_slots_and_runs_what_it_leased() {
    let db = TestDb::new().await.unwrap();
    db.client()
        .create_many((0..3).map(|_| NewJob::new("noop", "@after 0s")))
        .await
        .unwrap();
    let shared = Shared::for_test(db.pool().clone()).await;
    // Two slots and no reserve: a round leases two jobs, not three.
    let exec = Arc::new(ExecutorState::new(noop(), 2, 0));
    let mut producer = Producer::new(exec.clone(), shared.clone());
    assert_eq!(producer.run_once().await, 2);
    assert_eq!(exec.buffer.len(), 0, "both started at once");
    let pool = db.pool().clone();
    let finished = async move || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM qron.jobs_history
              WHERE status = 'succeeded' AND executions = 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    until("two outcomes written", async || {
        finished().await == 2 && exec.slots.available_permits() == 2
    })
    .await;
    assert_eq!(producer.run_once().await, 1);
    until("the third outcome written", async || finished().await == 3).await;
    assert_eq!(producer.run_once().await, 0, "nothing left to lease");
}

#[test]
fn the_config_refuses_a_spinning_poll_a_long_lease_ahead_and_an_empty_budget() {
    assert!(Config::default().validate().is_ok());
    let spin = Config {
        poll_interval: Duration::ZERO,
        ..Config::default()
    };
    assert!(matches!(
        spin.validate(),
        Err(crate::Error::InvalidArgument {
            field: "poll_interval",
            ..
        })
    ));
    let ahead = Config {
        lease_ahead: MAX_LEASE_AHEAD + Duration::from_millis(1),
        ..Config::default()
    };
    assert!(matches!(
        ahead.validate(),
        Err(crate::Error::InvalidArgument {
            field: "lease_ahead",
            ..
        })
    ));
    let empty = Config {
        memory_budget: 0,
        ..Config::default()
    };
    assert!(matches!(
        empty.validate(),
        Err(crate::Error::InvalidArgument {
            field: "memory_budget",
            ..
        })
    ));
}

#[test]
fn a_leases_jobs_start_in_its_rounds_by_the_owners_weights() {
    use crate::db::LeasedJob;
    let at = chrono::Utc::now();
    // Owner a (turn 1, weight 3) leased first in the queue, b (turn 2, weight 1) after.
    let mut jobs: Vec<LeasedJob> = (1..=8)
        .map(|id| {
            let (owner, turn, weight) = if id <= 6 { ("a", 1, 3) } else { ("b", 2, 1) };
            let mut j = LeasedJob::for_test(id, owner, at);
            j.turn = turn;
            j.weight = weight;
            j
        })
        .rev()
        .collect();
    crate::worker::turns::in_lease_order(&mut jobs);
    let owners: String = jobs.iter().map(|j| j.owner.as_str()).collect();
    assert_eq!(owners, "aaabaaab");
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [1, 2, 3, 7, 4, 5, 6, 8]);
}

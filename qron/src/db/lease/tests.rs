use super::*;

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_lease_stops_at_its_bytes_in_lease_order() {
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    // Five due jobs of 102 bytes each (a 100-character string and `{}`), oldest first.
    for i in 0..5 {
        client
            .create(
                crate::NewJob::new("big", format!("@after {}s", i - 10))
                    .payload(serde_json::json!("x".repeat(98))),
            )
            .await
            .unwrap();
    }
    let now = Utc::now();
    let lease = |max_bytes, at_least_one| Lease {
        max_bytes,
        at_least_one,
        ..Lease::due("big", "test", 5, now, std::time::Duration::from_secs(30))
    };
    let leased = |jobs: Vec<LeasedJob>| jobs.iter().map(|j| j.bytes()).collect::<Vec<_>>();
    let tx = || async { db.pool().begin().await.unwrap() };
    let mut t = tx().await;
    let jobs = job_lease(&mut *t, &lease(Some(250), false)).await.unwrap();
    assert_eq!(leased(jobs), [100, 100], "two fit in 250 bytes");
    t.rollback().await.unwrap();
    let mut t = tx().await;
    let jobs = job_lease(&mut *t, &lease(Some(50), false)).await.unwrap();
    assert!(jobs.is_empty(), "none fits in 50 bytes");
    t.rollback().await.unwrap();
    let mut t = tx().await;
    let jobs = job_lease(&mut *t, &lease(Some(50), true)).await.unwrap();
    assert_eq!(
        leased(jobs),
        [100],
        "the first, whatever its size, when asked"
    );
    t.rollback().await.unwrap();
    let jobs = job_lease(db.pool(), &lease(None, false)).await.unwrap();
    assert_eq!(jobs.len(), 5, "no bound");
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_lease_shares_itself_between_owners_in_turn_and_skips_paused_ones() {
    let db = crate::testing::TestDb::new().await.unwrap();
    for owner in ["b", "a", "c", "d"] {
        let client = db.client().owner(owner);
        for i in 0..3 {
            client
                .create(crate::NewJob::new("fair", format!("@after {}s", i - 10)))
                .await
                .unwrap();
        }
    }
    db.client().owner("d").pause_executor("fair").await.unwrap();
    let now = Utc::now();
    let lease = |limit, turn_after| Lease {
        turn_after,
        ..Lease::due(
            "fair",
            "test",
            limit,
            now,
            std::time::Duration::from_secs(30),
        )
    };
    let owners = |jobs: Vec<LeasedJob>| {
        let mut o: Vec<String> = jobs.into_iter().map(|j| j.owner).collect();
        o.sort();
        o
    };
    // One job each of the owners with due jobs, not the paused one's.
    let mut t = db.pool().begin().await.unwrap();
    let jobs = job_lease(&mut *t, &lease(3, "")).await.unwrap();
    assert_eq!(owners(jobs), ["a", "b", "c"]);
    t.rollback().await.unwrap();
    // Owners in turn, before the given one (in descending order), round to the last.
    for (after, next) in [("", "c"), ("c", "b"), ("b", "a"), ("a", "c"), ("bb", "b")] {
        let mut t = db.pool().begin().await.unwrap();
        let jobs = job_lease(&mut *t, &lease(1, after)).await.unwrap();
        assert_eq!(owners(jobs), [next], "after {after:?}");
        t.rollback().await.unwrap();
    }
    // Every job in rounds when asked for all: each owner's three.
    let jobs = job_lease(db.pool(), &lease(100, "b")).await.unwrap();
    assert_eq!(owners(jobs), ["a", "a", "a", "b", "b", "b", "c", "c", "c"]);
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_lease_takes_higher_priorities_first_and_ages_the_others() {
    use std::time::Duration;
    let db = crate::testing::TestDb::new().await.unwrap();
    // Aging 9 minutes: a priority level puts a job back one minute.
    let client = crate::Client::builder(db.pool().clone())
        .priority_aging(Duration::from_secs(9 * 60))
        .build();
    let job = |expr: &str, priority| {
        crate::NewJob::new("prio", expr)
            .priority(priority)
            .name(format!("{priority}{expr}"))
    };
    for (expr, priority) in [
        ("@after -10s", 9),
        ("@after -5s", 5),
        ("@after -1s", 0),
        ("@after -2s", 5),
        // due 12 minutes ago: past its 9 levels of a minute, before every job due since
        ("@after -720s", 9),
    ] {
        client.create(job(expr, priority)).await.unwrap();
    }
    // One at a time, in lease order.
    let mut names = Vec::new();
    for _ in 0..5 {
        let lease = Lease::due("prio", "test", 1, Utc::now(), Duration::from_secs(30));
        let leased = job_lease(db.pool(), &lease).await.unwrap();
        names.extend(leased.into_iter().filter_map(|j| j.name));
    }
    assert_eq!(
        names,
        [
            "9@after -720s",
            "0@after -1s",
            "5@after -5s",
            "5@after -2s",
            "9@after -10s"
        ]
    );
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn owners_whose_jobs_are_due_later_are_not_walked() {
    // A tenant's daily job each: 2,000 owners with a job due in an hour, and one owner
    // with jobs due now. The jobs due later are scheduled, out of the lease index: the
    // lease's walk meets the one owner with due jobs, not the 2,000.
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    for i in 0..2000 {
        client
            .owner(format!("tenant-{i}"))
            .create(crate::NewJob::new("daily", "@after 1 hour"))
            .await
            .unwrap();
    }
    let busy = client.owner("busy");
    for _ in 0..3 {
        busy.create(crate::NewJob::new("daily", "@after 0s"))
            .await
            .unwrap();
    }
    let scheduled: i64 = sqlx::query_scalar(sql("SELECT count(*) FROM qron.jobs WHERE scheduled"))
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(scheduled, 2000);
    let walked: i64 = sqlx::query_scalar(sql(concat!(
        "WITH RECURSIVE",
        owner_walk!("'daily'", "''", "true"),
        " SELECT count(*) FROM walk WHERE turn > 0"
    )))
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(walked, 1, "owners walked");
    let now = Utc::now();
    let jobs = job_lease(
        db.pool(),
        &Lease::due("daily", "test", 10, now, std::time::Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.owner == "busy"));
    // Due within the stage-ahead and a pass: staged by a rescuer's pass, not before.
    sqlx::query(sql(
        "UPDATE qron.jobs SET run_at = now() + interval '3 seconds' WHERE owner = 'tenant-7'",
    ))
    .execute(db.pool())
    .await
    .unwrap();
    let staged = jobs_stage(db.pool(), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(staged, 1);
}

/// Whether a statement of this database waits for an advisory lock (a limited lease for the
/// executor's limit lock), polled for up to 10 s.
pub(super) async fn waits_for_the_limit_lock(pool: &sqlx::PgPool) -> bool {
    for _ in 0..1000 {
        let waiting: bool = sqlx::query_scalar(sql("SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE datname = current_database()
                               AND wait_event_type = 'Lock' AND wait_event = 'advisory')"))
        .fetch_one(pool)
        .await
        .unwrap_or(false);
        if waiting {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// A limited lease of `p` (in a lane when `in_lane`) on a connection of its own, once it waits
/// for an advisory lock (the limit lock, or a key's): its task, whose answer is the number of
/// jobs it leased.
#[allow(clippy::unwrap_used)]
pub(super) async fn waiting_lease(
    pool: &sqlx::PgPool,
    p: Lease<'static>,
    in_lane: bool,
) -> tokio::task::JoinHandle<usize> {
    let own = pool.clone();
    let lease = tokio::spawn(async move {
        job_lease_limited(&own, &p, in_lane, &[])
            .await
            .unwrap()
            .len()
    });
    assert!(waits_for_the_limit_lock(pool).await);
    assert!(!lease.is_finished());
    lease
}

/// What a [`waiting_lease`] leased, once it is done (within 10 s).
#[allow(clippy::unwrap_used)]
pub(super) async fn leased(lease: tokio::task::JoinHandle<usize>) -> usize {
    tokio::time::timeout(std::time::Duration::from_secs(10), lease)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
#[allow(clippy::unwrap_used, clippy::expect_used)]
async fn leases_in_lanes_go_at_once_leave_the_other_lanes_room_and_never_beside_one_alone() {
    use crate::{ExecutorLimits, NewJob};
    use std::time::Duration;
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    client
        .create_many((0..40).map(|_| NewJob::new("lane", "@after -1s")))
        .await
        .unwrap();
    let most = u32::try_from(LANE_MOST).unwrap();
    client
        .set_executor_limits("lane", ExecutorLimits::new().concurrency(7 * most + 10))
        .await
        .unwrap();
    let lease = || Lease::due("lane", "test", 100, Utc::now(), Duration::from_secs(30));
    // Two leases in lanes at once, neither waiting for the other: each leaves the 7 other
    // lanes their most (7,000 of 7,010 places).
    let mut a = db.pool().begin().await.unwrap();
    let first = job_lease_limited(&mut *a, &lease(), true, &[])
        .await
        .unwrap();
    assert_eq!(first.len(), 10);
    let mut b = db.pool().begin().await.unwrap();
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        job_lease_limited(&mut *b, &lease(), true, &[]),
    )
    .await
    .expect("a lease in a lane waits for none in another")
    .unwrap();
    assert_eq!(second.len(), 10);
    // A lease alone waits for both, then counts their places and takes the exact room.
    let alone = waiting_lease(db.pool(), lease(), false).await;
    a.commit().await.unwrap();
    b.commit().await.unwrap();
    assert_eq!(leased(alone).await, 20);
    // With every lane taken, a ninth lease asking for one goes alone: it waits.
    let mut lanes = Vec::new();
    for _ in 0..8 {
        let mut t = db.pool().begin().await.unwrap();
        assert!(
            tokio::time::timeout(
                Duration::from_secs(10),
                job_lease_limited(&mut *t, &lease(), true, &[])
            )
            .await
            .unwrap()
            .unwrap()
            .is_empty()
        );
        lanes.push(t);
    }
    let ninth = waiting_lease(db.pool(), lease(), true).await;
    for t in lanes {
        t.commit().await.unwrap();
    }
    assert_eq!(leased(ninth).await, 0);
    // Under a partition beside the limit in all, a lease asking for a lane goes alone too.
    client
        .set_executor_limits(
            "lane",
            ExecutorLimits::new()
                .concurrency(7 * most + 10)
                .per_owner(7 * most + 10),
        )
        .await
        .unwrap();
    let mut a = db.pool().begin().await.unwrap();
    job_lease_limited(&mut *a, &lease(), true, &[])
        .await
        .unwrap();
    let other = waiting_lease(db.pool(), lease(), true).await;
    a.rollback().await.unwrap();
    leased(other).await;
}

#[tokio::test]
#[allow(clippy::unwrap_used, clippy::expect_used)]
async fn leases_under_a_limit_per_key_alone_wait_only_for_the_leases_of_their_keys() {
    use crate::{ExecutorLimits, NewJob};
    use std::time::Duration;
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    client
        .set_executor_limits("keys", ExecutorLimits::new().per_owner(2))
        .await
        .unwrap();
    for owner in ["x", "y"] {
        client
            .owner(owner)
            .create_many((0..4).map(|_| NewJob::new("keys", "@after -1s")))
            .await
            .unwrap();
    }
    let of = |owner| Lease {
        owner: Some(owner),
        ..Lease::due("keys", "test", 10, Utc::now(), Duration::from_secs(30))
    };
    let mut x = db.pool().begin().await.unwrap();
    assert_eq!(
        job_lease_limited(&mut *x, &of("x"), false, &[])
            .await
            .unwrap()
            .len(),
        2
    );
    // Another key's lease does not wait for it.
    let mut y = db.pool().begin().await.unwrap();
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        job_lease_limited(&mut *y, &of("y"), false, &[]),
    )
    .await
    .expect("a lease of another key waits for none")
    .unwrap();
    assert_eq!(second.len(), 2);
    // A lease of the same key waits for the first, then counts its places: no room.
    let again = waiting_lease(db.pool(), of("x"), false).await;
    x.commit().await.unwrap();
    y.commit().await.unwrap();
    assert_eq!(leased(again).await, 0);
    // A change of the limits waits for the leases of every key.
    let mut z = db.pool().begin().await.unwrap();
    sqlx::query(sql(
        "UPDATE qron.jobs SET lease_expires_at = NULL, status = 'ready'",
    ))
    .execute(&mut *z)
    .await
    .unwrap();
    assert_eq!(
        job_lease_limited(&mut *z, &of("y"), false, &[])
            .await
            .unwrap()
            .len(),
        2
    );
    let setter = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .set_executor_limits("keys", ExecutorLimits::new().per_owner(3))
                .await
        }
    });
    assert!(waits_for_the_limit_lock(db.pool()).await);
    assert!(!setter.is_finished());
    z.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), setter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

//! Tests of the limited lease: places counted in all and per key, rate limits, successors.

use super::*;
use crate::schema::sql;
use chrono::Utc;

/// Every job ready again, its lease gone.
#[allow(clippy::unwrap_used)]
async fn release_all(pool: &sqlx::PgPool) {
    sqlx::query(sql(
        "UPDATE qron.jobs SET status = 'ready', lease_expires_at = NULL",
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// `n` jobs of `executor` due a second ago, for `client`'s owner, job `i` with payload key
/// `k` = `i % keys`.
#[allow(clippy::unwrap_used)]
async fn keyed_jobs(client: &crate::Client, executor: &str, n: u64, keys: u64) {
    client
        .create_many((0..n).map(|i| {
            crate::NewJob::new(executor, "@after -1s").payload(serde_json::json!({ "k": i % keys }))
        }))
        .await
        .unwrap();
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_limited_lease_counts_the_unexpired_leases_in_all_and_per_key() {
    use crate::ExecutorLimits;
    use std::time::Duration;
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    for owner in ["a", "b", "c"] {
        keyed_jobs(&client.owner(owner), "lim", 6, 3).await;
    }
    let lease = |limit| Lease::due("lim", "test", limit, Utc::now(), Duration::from_secs(30));
    let keys = |jobs: &[LeasedJob]| {
        let mut k: Vec<String> = jobs.iter().map(|j| j.owner.clone()).collect();
        k.sort();
        k
    };
    // Three in all, shared between the owners.
    client
        .set_executor_limits("lim", ExecutorLimits::new().concurrency(3))
        .await
        .unwrap();
    let first = job_lease_limited(db.pool(), &lease(100), false, &[])
        .await
        .unwrap();
    assert_eq!(keys(&first), ["a", "b", "c"]);
    assert!(
        job_lease_limited(db.pool(), &lease(100), false, &[])
            .await
            .unwrap()
            .is_empty()
    );
    // The unlimited statement takes nothing of a limited executor.
    assert!(job_lease(db.pool(), &lease(100)).await.unwrap().is_empty());
    // An expired lease frees its place; an ended one too (no lease left).
    sqlx::query(sql(
        "UPDATE qron.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
    ))
    .bind(first[0].id)
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query(sql(
        "UPDATE qron.jobs SET status = 'ready', lease_expires_at = NULL WHERE id = $1",
    ))
    .bind(first[1].id)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(
        job_lease_limited(db.pool(), &lease(100), false, &[])
            .await
            .unwrap()
            .len(),
        2
    );
    // Two per owner: each owner's leases held count (a: 1 expired, one ready again...).
    release_all(db.pool()).await;
    client
        .set_executor_limits("lim", ExecutorLimits::new().per_owner(2))
        .await
        .unwrap();
    let jobs = job_lease_limited(db.pool(), &lease(100), false, &[])
        .await
        .unwrap();
    assert_eq!(keys(&jobs), ["a", "a", "b", "b", "c", "c"]);
    assert!(
        job_lease_limited(db.pool(), &lease(100), false, &[])
            .await
            .unwrap()
            .is_empty()
    );
    // One per payload key, with 4 in all: the places the owner partition left are keyed
    // anew when the limits change (6 held, over the limit of 4: none more).
    client
        .set_executor_limits(
            "lim",
            ExecutorLimits::new().concurrency(4).per_field("k", 1),
        )
        .await
        .unwrap();
    assert!(
        job_lease_limited(db.pool(), &lease(100), false, &[])
            .await
            .unwrap()
            .is_empty()
    );
    release_all(db.pool()).await;
    let jobs = job_lease_limited(db.pool(), &lease(100), false, &[])
        .await
        .unwrap();
    let mut k: Vec<String> = jobs
        .iter()
        .map(|j| j.payload.clone().unwrap_or_default())
        .collect();
    k.sort();
    assert_eq!(k, [r#"{"k": 0}"#, r#"{"k": 1}"#, r#"{"k": 2}"#]);
    // Cleared: every job again, with the unlimited statement.
    assert!(client.clear_executor_limits("lim").await.unwrap());
    assert_eq!(job_lease(db.pool(), &lease(100)).await.unwrap().len(), 15);
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_successor_takes_its_holders_place_and_only_a_place_still_held() {
    use crate::ExecutorLimits;
    use std::time::Duration;
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    keyed_jobs(&client, "succ", 8, 2).await;
    client
        .set_executor_limits("succ", ExecutorLimits::new().per_field("k", 1))
        .await
        .unwrap();
    let lease = || Lease::due("succ", "test", 10, Utc::now(), Duration::from_secs(30));
    let places = || async {
        let n: Vec<(String, i64)> = sqlx::query_as(sql(
            "SELECT key, n FROM qron.limit_taken('succ', now(), true) ORDER BY key",
        ))
        .fetch_all(db.pool())
        .await
        .unwrap();
        n
    };
    let first = job_lease_limited(db.pool(), &lease(), false, &[])
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "one a key");
    assert!(first.iter().all(|j| j.successor_of.is_none()));
    let (a, b) = (&first[0], &first[1]);
    // A successor for the first key's job: the key's next job, in the same place; the
    // keys are full, so nothing else.
    let next = job_lease_limited(db.pool(), &lease(), false, &[(a.id, a.lease_token)])
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].successor_of, Some(a.id));
    assert_eq!(next[0].payload, a.payload, "of the same key");
    assert_eq!(places().await, [("0".into(), 1), ("1".into(), 1)]);
    // No successor for a stale lease, nor for an expired one.
    let stale = job_lease_limited(db.pool(), &lease(), false, &[(b.id, b.lease_token + 1)])
        .await
        .unwrap();
    assert!(stale.is_empty());
    sqlx::query(sql(
        "UPDATE qron.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
    ))
    .bind(b.id)
    .execute(db.pool())
    .await
    .unwrap();
    let expired = job_lease_limited(db.pool(), &lease(), false, &[(b.id, b.lease_token)])
        .await
        .unwrap();
    assert_eq!(expired.len(), 1, "the expired place is taken anew");
    assert_eq!(expired[0].successor_of, None);
    // The first job ends (made ready again, as a retry leaves it): its successor holds the
    // place, and no lease takes another of its key.
    sqlx::query(sql(
        "UPDATE qron.jobs SET status = 'ready', lease_expires_at = NULL WHERE id = $1",
    ))
    .bind(a.id)
    .execute(db.pool())
    .await
    .unwrap();
    assert!(
        job_lease_limited(db.pool(), &lease(), false, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(places().await, [("0".into(), 1), ("1".into(), 1)]);
    // A limit lowered below the places held passes none on: 2 places of key 0 with a limit
    // of 1 (one made by hand), then no successor for either.
    let s = &next[0];
    client
        .set_executor_limits("succ", ExecutorLimits::new().per_field("k", 2))
        .await
        .unwrap();
    let more = job_lease_limited(db.pool(), &lease(), false, &[])
        .await
        .unwrap();
    assert!(more.iter().any(|j| j.payload == a.payload), "{more:?}");
    client
        .set_executor_limits("succ", ExecutorLimits::new().per_field("k", 1))
        .await
        .unwrap();
    assert!(
        job_lease_limited(db.pool(), &lease(), false, &[(s.id, s.lease_token)])
            .await
            .unwrap()
            .is_empty()
    );
    // Under a limit in all (no partition), no successor and no place.
    client
        .set_executor_limits("succ", ExecutorLimits::new().concurrency(100))
        .await
        .unwrap();
    let all = job_lease_limited(db.pool(), &lease(), false, &[(s.id, s.lease_token)])
        .await
        .unwrap();
    assert!(all.iter().all(|j| j.successor_of.is_none()));
    let placed: i64 = sqlx::query_scalar(sql(
        "SELECT count(*) FROM qron.jobs WHERE id = ANY($1) AND place IS NOT NULL",
    ))
    .bind(all.iter().map(|j| j.id).collect::<Vec<_>>())
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(placed, 0);
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_rate_limited_lease_takes_the_burst_then_the_steady_rate_in_all_and_per_key() {
    use crate::{ExecutorLimits, RateLimit};
    use std::time::Duration;
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    keyed_jobs(&client, "rate", 60, 3).await;
    let t0 = Utc::now();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let lease = |now| Lease::due("rate", "test", 100, now, Duration::from_secs(300));
    let taken = |now| {
        let pool = db.pool().clone();
        async move {
            job_lease_limited(&pool, &lease(now), false, &[])
                .await
                .unwrap()
                .len()
        }
    };
    // 10 a second (a start every 100 ms), 3 at once: the burst, then a start a gap.
    client
        .set_executor_limits(
            "rate",
            ExecutorLimits::new().rate(RateLimit::per_second(10).burst(3)),
        )
        .await
        .unwrap();
    assert_eq!(taken(at(0)).await, 3);
    assert_eq!(taken(at(0)).await, 0);
    assert_eq!(taken(at(50)).await, 0);
    // 150 ms on, the bucket is 150 ms ahead: one start.
    assert_eq!(taken(at(150)).await, 1);
    assert_eq!(taken(at(199)).await, 0);
    assert_eq!(taken(at(200)).await, 1);
    // After a quiet spell, the burst again, not more.
    assert_eq!(taken(at(10_000)).await, 3);
    // Per key of a payload field: 2 a second each, 2 at once; a key's leases take nothing
    // of another's starts.
    client
        .set_executor_limits(
            "rate",
            ExecutorLimits::new().rate(RateLimit::per_second(2).burst(2).per_field("k")),
        )
        .await
        .unwrap();
    assert_eq!(taken(at(20_000)).await, 6);
    assert_eq!(taken(at(20_000)).await, 0);
    assert_eq!(taken(at(20_500)).await, 3);
    // With a concurrency limit beside it, the tighter one binds.
    client
        .set_executor_limits(
            "rate",
            ExecutorLimits::new()
                .concurrency(100)
                .rate(RateLimit::per_second(10).per_owner().burst(4)),
        )
        .await
        .unwrap();
    assert_eq!(taken(at(30_000)).await, 4);
    assert_eq!(taken(at(30_100)).await, 1);
    // Cleared: the buckets go with the limits.
    assert!(client.clear_executor_limits("rate").await.unwrap());
    let buckets: i64 = sqlx::query_scalar(sql("SELECT count(*) FROM qron.rate_buckets"))
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(buckets, 0);
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn rate_limits_at_their_extremes_lease_without_failing() {
    use crate::rate_limit::{MAX_RATE_PERIOD, MIN_RATE_PERIOD};
    use crate::{ExecutorLimits, MAX_EXECUTOR_LIMIT, RateLimit};
    use std::time::Duration;
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    keyed_jobs(&client, "edge", 5, 5).await;
    let lease = || Lease::due("edge", "test", 100, Utc::now(), Duration::from_secs(300));
    // One start a year: one job, then none (the bucket is paid up a year ahead).
    client
        .set_executor_limits(
            "edge",
            ExecutorLimits::new().rate(RateLimit::new(1, MAX_RATE_PERIOD).per_field("k")),
        )
        .await
        .unwrap();
    assert_eq!(
        job_lease_limited(db.pool(), &lease(), false, &[])
            .await
            .unwrap()
            .len(),
        5
    );
    release_all(db.pool()).await;
    assert!(
        job_lease_limited(db.pool(), &lease(), false, &[])
            .await
            .unwrap()
            .is_empty()
    );
    // A million a second, all at once: every job.
    client
        .set_executor_limits(
            "edge",
            ExecutorLimits::new().rate(
                RateLimit::new(MAX_EXECUTOR_LIMIT, MIN_RATE_PERIOD).burst(MAX_EXECUTOR_LIMIT),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        job_lease_limited(db.pool(), &lease(), false, &[])
            .await
            .unwrap()
            .len(),
        5
    );
}

/// A lease for `executor`, due now, of up to 10 jobs.
fn lease_of(executor: &str) -> Lease<'_> {
    Lease::due(
        executor,
        "test",
        10,
        Utc::now(),
        std::time::Duration::from_secs(30),
    )
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_successor_is_found_however_deep_its_keys_next_job_lies() {
    let db = crate::testing::TestDb::new().await.unwrap();
    // Key a's next job lies behind 51 of key b's, in lease order.
    super::super::key_behind_another(&db.client(), "deep", "b", 51).await;
    let first = job_lease_limited(db.pool(), &lease_of("deep"), false, &[])
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "one a key");
    let holders: Vec<(i64, i64)> = first.iter().map(|j| (j.id, j.lease_token)).collect();
    let next = job_lease_limited(db.pool(), &lease_of("deep"), false, &holders)
        .await
        .unwrap();
    let mut got: Vec<(Option<i64>, Option<String>)> = next
        .iter()
        .map(|j| (j.successor_of, j.payload.clone()))
        .collect();
    got.sort_by_key(|g| g.0);
    let mut want: Vec<(Option<i64>, Option<String>)> = first
        .iter()
        .map(|j| (Some(j.id), j.payload.clone()))
        .collect();
    want.sort_by_key(|w| w.0);
    assert_eq!(got, want, "a successor for each holder, of its key");
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_waiting_job_carries_its_key_from_every_enqueue_and_a_wrong_key_passes_on_nothing() {
    use crate::{ExecutorLimits, JobUpdate, NewJob, Unique};
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    client
        .set_executor_limits("kd", ExecutorLimits::new().per_field("k", 1))
        .await
        .unwrap();
    let values = [
        serde_json::json!({ "k": "text" }),
        serde_json::json!({ "k": 7 }),
        serde_json::json!({ "k": -3 }),
        serde_json::json!({ "k": true }),
        serde_json::json!({ "k": null }),
        serde_json::json!({ "other": 1 }),
        serde_json::json!([1, 2]),
        serde_json::json!({ "k": 1.5 }),
        serde_json::json!({ "k": { "nested": [1] } }),
        serde_json::json!({ "k": "long ".repeat(300) }),
    ];
    let job = |v: &serde_json::Value| NewJob::new("kd", "@after 1 hour").payload(v.clone());
    // Through `COPY`, one statement of many (named), one at a time, and unique jobs alone and
    // in a batch.
    client.create_many(values.iter().map(job)).await.unwrap();
    client
        .create_many(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| job(v).name(format!("n{i}"))),
        )
        .await
        .unwrap();
    for (i, v) in values.iter().enumerate() {
        client.create(job(v).name(format!("one{i}"))).await.unwrap();
    }
    client
        .create(job(&serde_json::json!({ "k": "u", "n": 0 })).unique(Unique::by_payload()))
        .await
        .unwrap();
    client
        .create_many(
            (1..3).map(|n| {
                job(&serde_json::json!({ "k": "u", "n": n })).unique(Unique::by_payload())
            }),
        )
        .await
        .unwrap();
    // An edit of the payload moves the key.
    client
        .update(
            crate::JobRef::named("kd", "one0"),
            JobUpdate::new().payload(serde_json::json!({ "k": "edited" })),
        )
        .await
        .unwrap();
    let keys = || async {
        let rows: Vec<(serde_json::Value, Option<String>, String)> = sqlx::query_as(sql(
            "SELECT payload, partition_key, qron.limit_key(COALESCE(payload ->> 'k', ''))
               FROM qron.jobs WHERE executor = 'kd' ORDER BY id",
        ))
        .fetch_all(db.pool())
        .await
        .unwrap();
        rows
    };
    let rows = keys().await;
    assert_eq!(rows.len(), 3 * values.len() + 3);
    // Every job keyed, `COPY`'s too where only the server knows the value's text.
    for (payload, key, wanted) in &rows {
        assert_eq!(key.as_ref(), Some(wanted), "{payload}");
    }
    assert!(rows.iter().any(|r| r.1.as_deref() == Some("edited")));
    // A new partition keys the waiting jobs again; none, and they keep no key.
    client
        .set_executor_limits("kd", ExecutorLimits::new().per_owner(1))
        .await
        .unwrap();
    assert!(
        keys()
            .await
            .iter()
            .all(|r| r.1.as_deref() == Some("default"))
    );
    client
        .set_executor_limits("kd", ExecutorLimits::new().concurrency(5))
        .await
        .unwrap();
    assert!(keys().await.iter().all(|r| r.1.is_none()));
    // A job written now (the client knows the executor has no limit per key): none either.
    client
        .create(job(&serde_json::json!({ "k": "later" })))
        .await
        .unwrap();
    let rows = keys().await;
    assert_eq!(rows.len(), 3 * values.len() + 4);
    assert!(rows.iter().all(|r| r.1.is_none()));
    // A key stored wrong (as a payload edited outside qron would leave it) gives no successor
    // of that key: a's holder gets none, though the job stored as a's is the only one due.
    client
        .set_executor_limits("wrong", ExecutorLimits::new().per_field("k", 1))
        .await
        .unwrap();
    let a = client
        .create(NewJob::new("wrong", "@after -1s").payload(serde_json::json!({ "k": "a" })))
        .await
        .unwrap();
    let held = job_lease_limited(db.pool(), &lease_of("wrong"), false, &[])
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    let c = client
        .create(NewJob::new("wrong", "@after -1s").payload(serde_json::json!({ "k": "c" })))
        .await
        .unwrap();
    sqlx::query(sql(
        "UPDATE qron.jobs SET partition_key = 'a' WHERE id = $1",
    ))
    .bind(c.id)
    .execute(db.pool())
    .await
    .unwrap();
    let next = job_lease_limited(
        db.pool(),
        &lease_of("wrong"),
        false,
        &[(a.id, held[0].lease_token)],
    )
    .await
    .unwrap();
    assert_eq!(next.len(), 1, "c's key has room: the lease's scan takes it");
    assert_eq!(next[0].id, c.id);
    assert_eq!(next[0].successor_of, None, "not as a's successor");
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn a_key_too_long_for_an_index_neither_refuses_its_job_nor_stops_the_leases() {
    use crate::{ExecutorLimits, NewJob};
    let db = crate::testing::TestDb::new().await.unwrap();
    let client = db.client();
    client
        .set_executor_limits("long", ExecutorLimits::new().per_field("k", 1))
        .await
        .unwrap();
    // A value far past what a B-tree entry holds (about 2.7 kB), from one tenant, beside
    // another tenant's plain job; written one at a time and through `COPY`.
    // (not one letter repeated: an index compresses that)
    let long: String = (0..2_000u64)
        .map(|i| format!("{:x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 44))
        .collect();
    let job = |k: &str| NewJob::new("long", "@after -1s").payload(serde_json::json!({ "k": k }));
    client.create(job(&long)).await.unwrap();
    client.create(job(&long)).await.unwrap();
    client
        .create_many([job(&long), job("short")])
        .await
        .unwrap();
    db.client()
        .owner("other")
        .create(job("plain"))
        .await
        .unwrap();
    // The leases go on, for both tenants, the long key's places counted as any key's.
    let leased = job_lease_limited(db.pool(), &lease_of("long"), false, &[])
        .await
        .unwrap();
    assert_eq!(leased.len(), 3, "one of the long key, and the two others");
    let holders: Vec<(i64, i64)> = leased.iter().map(|j| (j.id, j.lease_token)).collect();
    let next = job_lease_limited(db.pool(), &lease_of("long"), false, &holders)
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "the long key's next job, as a successor");
    // A new partition keys the waiting jobs again without failing; a rate limit by the
    // same field keeps a bucket for the long key.
    client
        .set_executor_limits(
            "long",
            ExecutorLimits::new().rate(crate::RateLimit::per_second(100).per_field("k")),
        )
        .await
        .unwrap();
    let rated = job_lease_limited(db.pool(), &lease_of("long"), false, &[])
        .await
        .unwrap();
    assert_eq!(rated.len(), 1, "the long key's last job");
}

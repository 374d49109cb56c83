//! `qron::Client` against a real database: every operation's effect on the stored rows, owner
//! isolation, transactions, bulk, and bad input that writes nothing.

use std::time::Duration;

use chrono::Utc;
use qron::{Client, Error, JobRef, JobStatus, JobUpdate, NewJob, OnConflict, Order, Search};
use qron_tests::TestDb;
use serde_json::json;

fn client(db: &TestDb) -> Client {
    Client::new(db.pool.clone())
}

/// Every row of both tables, to show that a failed call wrote nothing.
async fn snapshot(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT row_to_json(j)::text FROM qron.jobs j
         UNION ALL SELECT row_to_json(h)::text FROM qron.jobs_history h ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn create_echoes_every_field_and_defaults_the_owner() {
    let db = TestDb::new().await;
    let c = client(&db);
    let before = Utc::now();
    let job = c
        .create(
            NewJob::new("email", "@after 1 hour")
                .payload(json!({ "user_id": 7 }))
                .name("welcome-7")
                .meta(json!({ "source": "signup" }))
                .max_attempts(3)
                .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(job.executor, "email");
    assert_eq!(job.owner, "default");
    assert_eq!(job.name.as_deref(), Some("welcome-7"));
    assert_eq!(job.expr, "@after 1 hour");
    assert!(!job.recurring);
    assert_eq!(job.status, JobStatus::Ready);
    assert_eq!(job.payload, json!({ "user_id": 7 }));
    assert_eq!(job.meta, json!({ "source": "signup" }));
    assert_eq!((job.attempt, job.executions, job.max_attempts), (0, 0, 3));
    assert_eq!(job.timeout, Duration::from_secs(30));
    assert_eq!(job.last_error, None);
    assert_eq!(job.finished_at, None);
    assert!(job.start_at >= before - chrono::Duration::seconds(1));
    assert_eq!(job.run_at, job.start_at + chrono::Duration::hours(1));
    assert_eq!(c.get(job.id).await.unwrap(), job);

    let bobby = c
        .owner("bobby")
        .create(NewJob::new("email", "@daily"))
        .await
        .unwrap();
    assert_eq!(bobby.owner, "bobby");
    assert!(bobby.recurring);
    assert_eq!(bobby.expr, "@every 1 day");
    assert_eq!(bobby.payload, serde_json::Value::Null);
    assert_eq!(bobby.max_attempts, qron::DEFAULT_MAX_ATTEMPTS);
    assert_eq!(bobby.timeout, qron::DEFAULT_TIMEOUT);
}

#[tokio::test]
async fn start_time_shifts_the_schedule() {
    let db = TestDb::new().await;
    let start = chrono::SubsecRound::trunc_subsecs(Utc::now() + chrono::Duration::seconds(1), 6);
    let job = client(&db)
        .create(NewJob::new("e", "@after 100ms").start_at(start))
        .await
        .unwrap();
    assert_eq!(job.run_at, start + chrono::Duration::milliseconds(100));
}

#[tokio::test]
async fn names_conflict_by_policy() {
    let db = TestDb::new().await;
    let c = client(&db);
    let first = c
        .create(
            NewJob::new("backup", "@daily")
                .name("nightly")
                .payload(json!(1)),
        )
        .await
        .unwrap();

    let before = snapshot(&db).await;
    let err = c
        .create(NewJob::new("backup", "@hourly").name("nightly"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { executor, name } if executor == "backup" && name == "nightly"),
        "{err:?}"
    );
    assert!(err.to_string().contains("OnConflict::Keep"), "{err}");
    assert_eq!(snapshot(&db).await, before);

    let kept = c
        .create(
            NewJob::new("backup", "@hourly")
                .name("nightly")
                .on_conflict(OnConflict::Keep),
        )
        .await
        .unwrap();
    let mut kept = kept;
    assert!(kept.duplicate, "the job kept is returned as a duplicate");
    kept.duplicate = false;
    assert_eq!(kept, first);
    assert_eq!(snapshot(&db).await, before);

    let replaced = c
        .create(
            NewJob::new("backup", "@hourly")
                .name("nightly")
                .payload(json!(2))
                .on_conflict(OnConflict::Replace),
        )
        .await
        .unwrap();
    assert_eq!(replaced.id, first.id);
    assert_eq!(replaced.expr, "@every 1 hour");
    assert_eq!(replaced.payload, json!(2));

    // The same name is free under another owner and under another executor.
    c.owner("acme")
        .create(NewJob::new("backup", "@daily").name("nightly"))
        .await
        .unwrap();
    c.create(NewJob::new("report", "@daily").name("nightly"))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qron.jobs WHERE name = 'nightly'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn update_by_id_and_by_name() {
    let db = TestDb::new().await;
    let c = client(&db);
    let job = c
        .create(
            NewJob::new("counter", "@every 1 hour")
                .name("tick")
                .payload(json!({ "n": 0 })),
        )
        .await
        .unwrap();

    let updated = c
        .update(
            job.id,
            JobUpdate::new()
                .expr("@every 10 seconds")
                .payload(json!({ "n": 5 })),
        )
        .await
        .unwrap();
    assert_eq!(updated.expr, "@every 10 seconds");
    assert_eq!(updated.payload, json!({ "n": 5 }));
    assert_eq!(updated.name.as_deref(), Some("tick"));
    assert!(
        updated.run_at < job.run_at,
        "run_at is recomputed from the new expression"
    );
    assert!(updated.run_at <= Utc::now() + chrono::Duration::seconds(10));

    let by_name = c
        .update(
            JobRef::named("counter", "tick"),
            JobUpdate::new()
                .expr("0 9 * * *")
                .payload(json!({ "n": 6 })),
        )
        .await
        .unwrap();
    assert_eq!(by_name.id, job.id);
    assert_eq!(by_name.expr, "0 9 * * *");
    assert_eq!(by_name.payload, json!({ "n": 6 }));

    // A payload-only update keeps the expression and the run time.
    let payload_only = c
        .update(job.id, JobUpdate::new().payload(json!({ "n": 7 })))
        .await
        .unwrap();
    assert_eq!(payload_only.expr, "0 9 * * *");
    assert_eq!(payload_only.run_at, by_name.run_at);

    // An empty update changes nothing at all.
    let before = snapshot(&db).await;
    let same = c.update(job.id, JobUpdate::new()).await.unwrap();
    assert_eq!(same, payload_only);
    assert_eq!(snapshot(&db).await, before);

    // Meta, timeout and attempts.
    let other = c
        .update(
            job.id,
            JobUpdate::new()
                .meta(json!({ "team": "ops" }))
                .timeout(Duration::from_secs(9))
                .max_attempts(2),
        )
        .await
        .unwrap();
    assert_eq!(other.meta, json!({ "team": "ops" }));
    assert_eq!(other.timeout, Duration::from_secs(9));
    assert_eq!(other.max_attempts, 2);
}

#[tokio::test]
async fn stop_restart_and_delete() {
    let db = TestDb::new().await;
    let c = client(&db);
    let a = c
        .create(NewJob::new("e", "@every 1 minute").name("a"))
        .await
        .unwrap();
    let b = c
        .create(NewJob::new("e", "@after 1 hour").name("b"))
        .await
        .unwrap();

    assert_eq!(c.stop(a.id).await.unwrap().status, JobStatus::Stopped);
    assert_eq!(c.restart(a.id).await.unwrap().status, JobStatus::Ready);
    assert_eq!(
        c.stop(JobRef::named("e", "b")).await.unwrap().status,
        JobStatus::Stopped
    );
    assert_eq!(
        c.restart(JobRef::named("e", "b")).await.unwrap().status,
        JobStatus::Ready
    );

    // A stopped job whose run time passed: a one-off runs now, a recurring one at its next slot.
    sqlx::query("UPDATE qron.jobs SET status = 'stopped', run_at = now() - interval '150 seconds'")
        .execute(&db.pool)
        .await
        .unwrap();
    let t0 = Utc::now();
    let b2 = c.restart(b.id).await.unwrap();
    assert!(b2.run_at >= t0 - chrono::Duration::seconds(1) && b2.run_at <= Utc::now());
    let a2 = c.restart(a.id).await.unwrap();
    assert!(a2.run_at > t0, "{} should be after {t0}", a2.run_at);
    assert!(a2.run_at <= t0 + chrono::Duration::minutes(1));

    let gone = c.delete(a.id).await.unwrap();
    assert_eq!(gone.id, a.id);
    assert!(matches!(c.get(a.id).await, Err(Error::NotFound { .. })));
    c.delete(JobRef::named("e", "b")).await.unwrap();
    assert!(matches!(c.get(b.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(c.delete(b.id).await, Err(Error::NotFound { .. })));
    assert_eq!(snapshot(&db).await, Vec::<String>::new());
}

#[tokio::test]
async fn search_orders_filters_and_paginates() {
    let db = TestDb::new().await;
    let c = client(&db);
    let jobs: Vec<NewJob> = (0..50)
        .map(|i| NewJob::new("e", "@after 1 hour").name(format!("search-{i}")))
        .collect();
    let ids = c.create_many(jobs).await.unwrap();
    c.create(NewJob::new("e", "@daily").name("other"))
        .await
        .unwrap();

    let first = c
        .search(&Search::new().name_contains("sear").limit(10))
        .await
        .unwrap();
    assert_eq!(first.total, 50);
    let rest = c
        .search(&Search::new().name_contains("sear").limit(40).offset(10))
        .await
        .unwrap();
    assert_eq!(rest.total, 50);
    let names: Vec<String> = first
        .jobs
        .iter()
        .chain(&rest.jobs)
        .map(|j| j.name.clone().unwrap())
        .collect();
    let want: Vec<String> = (0..50).map(|i| format!("search-{i}")).collect();
    assert_eq!(names, want, "creation order");
    assert_eq!(
        first.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids[..10]
    );

    let past = c
        .search(&Search::new().name_contains("sear").offset(100))
        .await
        .unwrap();
    assert_eq!((past.jobs.len(), past.total), (0, 50));

    let newest = c
        .search(&Search::new().order(Order::CreatedDesc).limit(1))
        .await
        .unwrap();
    assert_eq!(newest.jobs[0].name.as_deref(), Some("other"));
    let recurring = c.search(&Search::new().recurring(true)).await.unwrap();
    assert_eq!(recurring.total, 1);
    let paused = c
        .search(&Search::new().status(JobStatus::Stopped))
        .await
        .unwrap();
    assert_eq!(paused.total, 0);
    let ready = c
        .search(&Search::new().status(JobStatus::Ready).executor("e"))
        .await
        .unwrap();
    assert_eq!(ready.total, 51);
    let soonest = c
        .search(&Search::new().order(Order::RunAtAsc).limit(1))
        .await
        .unwrap();
    assert_eq!(soonest.jobs[0].name.as_deref(), Some("search-0"));
    let due_soon = c
        .search(&Search::new().run_between(None, Some(Utc::now() + chrono::Duration::hours(2))))
        .await
        .unwrap();
    assert_eq!(due_soon.total, 50);
}

#[tokio::test]
async fn search_takes_percent_and_underscore_literally_and_matches_meta() {
    let db = TestDb::new().await;
    let c = client(&db);
    for name in ["100%", "1000", "a_b", "axb"] {
        c.create(
            NewJob::new("e", "@daily")
                .name(name)
                .meta(json!({ "name": name, "team": "x" })),
        )
        .await
        .unwrap();
    }
    let pct = c.search(&Search::new().name_contains("%")).await.unwrap();
    assert_eq!(
        pct.jobs
            .iter()
            .map(|j| j.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["100%"]
    );
    let us = c.search(&Search::new().name_contains("_")).await.unwrap();
    assert_eq!(
        us.jobs
            .iter()
            .map(|j| j.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["a_b"]
    );
    // A whole name: itself only, its `_` and `%` plain characters too.
    let c = &c;
    let names = |q: Search| async move {
        c.search(&q)
            .await
            .unwrap()
            .jobs
            .iter()
            .map(|j| j.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(Search::new().name("a_b")).await, ["a_b"]);
    assert_eq!(names(Search::new().name("100%")).await, ["100%"]);
    assert!(names(Search::new().name("100")).await.is_empty());
    assert_eq!(
        names(Search::new().name_contains("100")).await,
        ["100%", "1000"]
    );
    let meta = c
        .search(&Search::new().meta_contains(json!({ "name": "axb" })))
        .await
        .unwrap();
    assert_eq!(meta.total, 1);
    let team = c
        .search(&Search::new().meta_contains(json!({ "team": "x" })))
        .await
        .unwrap();
    assert_eq!(team.total, 4);
    let created = c
        .search(&Search::new().created_between(Some(Utc::now() + chrono::Duration::hours(1)), None))
        .await
        .unwrap();
    assert_eq!(created.total, 0);
}

#[tokio::test]
async fn owners_never_reach_each_others_jobs() {
    let db = TestDb::new().await;
    let c = client(&db);
    let acme = c.owner("acme");
    let job = acme
        .create(NewJob::new("e", "@daily").name("secret"))
        .await
        .unwrap();
    let before = snapshot(&db).await;
    for other in [c.clone(), c.owner("bobby")] {
        for target in [JobRef::Id(job.id), JobRef::named("e", "secret")] {
            let nf = |r: Result<qron::JobRow, Error>| matches!(r, Err(Error::NotFound { .. }));
            assert!(nf(other.get(target.clone()).await), "get {target}");
            assert!(nf(other
                .update(target.clone(), JobUpdate::new().payload(json!(1)))
                .await));
            assert!(nf(other.stop(target.clone()).await), "stop {target}");
            assert!(nf(other.restart(target.clone()).await), "restart {target}");
            assert!(nf(other.delete(target.clone()).await), "delete {target}");
        }
        assert_eq!(other.search(&Search::new()).await.unwrap().total, 0);
    }
    assert_eq!(snapshot(&db).await, before);
    assert_eq!(acme.get(job.id).await.unwrap().owner, "acme");
    let err = c.get(job.id).await.unwrap_err();
    assert!(err.to_string().contains("owner `default`"), "{err}");
}

#[tokio::test]
async fn enqueue_follows_the_callers_transaction() {
    let db = TestDb::new().await;
    let c = client(&db);

    let mut tx = db.pool.begin().await.unwrap();
    let job = c
        .create_with(&mut *tx, NewJob::new("e", "@after 1s"))
        .await
        .unwrap();
    c.create_many_with(&mut *tx, vec![NewJob::new("e", "@after 1s")])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(c.get(job.id).await, Err(Error::NotFound { .. })));
    assert_eq!(snapshot(&db).await, Vec::<String>::new());

    let mut tx = db.pool.begin().await.unwrap();
    let job = c
        .create_with(&mut *tx, NewJob::new("e", "@after 1s"))
        .await
        .unwrap();
    // Not visible to others (workers) before the commit.
    assert!(matches!(c.get(job.id).await, Err(Error::NotFound { .. })));
    tx.commit().await.unwrap();
    assert_eq!(c.get(job.id).await.unwrap().id, job.id);
}

#[tokio::test]
async fn concurrent_bulk_enqueues_get_their_own_ids() {
    let db = TestDb::new().await;
    let c = client(&db);
    // Bulk enqueues racing single ones: ids are drawn by every session at once, so a batch's
    // ids are not one run of numbers, and each must still come back to its own job.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for round in 0..3 {
                let jobs: Vec<NewJob> = (0..5_000)
                    .map(|i| NewJob::new("bulk", "@after 1 hour").payload(json!([t, round, i])))
                    .collect();
                let ids = c.create_many(jobs).await.unwrap();
                got.extend(
                    ids.into_iter()
                        .enumerate()
                        .map(|(i, id)| (id, json!([t, round, i]))),
                );
            }
            got
        }));
    }
    let single = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..300 {
                let j = c
                    .create(NewJob::new("bulk", "@after 1 hour").payload(json!(["single", i])))
                    .await
                    .unwrap();
                got.push((j.id, json!(["single", i])));
            }
            got
        })
    };
    let mut expected = single.await.unwrap();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    expected.sort_by_key(|e| e.0);
    let stored: Vec<(i64, serde_json::Value)> =
        sqlx::query_as("SELECT id, payload FROM qron.jobs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 4 * 3 * 5_000 + 300);
    assert_eq!(
        stored, expected,
        "every id returned is the id of its own job"
    );
}

#[tokio::test]
async fn bulk_enqueue_of_100k_jobs_takes_a_handful_of_statements() {
    let db = TestDb::new().await;
    let c = client(&db);
    let jobs: Vec<NewJob> = (0..100_000)
        .map(|i| NewJob::new("bulk", "@after 1 hour").payload(json!(i)))
        .collect();
    // A current-thread runtime: every statement of the call is counted on this thread.
    let (ids, statements) = qron_tests::logs::count_statements(c.create_many(jobs)).await;
    let ids = ids.unwrap();
    // The ids drawn and the commit at least (sqlx does not report the COPY itself).
    assert!(
        statements >= 2,
        "the counter must see the statements, saw {statements}"
    );
    assert!(statements <= 30, "{statements} statements for 100,000 jobs");
    assert_eq!(ids.len(), 100_000);
    let stored: Vec<(i64, serde_json::Value)> =
        sqlx::query_as("SELECT id, payload FROM qron.jobs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 100_000);
    for (i, (id, payload)) in stored.iter().enumerate() {
        assert_eq!(ids[i], *id, "ids come back in input order");
        assert_eq!(*payload, json!(i));
    }
}

#[tokio::test]
async fn bulk_with_names_keeps_input_order_and_policies() {
    let db = TestDb::new().await;
    let c = client(&db);
    let taken = c
        .create(NewJob::new("e", "@daily").name("taken"))
        .await
        .unwrap();
    let ids = c
        .create_many(vec![
            NewJob::new("e", "@daily")
                .name("n1")
                .on_conflict(OnConflict::Keep),
            NewJob::new("e", "@daily")
                .name("taken")
                .on_conflict(OnConflict::Keep),
            NewJob::new("e", "@daily").on_conflict(OnConflict::Keep),
        ])
        .await
        .unwrap();
    assert_eq!(ids[1], taken.id);
    assert_eq!(c.get(ids[0]).await.unwrap().name.as_deref(), Some("n1"));
    assert_eq!(c.get(ids[2]).await.unwrap().name, None);

    let before = snapshot(&db).await;
    let err = c
        .create_many(vec![
            NewJob::new("e", "@daily").name("fresh"),
            NewJob::new("e", "@daily").name("taken"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(snapshot(&db).await, before, "a failed batch writes nothing");
    let dup = c
        .create_many(vec![
            NewJob::new("e", "@daily").name("x"),
            NewJob::new("e", "@daily").name("x"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(dup, Error::InvalidArgument { field: "name", .. }),
        "{dup:?}"
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_writes_nothing() {
    let db = TestDb::new().await;
    let c = client(&db);
    let job = c
        .create(NewJob::new("e", "@daily").name("keep"))
        .await
        .unwrap();
    let before = snapshot(&db).await;
    let long = "x".repeat(qron::MAX_NAME_LEN + 1);
    let big = json!("y".repeat(qron::DEFAULT_MAX_JSON_BYTES));

    let creates: Vec<(NewJob, &str)> = vec![
        (NewJob::new("e", "@every 0s"), "invalid schedule"),
        (NewJob::new("e", "0 0 30 2 *"), "never fires"),
        (NewJob::new("e", "234 bananas"), "5 fields"),
        (
            NewJob::new("", "@daily"),
            "invalid executor: must not be empty",
        ),
        (NewJob::new(long.clone(), "@daily"), "over the limit of 255"),
        (NewJob::new("e", "@daily").name(""), "invalid name"),
        (
            NewJob::new("e", "@daily").name(long.clone()),
            "invalid name",
        ),
        (
            NewJob::new("e", "@daily").payload(big.clone()),
            "payload is",
        ),
        (
            NewJob::new("e", "@daily").meta(json!({ "k": big.clone() })),
            "meta is",
        ),
        (
            NewJob::new("e", "@daily").meta(json!([1, 2])),
            "must be a JSON object",
        ),
        (NewJob::new("e", "@daily").max_attempts(0), "max_attempts"),
        (
            NewJob::new("e", "@daily").max_attempts(1001),
            "outside 1..=1000",
        ),
        (
            NewJob::new("e", "@daily").timeout(Duration::ZERO),
            "timeout",
        ),
    ];
    for (i, (new, needle)) in creates.into_iter().enumerate() {
        let err = c.create(new.clone()).await.unwrap_err().to_string();
        assert!(err.contains(needle), "case {i}: {err:.300}");
        let err = c
            .create_many(vec![NewJob::new("e", "@daily"), new])
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "bulk case {i}: {err:.300}"
        );
    }
    // An invalid job after enough valid ones that part of the batch has reached the server.
    let mut batch: Vec<NewJob> = (0..20_000)
        .map(|i| NewJob::new("e", "@daily").payload(json!({ "n": i })))
        .collect();
    batch.push(NewJob::new("e", "@daily").max_attempts(0));
    let err = c.create_many(batch).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidArgument {
                field: "max_attempts",
                ..
            }
        ) && err.to_string().contains("job 20000"),
        "{err}"
    );
    let err = c
        .owner("")
        .create(NewJob::new("e", "@daily"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { field: "owner", .. }),
        "{err:?}"
    );
    assert!(matches!(
        c.create(NewJob::new("e", "@daily").payload(big.clone()))
            .await,
        Err(Error::TooLarge {
            field: "payload",
            ..
        })
    ));
    assert!(matches!(
        c.create(NewJob::new("e", "@nope")).await,
        Err(Error::InvalidExpression(_))
    ));

    let updates = vec![
        JobUpdate::new().expr("@every -1s"),
        JobUpdate::new().payload(big.clone()),
        JobUpdate::new().meta(json!("not an object")),
        JobUpdate::new().max_attempts(0),
        JobUpdate::new().timeout(Duration::ZERO),
        JobUpdate::new().expr("@daily").payload(big),
    ];
    for (i, u) in updates.into_iter().enumerate() {
        assert!(c.update(job.id, u).await.is_err(), "update case {i}");
    }
    assert!(matches!(
        c.update(job.id + 1000, JobUpdate::new().payload(json!(1)))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        c.search(&Search::new().limit(0)).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        c.search(&Search::new().offset(-1)).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(snapshot(&db).await, before);

    // A smaller limit, configured.
    let small = Client::builder(db.pool.clone()).max_json_bytes(10).build();
    let err = small
        .create(NewJob::new("e", "@daily").payload(json!("0123456789")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                size: 12,
                limit: 10,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn validate_gives_canonical_text_description_and_next_runs() {
    let from = chrono::TimeZone::with_ymd_and_hms(&Utc, 2024, 1, 1, 0, 0, 0).unwrap();
    let v = qron::validate("0 9 * * mon-fri", from, 3).unwrap();
    assert_eq!(v.canonical, "0 9 * * 1-5");
    assert_eq!(v.description, "at 09:00, Monday through Friday");
    assert!(v.recurring);
    let days: Vec<u32> = v.next_runs.iter().map(chrono::Datelike::day).collect();
    assert_eq!(days, [1, 2, 3]);
    let once = qron::validate("@after 1 hour", from, 3).unwrap();
    assert_eq!(once.next_runs.len(), 1);
    assert!(qron::validate("@every", from, 3).is_err());
}

#[tokio::test]
async fn conditional_updates_refuse_stale_revisions() {
    let db = TestDb::new().await;
    let c = client(&db);
    let job = c
        .create(NewJob::new("e", "@daily").name("cond"))
        .await
        .unwrap();
    assert_eq!(job.revision, 0);
    let first = c
        .update(job.id, JobUpdate::new().max_attempts(2).if_revision(0))
        .await
        .unwrap();
    assert_eq!((first.max_attempts, first.revision), (2, 1));
    let before = snapshot(&db).await;
    let err = c
        .update(
            JobRef::named("e", "cond"),
            JobUpdate::new().max_attempts(3).if_revision(0),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RevisionMismatch {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        c.update(job.id, JobUpdate::new().if_revision(0)).await,
        Err(Error::RevisionMismatch { .. })
    ));
    assert_eq!(snapshot(&db).await, before);
    // Every management change moves the revision on.
    assert_eq!(c.stop(job.id).await.unwrap().revision, 2);
    assert_eq!(c.restart(job.id).await.unwrap().revision, 3);
}

#[tokio::test]
async fn enqueue_inside_a_transaction_works_in_a_spawned_task() {
    // Regression (issue 13, defect 11): `create_with(&mut *tx, …)` was not `Send`, so it could
    // not be awaited in `tokio::spawn` or an axum handler (while `create_many_with` could).
    let db = TestDb::new().await;
    let c = client(&db);
    let pool = db.pool.clone();
    let id = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let job = c
            .create_with(&mut *tx, NewJob::new("e", "@after 1 hour"))
            .await
            .unwrap();
        c.create_many_with(&mut *tx, vec![NewJob::new("e", "@after 1 hour")])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        job.id
    })
    .await
    .unwrap();
    assert_eq!(client(&db).get(id).await.unwrap().executor, "e");
}

#[tokio::test]
async fn connect_reports_an_unreachable_server_at_once_with_the_cause() {
    // Nothing listens on port 1 of the loopback: refused at once.
    let started = std::time::Instant::now();
    let err = Client::connect("postgres://qron@127.0.0.1:1/app")
        .await
        .err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let Some(Error::Connect { target, reason }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(target, "127.0.0.1:1");
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("DATABASE_URL"), "{text}");
    // A URL that does not parse names the field.
    let err = Client::connect("postgres://[bad").await.err();
    assert!(
        matches!(err, Some(Error::InvalidArgument { field: "url", .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn every_write_of_a_payload_or_meta_stores_its_size_for_the_workers_budget() {
    // The `bytes` column a worker's lease sums against its memory budget: the JSON texts'
    // lengths, written by every path that writes a payload or a meta.
    let db = TestDb::new().await;
    let c = client(&db);
    let size = |payload: &serde_json::Value, meta: &serde_json::Value| {
        (serde_json::to_string(payload).unwrap().len() + serde_json::to_string(meta).unwrap().len())
            as i32
    };
    let stored = async |id: i64| -> i32 {
        sqlx::query_scalar("SELECT bytes FROM qron.jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let (p1, m1) = (json!("x".repeat(1000)), json!({"trace": "y".repeat(100)}));
    let one = c
        .create(
            NewJob::new("e", "@after 1h")
                .payload(p1.clone())
                .meta(m1.clone()),
        )
        .await
        .unwrap()
        .id;
    assert_eq!(stored(one).await, size(&p1, &m1), "create");
    let (p2, empty) = (json!("payload two"), json!({}));
    let ids = c
        .create_many([
            NewJob::new("e", "@after 1h").payload(p2.clone()),
            NewJob::new("e", "@after 1h")
                .payload(p1.clone())
                .name("named"),
        ])
        .await
        .unwrap();
    assert_eq!(
        stored(ids[0]).await,
        size(&p2, &empty),
        "create_many through COPY"
    );
    assert_eq!(
        stored(ids[1]).await,
        size(&p1, &empty),
        "create_many of a named job"
    );
    let null = serde_json::Value::Null;
    let bare = c.create(NewJob::new("e", "@after 1h")).await.unwrap().id;
    assert_eq!(stored(bare).await, size(&null, &empty), "no payload");
    c.update(one, JobUpdate::new().payload(p2.clone()))
        .await
        .unwrap();
    // The part kept is measured as the server writes it back (a space after each colon).
    let kept: i32 =
        sqlx::query_scalar("SELECT octet_length(meta::text) FROM qron.jobs WHERE id = $1")
            .bind(one)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        stored(one).await,
        size(&p2, &empty) - 2 + kept,
        "a new payload, the meta kept"
    );
    c.update(one, JobUpdate::new().meta(empty.clone()))
        .await
        .unwrap();
    assert_eq!(
        stored(one).await,
        size(&p2, &empty),
        "a new meta, the payload kept"
    );
    c.update(one, JobUpdate::new().expr("@after 2h"))
        .await
        .unwrap();
    assert_eq!(stored(one).await, size(&p2, &empty), "neither changed");
    // Finished, then run again with a new payload: back with its size.
    c.cancel(bare).await.unwrap();
    c.retry_with_payload(bare, p1.clone()).await.unwrap();
    assert_eq!(
        stored(bare).await,
        size(&p1, &empty),
        "retried with a payload"
    );
}

#[tokio::test]
async fn create_returns_the_row_a_read_of_it_returns() {
    let db = TestDb::new().await;
    let c = client(&db).owner("acme");
    let start = chrono::DateTime::parse_from_rfc3339("2031-05-06T07:08:09.123456789Z")
        .unwrap()
        .with_timezone(&Utc);
    let jobs = [
        NewJob::new("e", "@after 1 hour"),
        NewJob::new("e", "@every 90 seconds")
            .name("n")
            .payload(json!({
                "b": 1.5, "a": [1, "x\u{e9}\"", null], "big": u64::MAX, "neg": -0.0,
                "tiny": 1e-7, "int": -42, "nested": { "z": true, "y": {} }
            }))
            .meta(json!({ "team": "x", "n": 2 }))
            .priority(2),
        NewJob::new("e", "@at 1999-12-31T23:59:59.1234567Z").payload(json!("text")),
        NewJob::new("e", "0 9 * * MON-FRI").start_at(start),
        NewJob::new("e", "@after 0s").payload(json!([])),
    ];
    for job in jobs {
        let created = c.create(job).await.unwrap();
        let read = c.get(created.id).await.unwrap();
        assert_eq!(created, read);
        assert_eq!(created.payload.to_string(), read.payload.to_string());
    }
}

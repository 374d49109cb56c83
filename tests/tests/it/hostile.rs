//! Hostile input at every public entry (issue 13, defect 8 and the property test): each value
//! gives a typed validation error naming its field, or a correct result; never a raw database
//! error for an input problem, and never a change to another row.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use qron::{Client, Error, JobRef, JobUpdate, NewJob, OnConflict, Order, Search};
use qron_tests::jobs::{Greeting, Welcome};
use qron_tests::{Rng, TestDb};
use serde_json::{Value, json};

/// A checksum of every stored row.
async fn checksum(db: &TestDb) -> String {
    sqlx::query_scalar(
        "SELECT coalesce(md5(string_agg(r, '|' ORDER BY r)), '') FROM (
           SELECT row_to_json(j)::text AS r FROM qron.jobs j
           UNION ALL
           SELECT row_to_json(h)::text FROM qron.jobs_history h) t",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Every stored row, by id.
async fn rows(db: &TestDb) -> std::collections::BTreeMap<i64, String> {
    sqlx::query_as::<_, (i64, String)>(
        "SELECT id, row_to_json(j)::text FROM qron.jobs j
         UNION ALL SELECT id, row_to_json(h)::text FROM qron.jobs_history h",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

fn is_input_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidArgument { .. }
            | Error::InvalidExpression(_)
            | Error::TooLarge { .. }
            | Error::AlreadyExists { .. }
            | Error::NotFound { .. }
            | Error::RevisionMismatch { .. }
    )
}

fn nested(depth: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..depth {
        v = json!({ "k": v });
    }
    v
}

#[tokio::test]
async fn the_inputs_the_issue_names_are_typed_errors_that_write_nothing() {
    // Regression (defect 8): each of these came back as a raw `Error::Database` (or, for the
    // search, failed) instead of the client's typed error naming the field.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    c.create(NewJob::new("e", "@daily").name("keep"))
        .await
        .unwrap();
    let before = checksum(&db).await;
    let field = |r: qron::Result<qron::JobRow>| match r {
        Err(Error::InvalidArgument { field, .. }) => field,
        Err(Error::InvalidExpression(_)) => "expr",
        other => panic!("{other:?}"),
    };
    let cases: Vec<(NewJob, &str)> = vec![
        (NewJob::new("e", "@daily").name("a\0b"), "name"),
        (NewJob::new("e\0", "@daily"), "executor"),
        (NewJob::new("e", "@daily").payload(json!("a\0b")), "payload"),
        (
            NewJob::new("e", "@daily").meta(json!({ "k": "a\0b" })),
            "meta",
        ),
        (
            NewJob::new("e", format!("{} * * * *", "1,".repeat(50_000))),
            "expr",
        ),
        (
            NewJob::new("e", "@daily").start_at(DateTime::<Utc>::MIN_UTC),
            "start_at",
        ),
        (
            NewJob::new("e", "@daily").start_at(DateTime::<Utc>::MAX_UTC),
            "start_at",
        ),
        (
            NewJob::new("e", "@after 1 day")
                .start_at(Utc.with_ymd_and_hms(9999, 12, 31, 12, 0, 0).unwrap()),
            "expr",
        ),
        (NewJob::new("e", "@daily").timeout(Duration::MAX), "timeout"),
        (
            NewJob::new("e", "@daily").meta(json!({ "k": nested(100) })),
            "meta",
        ),
    ];
    for (job, want) in cases {
        assert_eq!(field(c.create(job.clone()).await), want, "{job:?}");
        assert!(matches!(
            c.create_many(vec![job]).await,
            Err(e) if is_input_error(&e)
        ));
    }
    assert_eq!(
        field(c.owner("a\0").create(NewJob::new("e", "@daily")).await),
        "owner"
    );
    assert_eq!(field(c.get(JobRef::named("e", "a\0")).await), "name");
    assert_eq!(
        field(
            c.update(
                JobRef::named("e\0", "keep"),
                JobUpdate::new().max_attempts(2)
            )
            .await
        ),
        "executor"
    );
    assert_eq!(
        field(
            c.update(
                JobRef::named("e", "keep"),
                JobUpdate::new().timeout(Duration::MAX)
            )
            .await
        ),
        "timeout"
    );
    assert!(matches!(
        c.search(&Search::new().name_contains("\0")).await,
        Err(Error::InvalidArgument {
            field: "name_contains",
            ..
        })
    ));
    assert!(matches!(
        c.search(&Search::new().name("a\0b")).await,
        Err(Error::InvalidArgument { field: "name", .. })
    ));
    assert_eq!(checksum(&db).await, before);
    // Bounds past the range jobs live in select what the range's ends select.
    let all = c
        .search(&Search::new().created_between(
            Some(DateTime::<Utc>::MIN_UTC),
            Some(DateTime::<Utc>::MAX_UTC),
        ))
        .await
        .unwrap();
    assert_eq!(all.total, 1);
    let all = c
        .search(&Search::new().run_between(
            Some(DateTime::<Utc>::MIN_UTC),
            Some(DateTime::<Utc>::MAX_UTC),
        ))
        .await
        .unwrap();
    assert_eq!(all.total, 1);
}

/// Generates hostile values from a seed.
struct Gen(Rng);

impl Gen {
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "",
            "a",
            "job",
            "\0",
            "\\u0000",
            "'",
            "\"",
            ";--",
            "%",
            "_",
            "\\",
            "%_%",
            "'); DROP TABLE qron.jobs; --",
            "é",
            "🦀",
            "\u{202e}",
            "\u{fffd}",
            " ",
            "\n",
            "\t",
            "keep",
            "n1",
            "default",
            "acme",
            "e",
        ];
        match self.0.below(20) {
            0 => "x".repeat(100 * 1024),
            1 => "y".repeat(256),
            _ => (0..self.0.range(0, 3))
                .map(|_| self.0.pick(PIECES))
                .collect::<String>(),
        }
    }

    fn expr(&mut self) -> String {
        const EXPRS: &[&str] = &[
            "@daily",
            "@every 10 ms",
            "@every 9 ms",
            "@every 1\0 second",
            "@every 0s",
            "@after 0s",
            "@after -1 day",
            "@after 1000000 years",
            "@at 9999-12-31T23:59:59Z",
            "@at 0001-01-01T00:00:00Z",
            "*/4294967295 * * * *",
            "0 0 30 2 *",
            "TZ=Nowhere 0 0 * * *",
            "TZ=Europe/Paris @every 1 day",
            "0 9 * * MON-FRI",
            "@every 1 year -1 day",
            "@every 2147483647 months",
            "@every 9223372036854775807 microseconds",
        ];
        if self.0.chance(0.7) {
            self.0.pick(EXPRS).to_owned()
        } else if self.0.chance(0.5) {
            format!(
                "{} * * * *",
                "1,".repeat(self.0.range(1, 600) as usize) + "1"
            )
        } else {
            self.text()
        }
    }

    fn json(&mut self) -> Value {
        match self.0.below(9) {
            0 => Value::Null,
            1 => json!(i64::MIN),
            2 => json!(u64::MAX),
            3 => json!(f64::MAX),
            4 => json!(self.text()),
            5 => nested(self.0.pick(&[1, 63, 64, 65, 200])),
            6 => json!({ self.text(): self.text() }),
            7 => json!([self.text(), null, true]),
            _ => json!({ "n": 1 }),
        }
    }

    fn time(&mut self) -> DateTime<Utc> {
        match self.0.below(7) {
            0 => DateTime::<Utc>::MIN_UTC,
            1 => DateTime::<Utc>::MAX_UTC,
            2 => DateTime::<Utc>::UNIX_EPOCH,
            3 => Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            4 => Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            5 => Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            _ => Utc::now(),
        }
    }

    fn duration(&mut self) -> Duration {
        self.0.pick(&[
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(1),
            Duration::from_secs(1),
            qron::MAX_TIMEOUT,
            qron::MAX_TIMEOUT + Duration::from_secs(1),
            Duration::MAX,
        ])
    }

    fn i32(&mut self) -> i32 {
        self.0.pick(&[i32::MIN, -1, 0, 1, 5, 1000, 1001, i32::MAX])
    }

    fn i64(&mut self) -> i64 {
        self.0.pick(&[i64::MIN, -1, 0, 1, 2, 3, 1000, i64::MAX])
    }

    fn new_job(&mut self) -> NewJob {
        let mut j = NewJob::new(
            if self.0.chance(0.6) {
                "e".to_owned()
            } else {
                self.text()
            },
            self.expr(),
        );
        if self.0.chance(0.5) {
            j = j.payload(self.json());
        }
        if self.0.chance(0.4) {
            j = j.name(self.text());
        }
        if self.0.chance(0.4) {
            j = j.meta(self.json());
        }
        if self.0.chance(0.3) {
            j = j.start_at(self.time());
        }
        if self.0.chance(0.3) {
            j = j.timeout(self.duration());
        }
        if self.0.chance(0.3) {
            j = j.max_attempts(self.i32());
        }
        j.on_conflict(
            self.0
                .pick(&[OnConflict::Error, OnConflict::Keep, OnConflict::Replace]),
        )
    }

    fn target(&mut self, ids: &[i64]) -> JobRef {
        match self.0.below(3) {
            0 => JobRef::Id(self.0.pick(ids)),
            1 => JobRef::Id(self.i64()),
            _ => JobRef::named(
                if self.0.chance(0.7) {
                    "e".to_owned()
                } else {
                    self.text()
                },
                if self.0.chance(0.5) {
                    format!("n{}", self.0.below(5))
                } else {
                    self.text()
                },
            ),
        }
    }

    fn update(&mut self) -> JobUpdate {
        let mut u = JobUpdate::new();
        if self.0.chance(0.4) {
            u = u.expr(self.expr());
        }
        if self.0.chance(0.4) {
            u = u.payload(self.json());
        }
        if self.0.chance(0.4) {
            u = u.meta(self.json());
        }
        if self.0.chance(0.3) {
            u = u.timeout(self.duration());
        }
        if self.0.chance(0.3) {
            u = u.max_attempts(self.i32());
        }
        if self.0.chance(0.2) {
            u = u.if_revision(self.i64());
        }
        u
    }

    fn search(&mut self) -> Search {
        let mut q = Search::new();
        if self.0.chance(0.4) {
            q = q.executor(self.text());
        }
        if self.0.chance(0.4) {
            q = q.name_contains(self.text());
        }
        if self.0.chance(0.3) {
            q = q.created_between(Some(self.time()), Some(self.time()));
        }
        if self.0.chance(0.3) {
            q = q.run_between(Some(self.time()), Some(self.time()));
        }
        if self.0.chance(0.3) {
            q = q.meta_contains(self.json());
        }
        if self.0.chance(0.3) {
            q = q.limit(self.i64()).offset(self.i64());
        }
        q.order(self.0.pick(&[
            Order::CreatedAsc,
            Order::CreatedDesc,
            Order::RunAtAsc,
            Order::RunAtDesc,
        ]))
    }
}

#[tokio::test]
async fn every_public_input_gives_a_typed_error_or_a_correct_result_and_touches_no_other_row() {
    let seed = std::env::var("QRON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    let db = TestDb::new().await;
    let base = Client::new(db.pool.clone());
    let mut ids = Vec::new();
    for owner in ["default", "acme"] {
        for i in 0..5 {
            let j = base
                .owner(owner)
                .create(NewJob::new("e", "@daily").name(format!("n{i}")))
                .await
                .unwrap();
            ids.push(j.id);
        }
    }
    let mut g = Gen(Rng::new(seed));
    let (mut ok, mut refused) = (0, 0);
    for case in 0..400 {
        let owner = if g.0.chance(0.8) {
            g.0.pick(&["default", "acme"]).to_owned()
        } else {
            g.text()
        };
        let c = base.owner(owner.clone());
        let before = rows(&db).await;
        let op = g.0.below(9);
        // Each operation: what it returned (the ids it may change), or the error.
        let result: qron::Result<Vec<i64>> = match op {
            0 => c.create(g.new_job()).await.map(|j| vec![j.id]),
            1 => {
                let jobs: Vec<NewJob> = (0..g.0.range(1, 3)).map(|_| g.new_job()).collect();
                c.create_many(jobs).await
            }
            2 => c.get(g.target(&ids)).await.map(|_| vec![]),
            3 => c.search(&g.search()).await.map(|_| vec![]),
            4 => {
                let (t, u) = (g.target(&ids), g.update());
                c.update(t, u).await.map(|j| vec![j.id])
            }
            5 => c.stop(g.target(&ids)).await.map(|j| vec![j.id]),
            6 => c.restart(g.target(&ids)).await.map(|j| vec![j.id]),
            7 => {
                let mut e = Welcome::schedule_with(
                    &c,
                    &g.expr(),
                    Greeting {
                        key: g.text(),
                        user_id: g.i64(),
                    },
                );
                if g.0.chance(0.5) {
                    e = e.name(g.text());
                }
                if g.0.chance(0.5) {
                    e = e.meta(g.json());
                }
                if g.0.chance(0.3) {
                    e = e.start_at(g.time());
                }
                if g.0.chance(0.3) {
                    e = e.owner(g.text());
                }
                if g.0.chance(0.3) {
                    e = e.max_attempts(g.i32());
                }
                e.await.map(|j| vec![j.id])
            }
            _ => {
                let (expr, from) = (g.expr(), g.time());
                let _ = qron::validate(&expr, from, 3);
                Ok(vec![])
            }
        };
        match result {
            Ok(changed) => {
                ok += 1;
                // What the operation changed is its own row(s); every other row is as it was.
                let mut after = rows(&db).await;
                let mut before = before;
                for id in &changed {
                    after.remove(id);
                    before.remove(id);
                }
                assert_eq!(after, before, "case {case} (op {op}) changed another row");
                for id in changed {
                    // A created or changed job reads back, for its owner (a typed enqueue may
                    // name another owner).
                    let owned = base.owner(owner.clone()).get(id).await;
                    assert!(
                        owned.is_ok() || op == 7,
                        "case {case} (op {op}): job {id} does not read back: {owned:?}"
                    );
                }
            }
            Err(e) => {
                refused += 1;
                assert!(
                    is_input_error(&e),
                    "case {case} (op {op}): not a typed input error: {e:?}"
                );
                assert_eq!(
                    rows(&db).await,
                    before,
                    "case {case} (op {op}): a refused call wrote"
                );
            }
        }
    }
    assert!(
        ok > 50 && refused > 50,
        "{ok} accepted, {refused} refused: the generator is off"
    );
}

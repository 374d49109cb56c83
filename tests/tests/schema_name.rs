//! A schema of the application's choosing (issue 17): two applications share one database,
//! each with its jobs in its own schema, and neither sees, runs or wakes the other's. A binary
//! of its own: the schema is chosen once per process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use qron::{Client, JobStatus, Worker};
use qron_tests::TestDb;
use qron_tests::jobs::{Mode, key, script_job};

#[tokio::test]
async fn two_applications_share_a_database_in_schemas_of_their_own() {
    qron::set_schema("billing_jobs").unwrap();
    assert_eq!(qron::schema(), "billing_jobs");
    let e = qron::set_schema("qron").unwrap_err();
    assert!(
        matches!(
            e,
            qron::Error::InvalidArgument {
                field: "schema",
                ..
            }
        ),
        "{e}"
    );

    let db = TestDb::empty().await;
    // The other application: qron's default schema (applied as its plain SQL, since this
    // process uses the other), with a due job of the same executor.
    sqlx::query("CREATE SCHEMA qron")
        .execute(&db.pool)
        .await
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../qron/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        sqlx::raw_sql(sqlx::AssertSqlSafe(std::fs::read_to_string(file).unwrap()))
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let k = key("schema");
    let payload = serde_json::to_string(&qron_tests::jobs::Script::new(&k, Mode::Ok)).unwrap();
    sqlx::query(
        "INSERT INTO qron.jobs (executor, expr, recurring, run_at, slot_at, payload)
         VALUES ('act', '@after 0s', false, now(), now(), $1::jsonb)",
    )
    .bind(&payload)
    .execute(&db.pool)
    .await
    .unwrap();

    // This application: its schema, made and recorded by the migrator (twice: idempotent).
    qron::migrate(&db.pool).await.unwrap();
    qron::migrate(&db.pool).await.unwrap();
    let recorded: i64 = qron_tests::count(
        &db.pool,
        "SELECT count(*) FROM billing_jobs._sqlx_migrations",
    )
    .await;
    assert_eq!(recorded, qron::migrator().iter().count() as i64);

    let c = Client::new(db.pool.clone());
    let ours = c
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    let waiting = c
        .create(script_job("act", "@after 1 hour", &k, Mode::UntilCancelled))
        .await
        .unwrap();
    Worker::builder(c.clone())
        .executors(["act"])
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(c.get(ours.id).await.unwrap().status, JobStatus::Succeeded);
    let probe = qron_tests::jobs::probe(&k);
    assert_eq!(probe.started(), 1, "only this application's job ran");
    let (status, executions): (String, i64) =
        sqlx::query_as("SELECT status::text, executions FROM qron.jobs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), executions),
        ("ready", 0),
        "the other's job"
    );

    // The operator's view and actions stay in this schema too.
    c.pause_executor("act").await.unwrap();
    let paused: i64 =
        qron_tests::count(&db.pool, "SELECT count(*) FROM qron.executor_pauses").await;
    assert_eq!(paused, 0);
    let act = &c.executors().await.unwrap()[0];
    assert_eq!((act.ready, act.is_paused()), (1, true));
    assert_eq!(
        c.cancel(waiting.id).await.unwrap().status,
        JobStatus::Cancelled
    );
}

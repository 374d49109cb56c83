//! `#[qron::job]` end to end: typed enqueue, the registry, and payloads that no longer decode.

use std::time::Duration;

use qron::{Client, JobStatus, NewJob, Registration, Worker};
use qron_tests::jobs::{Act, Greeting, Script, Welcome, key, probe};
use qron_tests::{Running, TestDb, count, wait_for};

fn worker(db: &TestDb, executors: &[&str]) -> qron::WorkerBuilder {
    Worker::builder(Client::new(db.pool.clone()))
        .executors(executors.iter().copied())
        .poll_interval(Duration::from_millis(100))
}

#[tokio::test]
async fn a_typed_job_runs_with_its_payload() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("typed");
    let job = Welcome::schedule_with(
        &c,
        "@after 0s",
        Greeting {
            key: k.clone(),
            user_id: 7,
        },
    )
    .name("welcome-7")
    .meta(serde_json::json!({ "source": "signup" }))
    .await
    .unwrap();
    assert_eq!(job.executor, "welcome");
    assert_eq!(job.name.as_deref(), Some("welcome-7"));
    assert_eq!(job.payload, serde_json::json!({ "key": k, "user_id": 7 }));
    // The options of the attribute reach the stored job.
    let act = Act::schedule_with(
        &c,
        "@after 1 hour",
        Script::new(&k, qron_tests::jobs::Mode::Ok),
    )
    .await
    .unwrap();
    assert_eq!(act.max_attempts, 3);
    assert_eq!(act.timeout, Duration::from_millis(300));

    let running = Running::start(worker(&db, &["welcome"]).build().unwrap());
    wait_for("the typed job", Duration::from_secs(10), || async {
        c.get(job.id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    running.stop().await;
    assert_eq!(*probe(&k).values.lock().unwrap(), [7]);
}

#[tokio::test]
async fn typed_enqueue_follows_the_callers_transaction() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let mut tx = db.pool.begin().await.unwrap();
    let job = Welcome::schedule_with(
        &mut *tx,
        "@after 1 hour",
        Greeting {
            key: "tx".into(),
            user_id: 1,
        },
    )
    .owner("acme")
    .await
    .unwrap();
    assert_eq!(job.owner, "acme");
    tx.rollback().await.unwrap();
    assert!(c.owner("acme").get(job.id).await.is_err());
    assert_eq!(count(&db.pool, "SELECT count(*) FROM qron.jobs").await, 0);
}

#[tokio::test]
async fn the_default_client_serves_typed_enqueue() {
    let db = TestDb::new().await;
    // The only test of this binary that installs the process-wide default client: one that
    // acts for owner `acme`.
    assert!(qron::init(Client::new(db.pool.clone()).owner("acme")));
    // Regression (issue 13, defect 11): through a connection, the job went to owner
    // `default` whatever the default client's owner.
    let mut tx = db.pool.begin().await.unwrap();
    let in_tx = Welcome::schedule_with(
        &mut *tx,
        "@after 1 hour",
        Greeting {
            key: "tx".into(),
            user_id: 1,
        },
    )
    .await
    .unwrap();
    // The transaction itself (`&mut tx`) and a pool serve as well, with the same owner.
    let via_tx = Welcome::schedule_with(
        &mut tx,
        "@after 1 hour",
        Greeting {
            key: "tx2".into(),
            user_id: 4,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (in_tx.owner.as_str(), via_tx.owner.as_str()),
        ("acme", "acme")
    );
    let via_pool = Welcome::schedule_with(
        &db.pool,
        "@after 1 hour",
        Greeting {
            key: "pool".into(),
            user_id: 5,
        },
    )
    .await
    .unwrap();
    assert_eq!(via_pool.owner, "acme");
    let job = Welcome::schedule(
        "@after 1 hour",
        Greeting {
            key: "default".into(),
            user_id: 3,
        },
    )
    .await
    .unwrap();
    let ids = Welcome::schedule_many((0..3).map(|i| {
        (
            "@after 1 hour",
            Greeting {
                key: "many".into(),
                user_id: i,
            },
        )
    }))
    .await
    .unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| *id > job.id));
    assert_eq!(job.owner, "acme");
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE executor = 'welcome' AND owner = 'acme'"
        )
        .await,
        7
    );
}

#[tokio::test]
async fn a_payload_that_no_longer_decodes_fails_naming_the_type() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = c
        .create(NewJob::new("welcome", "@after 0s").payload(serde_json::json!({ "user": "seven" })))
        .await
        .unwrap();
    let running = Running::start(worker(&db, &["welcome"]).build().unwrap());
    wait_for("the failure", Duration::from_secs(10), || async {
        c.get(job.id).await.unwrap().status == JobStatus::Failed
    })
    .await;
    running.stop().await;
    let failed = c.get(job.id).await.unwrap();
    assert_eq!(failed.executions, 1, "no retry: it would never decode");
    let error = failed.last_error.unwrap();
    assert!(error.contains("Greeting"), "{error}");
    assert!(error.contains("missing field"), "{error}");
}

#[test]
fn jobs_declared_in_a_library_are_registered() {
    let jobs = qron::registered_jobs().unwrap();
    for executor in [
        "act",
        "act_lease",
        "noop",
        "welcome",
        "tag_a",
        "tag_b",
        "tag_c",
    ] {
        assert!(
            jobs.contains_key(executor),
            "{executor} is missing: {:?}",
            jobs.keys()
        );
    }
    let act = jobs["act"];
    assert_eq!(act.type_name, "qron_tests::jobs::Act");
    assert_eq!(act.options.max_attempts, 3);
    assert_eq!(act.options.concurrency, 50);
    assert_eq!(act.options.backoff.base, Duration::from_millis(1));
}

#[tokio::test]
async fn two_jobs_on_one_executor_are_refused_at_start() {
    let db = TestDb::new().await;
    let clash = Registration::of::<Act>("elsewhere::Act");
    let err = Worker::builder(Client::new(db.pool.clone()))
        .register(clash)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("qron_tests::jobs::Act") && err.contains("elsewhere::Act"),
        "{err}"
    );
    assert!(err.contains("`act`"), "{err}");
}

#[tokio::test]
async fn a_handler_can_be_called_directly() {
    let ctx = qron::Context::detached("welcome");
    let k = key("direct");
    qron_tests::jobs::welcome(
        ctx,
        Greeting {
            key: k.clone(),
            user_id: 42,
        },
    )
    .await
    .unwrap();
    assert_eq!(*probe(&k).values.lock().unwrap(), [42]);
}

#[tokio::test]
async fn an_untyped_job_of_a_declared_executor_gets_its_declared_options() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // `act` declares 3 attempts and a 300 ms limit (qron_tests::jobs).
    let declared = c.create(NewJob::new("act", "@after 1 hour")).await.unwrap();
    assert_eq!(
        (declared.max_attempts, declared.timeout),
        (3, std::time::Duration::from_millis(300))
    );
    // What the job itself sets wins; an executor no job declares gets the defaults.
    let explicit = c
        .create(
            NewJob::new("act", "@after 1 hour")
                .max_attempts(7)
                .timeout(std::time::Duration::from_secs(9)),
        )
        .await
        .unwrap();
    assert_eq!(
        (explicit.max_attempts, explicit.timeout),
        (7, std::time::Duration::from_secs(9))
    );
    let undeclared = c
        .create(NewJob::new("nobody_declares_this", "@after 1 hour"))
        .await
        .unwrap();
    assert_eq!(
        (undeclared.max_attempts, undeclared.timeout),
        (qron::DEFAULT_MAX_ATTEMPTS, qron::DEFAULT_TIMEOUT)
    );
    // The bulk path too.
    let ids = c
        .create_many([NewJob::new("act", "@after 1 hour")])
        .await
        .unwrap();
    let bulk = c.get(ids[0]).await.unwrap();
    assert_eq!(bulk.max_attempts, 3);
}

/// A workflow whose payload is its own type named `State`, beside a shared `qron::State<T>`.
mod workflow {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    pub struct State {
        pub step: u32,
    }

    #[qron::job(executor = "workflow-step")]
    pub async fn advance(state: State, limit: qron::State<u32>) -> Result<(), qron::JobError> {
        if state.step < *limit {
            Ok(())
        } else {
            Err(qron::JobError::fail(format!(
                "step {} is past the last",
                state.step
            )))
        }
    }
}

#[tokio::test]
async fn a_payload_named_state_is_the_payload() {
    // Regression: the macro took any type named `State` for `qron::State<T>`, and refused a
    // payload named so ("`State` takes one type").
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = workflow::Advance::schedule_with(&c, "@after 0s", workflow::State { step: 1 })
        .await
        .unwrap();
    let w = Worker::builder(c.clone())
        .job::<workflow::Advance>()
        .executors(["workflow-step"])
        .state(3_u32)
        .build()
        .unwrap();
    w.run_until_idle().await.unwrap();
    assert_eq!(c.get(job.id).await.unwrap().status, JobStatus::Succeeded);
}

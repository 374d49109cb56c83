//! Application state in handlers: `State<T>` arguments, supplied by the worker, checked when
//! it is built, and supplied by hand to a detached context in unit tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use qron::{Client, Context, Error, JobError, JobStatus, State, Worker};
use qron_tests::{Running, TestDb, wait_for};
use serde::{Deserialize, Serialize};

/// The application's mailer: what it sent.
#[derive(Clone, Default)]
struct Mailer {
    sent: Arc<Mutex<Vec<String>>>,
}

#[derive(Serialize, Deserialize)]
struct Welcome {
    user_id: i64,
}

/// State, payload and context in an order of the user's choosing, with two states.
#[qron::job(executor = "welcome_mail")]
async fn welcome_mail(
    State(mailer): State<Mailer>,
    msg: Welcome,
    ctx: Context,
    State(pool): State<sqlx::PgPool>,
) -> Result<(), JobError> {
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    mailer
        .sent
        .lock()
        .unwrap()
        .push(format!("user {} job {} check {one}", msg.user_id, ctx.id()));
    Ok(())
}

#[tokio::test]
async fn a_handler_gets_the_workers_state() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = WelcomeMail::schedule_with(&c, "@after 0s", Welcome { user_id: 7 })
        .await
        .unwrap();
    let mailer = Mailer::default();
    let running = Running::start(
        Worker::builder(c.clone())
            .executors(["welcome_mail"])
            .state(mailer.clone())
            .state(db.pool.clone())
            .build()
            .unwrap(),
    );
    wait_for("the job", Duration::from_secs(10), || async {
        c.get(job.id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    running.stop().await;
    assert_eq!(
        *mailer.sent.lock().unwrap(),
        [format!("user 7 job {} check 1", job.id)]
    );
}

#[tokio::test]
async fn a_missing_state_stops_the_worker_at_build_naming_the_job_and_the_type() {
    let db = TestDb::new().await;
    let Err(err) = Worker::builder(Client::new(db.pool.clone()))
        .executors(["welcome_mail"])
        .state(Mailer::default())
        .build()
    else {
        panic!("a worker without the pool state was built");
    };
    let Error::InvalidArgument { field, reason } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*field, "state");
    assert!(reason.contains("WelcomeMail"), "{reason}");
    assert!(reason.contains("welcome_mail"), "{reason}");
    let pool = format!("State<{}>", std::any::type_name::<sqlx::PgPool>());
    assert!(reason.contains(&pool), "{reason}");
    assert!(reason.contains(".state(value)"), "{reason}");
}

/// A handler with a state only, for the unit-test path.
#[qron::job(executor = "count_mail")]
async fn count_mail(msg: Welcome, State(mailer): State<Mailer>) -> Result<(), JobError> {
    mailer.sent.lock().unwrap().push(msg.user_id.to_string());
    Ok(())
}

#[tokio::test]
async fn a_handler_called_directly_takes_its_state_from_a_detached_context() {
    let mailer = Mailer::default();
    // The function as written, called with its arguments.
    count_mail(Welcome { user_id: 1 }, State(mailer.clone()))
        .await
        .unwrap();
    // Through the job type, as the worker runs it, with a detached context.
    let ctx = Context::detached("count_mail").with_state(mailer.clone());
    let run = qron::registered_jobs().unwrap()["count_mail"].run;
    run(ctx, Some(r#"{"user_id": 2}"#.to_owned()))
        .await
        .unwrap();
    // Without the state, the job fails (it would never find it on a retry either).
    let err = run(
        Context::detached("count_mail"),
        Some(r#"{"user_id": 3}"#.to_owned()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, JobError::Fail(_)), "{err:?}");
    assert!(err.reason().contains("State<"), "{err}");
    assert_eq!(*mailer.sent.lock().unwrap(), ["1", "2"]);
}

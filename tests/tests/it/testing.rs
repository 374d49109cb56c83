//! The testing kit (`qron::testing`), used from tests exactly as its documentation shows.

use qron::testing::{TestDb, assert_enqueued, enqueued};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Welcome {
    user_id: i64,
}

#[qron::job(executor = "kit_email")]
async fn kit_email(msg: Welcome) -> Result<(), qron::JobError> {
    let _ = msg;
    Ok(())
}

#[tokio::test]
async fn the_kit_sees_jobs_enqueued_in_the_tests_own_transaction() -> qron::Result<()> {
    let db = TestDb::new().await?;
    let client = db.client();
    let mut tx = db.pool().begin().await?;
    KitEmail::schedule_with(&mut *tx, "@after 1 hour", Welcome { user_id: 7 }).await?;
    // Inside the transaction, before it commits.
    assert_enqueued::<KitEmail>(&mut *tx, |w| w.user_id == 7).await;
    // Not yet visible outside it.
    assert!(enqueued::<KitEmail>(client.pool()).await?.is_empty());
    tx.commit().await?;
    assert_eq!(
        enqueued::<KitEmail>(client.pool()).await?,
        vec![Welcome { user_id: 7 }]
    );
    Ok(())
}

#[tokio::test]
async fn assert_enqueued_fails_naming_the_executor_and_what_is_waiting() {
    let db = TestDb::new().await.unwrap();
    KitEmail::schedule_with(&db.client(), "@after 1 hour", Welcome { user_id: 1 })
        .await
        .unwrap();
    let pool = db.pool().clone();
    let failed = tokio::spawn(async move {
        assert_enqueued::<KitEmail>(&pool, |w| w.user_id == 7).await;
    })
    .await
    .unwrap_err();
    let panic = failed.into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("no enqueued job of `kit_email` matches")
            && message.contains("Welcome { user_id: 1 }")
            && message.contains("testing.rs"),
        "{message}"
    );
}

#[tokio::test]
async fn each_test_database_is_its_own() -> qron::Result<()> {
    let (a, b) = (TestDb::new().await?, TestDb::new().await?);
    assert_ne!(a.name(), b.name());
    KitEmail::schedule_with(&a.client(), "@after 1 hour", Welcome { user_id: 1 }).await?;
    assert_eq!(enqueued::<KitEmail>(a.pool()).await?.len(), 1);
    assert!(enqueued::<KitEmail>(b.pool()).await?.is_empty());
    let name = a.name().to_owned();
    let admin = b.options().database("postgres");
    drop(a);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&sqlx::PgPool::connect_with(admin).await?)
        .await?;
    assert_eq!(left, 0, "a dropped TestDb drops its database");
    Ok(())
}

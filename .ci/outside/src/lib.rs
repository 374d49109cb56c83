//! An application that uses qron as a dependency from crates.io would: default features, and
//! sqlx through `qron::sqlx` (so the versions always match).
//!
//! A default build has no throwaway server: a production binary cannot start one by accident.
//!
//! ```compile_fail
//! let _ = qron::embedded::EmbeddedPostgres::builder();
//! ```

use serde::{Deserialize, Serialize};

/// A typed payload.
#[derive(Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// Who signed up.
    pub user_id: i64,
}

/// A typed job.
#[qron::job(executor = "email", max_attempts = 3)]
pub async fn email(ctx: qron::Context, msg: Welcome) -> Result<(), qron::JobError> {
    let _ = (ctx.attempt(), msg.user_id);
    Ok(())
}

/// Migrates, enqueues in the application's own transaction, and runs the worker until stopped.
pub async fn start(url: &str) -> qron::Result<()> {
    let pool = qron::sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect(url)
        .await?;
    qron::migrate(&pool).await?;
    let client = qron::Client::new(pool.clone());
    let mut tx = pool.begin().await?;
    qron::sqlx::query("SELECT 1").execute(&mut *tx).await?;
    Email::schedule_with(&mut *tx, "@after 1 hour", Welcome { user_id: 7 }).await?;
    tx.commit().await?;
    let due: Vec<qron::JobRow> = client
        .search(&qron::Search::new().executor("email"))
        .await?
        .jobs;
    let _at: Option<qron::chrono::DateTime<qron::chrono::Utc>> = due.first().map(|j| j.run_at);
    let _meta: qron::serde_json::Value = qron::serde_json::json!({ "source": "signup" });
    qron::Worker::builder(client).build()?.run().await
}

//! Draining: a job type's due jobs, their retries and the jobs they enqueue, until none is
//! due.

use super::{Ran, run_due_ahead, sql};
use crate::{Client, Error, Job, Result};

/// The most rounds [`drain`] runs before it says the jobs never stop coming.
pub const MAX_DRAIN_ROUNDS: usize = 50;

/// Runs `J`'s jobs until none is due, as Oban's `drain_queue` and Sidekiq's `drain` do: its due
/// jobs, each retry at once (its back-off skipped: the attempts still count, and a job that
/// keeps failing ends failed), and the jobs of `J` they enqueue due now, round after round.
/// Jobs scheduled for later (a recurring job's next run) are left. Returns every job that ran,
/// as it is now, and the counts of every round.
///
/// # Errors
/// As [`run_due`](super::run_due); [`Error::InvalidArgument`] (`drain`) when jobs are still due after
/// [`MAX_DRAIN_ROUNDS`] rounds (a job that enqueues itself for now, forever).
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user_id: i64 }
/// # #[qron::job(executor = "email", max_attempts = 3)]
/// # async fn email(msg: Welcome) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// Email::enqueue_with(&client, Welcome { user_id: 7 }).await?;
/// // A handler that fails twice and then succeeds: three executions, one call.
/// let ran = qron::testing::drain::<Email>(&client).await?;
/// assert_eq!(ran.jobs[0].status, qron::JobStatus::Succeeded);
/// # Ok(()) }
/// ```
pub async fn drain<J: Job>(client: &Client) -> Result<Ran> {
    drain_with::<J>(crate::Worker::builder(client.clone())).await
}

/// As [`drain`], on a worker the test set up (its [`State`](crate::State)s; see
/// [`run_due_with`](super::run_due_with)).
///
/// # Errors
/// As [`drain`].
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user_id: i64 }
/// # #[derive(Clone)] struct Mailer;
/// # #[qron::job(executor = "email")]
/// # async fn email(msg: Welcome, mailer: qron::State<Mailer>) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// Email::enqueue_with(&client, Welcome { user_id: 7 }).await?;
/// let worker = qron::Worker::builder(client.clone()).state(Mailer);
/// assert_eq!(qron::testing::drain_with::<Email>(worker).await?.succeeded(), 1);
/// # Ok(()) }
/// ```
pub async fn drain_with<J: Job>(worker: crate::WorkerBuilder) -> Result<Ran> {
    let client = worker.client.clone();
    let metrics = std::sync::Arc::new(crate::Metrics::default());
    let mut ids: Vec<i64> = Vec::new();
    for _ in 0..MAX_DRAIN_ROUNDS {
        // Retries waiting out their back-off: due now.
        sqlx::query(sql(
            "UPDATE qron.jobs SET run_at = now(), scheduled = false
              WHERE executor = $1 AND status = 'ready' AND attempt > 0 AND run_at > now()",
        ))
        .bind(J::EXECUTOR)
        .execute(client.pool())
        .await?;
        let ran = run_due_ahead::<J>(worker.clone(), chrono::Duration::zero()).await?;
        metrics.absorb(&ran.metrics);
        if ran.jobs.is_empty() {
            let jobs = sqlx::query_as(sql(
                "SELECT * FROM qron.jobs_all WHERE id = ANY($1) ORDER BY id",
            ))
            .bind(&ids)
            .fetch_all(client.pool())
            .await?;
            return Ok(Ran { jobs, metrics });
        }
        for j in &ran.jobs {
            if !ids.contains(&j.id) {
                ids.push(j.id);
            }
        }
    }
    Err(Error::InvalidArgument {
        field: "drain",
        reason: format!(
            "jobs of `{}` are still due after {MAX_DRAIN_ROUNDS} rounds: does a job enqueue \
             itself to run now, forever?",
            J::EXECUTOR
        ),
    })
}

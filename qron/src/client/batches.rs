//! Creating [`Batch`](crate::Batch)es, adding jobs to a running job's batch, and reading how a
//! batch stands.

use sqlx::{Connection as _, PgConnection};

use super::Client;
use super::create::Due;
use crate::batch::{BatchCreated, BatchInfo, BatchResults};
use crate::db::{self, Wait};
use crate::error::{Error, Result};
use crate::job::{JobStatus, NewJob, OnDependencyFailure};

impl Client {
    /// Batch `callback` (named by its callback job's id) of this client's owner as it is now:
    /// the callback's status and the batch's jobs by status. Any job others wait for reads as
    /// a batch of those.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let batch = client.batch(42).await?;
    /// println!("{} of {} ended", batch.jobs.total() - batch.jobs.live.len(), batch.jobs.total());
    /// # Ok(()) }
    /// ```
    pub async fn batch(&self, callback: i64) -> Result<BatchInfo> {
        let status = match self.get(callback).await {
            Ok(job) => job.status,
            Err(Error::NotFound { owner, .. }) => {
                return Err(Error::NotFound {
                    what: format!("batch {callback}"),
                    owner,
                });
            }
            Err(e) => return Err(e),
        };
        let rows = db::batch_results(&self.pool, callback).await?;
        Ok(BatchInfo {
            callback,
            callback_status: status,
            jobs: BatchResults::from_rows(rows),
        })
    }

    /// Creates a batch's `jobs` and its `callback` through `conn` (see
    /// [`Batch::create_with`](crate::Batch::create_with)).
    pub(crate) async fn create_batch(
        &self,
        conn: &mut PgConnection,
        jobs: Vec<NewJob>,
        callback: NewJob,
    ) -> Result<BatchCreated> {
        let scope = self.scope();
        scope.check_owner()?;
        let now = self.now().await;
        // The callback first: a bad one writes nothing.
        let callback_row = scope.prepare(&callback, now)?;
        super::Scope::check_after(&callback, &callback_row)?;
        if !callback.after.is_empty() {
            return Err(Error::InvalidArgument {
                field: "callback",
                reason: "a batch's callback waits for the batch's jobs only".to_owned(),
            });
        }
        let mut tx = conn.begin().await?;
        let mut due = Due::new(now);
        let copy = db::JobCopy::begin_depended_on(&mut tx).await?;
        let (copied, _) = self
            .copy_jobs(
                copy,
                jobs.iter().enumerate(),
                now,
                &mut None,
                &mut due,
                batch_job,
            )
            .await?;
        let ids = db::job_copied_ids(&mut tx, copied).await?;
        let (id, _, _) = db::job_insert_new(&mut *tx, &self.owner, &callback_row)
            .await
            .map_err(|e| {
                super::Scope::already_exists(
                    e,
                    &callback_row.executor,
                    callback_row.name.as_deref(),
                )
            })?;
        let wait = Wait {
            status: JobStatus::Waiting,
            waits: i32::try_from(ids.len()).unwrap_or(i32::MAX),
            policy: OnDependencyFailure::Run,
            failed: false,
            on: &[],
            workflow: None,
        };
        db::job_wait(&mut *tx, id, &wait).await?;
        db::dependencies_copy(&mut tx, id, &ids).await?;
        due.notify(&mut tx).await?;
        tx.commit().await?;
        Ok(BatchCreated {
            callback: id,
            jobs: ids,
        })
    }

    /// Creates `job` in the batch of job `of`, running under lease `lease_token` (see
    /// [`Context::add_to_batch`](crate::Context::add_to_batch)).
    pub(crate) async fn add_to_batch_of(
        &self,
        of: i64,
        lease_token: i64,
        job: NewJob,
    ) -> Result<i64> {
        let scope = self.scope();
        scope.check_owner()?;
        let now = self.now().await;
        let row = scope.prepare(&job, now)?;
        batch_job(&job, &row)?;
        let mut tx = self.pool.begin().await?;
        let waiting = db::batch_add_lock(&mut *tx, of, lease_token)
            .await?
            .ok_or_else(|| Error::WrongStatus {
                id: of,
                status: "ended".to_owned(),
                hint: "this execution no longer holds the job's lease (it ended, or its lease \
                       expired and the job was handed out again)"
                    .to_owned(),
            })?;
        if waiting.is_empty() {
            return Err(Error::InvalidArgument {
                field: "batch",
                reason: format!("no job waits for job {of}: it is in no batch"),
            });
        }
        let (id, _, _) = db::job_insert_new(&mut *tx, &self.owner, &row)
            .await
            .map_err(|e| super::Scope::already_exists(e, &row.executor, None))?;
        db::batch_add_link(&mut *tx, id, &waiting).await?;
        let mut due = Due::new(now);
        due.add(&row);
        due.notify(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// Refuses what a batch's job cannot be: repeating (the callback would wait forever), named
/// or unique (a duplicate would be another batch's job), or waiting for others.
fn batch_job(job: &NewJob, row: &db::InsertRow) -> Result<()> {
    let refused = |field, reason: &str| {
        Err(Error::InvalidArgument {
            field,
            reason: reason.to_owned(),
        })
    };
    if row.recurring {
        return refused(
            "expr",
            "a batch's job runs once: give it a one-off expression (`@after`, `@at`)",
        );
    }
    if job.name.is_some() {
        return refused("name", "a batch's jobs have no names");
    }
    if job.unique.is_some() {
        return refused("unique", "a batch's jobs cannot be unique");
    }
    if !job.after.is_empty() {
        return refused("after", "a batch's jobs wait for nothing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::schema::sql;
    use crate::{Batch, Error, NewJob};

    #[tokio::test]
    async fn a_job_is_added_to_a_batch_only_under_the_lease_its_execution_holds() {
        let db = crate::testing::TestDb::new().await.unwrap();
        let client = db.client();
        let mut batch = Batch::new();
        batch.add_job(NewJob::new("row", "@after 0s"));
        batch.on_finish_job(NewJob::new("done", "@after 0s"));
        let created = batch.create(&client).await.unwrap();
        let job = created.jobs[0];
        // Running under lease 7, as a worker's lease leaves it.
        sqlx::query(sql(
            "UPDATE qron.jobs SET status = 'running', lease_token = 7,
                    lease_expires_at = now() + interval '1 minute' WHERE id = $1",
        ))
        .bind(job)
        .execute(client.pool())
        .await
        .unwrap();
        let add = || client.add_to_batch_of(job, 7, NewJob::new("row", "@after 0s"));
        // An execution whose lease moved on adds nothing.
        assert!(matches!(
            client
                .add_to_batch_of(job, 6, NewJob::new("row", "@after 0s"))
                .await,
            Err(Error::WrongStatus { .. })
        ));
        let added = add().await.unwrap();
        let (waits, edges): (i32, i64) = sqlx::query_as(sql(
            "SELECT waits, (SELECT count(*) FROM qron.job_dependencies WHERE job = $1)
               FROM qron.jobs WHERE id = $1",
        ))
        .bind(created.callback)
        .fetch_one(client.pool())
        .await
        .unwrap();
        assert_eq!((waits, edges), (2, 2));
        let marked: bool =
            sqlx::query_scalar(sql("SELECT has_dependents FROM qron.jobs WHERE id = $1"))
                .bind(added)
                .fetch_one(client.pool())
                .await
                .unwrap();
        assert!(marked);
        // The added job is not in the callback's own batch of jobs it may add to (nothing
        // waits for the callback).
        sqlx::query(sql(
            "UPDATE qron.jobs SET status = 'running', lease_token = 3 WHERE id = $1",
        ))
        .bind(created.callback)
        .execute(client.pool())
        .await
        .unwrap();
        assert!(matches!(
            client
                .add_to_batch_of(created.callback, 3, NewJob::new("row", "@after 0s"))
                .await,
            Err(Error::InvalidArgument { field: "batch", .. })
        ));
    }
}

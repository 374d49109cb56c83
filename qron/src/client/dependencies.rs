//! Creating a job that waits for others (see [`NewJob::after`]).

use sqlx::{Connection as _, PgConnection};

use super::Scope;
use crate::db::{self, Claimed, InsertRow, Wait};
use crate::error::{Error, Result};
use crate::job::{JobRow, MAX_DEPENDENCIES, NewJob, OnDependencyFailure};
use crate::{JobStatus, OnConflict};

impl Scope<'_> {
    /// Refuses what a job that waits cannot be: recurring, unique, or replacing a named job,
    /// or waiting for too many jobs.
    pub(crate) fn check_after(job: &NewJob, row: &InsertRow) -> Result<()> {
        let refused = |field, reason: &str| {
            Err(Error::InvalidArgument {
                field,
                reason: reason.to_owned(),
            })
        };
        if job.after.len() > MAX_DEPENDENCIES {
            return Err(Error::InvalidArgument {
                field: "after",
                reason: format!(
                    "a job waits for at most {MAX_DEPENDENCIES} jobs, not {}",
                    job.after.len()
                ),
            });
        }
        if row.recurring {
            return refused(
                "expr",
                "a job that waits for others runs once: give it a one-off expression \
                 (`@after`, `@at`)",
            );
        }
        if job.unique.is_some() {
            return refused("unique", "a job that waits for others cannot be unique");
        }
        if job.on_conflict != OnConflict::Error {
            return refused(
                "on_conflict",
                "a job that waits for others is created anew: its name, when it has one, \
                 must be free (OnConflict::Error)",
            );
        }
        Ok(())
    }

    /// Inserts `job`, which waits for the jobs of `job.after`, in a transaction (a savepoint
    /// inside the caller's): the jobs waited for are claimed (see `db::dependencies_claim`),
    /// the job inserted, then made to wait with its edges. Nothing is written when one is
    /// unknown, recurring, or ended without succeeding while the job cancels on that.
    pub(crate) async fn insert_dependent_on(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
        row: InsertRow,
    ) -> Result<JobRow> {
        let mut tx = conn.begin().await?;
        let claimed = if job.after.is_empty() {
            Vec::new()
        } else {
            self.claim(&mut tx, &job.after).await?
        };
        let mut waits = 0i32;
        let mut failed = false;
        for c in &claimed {
            if c.live {
                if c.recurring {
                    return Err(Error::InvalidArgument {
                        field: "after",
                        reason: format!(
                            "job {} repeats: a job can wait only for jobs that run once",
                            c.id
                        ),
                    });
                }
                waits += 1;
            } else if let Some(status) = c.ended.as_deref()
                && status != "succeeded"
            {
                if job.on_dependency_failure == OnDependencyFailure::Cancel {
                    return Err(Error::DependencyFailed {
                        id: c.id,
                        status: status.to_owned(),
                    });
                }
                failed = true;
            }
        }
        let status = if waits > 0 {
            JobStatus::Waiting
        } else if failed && job.on_dependency_failure == OnDependencyFailure::Hold {
            JobStatus::Stopped
        } else {
            JobStatus::Ready
        };
        let (id, created_at, updated_at) = db::job_insert_new(&mut *tx, self.owner, &row)
            .await
            .map_err(|e| Self::already_exists(e, &row.executor, row.name.as_deref()))?;
        let on: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        let wait = Wait {
            status,
            waits,
            policy: job.on_dependency_failure,
            failed,
            on: &on,
            workflow: job.workflow.as_ref().map(|(w, step)| (*w, step.as_str())),
        };
        db::job_wait(&mut *tx, id, &wait).await?;
        tx.commit().await?;
        let mut created = self.new_row(job, row, id, created_at, updated_at)?;
        created.status = status;
        Ok(created)
    }

    /// The jobs `ids` claimed: each live one marked and locked, or ended; asked again when one
    /// ended between the statement's snapshot and its lock (neither is then seen).
    async fn claim(&self, conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<Claimed>> {
        let mut claimed = Vec::new();
        for _ in 0..3 {
            claimed = db::dependencies_claim(&mut *conn, self.owner, ids).await?;
            if claimed.iter().all(|c| c.live || c.ended.is_some()) {
                return Ok(claimed);
            }
        }
        let unknown = claimed
            .iter()
            .find(|c| !c.live && c.ended.is_none())
            .map_or(0, |c| c.id);
        Err(Error::UnknownDependency {
            id: unknown,
            owner: self.owner.to_owned(),
        })
    }
}

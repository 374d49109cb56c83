//! Reading and changing existing jobs: get, search, update, stop, restart, delete.

use chrono::{DateTime, SubsecRound as _, Utc};

use super::Client;
use super::checks::{check_max_attempts, check_ref, check_text, check_time, timeout_interval};
use crate::Schedule;
use crate::db::{self, JobChanges};
use crate::error::{Error, Result};
use crate::job::{JobRef, JobRow, JobUpdate, MAX_OFFSET, MAX_PAGE, Page, Search};
use crate::limits;

impl Client {
    /// A job by id or name, live or finished.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let by_id = client.get(42).await?;
    /// let by_name = client.get(qron::JobRef::named("backup", "nightly")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        db::job_get(&self.pool, &self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))
    }

    /// A page of the owner's jobs, live and finished, with the number that match in all.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a limit outside 1..=1000, a negative offset or meta that
    /// is not an object; [`Error::Database`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let page = client.search(&qron::Search::new().executor("email").limit(10)).await?;
    /// println!("{} of {}", page.jobs.len(), page.total);
    /// # Ok(()) }
    /// ```
    pub async fn search(&self, q: &Search) -> Result<Page> {
        self.search_within(q, true, usize::MAX)
            .await?
            .ok_or_else(|| Error::InvalidArgument {
                field: "limit",
                reason: "the page is too large to read".to_owned(),
            })
    }

    /// [`Client::search`], with the count only when `with_total` (else 0), and `None` when the
    /// page's rows come to more than `max_bytes` as stored (the API's answer budget).
    pub(crate) async fn search_within(
        &self,
        q: &Search,
        with_total: bool,
        max_bytes: usize,
    ) -> Result<Option<Page>> {
        let q = &self.search_checked(q)?;
        let mut conn = self.pool.acquire().await?;
        let page = db::job_search(&mut conn, &self.owner, q, with_total, max_bytes).await?;
        Ok(page.map(|(jobs, total)| Page { jobs, total }))
    }

    /// `q` checked as [`Client::search`] checks it, with its times clamped to the years jobs
    /// live in.
    pub(crate) fn search_checked(&self, q: &Search) -> Result<Search> {
        if !(1..=MAX_PAGE).contains(&q.limit) {
            return Err(Error::InvalidArgument {
                field: "limit",
                reason: format!("{} is outside 1..={MAX_PAGE}", q.limit),
            });
        }
        if !(0..=MAX_OFFSET).contains(&q.offset) {
            return Err(Error::InvalidArgument {
                field: "offset",
                reason: format!(
                    "{} is outside 0..={MAX_OFFSET}; narrow the search with its filters (a \
                     creation or run time range) to reach further",
                    q.offset
                ),
            });
        }
        if let Some(meta) = &q.meta_contains {
            self.scope().meta_json(meta)?;
        }
        self.scope().check_owner()?;
        if let Some(e) = &q.executor {
            check_text("executor", e)?;
        }
        match &q.name {
            Some(crate::job::NameMatch::Exactly(n)) => check_text("name", n)?,
            Some(crate::job::NameMatch::Contains(n)) => check_text("name_contains", n)?,
            None => {}
        }
        // Bounds beyond the years jobs live in select what the range's ends select.
        let clamp = |(a, b): (Option<DateTime<Utc>>, Option<DateTime<Utc>>)| {
            (a.map(limits::clamp_time), b.map(limits::clamp_time))
        };
        Ok(Search {
            created: clamp(q.created),
            run: clamp(q.run),
            ..q.clone()
        })
    }

    /// Changes a live job; the run time is recomputed from now when the expression changes (and
    /// an `@every` schedule counts from now). An empty update changes nothing and returns the
    /// job.
    ///
    /// An edit made while the job runs is kept, and never makes it run again: the running
    /// execution's outcome still applies to the occurrence it ran (a one-off job finishes, with
    /// the edited payload and meta kept in the history; a recurring job goes on to its next
    /// slot), except that the edited payload wins over one the handler set, and an edited
    /// expression wins over the outcome's next run (the job stays live, on its new schedule).
    ///
    /// # Errors
    /// As [`Client::create`] for bad input; [`Error::NotFound`] when the owner has no such job;
    /// [`Error::WrongStatus`] when it has finished (retry it instead); [`Error::RevisionMismatch`] when [`JobUpdate::if_revision`] no longer holds.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.update(42, qron::JobUpdate::new().expr("@every 5 minutes")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(&self, target: impl Into<JobRef>, change: JobUpdate) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        if change.is_empty() {
            let job = self.get(target).await?;
            return match change.if_revision {
                Some(expected) if expected != job.revision => Err(Error::RevisionMismatch {
                    id: job.id,
                    expected,
                    actual: job.revision,
                }),
                _ => Ok(job),
            };
        }
        let mut c = JobChanges {
            if_revision: change.if_revision,
            ..JobChanges::default()
        };
        if let Some(expr) = &change.expr {
            let schedule = Schedule::parse(expr)?;
            // PostgreSQL keeps microseconds: count from what will be stored.
            let now = self.now().await.trunc_subsecs(6);
            let run_at = schedule
                .first_run(now)
                .ok_or_else(|| Error::InvalidArgument {
                    field: "expr",
                    reason: format!("`{expr}` has no run time after {now}"),
                })?;
            check_time("expr", run_at)?;
            c.run_at = Some(run_at);
            c.start_at = Some(now);
            c.expr = Some(schedule.to_string());
            c.recurring = Some(schedule.is_recurring());
            if schedule.is_recurring()
                && db::job_in_dependencies(&self.pool, &self.owner, &target).await?
            {
                return Err(Error::InvalidArgument {
                    field: "expr",
                    reason: "the job waits for other jobs, or others wait for it: it runs once, \
                             so its expression must be a one-off (`@after`, `@at`)"
                        .to_owned(),
                });
            }
        }
        if let Some(payload) = &change.payload {
            c.payload = Some(self.scope().json("payload", payload)?);
        }
        if let Some(meta) = &change.meta {
            c.meta = Some(self.scope().meta_json(meta)?);
        }
        if let Some(t) = change.timeout {
            c.timeout = Some(timeout_interval(t)?);
        }
        if let Some(n) = change.max_attempts {
            check_max_attempts(n)?;
            c.max_attempts = Some(n);
        }
        if let Some(p) = change.priority {
            let priority = crate::job::check_priority(p)?;
            let step = crate::job::priority_step(self.scope().priority_aging)?;
            c.priority = Some((priority, i64::from(priority) * step));
        }
        if let Some(job) = db::job_update(&self.pool, &self.owner, &target, &c).await? {
            if due_soon(&job, self.config.clock.now()) {
                db::jobs_notify(&self.pool, &[&job.executor]).await?;
            }
            return Ok(job);
        }
        // No row: the job is gone, or its revision moved on.
        match (
            change.if_revision,
            db::job_get(&self.pool, &self.owner, &target).await?,
        ) {
            (Some(expected), Some(job)) if job.finished_at.is_none() => {
                Err(Error::RevisionMismatch {
                    id: job.id,
                    expected,
                    actual: job.revision,
                })
            }
            (_, Some(job)) if job.finished_at.is_some() => {
                Err(self.not_applicable(&target, "").await)
            }
            _ => Err(self.not_found(&target)),
        }
    }

    /// Deletes a job (a live one, or by id a finished one) and returns it. An outcome that a
    /// worker reports for it later changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.delete(qron::JobRef::named("backup", "nightly")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        let mut conn = self.pool.acquire().await?;
        db::job_delete(&mut conn, &self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))
    }

    /// Pauses a live job. A running execution finishes and its outcome is recorded; the job
    /// stays paused.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job; [`Error::WrongStatus`] when it has
    /// finished (retry it instead).
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.stop(42).await?;
    /// assert_eq!(job.status, qron::JobStatus::Stopped);
    /// # Ok(()) }
    /// ```
    pub async fn stop(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        match db::job_stop(&self.pool, &self.owner, &target).await? {
            Some(job) => Ok(job),
            None => Err(self.not_applicable(&target, "").await),
        }
    }

    /// Makes a paused job ready again. A run time in the past becomes now for a one-off job and
    /// the next slot for a recurring one. A job due now wakes idle workers (on commit).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the owner has no such job; [`Error::WrongStatus`] when it has
    /// finished (retry it instead).
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.restart(42).await?;
    /// # Ok(()) }
    /// ```
    pub async fn restart(&self, target: impl Into<JobRef>) -> Result<JobRow> {
        let target = target.into();
        self.scope().check_owner()?;
        check_ref(&target)?;
        let now = self.now().await;
        let mut tx = self.pool.begin().await?;
        let Some((id, expr, recurring, run_at, start_at)) =
            db::job_lock(&mut tx, &self.owner, &target).await?
        else {
            drop(tx);
            return Err(self.not_applicable(&target, "").await);
        };
        let run_at = if run_at >= now {
            run_at
        } else if recurring {
            Schedule::parse(&expr)?
                .next_run(start_at, run_at, now)
                .unwrap_or(now)
        } else {
            now
        };
        let job = db::job_restart(&mut tx, &self.owner, id, run_at)
            .await?
            .ok_or_else(|| self.not_found(&target))?;
        if due_soon(&job, now) {
            db::jobs_notify(&mut *tx, &[&job.executor]).await?;
        }
        tx.commit().await?;
        Ok(job)
    }
}

/// Whether idle workers should hear of `job` now: ready and due within a second (as for a
/// created job).
fn due_soon(job: &JobRow, now: DateTime<Utc>) -> bool {
    job.status == crate::JobStatus::Ready && job.run_at <= now + chrono::Duration::seconds(1)
}

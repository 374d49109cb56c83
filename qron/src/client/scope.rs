//! An owner and its limits, applied by every operation; and the preparation of new jobs.

use chrono::{DateTime, SubsecRound as _, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use tracing::Instrument as _;

use super::checks::{check_max_attempts, check_name, check_time, timeout_interval};
use crate::Schedule;
use crate::db::{self, InsertRow};
use crate::error::{Error, Result};
use crate::job::{JobRef, JobRow, NewJob, check_priority, priority_step};
use crate::limits;

/// A parsed expression's first run from one start, kept for the next job of a batch.
pub(crate) struct FirstRun {
    text: String,
    start_at: DateTime<Utc>,
    canonical: String,
    recurring: bool,
    run_at: DateTime<Utc>,
}

/// An owner and the limits its operations apply, borrowed from a [`Client`] (or made for a bare
/// connection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub owner: &'a str,
    pub max_json_bytes: usize,
    /// How long a job of the lowest priority can be passed over (see `job::priority`).
    pub priority_aging: std::time::Duration,
    /// The executors limited per key, as last read (none known: every insert looks its
    /// job's key up).
    pub partitions: Option<&'a super::Partitions>,
}

impl Scope<'_> {
    pub(crate) fn json(&self, field: &'static str, value: &Value) -> Result<String> {
        let text = serde_json::to_string(value)?;
        if text.len() > self.max_json_bytes {
            return Err(Error::TooLarge {
                field,
                size: text.len(),
                limit: self.max_json_bytes,
            });
        }
        if let Some(reason) = limits::json_problem(&text) {
            return Err(Error::InvalidArgument { field, reason });
        }
        Ok(text)
    }

    /// Refuses an owner that could not be stored (every operation checks it: the owner is
    /// bound into each statement).
    pub(crate) fn check_owner(&self) -> Result<()> {
        check_name("owner", self.owner)
    }

    pub(crate) fn meta_json(&self, meta: &Value) -> Result<String> {
        if !meta.is_object() {
            return Err(Error::InvalidArgument {
                field: "meta",
                reason: "must be a JSON object".to_owned(),
            });
        }
        self.json("meta", meta)
    }

    /// Validates a new job and computes its first run.
    pub(crate) fn prepare(&self, job: &NewJob, now: DateTime<Utc>) -> Result<InsertRow> {
        self.prepare_with(job, now, &mut None)
    }

    /// [`Scope::prepare`], reusing the schedule of the previous job when it has the same
    /// expression and start (most batches schedule one expression many times).
    pub(crate) fn prepare_with(
        &self,
        job: &NewJob,
        now: DateTime<Utc>,
        last: &mut Option<FirstRun>,
    ) -> Result<InsertRow> {
        self.check_owner()?;
        check_name("executor", &job.executor)?;
        if let Some(name) = &job.name {
            check_name("name", name)?;
            if job.unique.is_some() {
                return Err(Error::InvalidArgument {
                    field: "unique",
                    reason: "a named job is unique by its name already: give it a name or a \
                             unique key, not both"
                        .to_owned(),
                });
            }
        }
        let declared = crate::registry::declared_options(&job.executor);
        let max_attempts = job.max_attempts.unwrap_or(declared.max_attempts);
        check_max_attempts(max_attempts)?;
        let timeout = timeout_interval(job.timeout.unwrap_or(declared.timeout))?;
        // PostgreSQL keeps microseconds: compute from what will be stored.
        let start_at = job.start_at.unwrap_or(now).trunc_subsecs(6);
        check_time("start_at", start_at)?;
        let first = match last.take() {
            Some(f) if f.text == job.expr && f.start_at == start_at => f,
            _ => {
                let schedule = Schedule::parse(&job.expr)?;
                let run_at =
                    schedule
                        .first_run(start_at)
                        .ok_or_else(|| Error::InvalidArgument {
                            field: "expr",
                            reason: format!("`{}` has no run time after {start_at}", job.expr),
                        })?;
                FirstRun {
                    text: job.expr.clone(),
                    start_at,
                    canonical: schedule.to_string(),
                    recurring: schedule.is_recurring(),
                    run_at,
                }
            }
        };
        check_time("expr", first.run_at)?;
        let priority = check_priority(job.priority.unwrap_or(declared.priority))?;
        let row = InsertRow {
            executor: job.executor.clone(),
            name: job.name.clone(),
            expr: first.canonical.clone(),
            recurring: first.recurring,
            run_at: first.run_at,
            payload: self.json("payload", &job.payload)?,
            // with the enqueuing trace, when there is one to carry (see `telemetry`)
            meta: match crate::telemetry::with_traceparent(&job.meta) {
                Some(meta) => self.meta_json(&meta)?,
                None => self.meta_json(&job.meta)?,
            },
            max_attempts,
            timeout,
            start_at,
            scheduled: chrono::Duration::from_std(db::STAGE_AHEAD)
                .ok()
                .and_then(|ahead| now.checked_add_signed(ahead))
                .is_some_and(|staged_by| first.run_at > staged_by),
            priority,
            priority_delay: i64::from(priority) * priority_step(self.priority_aging)?,
            unique: match &job.unique {
                Some(u) => Some(u.claim(&job.payload, now)?),
                None => None,
            },
            keyed: true,
        };
        *last = Some(first);
        Ok(row)
    }

    /// The row `row` (of `job`) made when inserted as `id` at `created_at` and `updated_at`:
    /// what the statement wrote, as the server stores it (times to the microsecond, the meta as
    /// written), and the columns' defaults for the rest (ready, no attempt, revision 0, no
    /// error). `create` returns it without reading the row back (a fifth of a one-job enqueue's
    /// time); the tests compare it with the row read back.
    pub(super) fn new_row(
        &self,
        job: NewJob,
        row: InsertRow,
        id: i64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<JobRow> {
        Ok(JobRow {
            id,
            executor: row.executor,
            owner: self.owner.to_owned(),
            name: row.name,
            expr: row.expr,
            recurring: row.recurring,
            status: crate::JobStatus::Ready,
            run_at: as_stored(row.run_at),
            payload: as_jsonb(job.payload),
            meta: serde_json::from_str(&row.meta)?,
            attempt: 0,
            executions: 0,
            max_attempts: row.max_attempts,
            priority: u8::try_from(row.priority).unwrap_or(crate::DEFAULT_PRIORITY),
            timeout: crate::job::interval_to_duration(&row.timeout),
            revision: 0,
            last_error: None,
            last_error_at: None,
            created_at,
            updated_at,
            start_at: as_stored(row.start_at),
            last_run_at: None,
            finished_at: None,
            errors: Vec::new(),
            runs: Vec::new(),
            output: None,
            duplicate: false,
        })
    }

    pub(crate) fn already_exists(e: sqlx::Error, executor: &str, name: Option<&str>) -> Error {
        let unique = e
            .as_database_error()
            .is_some_and(|d| d.constraint() == Some("jobs_owner_executor_name"));
        if unique {
            // The database's detail names the row: `Key (owner, executor, name)=(…)`.
            let name = name.map(str::to_owned).unwrap_or_else(|| {
                e.as_database_error()
                    .and_then(|d| {
                        d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                            .and_then(|pg| pg.detail().map(str::to_owned))
                    })
                    .unwrap_or_default()
            });
            Error::AlreadyExists {
                executor: executor.to_owned(),
                name,
            }
        } else {
            Error::Database(e)
        }
    }

    pub(crate) fn not_found(&self, target: &JobRef) -> Error {
        Error::NotFound {
            what: target.to_string(),
            owner: self.owner.to_owned(),
        }
    }

    /// Validates and inserts one job through `conn`.
    pub(crate) async fn create_on(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
        now: DateTime<Utc>,
    ) -> Result<JobRow> {
        let span = tracing::info_span!(
            "qron.enqueue",
            messaging.system = "qron",
            messaging.operation.type = "send",
            messaging.destination.name = %job.executor,
            job.id = tracing::field::Empty,
        );
        let created = self
            .insert_on(conn, job, now)
            .instrument(span.clone())
            .await;
        if let Ok(job) = &created {
            span.record("job.id", job.id);
        }
        created
    }

    async fn insert_on(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
        now: DateTime<Utc>,
    ) -> Result<JobRow> {
        let mut row = self.prepare(&job, now)?;
        if let Some(partitions) = self.partitions {
            row.keyed = partitions.read(&mut *conn).await?.contains(&row.executor);
        }
        if !job.after.is_empty() || job.workflow.is_some() {
            Self::check_after(&job, &row)?;
            return self.insert_dependent_on(conn, job, row).await;
        }
        if let Some(claim) = &row.unique {
            return self.insert_unique_on(conn, &row, &claim.key).await;
        }
        if job.on_conflict == crate::OnConflict::Error {
            // A new row: only its id and times are read back (see `new_row`).
            let (id, created_at, updated_at) = db::job_insert_new(&mut *conn, self.owner, &row)
                .await
                .map_err(|e| Self::already_exists(e, &row.executor, row.name.as_deref()))?;
            return self.new_row(job, row, id, created_at, updated_at);
        }
        let inserted = db::job_insert(&mut *conn, self.owner, &row, job.on_conflict)
            .await
            .map_err(|e| Self::already_exists(e, &row.executor, row.name.as_deref()))?;
        if let Some(job) = inserted {
            return Ok(job);
        }
        // Kept out by OnConflict::Keep: return the job that holds the name.
        let target = JobRef::Name {
            executor: row.executor.clone(),
            name: row.name.clone().unwrap_or_default(),
        };
        let holder = db::job_get(&mut *conn, self.owner, &target)
            .await?
            .ok_or_else(|| self.not_found(&target))?;
        Ok(JobRow {
            duplicate: true,
            ..holder
        })
    }

    /// Inserts a unique job, or returns the job that holds its key. The holder can stop
    /// holding it between the two looks (it finished, or was deleted): then the insert is tried
    /// again.
    pub(crate) async fn insert_unique_on(
        &self,
        conn: &mut PgConnection,
        row: &InsertRow,
        key: &str,
    ) -> Result<JobRow> {
        for _ in 0..3 {
            if let Some(job) = db::job_insert_unique(&mut *conn, self.owner, row).await? {
                return Ok(job);
            }
            let holders =
                db::job_unique_holders(&mut *conn, self.owner, &[&row.executor], &[key]).await?;
            let Some(id) = holders.into_iter().flatten().next() else {
                continue;
            };
            if let Some(holder) = db::job_get(&mut *conn, self.owner, &JobRef::Id(id)).await? {
                return Ok(JobRow {
                    duplicate: true,
                    ..holder
                });
            }
        }
        Err(Error::Database(sqlx::Error::Protocol(format!(
            "the unique key of a job of executor `{}` changed hands three times while it was \
             enqueued",
            row.executor
        ))))
    }
}

/// `t` as the server stores it: a whole number of microseconds from 2000-01-01, cut toward
/// that epoch as sqlx encodes it.
fn as_stored(t: DateTime<Utc>) -> DateTime<Utc> {
    let epoch = DateTime::<Utc>::from_naive_utc_and_offset(
        chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default(),
        Utc,
    );
    (t - epoch)
        .num_microseconds()
        .and_then(|us| epoch.checked_add_signed(chrono::Duration::microseconds(us)))
        .unwrap_or(t)
}

/// `value` as `jsonb` gives it back: the same but for a negative zero, which `jsonb`'s numbers
/// do not keep.
fn as_jsonb(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => {
                *v = Value::from(0.0);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(fields) => fields.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

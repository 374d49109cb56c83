//! Outcomes: live jobs made ready again or paused, and one-off jobs finished (into the
//! history, or deleted).

use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// An outcome that keeps the job live: ready again (next slot or retry), or paused.
///
/// An edit made while the job ran wins over the outcome: a new payload over the handler's, a
/// new schedule (the run time an edit of the expression sets) over the outcome's run time.
/// The job's run time at the lease tells whether the schedule was edited: only an edit of the
/// expression (or a restart) moves it while the job runs.
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub id: i64,
    pub token: i64,
    pub revision: i64,
    /// The job's run time when it was leased.
    pub lease_run_at: DateTime<Utc>,
    /// A one-off job (as leased): when its outcome cannot be stored, it fails.
    pub one_off: bool,
    /// What its executor's history keeps (for that failure).
    pub history: crate::History,
    /// `Ready` or `Paused`.
    pub status: crate::JobStatus,
    pub run_at: DateTime<Utc>,
    /// A new slot for the occurrence (`None`: unchanged, as for a retry).
    pub slot_at: Option<DateTime<Utc>>,
    pub reset_attempt: bool,
    /// The execution does not count (a snooze): the attempt goes back by one.
    pub uncount_attempt: bool,
    pub payload: Option<String>,
    /// A new schedule the handler asked for, the instant it counts from, and whether it
    /// repeats.
    pub expr: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub recurring: bool,
    pub error: Option<String>,
}

const COMPLETE_MANY: &str = "
    WITH done AS (
    UPDATE qron.jobs j SET
        status = CASE WHEN j.status = 'stopped' THEN 'stopped' ELSE u.status END::qron.job_status,
        -- the schedule, unless an edit made while the job ran changed it (see `Completion`)
        run_at = CASE WHEN j.run_at = u.lease_run_at THEN u.run_at ELSE j.run_at END,
        -- due later: out of the lease index until staged (see `jobs_stage`)
        scheduled = CASE WHEN j.run_at = u.lease_run_at THEN u.run_at ELSE j.run_at END
                    > $12 + interval '2 seconds',
        slot_at = CASE WHEN j.run_at = u.lease_run_at AND u.slot_at IS NOT NULL
                       THEN u.slot_at ELSE j.slot_at END,
        attempt = CASE WHEN u.reset_attempt OR j.run_at <> u.lease_run_at THEN 0
                       WHEN u.uncount_attempt THEN GREATEST(j.attempt - 1, 0)
                       ELSE j.attempt END,
        expr = CASE WHEN j.run_at = u.lease_run_at AND u.expr IS NOT NULL
                    THEN u.expr ELSE j.expr END,
        recurring = CASE WHEN j.run_at = u.lease_run_at AND u.expr IS NOT NULL
                         THEN u.recurring ELSE j.recurring END,
        -- a handler's new schedule counts from the run that set it
        start_at = CASE WHEN j.run_at = u.lease_run_at AND u.expr IS NOT NULL
                        THEN u.start_at ELSE j.start_at END,
        -- the payload, unless an edit made while the job ran changed it
        payload = CASE WHEN j.revision = u.revision AND u.payload IS NOT NULL
                       THEN u.payload::jsonb ELSE j.payload END,
        bytes = CASE WHEN j.revision = u.revision AND u.payload IS NOT NULL
                     THEN octet_length(u.payload) + octet_length(j.meta::text) ELSE j.bytes END,
        last_error = COALESCE(u.error, j.last_error),
        last_error_at = CASE WHEN u.error IS NULL THEN j.last_error_at ELSE $12 END,
        errors = CASE WHEN u.error IS NULL THEN j.errors
                      ELSE qron.errors_push(j.errors, j.attempt, $12, j.lease_owner, u.error) END,
        -- a recurring job's runs: the slot it ran for, and how it went
        runs = CASE WHEN NOT j.recurring THEN j.runs
                    ELSE qron.runs_push(j.runs, u.lease_run_at, $12, j.lease_owner,
                             CASE WHEN u.error IS NOT NULL THEN 'failed'
                                  WHEN u.uncount_attempt THEN 'snoozed'
                                  ELSE 'succeeded' END, u.error) END,
        lease_owner = NULL, lease_expires_at = NULL, lease_token = j.lease_token + 1,
        updated_at = $12
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[],
                $6::bool[], $7::text[], $8::text[], $9::bool[], $10::text[], $11::timestamptz[],
                $13::timestamptz[], $14::timestamptz[], $15::bool[])
         AS u(id, token, revision, status, run_at, reset_attempt, payload, expr, recurring, error,
              slot_at, lease_run_at, start_at, uncount_attempt)
    WHERE j.id = u.id AND j.lease_token = u.token
    RETURNING j.executor, j.status),
    -- No one else announces a job made ready again (a recurring job's next slot, a retry, a
    -- reschedule, a rescued lease): wake idle workers of its executor (on commit), once per
    -- executor, whenever it is due; they look for the next due job themselves.
    woken AS (
        SELECT pg_notify('qron_jobs', e.executor)
          FROM (SELECT DISTINCT executor FROM done WHERE status = 'ready') e)
    SELECT (SELECT count(*) FROM done) + 0 * (SELECT count(*) FROM woken)";

/// Applies live outcomes in one statement; returns how many leases still held (a count, not
/// a row per job: rows cost both sides more than the count). Writing an
/// outcome moves the lease token on, so a second outcome for the same lease changes nothing.
/// (No condition here names `lease_expires_at`: statistics taken while nothing was leased would
/// lead the planner to its small partial index instead of the primary key.)
pub(crate) async fn job_complete_many<'e>(
    ex: impl PgExecutor<'e>,
    rows: &[&Completion],
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    // Planned anew each time (an unnamed statement): a cached generic plan cannot see the
    // arrays' lengths and may rescan them once per row.
    let n: i64 = sqlx::query_scalar(sql(COMPLETE_MANY))
        .persistent(false)
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.token).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.revision).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.run_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reset_attempt).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.payload.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.expr.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.recurring).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.slot_at).collect::<Vec<_>>())
        .bind(now)
        .bind(rows.iter().map(|r| r.lease_run_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.start_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.uncount_attempt).collect::<Vec<_>>())
        .fetch_one(ex)
        .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// A one-off job's end: it moves to the history.
///
/// The lease and the job's run time at the lease select the row: an edit of payload or meta
/// made while the job ran does not keep it from finishing (this occurrence ran; the edited
/// values go to the history), while a job paused, or given a new schedule, while it ran stays
/// live (the caller completes it instead).
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub id: i64,
    pub token: i64,
    pub revision: i64,
    /// The job's run time when it was leased.
    pub lease_run_at: DateTime<Utc>,
    /// What its executor's history keeps.
    pub history: crate::History,
    /// `Succeeded` or `Failed`.
    pub status: crate::JobStatus,
    pub payload: Option<String>,
    /// What the handler recorded (see `Context::record`).
    pub output: Option<String>,
    /// Kept in the history whatever its executor's [`History`](crate::History) says: other
    /// jobs wait for it (a statement that deletes ends leaves such a job; it is ended again
    /// with this set).
    pub kept: bool,
    pub error: Option<String>,
}

/// The rows of the leases of a batch of one-off jobs deleted (ids in `$ids`, the leases
/// — id, lease token, run time at the lease — selected by `leases`), returning `returned`: the
/// `done` part of the statements that end them (here, and with a limited lease in
/// `db::lease::hand_over`).
macro_rules! finish_rows {
    (ids: $ids:literal, leases: $leases:expr, returned: $returned:expr) => {
        finish_rows!(ids: $ids, leases: $leases, returned: $returned, also: "")
    };
    (ids: $ids:literal, leases: $leases:expr, returned: $returned:expr, also: $also:expr) => {
        concat!(
            "done AS (
        -- The batch's rows looked up by id in the primary key, then a semi-join on the
        -- lease. The status is checked in a form the planner does not estimate from the
        -- statistics: from statistics that saw no job running (a fresh backlog's first
        -- leases), a plain filter on it made the planner expect one row, and join every
        -- running job with the whole batch, once per outcome (600 ms a batch).
        DELETE FROM qron.jobs j
         WHERE j.id = ANY(",
            $ids,
            "::bigint[])
           AND (j.id, j.lease_token, j.run_at) IN (",
            $leases,
            ")
           AND COALESCE(j.status = 'running', false)",
            $also,
            "
        RETURNING ",
            $returned,
            ")"
        )
    };
}
pub(crate) use finish_rows;

/// The parts of the statements that end one-off jobs: the rows of the leases
/// (`leases`: id, lease token, run time at the lease) deleted, returning `returned`, then
/// `then` (a history insert or nothing), and the leases taken, from the rows deleted (the
/// insert runs whether or not it is read).
macro_rules! finish {
    (with: $with:expr, leases: $leases:expr, returned: $returned:expr, then: $then:expr) => {
        finish!(with: $with, leases: $leases, returned: $returned, also: "", then: $then)
    };
    (with: $with:expr, leases: $leases:expr, returned: $returned:expr, also: $also:expr,
     then: $then:expr) => {
        concat!(
            "
    WITH ",
            $with,
            finish_rows!(ids: "$1", leases: $leases, returned: $returned, also: $also),
            $then,
            "
    SELECT COALESCE(array_agg(id), '{}'), COALESCE(array_agg(lease_token), '{}') FROM done"
        )
    };
}

/// The history's columns, as the statements that end jobs write them, but for the closing
/// parenthesis (a statement adds the columns it writes beyond them).
macro_rules! history_columns {
    () => {
        "INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
             run_at, payload, meta, attempt, executions, max_attempts, timeout, revision,
             last_error, last_error_at, created_at, updated_at, start_at, last_run_at,
             finished_at, errors, priority, has_dependents"
    };
}
pub(crate) use history_columns;

const FINISH_MANY: &str = finish!(
    with: "u AS (
        SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::bigint[],
                             $5::text[], $6::text[], $7::text[], $9::text[])
               AS u(id, token, run_at, revision, status, payload, error, output)),
    ",
    leases: "SELECT id, token, run_at FROM u",
    returned: "j.*",
    then: concat!(",
    moved AS (
        ", history_columns!(), ", output)
    SELECT d.id, d.executor, d.owner, d.name, d.expr, d.recurring, u.status::qron.job_status,
           d.run_at,
           -- the handler's payload, unless an edit made while it ran changed it
           CASE WHEN d.revision = u.revision THEN COALESCE(u.payload::jsonb, d.payload)
                ELSE d.payload END,
           d.meta, d.attempt, d.executions,
           d.max_attempts, d.timeout, d.revision, COALESCE(u.error, d.last_error),
           CASE WHEN u.error IS NULL THEN d.last_error_at ELSE $8 END,
           d.created_at, $8, d.start_at, d.last_run_at, $8,
           CASE WHEN u.error IS NULL THEN d.errors
                ELSE qron.errors_push(d.errors, d.attempt, $8, d.lease_owner, u.error) END,
           d.priority, d.has_dependents, u.output::jsonb
      FROM done d JOIN u ON u.id = d.id
    RETURNING id)")
);

/// The leases of the statements that end jobs whose outcome carries nothing else.
macro_rules! leases_only {
    ($ids:literal, $tokens:literal, $run_ats:literal) => {
        concat!(
            "SELECT * FROM unnest(",
            $ids,
            "::bigint[], ",
            $tokens,
            "::bigint[], ",
            $run_ats,
            "::timestamptz[])"
        )
    };
}
pub(crate) use leases_only;

/// The common case, successes that change neither payload nor error: only the leases travel,
/// and the history rows come from the deleted ones alone (a third less server time per job
/// than `FINISH_MANY`, which unpacks six arrays and joins them back).
const FINISH_SUCCEEDED: &str = finish!(
    with: "",
    leases: leases_only!("$1", "$2", "$3"),
    returned: "j.*",
    then: concat!(",", succeeded_history!("$4"))
);

/// The history rows of plain successes, from the rows `done` deleted, ended at `$now`.
macro_rules! succeeded_history {
    ($now:literal) => {
        concat!(
            "
    moved AS (
        ",
            history_columns!(),
            ")
    SELECT id, executor, owner, name, expr, recurring, 'succeeded', run_at, payload, meta,
           attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
           created_at, ",
            $now,
            ", start_at, last_run_at, ",
            $now,
            ", errors, priority, has_dependents
      FROM done
    RETURNING id)"
        )
    };
}
pub(crate) use succeeded_history;

/// The condition by which a statement that deletes ends leaves the jobs that others wait for:
/// they are ended into the history (see `Finish::kept`).
macro_rules! leaves_depended_on {
    () => {
        "
           AND NOT j.has_dependents"
    };
}
pub(crate) use leaves_depended_on;

/// The end of jobs the history does not keep (see [`crate::History`]): only the leases
/// travel, and the rows are deleted, which costs what a queue without a history pays.
const FINISH_DELETED: &str = finish!(
    with: "",
    leases: leases_only!("$1", "$2", "$3"),
    returned: "j.id, j.lease_token",
    also: leaves_depended_on!(),
    then: ""
);

/// Which statement ends a one-off job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinishKind {
    /// Not kept by its executor's history: [`FINISH_DELETED`].
    Deleted,
    /// A success that changes neither payload nor error: [`FINISH_SUCCEEDED`].
    PlainSuccess,
    /// The rest: [`FINISH_MANY`].
    Other,
}

impl FinishKind {
    /// Every kind, in the order a batch writes them.
    pub(crate) const ALL: [FinishKind; 3] = [
        FinishKind::Deleted,
        FinishKind::PlainSuccess,
        FinishKind::Other,
    ];
}

impl Finish {
    /// The statement that ends this job.
    pub(crate) fn kind(&self) -> FinishKind {
        if !self.history.keeps(self.status) && !self.kept {
            FinishKind::Deleted
        } else if self.status == crate::JobStatus::Succeeded
            && self.payload.is_none()
            && self.output.is_none()
            && self.error.is_none()
        {
            FinishKind::PlainSuccess
        } else {
            FinishKind::Other
        }
    }

    /// The same end, kept in the history whatever its executor's says (see [`Finish::kept`]).
    pub(crate) fn keeping(&self) -> Finish {
        Finish {
            kept: true,
            ..self.clone()
        }
    }

    /// The outcome for a one-off job that stays live after all (paused or given a new
    /// schedule while it ran: see [`Finish`]).
    pub(crate) fn kept_live(&self) -> Completion {
        Completion {
            id: self.id,
            token: self.token,
            revision: self.revision,
            lease_run_at: self.lease_run_at,
            one_off: true,
            history: self.history,
            status: crate::JobStatus::Ready,
            run_at: self.lease_run_at,
            slot_at: None,
            reset_attempt: true,
            uncount_attempt: false,
            payload: self.payload.clone(),
            expr: None,
            start_at: None,
            recurring: false,
            error: self.error.clone(),
        }
    }
}

/// Ends one-off jobs of one [`FinishKind`]: deleted, or moved to the history (plain successes
/// with a statement that sends only the leases, the others with one that sends their status,
/// payload and error too). Returns the leases (id, token) of the jobs ended (a job paused or
/// given a new schedule while it ran stays live: the caller completes it instead).
pub(crate) async fn job_finish_many<'e>(
    ex: impl sqlx::PgExecutor<'e>,
    kind: FinishKind,
    rows: &[&Finish],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(i64, i64)>> {
    // Every statement takes the leases first; they come back as two arrays (a row per job
    // costs both sides more).
    let q = sqlx::query_as::<_, (Vec<i64>, Vec<i64>)>(sql(match kind {
        FinishKind::Deleted => FINISH_DELETED,
        FinishKind::PlainSuccess => FINISH_SUCCEEDED,
        FinishKind::Other => FINISH_MANY,
    }))
    .persistent(false)
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.token).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.lease_run_at).collect::<Vec<_>>());
    let q = match kind {
        FinishKind::Deleted => {
            let (ids, tokens) = q.fetch_one(ex).await?;
            return Ok(ids.into_iter().zip(tokens).collect());
        }
        FinishKind::PlainSuccess => q,
        FinishKind::Other => q
            .bind(rows.iter().map(|r| r.revision).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.payload.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>()),
    };
    let q = q.bind(now);
    let q = match kind {
        FinishKind::Other => q.bind(rows.iter().map(|r| r.output.as_deref()).collect::<Vec<_>>()),
        _ => q,
    };
    let (ids, tokens) = q.fetch_one(ex).await?;
    Ok(ids.into_iter().zip(tokens).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn ending_a_batch_looks_its_jobs_up_by_key_though_the_statistics_saw_none_running() {
        let db = crate::testing::TestDb::new().await.unwrap();
        let pool = db.pool();
        sqlx::query(sql(
            "INSERT INTO qron.jobs (executor, owner, expr, recurring, run_at, slot_at, payload, bytes)
             SELECT 'e', 'default', '@after 0s', false, now(), now(), 'null'::jsonb, 4
               FROM generate_series(1, 10000)",
        ))
        .execute(pool)
        .await
        .unwrap();
        // The statistics see every job ready; then they all run (as a worker's first leases
        // leave them before autovacuum looks again).
        sqlx::query(sql("ANALYZE qron.jobs"))
            .execute(pool)
            .await
            .unwrap();
        let leases: Vec<(i64, i64, DateTime<Utc>)> = sqlx::query_as(sql(
            "UPDATE qron.jobs SET status = 'running', lease_token = lease_token + 1,
                    lease_expires_at = now() + interval '1 minute'
              RETURNING id, lease_token, run_at",
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        let batch = &leases[..1000];
        for statement in [FINISH_SUCCEEDED, FINISH_DELETED] {
            let plan: Vec<String> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", sql(statement))))
                    .bind(batch.iter().map(|l| l.0).collect::<Vec<_>>())
                    .bind(batch.iter().map(|l| l.1).collect::<Vec<_>>())
                    .bind(batch.iter().map(|l| l.2).collect::<Vec<_>>())
                    .bind(Utc::now())
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains("jobs_pkey"), "{plan}");
            assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
            // The batch joined once (hashed), not once per job.
            assert!(!plan.contains("Nested Loop Semi Join"), "{plan}");
        }
    }
}

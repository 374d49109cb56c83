//! Leases: taking due jobs, shared between their owners (under limits: `limited`), and finding
//! the next due one; staging the jobs due soon is `stage`. (The leased job's row is in `leased`, held leases in `held`.)

use super::LeasedJob;
use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Time a lease outlives the handler's timeout, for the worker to write the outcome itself (the
/// rescuer only takes over from a worker that is gone): a remote worker's, and the least of a
/// worker's, whose slack adds its completer's flush interval (see `worker::Shared::slack`).
pub(crate) const LEASE_SLACK_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// The owners of `executor`'s ready jobs, in turn: in descending byte order (the lease index's
/// collation is "C") from the one before owner `start`, wrapping round to the last ones, down
/// to `start` itself. One index descent an owner, however many jobs each has; it lands on the
/// owner's newest job, not among the entries its oldest jobs, just leased, leave behind. While
/// `walk` is false, the walk does not leave `start`. A `WITH RECURSIVE` item, shared by the
/// lease and the look for the next due job.
macro_rules! owner_walk {
    ($executor:literal, $start:literal, $walk:literal) => {
        concat!(
            "
    walk (owner, turn, wrapped) AS (
        SELECT ",
            $start,
            "::text, 0::bigint, false
        UNION ALL
        SELECT n.owner, w.turn + 1, n.wrapped
          FROM walk w, LATERAL (
               (SELECT owner, w.wrapped AS wrapped FROM qron.jobs
                 WHERE status = 'ready' AND NOT scheduled AND executor = ",
            $executor,
            "
                   AND owner COLLATE \"C\" < w.owner
                 ORDER BY owner COLLATE \"C\" DESC, lease_at DESC, id DESC LIMIT 1)
               UNION ALL
               (SELECT owner, true FROM qron.jobs
                 WHERE status = 'ready' AND NOT scheduled AND executor = ",
            $executor,
            " AND NOT w.wrapped
                   AND owner COLLATE \"C\" >= ",
            $start,
            "
                 ORDER BY owner COLLATE \"C\" DESC, lease_at DESC, id DESC LIMIT 1)
               LIMIT 1) n
         -- once round, the walk stops
         WHERE ",
            $walk,
            " AND NOT (n.wrapped AND n.owner COLLATE \"C\" < ",
            $start,
            "))"
        )
    };
}

/// The start of a lease's `UPDATE`: what every lease sets on the rows it takes, for worker `$4`
/// at `$2` for the lease time `$7` and the slack `$5`, for a remote worker when `$11` names its
/// owner. Shared by [`JOB_LEASE`] and `limited::JOB_LEASE_LIMITED`, whose parameters agree.
macro_rules! lease_update {
    () => {
        "
    UPDATE qron.jobs j
       SET status = 'running', executions = j.executions + 1,
           -- never past the limit, even for a job whose limit was lowered below the attempts
           -- it had made: that would break the row's check, and the statement with it, for
           -- every job of the executor
           attempt = LEAST(j.attempt + 1, j.max_attempts),
           -- the lease time, or the run-time limit when shorter (a heartbeat renews a longer
           -- job's lease while it runs: see `job_lease_renew`)
           lease_owner = $4,
           lease_expires_at = GREATEST(j.run_at, $2) + LEAST(j.timeout, $7) + $5,
           lease_token = j.lease_token + 1, last_run_at = GREATEST(j.run_at, $2),
           -- a remote worker's lease (`$11`) gets a secret its outcomes must present; every
           -- other lease clears it
           lease_secret = CASE WHEN $11::text IS NOT NULL THEN gen_random_uuid() END,
           -- a remote worker reports no start: its lease counts as started; a worker's own
           -- lease starts when its handler does (see `job_mark_started`)
           started_at = CASE WHEN $11::text IS NOT NULL THEN GREATEST(j.run_at, $2) END,
           updated_at = $2,"
    };
}

/// What a lease knows of each walked owner `w` besides its turn: its weight (`qron.owner_weights`:
/// its share of the lease against the others', 1 by default), and under the owner's own cap on
/// executor `$1` (`qron.owner_limits`) its room now: the cap less its jobs leased and
/// unexpired at `$2`, counted with a fresh snapshot once the lease holds the owner's cap lock,
/// or 0 when another lease holds it (that one is taking the owner's jobs; no lease waits for
/// another). NULL for an owner without a cap. Columns of the `owners` item (a look-up by key
/// each, for at most 32 owners); shared by [`JOB_LEASE`] and `limited::JOB_LEASE_LIMITED`.
macro_rules! owner_columns {
    () => {
        "
               COALESCE((SELECT ow.weight FROM qron.owner_weights ow WHERE ow.owner = w.owner), 1)
                   AS weight,
               (SELECT GREATEST(0, COALESCE(oc.concurrency - qron.cap_taken($1, w.owner, $2,
                           pg_try_advisory_xact_lock(hashtextextended(
                               'qron.owner_limits:' || $1 || ':' || w.owner, 0))), 0))
                  FROM qron.owner_limits oc WHERE oc.executor = $1 AND oc.owner = w.owner)
                   AS cap_room,"
    };
}

/// Each owner's quota of a lease of `$total` jobs (items `weighed`, `spare` and `quotas`,
/// after `owners`): its share by weight; an owner whose cap leaves it less takes its room,
/// and the others share what it leaves, by weight (one round of filling: a lease may come
/// back short, and the next goes on). At least one job each, but never past a cap.
macro_rules! owner_quotas {
    ($total:literal) => {
        concat!(
            "
    weighed AS (
        SELECT o.*, ",
            $total,
            " * o.weight / (sum(o.weight) OVER ())::float8 AS even
          FROM owners o),
    spare AS (
        SELECT GREATEST(0, ",
            $total,
            " - COALESCE(sum(w.cap_room) FILTER (WHERE w.cap_room < w.even), 0)) AS jobs,
               (sum(w.weight) FILTER (WHERE w.cap_room IS NULL OR w.cap_room >= w.even))::float8
                   AS weights
          FROM weighed w),
    quotas AS (
        SELECT w.*,
               (CASE WHEN w.cap_room < w.even THEN w.cap_room
                     ELSE LEAST(COALESCE(w.cap_room, ",
            $total,
            "),
                                GREATEST(1, COALESCE(ceil(s.jobs * w.weight / s.weights), ",
            $total,
            ")))
                END)::bigint AS quota
          FROM weighed w, spare s)"
        )
    };
}

/// What a lease writes on each job it took from an owner with a cap (see [`owner_columns`]): the
/// owner, its place counted by; NULL for the others.
macro_rules! cap_key_set {
    () => {
        "
           cap_key = CASE WHEN j.owner IN (SELECT o.owner FROM owners o WHERE o.cap_room IS NOT NULL)
                          THEN j.owner END,"
    };
}

/// What a lease returns of each job it took (a [`LeasedJob`]).
macro_rules! lease_returning {
    ($successor_of:literal) => {
        concat!(
            "
    RETURNING j.id, j.owner, j.name, j.expr, j.recurring, j.run_at, j.slot_at,
              NULLIF(j.payload, 'null')::text AS payload,
              NULLIF(j.meta, '{}')::text AS meta, j.attempt, j.executions,
              j.max_attempts, j.timeout, j.lease_token, j.revision, j.start_at,
              j.lease_secret::text AS lease_secret, j.lease_expires_at, j.lease_at,
              (SELECT o.turn FROM owners o WHERE o.owner = j.owner) AS turn,
              (SELECT o.weight FROM owners o WHERE o.owner = j.owner) AS weight,
              j.has_dependents, ",
            $successor_of,
            " AS successor_of"
        )
    };
}

/// Leases up to `$3` ready jobs of executor `$1` due by `$6` for worker `$4` at `$2`, shared
/// between the owners with due jobs: the owners are walked in turn from the one before owner
/// `$14` (see `owner_walk`), skipping those who paused the executor (when `$15` says some
/// did), up to 32 owners with staged jobs; each gives its oldest due jobs (past its cursor in
/// `$8`–`$10` when it has one), up to an equal share of `$3`, and the jobs are taken in
/// rounds: every owner's first, then every owner's second... With `$11`, only that owner's (a
/// remote worker). Each lease lasts the lease time `$7` (or the job's run-time limit when
/// shorter) and the slack `$5`; the jobs stop at `$12` bytes (see [`Lease::max_bytes`]).
pub(crate) const JOB_LEASE: &str = concat!(
    "
    WITH RECURSIVE",
    owner_walk!("$1", "COALESCE($11, $14)", "$11::text IS NULL"),
    ",
    owners AS MATERIALIZED (
        SELECT w.owner, w.turn,",
    owner_columns!(),
    "
               COALESCE(k.lease_at, '-infinity') AS after_at, COALESCE(k.id, 0) AS after_id
          FROM walk w
          LEFT JOIN unnest($8::text[], $9::timestamp[], $10::bigint[])
                 AS k(owner, lease_at, id)
                 ON k.owner = w.owner
         -- a walked owner, or a remote worker's (the walk's start). Every walked owner has
         -- jobs in the lease index: staged ones, due now or within seconds (see
         -- `jobs_stage`), so none is looked at twice to know whether it has due jobs.
         WHERE (w.turn > 0 OR $11::text IS NOT NULL)
           -- when an owner paused the executor (`$15`; planned for its values, so otherwise
           -- dropped): not that owner
           AND (NOT $15 OR NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                                        WHERE p.executor = $1 AND p.owner = w.owner))
           -- not an executor with limits: a worker that did not know of them yet leases
           -- nothing, and learns of them (see `JOB_LEASE_LIMITED`)
           AND NOT EXISTS (SELECT 1 FROM qron.executor_limits l WHERE l.executor = $1)
         -- at most 32 owners a lease (each costs index descents; the next lease goes on
         -- with the next owners)
         LIMIT LEAST($3, 32)),
",
    owner_quotas!("$3"),
    ",
    picked AS (
        SELECT c.id, c.bytes, c.round::float8 / o.weight AS pace, o.turn
          FROM quotas o
          CROSS JOIN LATERAL (
               SELECT l.*, row_number() OVER () AS round FROM (
                   SELECT q.id, q.bytes FROM qron.jobs q
                    WHERE q.status = 'ready' AND NOT q.scheduled AND q.executor = $1
                      AND q.owner COLLATE \"C\" = o.owner AND q.run_at <= $6
                      -- past the owner's cursor: a bound of the index scan (see `job_lease`)
                      AND (q.lease_at, q.id) > (o.after_at, o.after_id)
                    -- in lease order: by run time, put back by priority (a job due later
                    -- than the lease, or not yet due, is passed: see `Lease::due_by`)
                    ORDER BY q.lease_at, q.id
                    LIMIT o.quota
                      FOR UPDATE SKIP LOCKED) l) c)
",
    lease_update!(),
    cap_key_set!(),
    "
           -- not under a limit (see `limited::JOB_LEASE_LIMITED`)
           limit_key = NULL
     WHERE j.id = ANY(ARRAY(
           SELECT id FROM (
               SELECT id, row_number() OVER w AS nth, sum(bytes) OVER w AS upto
                 FROM picked
               -- in rounds: each owner's first job, then each one's second... (an owner of
               -- weight 2 has two jobs a round)
               WINDOW w AS (ORDER BY pace, turn ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) b
            -- up to `$3` jobs, within the worker's memory budget (`$12` bytes of payload and
            -- meta; none when NULL), and with `$13` the first job whatever its size (a worker
            -- holding none of the executor's jobs always takes one). The jobs left out are
            -- unlocked when the statement ends.
            WHERE nth <= $3 AND ($12::bigint IS NULL OR upto <= $12 OR (nth = 1 AND $13))))
",
    lease_returning!("NULL::bigint")
);

/// Leases up to `limit` jobs of `executor` due by `due_by` (at most a little after `now`: a
/// job leased before its run time waits for it in the worker, and its lease counts from then),
/// shared between the owners with due jobs, each owner's oldest first (see [`JOB_LEASE`]).
///
/// With a cursor for an owner, only that owner's jobs past it in the lease order: the index
/// entries before it are mostly of jobs already leased, which a long transaction elsewhere
/// keeps from being cleaned up, and which a scan from the start would step over one by one.
///
/// A prepared statement: the worker runs it on connections that plan it for its values each
/// time (see `worker::lease_pool`), since a generic plan can be far worse.
pub(crate) async fn job_lease<'e>(
    ex: impl PgExecutor<'e>,
    p: &Lease<'_>,
) -> sqlx::Result<Vec<LeasedJob>> {
    lease_query(JOB_LEASE, p).fetch_all(ex).await
}

/// Statement `text` ([`JOB_LEASE`] or `limited::JOB_LEASE_LIMITED`) bound to the parameters `p`.
fn lease_query<'q, O>(
    text: &'static str,
    p: &Lease<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let slack = super::duration_interval(p.slack + p.wait);
    let owners: Vec<String> = p.cursors.iter().map(|c| c.owner.clone()).collect();
    let lease_ats: Vec<chrono::NaiveDateTime> = p.cursors.iter().map(|c| c.lease_at).collect();
    let ids: Vec<i64> = p.cursors.iter().map(|c| c.id).collect();
    sqlx::query_as(sql(text))
        .bind(p.executor)
        .bind(p.now)
        .bind(p.limit)
        .bind(p.worker_id)
        .bind(slack)
        .bind(p.due_by)
        .bind(super::duration_interval(p.lease_time))
        .bind(owners)
        .bind(lease_ats)
        .bind(ids)
        .bind(p.owner)
        .bind(p.max_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
        .bind(p.at_least_one)
        .bind(p.turn_after)
        .bind(p.paused)
}

/// Where a lease stopped in one owner's jobs (see [`job_lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub owner: String,
    /// The last job's place in the lease order (its run time put back by its priority, in
    /// UTC).
    pub lease_at: chrono::NaiveDateTime,
    pub id: i64,
}

/// The parameters of [`job_lease`].
#[derive(Debug, Clone)]
pub(crate) struct Lease<'a> {
    pub executor: &'a str,
    pub worker_id: &'a str,
    pub limit: i64,
    pub now: DateTime<Utc>,
    pub due_by: DateTime<Utc>,
    /// Owners' cursors: the lease takes their jobs past them.
    pub cursors: &'a [Cursor],
    /// The owners' turns start after this one (`""`: from the first).
    pub turn_after: &'a str,
    /// How long a leased job may take to start, beyond its run time: its lease's answer on its
    /// way, and its wait in the worker's buffer. The lease is longer by that much.
    pub wait: std::time::Duration,
    /// How long the lease outlives the job's run-time limit and `wait`, for its outcome to be
    /// written ([`LEASE_SLACK_TIME`] at least).
    pub slack: std::time::Duration,
    /// How long the lease lasts (unless the job's run-time limit is shorter) before the worker
    /// must renew it.
    pub lease_time: std::time::Duration,
    /// Whether an owner paused the executor: the lease then skips that owner's jobs.
    pub paused: bool,
    /// Only this owner's jobs (a remote worker's lease); `None`: every owner's.
    pub owner: Option<&'a str>,
    /// The most bytes of payload and meta (the `bytes` column) the jobs leased may hold, in
    /// lease order; `None`: no bound.
    pub max_bytes: Option<u64>,
    /// Whether the first job is leased even when it alone is over `max_bytes`.
    pub at_least_one: bool,
}

impl<'a> Lease<'a> {
    /// A lease of up to `limit` jobs due by `now` for `lease_time`: from the start of the
    /// lease order, with no wait and the least slack, of every owner who did not pause the
    /// executor, without a bound in bytes. (The worker's own leases set each of these: see
    /// `Producer::lease`.)
    pub(crate) fn due(
        executor: &'a str,
        worker_id: &'a str,
        limit: i64,
        now: DateTime<Utc>,
        lease_time: std::time::Duration,
    ) -> Self {
        Self {
            executor,
            worker_id,
            limit,
            now,
            due_by: now,
            cursors: &[],
            turn_after: "",
            wait: std::time::Duration::ZERO,
            slack: LEASE_SLACK_TIME,
            lease_time,
            paused: true,
            owner: None,
            max_bytes: None,
            at_least_one: true,
        }
    }
}

/// When the next ready job of `executor` due by `$2` is due, its size, and whether it is
/// still `scheduled` (not staged yet), among the owners who did not pause the executor: the
/// least of each staged owner's next (see `owner_walk`) and of the scheduled jobs' index. An
/// owner's next is its first job due by `$3` (now) in lease order (the one a lease takes
/// first); when it has none, its soonest: a sort of its staged jobs, all due within seconds.
const JOB_NEXT_DUE: &str = concat!(
    "
    WITH RECURSIVE",
    owner_walk!("$1", "''", "true"),
    ",
    staged AS (
        SELECT f.run_at, f.bytes, false AS scheduled
          FROM walk w
         CROSS JOIN LATERAL (
               (SELECT run_at, bytes FROM qron.jobs q
                 WHERE q.status = 'ready' AND NOT q.scheduled AND q.executor = $1
                   AND q.owner COLLATE \"C\" = w.owner AND q.run_at <= $3
                 ORDER BY q.lease_at, q.id LIMIT 1)
               UNION ALL
               (SELECT run_at, bytes FROM qron.jobs q
                 WHERE q.status = 'ready' AND NOT q.scheduled AND q.executor = $1
                   AND q.owner COLLATE \"C\" = w.owner AND q.run_at <= $2
                 ORDER BY q.run_at LIMIT 1)
               LIMIT 1) f
         WHERE w.turn > 0
           AND NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                            WHERE p.executor = $1 AND p.owner = w.owner)
         ORDER BY f.run_at LIMIT 1),
    later AS (
        SELECT run_at, bytes, true AS scheduled FROM qron.jobs q
         WHERE q.status = 'ready' AND q.scheduled AND q.executor = $1 AND q.run_at <= $2
           AND NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                            WHERE p.executor = $1 AND p.owner = q.owner)
         ORDER BY q.run_at LIMIT 1)
    SELECT * FROM (SELECT * FROM staged UNION ALL SELECT * FROM later) n
     ORDER BY run_at LIMIT 1"
);

/// When the next ready job of `executor` is due, its size, and whether it is still scheduled,
/// if it is due by `before` (see [`JOB_NEXT_DUE`]); `now` is the time a job due by is taken
/// first in lease order.
pub(crate) async fn job_next_due<'e>(
    ex: impl PgExecutor<'e>,
    executor: &str,
    now: DateTime<Utc>,
    before: DateTime<Utc>,
) -> sqlx::Result<Option<(DateTime<Utc>, i32, bool)>> {
    sqlx::query_as(sql(JOB_NEXT_DUE))
        .bind(executor)
        .bind(before)
        .bind(now)
        .fetch_optional(ex)
        .await
}

/// Whether any job of `executors` is due by `now` (not counting the jobs of owners who paused
/// its executor), or leased by worker `worker_id`.
pub(crate) async fn jobs_pending<'e>(
    ex: impl PgExecutor<'e>,
    executors: &[&str],
    worker_id: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(sql("SELECT EXISTS (SELECT FROM qron.jobs j
                         WHERE status = 'ready' AND executor = ANY($1) AND run_at <= $3
                           AND NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                                            WHERE p.executor = j.executor AND p.owner = j.owner))
             OR EXISTS (SELECT FROM qron.jobs
                         WHERE lease_owner = $2 AND lease_expires_at IS NOT NULL
                           AND executor = ANY($1))"))
    .bind(executors)
    .bind(worker_id)
    .bind(now)
    .fetch_one(ex)
    .await
}

#[cfg(test)]
mod tests;

/// A queue of `executor` under a limit of 1 per payload field `k`: a job of key `a`, `between`
/// jobs of key `other`, then a's next job (which a scan in lease order reaches last).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) async fn key_behind_another(
    client: &crate::Client,
    executor: &str,
    other: &str,
    between: usize,
) {
    client
        .set_executor_limits(executor, crate::ExecutorLimits::new().per_field("k", 1))
        .await
        .unwrap();
    let key =
        |k: &str| crate::NewJob::new(executor, "@after -1s").payload(serde_json::json!({ "k": k }));
    client
        .create_many(
            std::iter::once(key("a"))
                .chain((0..between).map(|_| key(other)))
                .chain(std::iter::once(key("a"))),
        )
        .await
        .unwrap();
}

mod hand_over;
mod limited;
mod stage;
pub(crate) use hand_over::job_hand_over;
pub(crate) use limited::{EXECUTOR_LIMIT_LOCK, LANE_MOST, job_lease_as, job_lease_limited};
pub(crate) use stage::{jobs_stage, jobs_stage_executor};

//! Held leases: renewing them, handing jobs back unstarted, marking starts, and finding the
//! leases that ran out or that a remote worker reports on.

use crate::schema::sql;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::LeasedJob;

/// Renews leases of running jobs still held (by their token) for `lease_time` from `now`, but
/// not past the job's run-time limit (counted from its lease, plus the time it may have waited
/// in the worker and the slack to write its outcome). Returns the jobs renewed: a job missing
/// was taken over, released or ended meanwhile.
const JOB_LEASE_RENEW: &str = "
    UPDATE qron.jobs j
       SET lease_expires_at = GREATEST(j.lease_expires_at,
                                       LEAST($3 + $4, j.last_run_at + j.timeout + $5))
      FROM unnest($1::bigint[], $2::bigint[]) AS h(id, token)
     WHERE j.id = h.id AND j.lease_token = h.token AND j.lease_expires_at IS NOT NULL
       -- one owner's jobs only, for a remote worker of that owner (`$6`)
       AND ($6::text IS NULL OR j.owner = $6)
    RETURNING j.id";

/// Renews the leases `tokens` of jobs `ids` (see [`JOB_LEASE_RENEW`]): until `now` plus
/// `renew_for` (a lease time and the slack), at most until the run-time limit plus
/// `past_limit` (the longest wait to start and the slack); with `owner`, only that owner's.
pub(crate) async fn job_lease_renew<'e>(
    ex: impl PgExecutor<'e>,
    owner: Option<&str>,
    ids: &[i64],
    tokens: &[i64],
    now: DateTime<Utc>,
    renew_for: std::time::Duration,
    past_limit: std::time::Duration,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(sql(JOB_LEASE_RENEW))
        .bind(ids)
        .bind(tokens)
        .bind(now)
        .bind(super::duration_interval(renew_for))
        .bind(super::duration_interval(past_limit))
        .bind(owner)
        .fetch_all(ex)
        .await
}

/// Hands leased jobs back unstarted: ready again (unless an edit paused them meanwhile), the
/// lease's attempt and execution uncounted, other workers woken.
const JOB_RELEASE: &str = "
    WITH released AS (
        UPDATE qron.jobs j
           SET status = CASE WHEN j.status = 'running' THEN 'ready' ELSE j.status END,
               -- an edit made since the lease set the attempt itself
               attempt = CASE WHEN j.revision = u.revision THEN GREATEST(j.attempt - 1, 0)
                              ELSE j.attempt END,
               executions = GREATEST(j.executions - 1, 0),
               lease_owner = NULL, lease_expires_at = NULL, lease_token = j.lease_token + 1,
               updated_at = $4
          FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, token, revision)
         WHERE j.id = u.id AND j.lease_token = u.token
        RETURNING j.executor, j.status),
    woken AS (
        SELECT pg_notify('qron_jobs', e.executor)
          FROM (SELECT DISTINCT executor FROM released WHERE status = 'ready') e)
    SELECT (SELECT count(*) FROM released) + 0 * (SELECT count(*) FROM woken)";

/// Hands `jobs` back unstarted (see [`JOB_RELEASE`]); returns how many leases were still
/// held.
pub(crate) async fn job_release<'e>(
    ex: impl PgExecutor<'e>,
    jobs: &[&LeasedJob],
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    let leases = jobs.iter().map(|j| (j.id, j.lease_token, j.revision));
    job_release_leases(ex, leases, now).await
}

/// Hands back the jobs of the leases (id, lease token, revision) unstarted (see
/// [`JOB_RELEASE`]): a buffer's, or the expired leases of jobs that never started.
pub(crate) async fn job_release_leases<'e>(
    ex: impl PgExecutor<'e>,
    leases: impl Iterator<Item = (i64, i64, i64)>,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    let (mut ids, mut tokens, mut revisions) = (Vec::new(), Vec::new(), Vec::new());
    for (id, token, revision) in leases {
        ids.push(id);
        tokens.push(token);
        revisions.push(revision);
    }
    sqlx::query_scalar(sql(JOB_RELEASE))
        .bind(ids)
        .bind(tokens)
        .bind(revisions)
        .bind(now)
        .fetch_one(ex)
        .await
}

/// Marks the jobs of the leases (`$1` ids, `$2` lease tokens) as started at `$3`: a lease that
/// moved on (the outcome came first) is left alone.
///
/// A row another statement holds is passed over, not waited for: it is ending (its outcome
/// is being written, which needs no mark), or its lease is being renewed (a mark lost, which
/// costs only the charge of an attempt if that lease then runs out). Waiting could deadlock
/// with an outcome written beside a limited executor's lease (`producer::hand_over`), which
/// locks its rows in another order.
const JOB_MARK_STARTED: &str = "
    UPDATE qron.jobs j SET started_at = $3
      FROM (SELECT q.id FROM qron.jobs q
              JOIN unnest($1::bigint[], $2::bigint[]) AS u(id, token)
                ON q.id = u.id AND q.lease_token = u.token
             WHERE q.started_at IS NULL
             FOR UPDATE OF q SKIP LOCKED) m
     WHERE j.id = m.id";

/// Marks the jobs of `leases` (id, lease token) as started at `now` (see [`JOB_MARK_STARTED`]).
pub(crate) async fn job_mark_started<'e>(
    ex: impl PgExecutor<'e>,
    leases: &[(i64, i64)],
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let (ids, tokens): (Vec<i64>, Vec<i64>) = leases.iter().copied().unzip();
    let done = sqlx::query(sql(JOB_MARK_STARTED))
        .bind(ids)
        .bind(tokens)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

/// A held lease, with what deciding its job's outcome needs (a lease that ran out, or one a
/// remote worker reports on).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct HeldLease {
    pub id: i64,
    pub executor: String,
    pub expr: String,
    pub recurring: bool,
    pub run_at: DateTime<Utc>,
    pub slot_at: DateTime<Utc>,
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease_token: i64,
    pub revision: i64,
    pub start_at: DateTime<Utc>,
    /// A remote lease's secret (see [`LeasedJob::lease_secret`]).
    pub lease_secret: Option<String>,
    /// Whether the job's handler started under this lease (read by the rescuer only).
    #[sqlx(default)]
    pub started: bool,
}

/// Up to `limit` jobs whose lease ran out, by the server's clock (`now()`): never a host's, which
/// may be stepped or wrong, so that no worker takes a lease another still holds.
pub(crate) async fn job_expired_leases<'e>(
    ex: impl PgExecutor<'e>,
    limit: i64,
) -> sqlx::Result<Vec<HeldLease>> {
    sqlx::query_as(sql(
        "SELECT id, executor, expr, recurring, run_at, slot_at, attempt, max_attempts, lease_token,
                revision, start_at, lease_secret::text AS lease_secret,
                started_at IS NOT NULL AS started
           FROM qron.jobs
          WHERE lease_expires_at IS NOT NULL AND lease_expires_at < now()
          ORDER BY lease_expires_at
          LIMIT $1",
    ))
    .bind(limit)
    .fetch_all(ex)
    .await
}

/// The leases held on jobs `$2` of owner `$1`.
const JOB_LEASES_HELD: &str = "
    SELECT id, executor, expr, recurring, run_at, slot_at, attempt, max_attempts, lease_token,
           revision, start_at, lease_secret::text AS lease_secret
      FROM qron.jobs
     WHERE owner = $1 AND id = ANY($2) AND lease_expires_at IS NOT NULL";

/// The remote leases held on jobs `$2` of owner `$1`, locked until the caller's transaction
/// ends (in id order, as every locker of several takes them), so that outcomes written in it
/// apply.
const JOB_REMOTE_LEASES_LOCK: &str = "
    SELECT id, executor, expr, recurring, run_at, slot_at, attempt, max_attempts, lease_token,
           revision, start_at, lease_secret::text AS lease_secret
      FROM qron.jobs
     WHERE owner = $1 AND id = ANY($2) AND lease_expires_at IS NOT NULL
       AND lease_secret IS NOT NULL
     ORDER BY id
       FOR UPDATE";

/// Locks the remote leases held on `ids` of `owner` (see [`JOB_REMOTE_LEASES_LOCK`]).
pub(crate) async fn job_remote_leases_lock(
    conn: &mut sqlx::PgConnection,
    owner: &str,
    ids: &[i64],
) -> sqlx::Result<Vec<HeldLease>> {
    sqlx::query_as(sql(JOB_REMOTE_LEASES_LOCK))
        .bind(owner)
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// The leases held on `ids` of `owner` (see [`JOB_LEASES_HELD`]).
pub(crate) async fn job_leases_held<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    ids: &[i64],
) -> sqlx::Result<Vec<HeldLease>> {
    sqlx::query_as(sql(JOB_LEASES_HELD))
        .bind(owner)
        .bind(ids)
        .fetch_all(ex)
        .await
}

//! Workers in other processes and languages: lease an owner's due jobs, report their outcomes,
//! and keep their leases, with the same lease guard as the Rust worker's. Served over HTTP by
//! [`crate::http`] (GraphQL, and plain JSON at `/workers/…`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Client;
use super::checks::{check_name, check_text, seconds};
use crate::context::Requests;
use crate::db;
use crate::outcome::Outcome;
use crate::outcome::{Kind, OutcomeInput, decide};
use crate::{Error, JobError, Result};

/// The most jobs one lease, or one report of outcomes, may hold.
pub const MAX_REMOTE_BATCH: usize = 1000;

/// How long a report of outcomes waits for the database before it answers
/// [`Error::Timeout`] (nothing is then known to be applied; report again).
const REMOTE_WRITE_WAIT: Duration = Duration::from_secs(10);

/// The most bytes of payload and meta one lease hands out: the jobs past it (never the
/// first) are handed back unstarted, for the next lease.
///
/// ```
/// assert_eq!(qron::MAX_LEASE_BYTES, 8 << 20);
/// ```
pub const MAX_LEASE_BYTES: usize = 8 << 20;

/// A job leased by a remote worker: what its handler needs, and the lease to report with.
///
/// ```
/// let job: qron::RemoteJob = serde_json::from_value(serde_json::json!({
///     "id": 1, "token": "3f0c9a1e5b7d4e2f8a6c0b1d2e3f4a5b", "executor": "email", "owner": "default", "name": null,
///     "expr": "@after 0s", "recurring": false, "attempt": 1, "max_attempts": 5,
///     "executions": 1, "payload": null, "meta": {}, "run_at": "2026-11-29T10:00:00Z",
/// })).unwrap();
/// assert_eq!(job.token, "3f0c9a1e5b7d4e2f8a6c0b1d2e3f4a5b");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RemoteJob {
    /// The job's id.
    pub id: i64,
    /// The lease: 128 random bits, as 32 hex digits; an outcome or a renewal names it, and
    /// counts only while it is held.
    pub token: String,
    /// The executor.
    pub executor: String,
    /// The owner.
    pub owner: String,
    /// The job's unique name, if it has one.
    pub name: Option<String>,
    /// The schedule.
    pub expr: String,
    /// Whether it repeats.
    pub recurring: bool,
    /// The attempt this execution is, from 1.
    pub attempt: i32,
    /// Attempts allowed per occurrence.
    pub max_attempts: i32,
    /// Executions over the job's life, this one included.
    pub executions: i64,
    /// The payload.
    pub payload: Value,
    /// The meta.
    pub meta: Value,
    /// When it was due.
    pub run_at: DateTime<Utc>,
}

/// What became of a remotely run job.
///
/// ```
/// let o: qron::RemoteResult = serde_json::from_str(r#"{"result": "retry", "error": "busy", "delay_seconds": 30}"#).unwrap();
/// assert_eq!(o, qron::RemoteResult::Retry { error: Some("busy".into()), delay_seconds: Some(30.0) });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RemoteResult {
    /// It succeeded (a recurring job goes on to its next slot).
    Commit,
    /// Run it again: after `delay_seconds`, or the back-off; it counts an attempt, and fails
    /// once the attempts are spent.
    Retry {
        /// Why.
        #[serde(default)]
        error: Option<String>,
        /// When to run it again, in seconds (the default back-off when absent).
        #[serde(default)]
        delay_seconds: Option<f64>,
    },
    /// It failed for good (this occurrence, for a recurring job).
    Fail {
        /// Why.
        #[serde(default)]
        error: Option<String>,
    },
}

/// An outcome a remote worker reports.
///
/// ```
/// let o: qron::RemoteOutcome = serde_json::from_str(r#"{"id": 1, "token": "3f0c9a1e5b7d4e2f8a6c0b1d2e3f4a5b", "result": "commit"}"#).unwrap();
/// assert_eq!(o.result, qron::RemoteResult::Commit);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteOutcome {
    /// The job.
    pub id: i64,
    /// Its lease's token, as leased.
    pub token: String,
    /// What became of it.
    #[serde(flatten)]
    pub result: RemoteResult,
    /// A new payload for its next execution.
    #[serde(default)]
    pub payload: Option<Value>,
}

/// Whether a reported outcome was applied.
///
/// ```
/// let r = qron::Reported { id: 1, applied: false };
/// assert!(!r.applied);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    /// The job.
    pub id: i64,
    /// `false` for a stale outcome: the lease had run out (the job was handed to another
    /// worker), or the job was cancelled or deleted; nothing was changed.
    pub applied: bool,
}

/// A remote lease's token: its secret's 32 hex digits.
fn token(secret: &str) -> String {
    secret.chars().filter(char::is_ascii_hexdigit).collect()
}

/// A reported outcome, checked: with its payload's JSON and its retry's delay.
type Checked = (RemoteOutcome, Option<String>, Option<Duration>);

/// What a remote worker's report of `result` for the job of `lease` writes (the outcome of
/// an execution, as the executor decides it), with the retry's delay when the worker gave one.
fn remote_outcome(
    lease: &db::HeldLease,
    result: &RemoteResult,
    payload: Option<String>,
    delay: Option<Duration>,
    now: DateTime<Utc>,
    schedules: &crate::expr::Schedules,
) -> Outcome {
    let result = match result {
        RemoteResult::Commit => Ok(()),
        RemoteResult::Retry { error, .. } => Err(JobError::retry(
            error.clone().unwrap_or_else(|| "retry".to_owned()),
        )),
        RemoteResult::Fail { error } => Err(JobError::fail(
            error.clone().unwrap_or_else(|| "failed".to_owned()),
        )),
    };
    let requests = Requests {
        payload,
        ..Requests::default()
    };
    let options = crate::registry::declared_options(&lease.executor);
    let (mut outcome, kind) = decide(
        &OutcomeInput::held(lease),
        result,
        requests,
        now,
        schedules.of(&lease.expr, lease.recurring).as_ref(),
        options.backoff,
        options.history,
    );
    if let (Some(d), Kind::Retry, Outcome::Complete(c)) = (delay, kind, &mut outcome) {
        c.run_at = now + chrono::Duration::from_std(d).unwrap_or_default();
    }
    outcome
}

/// Whether `given` is the token of the remote lease `held` (compared in constant time; a
/// worker's own lease has no token, and no token matches it).
fn holds(held: &db::HeldLease, given: &str) -> bool {
    let Some(secret) = held.lease_secret.as_deref() else {
        return false;
    };
    let expected = token(secret);
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| {
                acc | (a.to_ascii_lowercase() ^ b.to_ascii_lowercase())
            })
            == 0
}

fn check_batch(field: &'static str, n: usize) -> Result<()> {
    if n == 0 || n > MAX_REMOTE_BATCH {
        return Err(Error::InvalidArgument {
            field,
            reason: format!("{n}: give 1 to {MAX_REMOTE_BATCH}"),
        });
    }
    Ok(())
}

fn check_lease_time(d: Duration) -> Result<()> {
    if d < Duration::from_secs(1) || d > crate::MAX_TIMEOUT {
        return Err(Error::InvalidArgument {
            field: "lease_time",
            reason: format!(
                "{d:?}: give 1 s to {:?} (renew a longer job's lease)",
                crate::MAX_TIMEOUT
            ),
        });
    }
    Ok(())
}

impl Client {
    /// Leases up to `limit` due jobs of `executor` of this client's owner for `lease_time`, for
    /// a worker outside this process (`worker` names it in the jobs' error records). Each job
    /// must be reported with [`Client::complete`] (or its lease renewed with
    /// [`Client::renew_leases`]) before the lease runs out, or it is handed out again.
    ///
    /// The jobs' payloads and meta come to at most [`MAX_LEASE_BYTES`] (or one job): the rest
    /// are handed back unstarted, as if never leased. Each job carries a token of 128 random
    /// bits, which its outcome and its renewals must present.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad executor or worker name, a limit outside 1 to
    /// [`MAX_REMOTE_BATCH`], or a lease time outside 1 s to [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let jobs = client.lease("email", 10, std::time::Duration::from_secs(60), "mailer-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn lease(
        &self,
        executor: &str,
        limit: usize,
        lease_time: Duration,
        worker: &str,
    ) -> Result<Vec<RemoteJob>> {
        self.scope().check_owner()?;
        check_name("executor", executor)?;
        check_name("worker", worker)?;
        check_batch("limit", limit)?;
        check_lease_time(lease_time)?;
        let now = self.now().await;
        let limited = !db::executor_limits_get(self.pool(), Some(&[executor]))
            .await?
            .is_empty();
        let leased = db::job_lease_as(
            self.pool(),
            &db::Lease {
                owner: Some(&self.owner),
                max_bytes: Some(MAX_LEASE_BYTES as u64),
                ..db::Lease::due(
                    executor,
                    worker,
                    i64::try_from(limit).unwrap_or(1),
                    now,
                    lease_time,
                )
            },
            limited,
        )
        .await?;
        // Within the answer's bytes (the lease sums the sizes stored with the jobs; this sums
        // the texts as read back, which the server may have spaced differently): the jobs
        // past them go back unstarted.
        let mut bytes = 0usize;
        let keep = leased
            .iter()
            .position(|j| {
                bytes += j.payload.as_ref().map_or(0, String::len)
                    + j.meta.as_ref().map_or(0, String::len);
                bytes > MAX_LEASE_BYTES
            })
            .map_or(leased.len(), |over| over.max(1));
        if keep < leased.len() {
            let back: Vec<&db::LeasedJob> = leased[keep..].iter().collect();
            db::job_release(self.pool(), &back, now).await?;
        }
        leased
            .into_iter()
            .take(keep)
            .map(|j| {
                let json = |t: Option<String>, empty: Value| match t {
                    Some(t) => serde_json::from_str(&t),
                    None => Ok(empty),
                };
                Ok(RemoteJob {
                    id: j.id,
                    token: j.lease_secret.as_deref().map(token).unwrap_or_default(),
                    executor: executor.to_owned(),
                    owner: j.owner,
                    name: j.name,
                    expr: j.expr,
                    recurring: j.recurring,
                    attempt: j.attempt,
                    max_attempts: j.max_attempts,
                    executions: j.executions,
                    payload: json(j.payload, Value::Null)?,
                    meta: json(j.meta, Value::Object(Default::default()))?,
                    run_at: j.run_at,
                })
            })
            .collect()
    }

    /// Applies outcomes reported by a remote worker, each guarded by its lease as the Rust
    /// worker's are: a stale one (its lease ran out, or the job was cancelled or deleted)
    /// changes nothing and is reported as not applied. Retries follow the executor's
    /// declared attempts and back-off (the defaults for an executor this process does not
    /// declare), or the delay given.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or oversized batch, a job reported twice, or
    /// a delay that is not a number of seconds; [`Error::TooLarge`] and
    /// [`Error::InvalidArgument`] for a payload the client would refuse. Nothing is applied
    /// then.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client, job: qron::RemoteJob) -> qron::Result<()> {
    /// let done = client
    ///     .complete(vec![qron::RemoteOutcome { id: job.id, token: job.token, result: qron::RemoteResult::Commit, payload: None }])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn complete(&self, outcomes: Vec<RemoteOutcome>) -> Result<Vec<Reported>> {
        self.complete_limited(outcomes, None).await
    }

    /// [`Client::complete`], applying only the outcomes of `executors`' jobs when given (a
    /// worker credential limited to them): another executor's job is reported as not applied.
    pub(crate) async fn complete_limited(
        &self,
        outcomes: Vec<RemoteOutcome>,
        executors: Option<&[String]>,
    ) -> Result<Vec<Reported>> {
        self.scope().check_owner()?;
        let (ids, checked) = self.check_outcomes(outcomes)?;
        let now = self.now().await;
        // Each expression parsed once for the whole report.
        let schedules = crate::expr::Schedules::default();
        // The leases are locked, and the outcomes written, in one transaction: what is
        // reported applied was applied. A database that does not answer (a failover) is
        // waited for a bounded time.
        let write = async {
            let mut tx = self.pool().begin().await?;
            let held = db::job_remote_leases_lock(&mut tx, &self.owner, &ids).await?;
            let mut reported = Vec::with_capacity(checked.len());
            let mut writes = Vec::new();
            for (o, payload, delay) in checked {
                let Some(lease) = held.iter().find(|l| {
                    l.id == o.id
                        && holds(l, &o.token)
                        && executors.is_none_or(|list| list.contains(&l.executor))
                }) else {
                    reported.push(Reported {
                        id: o.id,
                        applied: false,
                    });
                    continue;
                };
                let outcome = remote_outcome(lease, &o.result, payload, delay, now, &schedules);
                writes.push(outcome);
                reported.push(Reported {
                    id: o.id,
                    applied: true,
                });
            }
            if !writes.is_empty() {
                let metrics = crate::Metrics::default();
                crate::completer::write_in(&mut tx, writes, now, &metrics).await?;
            }
            tx.commit().await?;
            Ok::<_, Error>(reported)
        };
        tokio::time::timeout(REMOTE_WRITE_WAIT, write)
            .await
            .map_err(|_| Error::Timeout {
                what: "writing a remote worker's outcomes",
                after: REMOTE_WRITE_WAIT,
            })?
    }

    /// A report's outcomes checked before anything is written: no job twice, storable error
    /// texts and payloads, delays in range. Their ids in order, and each outcome with its
    /// payload's JSON and its delay.
    fn check_outcomes(&self, outcomes: Vec<RemoteOutcome>) -> Result<(Vec<i64>, Vec<Checked>)> {
        check_batch("outcomes", outcomes.len())?;
        let mut ids: Vec<i64> = outcomes.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidArgument {
                field: "outcomes",
                reason: "a job is reported twice".to_owned(),
            });
        }
        let mut checked = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            if let RemoteResult::Retry { error: Some(e), .. }
            | RemoteResult::Fail { error: Some(e) } = &o.result
            {
                check_text("error", e)?;
            }
            let payload = match &o.payload {
                Some(p) => Some(self.scope().json("payload", p)?),
                None => None,
            };
            let delay = match &o.result {
                RemoteResult::Retry {
                    delay_seconds: Some(s),
                    ..
                } => Some(seconds("delay_seconds", *s)?),
                _ => None,
            };
            checked.push((o, payload, delay));
        }
        Ok((ids, checked))
    }

    /// Renews the leases `(id, token)` of this owner's jobs for `lease_time` from now (never
    /// past a job's run-time limit); returns the ids renewed. A lease missing from the answer
    /// is lost: stop working on that job.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or oversized batch, or a lease time outside 1 s
    /// to [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client, job: qron::RemoteJob) -> qron::Result<()> {
    /// let kept = client.renew_leases(&[(job.id, job.token.clone())], std::time::Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn renew_leases(
        &self,
        leases: &[(i64, String)],
        lease_time: Duration,
    ) -> Result<Vec<i64>> {
        self.renew_leases_limited(leases, lease_time, None).await
    }

    /// [`Client::renew_leases`], renewing only `executors`' jobs when given (a worker
    /// credential limited to them).
    pub(crate) async fn renew_leases_limited(
        &self,
        leases: &[(i64, String)],
        lease_time: Duration,
        executors: Option<&[String]>,
    ) -> Result<Vec<i64>> {
        self.scope().check_owner()?;
        check_batch("leases", leases.len())?;
        check_lease_time(lease_time)?;
        // The tokens are checked here; the renewal itself is guarded by the lease counter the
        // check found, so a lease taken over meanwhile is not renewed.
        let ids: Vec<i64> = leases.iter().map(|l| l.0).collect();
        let held = db::job_leases_held(self.pool(), &self.owner, &ids).await?;
        let held: Vec<&db::HeldLease> = held
            .iter()
            .filter(|h| {
                leases.iter().any(|(id, t)| *id == h.id && holds(h, t))
                    && executors.is_none_or(|list| list.contains(&h.executor))
            })
            .collect();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now().await;
        let ids: Vec<i64> = held.iter().map(|h| h.id).collect();
        let tokens: Vec<i64> = held.iter().map(|h| h.lease_token).collect();
        Ok(db::job_lease_renew(
            self.pool(),
            Some(&self.owner),
            &ids,
            &tokens,
            now,
            lease_time + db::LEASE_SLACK_TIME,
            db::LEASE_SLACK_TIME,
        )
        .await?)
    }
}

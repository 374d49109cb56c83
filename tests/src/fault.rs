//! The reliability suite's harness: a job that records every execution in a side table, a
//! fleet of worker processes to kill and restart, and a report that counts, per job, what
//! happened (RELIABILITY.md).
//!
//! Each execution of the `fault` job inserts (job id, attempt, process id) into
//! `public.executions` in a statement of its own, before its work: a row there is an execution
//! that happened. A job is **lost** when it is neither live nor in the history; it **ran
//! twice** when it has more than one row.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use qron::{Context, JobError};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{Rng, TestDb};

/// The side table of executions, created in a scenario's database before its workers start.
pub const EXECUTIONS_TABLE: &str = "CREATE TABLE public.executions (
    job_id bigint NOT NULL,
    attempt integer NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp())";

/// Where the `fault` job records its executions: set once per worker process.
pub static RECORDER: OnceLock<PgPool> = OnceLock::new();

/// A file of the process's own where the `fault` job also writes each start (job id, attempt)
/// as its first act, before any await: written by the kernel before the handler's first poll
/// returns, so it survives a SIGKILL that comes at any later moment. The database record may
/// not (its statement may be on its way); this one says exactly which handlers started.
pub static STARTS: OnceLock<std::sync::Mutex<std::fs::File>> = OnceLock::new();

/// The environment variable naming the directory of the [`STARTS`] files (one per process).
pub const STARTS_DIR: &str = "QRON_TEST_STARTS";

/// Opens this process's file of starts in the directory `STARTS_DIR` names, if it names one.
pub fn record_starts_from_env() -> std::io::Result<()> {
    if let Ok(dir) = std::env::var(STARTS_DIR) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join(std::process::id().to_string()))?;
        let _ = STARTS.set(std::sync::Mutex::new(file));
    }
    Ok(())
}

/// The starts written in the [`STARTS`] files of `dir`: (job id, attempt).
pub fn starts_in(dir: &std::path::Path) -> Vec<(i64, i32)> {
    let mut starts = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let mut parts = line.split(' ');
            if let (Some(Ok(id)), Some(Ok(attempt))) = (
                parts.next().map(str::parse::<i64>),
                parts.next().map(str::parse::<i32>),
            ) {
                starts.push((id, attempt));
            }
        }
    }
    starts
}

/// What a `fault` job does after recording its execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    /// Milliseconds of sleep (0: none).
    pub sleep_ms: u64,
    /// How it then ends.
    #[serde(default)]
    pub poison: Poison,
}

/// How a `fault` job ends, for the poison scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Poison {
    /// It succeeds.
    #[default]
    None,
    /// It panics, every time.
    Panic,
    /// It never returns.
    Hang,
    /// It fails with an error holding a NUL character, which PostgreSQL cannot store.
    NulError,
    /// It replaces its payload with one holding a NUL character (refused).
    NulPayload,
    /// It fails its first attempt, and succeeds after (for the soak's retries).
    Flaky,
    /// It waits until its context says to wrap up, records that in `public.cancelled` (see
    /// [`CANCELLED_TABLE`]), and succeeds.
    UntilCancelled,
    /// It fails for good.
    Fail,
    /// It counts how the jobs it waited for ended, into `public.tallies` (see
    /// [`TALLIES_TABLE`]), and succeeds (a fan-in's callback).
    Tally,
}

/// The side table where a `Tally` job records how the jobs it waited for ended.
pub const TALLIES_TABLE: &str = "CREATE TABLE public.tallies (
    job_id bigint NOT NULL,
    succeeded bigint NOT NULL,
    failed bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp())";

/// The side table where an `UntilCancelled` job records when its context told it to wrap up.
pub const CANCELLED_TABLE: &str = "CREATE TABLE public.cancelled (
    job_id bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp())";

/// Records its execution, then sleeps as told. When the execution cannot be recorded (the
/// database is down) it did nothing, and says so with a retry.
#[qron::job(
    executor = "fault",
    concurrency = 50,
    max_attempts = 25,
    timeout = "2s",
    backoff(base = "10ms", max = "200ms")
)]
pub async fn fault(ctx: Context, work: Work) -> Result<(), JobError> {
    if let Some(file) = STARTS.get() {
        use std::io::Write as _;
        let mut file = file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write of the whole line (a file opened to append): lines never interleave.
        let _ = file.write_all(format!("{} {}\n", ctx.id(), ctx.attempt()).as_bytes());
    }
    let Some(pool) = RECORDER.get() else {
        return Err(JobError::fail("no recorder in this process"));
    };
    sqlx::query("INSERT INTO public.executions (job_id, attempt, pid) VALUES ($1, $2, $3)")
        .bind(ctx.id())
        .bind(ctx.attempt())
        .bind(i32::try_from(std::process::id()).unwrap_or(i32::MAX))
        .execute(pool)
        .await
        .map_err(|e| JobError::retry(format!("{UNRECORDED}: {e}")))?;
    if work.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(work.sleep_ms)).await;
    }
    match work.poison {
        Poison::None => Ok(()),
        Poison::Panic => panic!("poison: this handler always panics"),
        Poison::Hang => std::future::pending().await,
        Poison::NulError => Err(JobError::fail("poison: an error with a \u{0} inside")),
        Poison::Flaky if ctx.attempt() <= 1 => {
            Err(JobError::retry("flaky: the first attempt fails"))
        }
        Poison::Flaky => Ok(()),
        Poison::UntilCancelled => {
            ctx.cancelled().await;
            sqlx::query("INSERT INTO public.cancelled (job_id) VALUES ($1)")
                .bind(ctx.id())
                .execute(pool)
                .await
                .map_err(JobError::retry)?;
            Ok(())
        }
        Poison::Fail => Err(JobError::fail("poison: this job fails")),
        Poison::Tally => {
            let done = ctx.dependencies().await?;
            let succeeded = done
                .iter()
                .filter(|d| d.status == Some(qron::JobStatus::Succeeded))
                .count();
            sqlx::query(
                "INSERT INTO public.tallies (job_id, succeeded, failed) VALUES ($1, $2, $3)",
            )
            .bind(ctx.id())
            .bind(i64::try_from(succeeded).unwrap_or(i64::MAX))
            .bind(i64::try_from(done.len() - succeeded).unwrap_or(i64::MAX))
            .execute(pool)
            .await
            .map_err(JobError::retry)?;
            Ok(())
        }
        Poison::NulPayload => {
            ctx.set_payload(&serde_json::json!({ "sleep_ms": 0, "note": "a\u{0}b" }))?;
            Ok(())
        }
    }
}

/// A due `fault` job sleeping `sleep_ms`, with the options of its declaration (an untyped job
/// gets the defaults: a 5 minute timeout).
pub fn fault_job(sleep_ms: u64) -> qron::NewJob {
    fault_job_on("@after 0s", sleep_ms)
}

/// As [`fault_job`], on schedule `expr`.
pub fn fault_job_on(expr: &str, sleep_ms: u64) -> qron::NewJob {
    let o = <Fault as qron::Job>::OPTIONS;
    qron::NewJob::new(<Fault as qron::Job>::EXECUTOR, expr)
        .payload(serde_json::json!({ "sleep_ms": sleep_ms }))
        .timeout(o.timeout)
        .max_attempts(o.max_attempts)
}

/// The environment that runs a process with its clock shifted by `offset` (libfaketime's
/// syntax, such as `+120s`), or `None` when Debian's `faketime` package is not installed.
pub fn faketime_env(offset: &str) -> Option<Vec<(String, String)>> {
    let lib = std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .chain(std::iter::once(std::path::PathBuf::from(
            "/usr/lib/faketime/libfaketimeMT.so.1",
        )))
        .find(|p| p.exists())?;
    Some(vec![
        ("LD_PRELOAD".to_owned(), lib.to_string_lossy().into_owned()),
        ("FAKETIME".to_owned(), offset.to_owned()),
        ("FAKETIME_DONT_RESET".to_owned(), "1".to_owned()),
    ])
}

/// Worker processes serving `fault` on one scenario's database.
pub struct Fleet {
    exe: std::path::PathBuf,
    url: String,
    database: String,
    env: Vec<(String, String)>,
    /// The running processes.
    pub children: Vec<Child>,
    /// Process ids killed so far.
    pub killed: BTreeSet<u32>,
}

impl Fleet {
    /// A fleet for `db` of `exe` processes (the `qron-test-worker` binary: a test names it
    /// with `env!("CARGO_BIN_EXE_qron-test-worker")`), started with `env`.
    pub async fn new(db: &TestDb, exe: &str, env: &[(&str, &str)]) -> Self {
        let url = tokio::task::spawn_blocking(TestDb::server_url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self::on(&url, &db.name, exe, env)
    }

    /// A fleet for database `database` of the server at `url` (as [`Fleet::new`]).
    pub fn on(url: &str, database: &str, exe: &str, env: &[(&str, &str)]) -> Self {
        Self {
            exe: exe.into(),
            url: url.to_owned(),
            database: database.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            children: Vec::new(),
            killed: BTreeSet::new(),
        }
    }

    /// Starts one more worker process.
    pub fn spawn(&mut self) -> u32 {
        self.spawn_with(&[])
    }

    /// Starts one more worker process, with `env` on top of the fleet's.
    pub fn spawn_with(&mut self, env: &[(&str, &str)]) -> u32 {
        let mut cmd = Command::new(&self.exe);
        cmd.envs(env.iter().copied());
        cmd.args([self.url.as_str(), self.database.as_str(), "fault"])
            .env("QRON_TEST_RECORD", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a worker: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// SIGKILLs one of the processes, chosen by `rng`; returns its id.
    pub fn kill_one(&mut self, rng: &mut Rng) -> Option<u32> {
        if self.children.is_empty() {
            return None;
        }
        let i = usize::try_from(rng.below(self.children.len() as u64)).unwrap_or(0);
        let mut child = self.children.swap_remove(i);
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        self.killed.insert(pid);
        Some(pid)
    }

    /// Stops every process with SIGTERM and waits for them.
    pub fn stop(&mut self) {
        for child in &self.children {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for mut child in self.children.drain(..) {
            let _ = child.wait();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Live rows of one status: (status, leased, rows, earliest run time, earliest lease expiry,
/// the server's time).
pub type LiveRows = (String, bool, i64, Option<String>, Option<String>, String);

/// A job's executions: (job, processes, attempts, last error in the history).
type Executions = (i64, Vec<i32>, Vec<i32>, Option<String>);

/// What happened to a scenario's jobs.
pub struct Report {
    /// Jobs created.
    pub enqueued: usize,
    /// Jobs in the history as succeeded.
    pub finished: usize,
    /// Jobs neither live nor in the history.
    pub lost: Vec<i64>,
    /// Jobs with more than one recorded execution.
    pub ran_twice: HashMap<i64, Twice>,
    /// Jobs never recorded as executed.
    pub never_ran: Vec<i64>,
    /// The live table by status and lease, for reading a stuck run.
    pub live: Vec<LiveRows>,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} enqueued, {} finished, lost {} {:?}, never ran {} {:?}, ran twice {} {:?}, \
             live {:?}",
            self.enqueued,
            self.finished,
            self.lost.len(),
            first(&self.lost),
            self.never_ran.len(),
            first(&self.never_ran),
            self.ran_twice.len(),
            self.ran_twice.iter().take(5).collect::<Vec<_>>(),
            self.live
        )
    }
}

impl Report {
    /// Counts what happened to `ids` in `pool`'s database.
    pub async fn of(pool: &PgPool, ids: &[i64]) -> Self {
        let lost: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM unnest($1::bigint[]) AS u(id)
              WHERE NOT EXISTS (SELECT 1 FROM qron.jobs j WHERE j.id = u.id)
                AND NOT EXISTS (SELECT 1 FROM qron.jobs_history h WHERE h.id = u.id)
              ORDER BY id",
        )
        .bind(ids)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM qron.jobs_history
              WHERE id = ANY($1) AND status = 'succeeded'",
        )
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let twice: Vec<Executions> = sqlx::query_as(
            "SELECT e.job_id, array_agg(e.pid ORDER BY e.started_at),
                    array_agg(e.attempt ORDER BY e.started_at),
                    (SELECT last_error FROM qron.jobs_history h WHERE h.id = e.job_id)
               FROM public.executions e
              WHERE e.job_id = ANY($1)
              GROUP BY e.job_id HAVING count(*) > 1 ORDER BY e.job_id",
        )
        .bind(ids)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let never_ran: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM unnest($1::bigint[]) AS u(id)
              WHERE NOT EXISTS (SELECT 1 FROM public.executions e WHERE e.job_id = u.id)
              ORDER BY id",
        )
        .bind(ids)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let live = sqlx::query_as(
            "SELECT status::text, lease_expires_at IS NOT NULL, count(*), min(run_at)::text,
                    min(lease_expires_at)::text, clock_timestamp()::text
               FROM qron.jobs GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            live,
            enqueued: ids.len(),
            finished: usize::try_from(finished).unwrap_or(0),
            lost,
            ran_twice: twice
                .into_iter()
                .map(|(id, pids, attempts, last_error)| {
                    (
                        id,
                        Twice {
                            pids,
                            attempts,
                            last_error,
                        },
                    )
                })
                .collect(),
            never_ran,
        }
    }

    /// Panics, naming the jobs, unless every job finished once, except those whose earlier
    /// executions were all in processes that were killed (`killed`).
    pub fn assert_each_job_once_except_killed(&self, killed: &BTreeSet<u32>) {
        assert!(self.lost.is_empty(), "lost jobs: {:?}", self.lost);
        assert!(
            self.never_ran.is_empty(),
            "jobs never executed: {:?}",
            first(&self.never_ran)
        );
        assert_eq!(self.finished, self.enqueued, "finished of enqueued");
        let unexplained: Vec<(&i64, &Twice)> = self
            .ran_twice
            .iter()
            .filter(|(_, t)| !t.explained(killed))
            .collect();
        assert!(
            unexplained.is_empty(),
            "jobs run twice although no process of theirs was killed (job, processes): {:?}; {self:?}",
            unexplained.iter().take(20).collect::<Vec<_>>()
        );
    }
}

/// The executions of a job that ran more than once.
#[derive(Debug)]
pub struct Twice {
    /// The processes that ran it, in order.
    pub pids: Vec<i32>,
    /// The attempt of each execution.
    pub attempts: Vec<i32>,
    /// The job's last error, from the history.
    pub last_error: Option<String>,
}

/// What the `fault` job says when it could not record its execution.
const UNRECORDED: &str = "could not record the execution";

impl Twice {
    /// Whether the repeat is what at-least-once allows: every earlier execution was in a
    /// process that was killed, or the handler itself asked for the retry (an error, such as
    /// the `fault` job's when its record of the execution may not have been written because
    /// the connection dropped around the commit).
    pub fn explained(&self, killed: &BTreeSet<u32>) -> bool {
        let earlier_killed = self.pids.split_last().is_some_and(|(_, earlier)| {
            earlier
                .iter()
                .all(|p| killed.contains(&u32::try_from(*p).unwrap_or(0)))
        });
        // The handler's own error (not an expired lease) made the job run again.
        let asked = self
            .last_error
            .as_deref()
            .is_some_and(|e| !e.contains("lease expired"));
        earlier_killed || asked
    }
}

fn first(ids: &[i64]) -> &[i64] {
    &ids[..ids.len().min(20)]
}

//! Jobs survive a worker killed with SIGKILL, and a database restart in the middle of a run.

use std::time::Duration;

use qron::{Client, JobStatus, NewJob, Worker};
use qron_tests::jobs::{Mode, Script};
use qron_tests::{Running, TestDb, count, wait_for, wait_for_history};

/// A worker in a process of its own serving `act_lease`, with settings from `env` (see the
/// `qron-test-worker` binary), for a test to kill.
async fn child_worker(db: &TestDb, env: &[(&str, &str)]) -> Child {
    let url = tokio::task::spawn_blocking(TestDb::server_url)
        .await
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_qron-test-worker"));
    cmd.args([url.as_str(), db.name.as_str(), "act_lease"]);
    cmd.envs(env.iter().copied());
    Child(cmd.spawn().unwrap())
}

/// A child process, killed if the test ends (or fails) first: an orphan would hold the test's
/// output open.
struct Child(std::process::Child);

impl Child {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Jobs the database shows as leased.
async fn running(db: &TestDb) -> i64 {
    count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs WHERE status = 'running'",
    )
    .await
}

/// A worker that rescues expired leases of `act_lease` every 100 ms.
fn rescuing_worker(c: &Client) -> Running {
    Running::start(
        Worker::builder(c.clone())
            .executors(["act_lease"])
            .rescue_interval(Duration::from_millis(100))
            .poll_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
}

/// Waits until `n` jobs succeeded.
async fn wait_succeeded(db: &TestDb, n: i64) {
    wait_for("every job to finish", Duration::from_secs(30), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs_history WHERE status = 'succeeded'",
        )
        .await
            == n
    })
    .await;
}

#[tokio::test]
async fn jobs_of_a_killed_worker_come_back_after_their_lease() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let script = Script::new("killed", Mode::HangFirst);
    let jobs: Vec<NewJob> = (0..10)
        .map(|_| {
            NewJob::new("act_lease", "@after 0s")
                .payload(serde_json::to_value(&script).unwrap())
                .timeout(Duration::from_secs(1))
        })
        .collect();
    let ids = c.create_many(jobs).await.unwrap();

    // A worker in another process leases every job, then dies without a word.
    let mut child = child_worker(&db, &[]).await;
    wait_for(
        "the child to hold every lease and start every job",
        Duration::from_secs(20),
        || async {
            count(
                &db.pool,
                "SELECT count(*) FROM qron.jobs WHERE status = 'running' AND started_at IS NOT NULL",
            )
            .await
                == 10
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(running(&db).await, 10);

    // A second worker rescues them once the leases run out, and completes them.
    let worker = rescuing_worker(&c);
    wait_succeeded(&db, 10).await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.rescued(), 10);
    for id in ids {
        let j = c.get(id).await.unwrap();
        assert_eq!(
            (j.status, j.attempt, j.executions),
            (JobStatus::Succeeded, 2, 2),
            "the kill counts as an attempt"
        );
        assert!(j.last_error.unwrap().contains("lease expired"));
    }
}

#[tokio::test]
async fn a_worker_killed_with_a_full_buffer_loses_nothing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let total = 300;
    // 10 ms jobs on one slot: the child holds a reserve of leased jobs it has not started.
    let script = Script::new("killed-buffer", Mode::Sleep(10));
    let jobs: Vec<NewJob> = (0..total)
        .map(|_| {
            NewJob::new("act_lease", "@after 0s")
                .payload(serde_json::to_value(&script).unwrap())
                .timeout(Duration::from_secs(1))
        })
        .collect();
    c.create_many(jobs).await.unwrap();
    let mut child = child_worker(&db, &[("QRON_TEST_CONCURRENCY", "1")]).await;
    // More leased than its one slot runs: the rest wait in its buffer.
    wait_for("a full buffer", Duration::from_secs(20), || async {
        running(&db).await >= 5
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let held = running(&db).await;
    assert!(held >= 2, "{held} leases held at the kill");

    // Another worker takes the rest, and the held jobs once their leases run out.
    let worker = rescuing_worker(&c);
    wait_succeeded(&db, total).await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.rescued() as i64, held, "each held lease came back");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM qron.jobs").await, 0);
    // Only the job in the one slot had started: the buffered ones were charged nothing for
    // the kill (issue 29, defect 3).
    let charged = count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs_history WHERE attempt > 1",
    )
    .await;
    assert!(
        charged <= 1,
        "{charged} jobs charged an attempt they never made"
    );
}

#[tokio::test]
async fn a_database_restart_mid_run_loses_nothing() {
    let pg = tokio::task::spawn_blocking(qron::embedded::EmbeddedPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(pg.connect_options())
        .await
        .unwrap();
    qron::migrate(&pool).await.unwrap();
    let c = Client::new(pool.clone());
    let script = Script::new("restart", Mode::Sleep(20));
    let jobs: Vec<NewJob> = (0..300)
        .map(|_| NewJob::new("act", "@after 0s").payload(serde_json::to_value(&script).unwrap()))
        .collect();
    c.create_many(jobs).await.unwrap();
    let running = Running::start(
        Worker::builder(c.clone())
            .executors(["act"])
            .concurrency("act", 10)
            .poll_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    wait_for(
        "a first part of the run",
        Duration::from_secs(20),
        || async { count(&pool, "SELECT count(*) FROM qron.jobs_history").await >= 30 },
    )
    .await;
    let pg = std::sync::Arc::new(pg);
    let restarting = pg.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .unwrap();
    // Every job completes: outcomes held while the server was down are written after.
    let mut done = 0;
    for _ in 0..600 {
        if let Ok(n) = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM qron.jobs_history WHERE status = 'succeeded'",
        )
        .fetch_one(&pool)
        .await
        {
            done = n;
            if n == 300 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
    assert_eq!(done, 300);
    assert_eq!(count(&pool, "SELECT count(*) FROM qron.jobs").await, 0);
    pool.close().await;
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

#[tokio::test]
async fn a_long_job_of_a_killed_worker_is_back_within_its_lease_time_not_its_limit() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // A job allowed to run for a minute, on a worker whose leases last 2 s unless renewed.
    let script = Script::new(&qron_tests::jobs::key("heartbeat-kill"), Mode::HangFirst);
    let id = c
        .create(
            NewJob::new("act_lease", "@after 0s")
                .payload(serde_json::to_value(&script).unwrap())
                .timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .id;
    let mut child = child_worker(&db, &[("QRON_TEST_LEASE_MS", "2000")]).await;
    wait_for(
        "the child to run the job",
        Duration::from_secs(20),
        || async { running(&db).await == 1 },
    )
    .await;
    // Past the first lease (2 s, and 2 s of slack): only renewals keep it.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE lease_expires_at > now()"
        )
        .await,
        1,
        "the heartbeat kept the lease"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = std::time::Instant::now();

    let rescuer = rescuing_worker(&c);
    wait_for("the job to be back", Duration::from_secs(20), || async {
        running(&db).await == 0
    })
    .await;
    let back = killed.elapsed();
    assert!(back < Duration::from_secs(5), "back after {back:?}");
    wait_succeeded(&db, 1).await;
    let job = c.get(id).await.unwrap();
    assert_eq!((job.status, job.executions), (JobStatus::Succeeded, 2));
    rescuer.stop().await;
}

/// One slot, one attempt: a job that never started must not use it up.
#[qron::job(
    executor = "one_slot",
    concurrency = 1,
    max_attempts = 1,
    timeout = "20s"
)]
async fn one_slot(ms: u64) -> Result<(), qron::JobError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

#[tokio::test]
async fn jobs_leased_behind_a_long_one_are_not_charged_an_attempt_they_never_made() {
    // Issue 29, defect 3: a 6 s job holds the only slot while short jobs keep arriving and the
    // worker buffers them; their leases run out before they can start.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let worker = Running::start(
        Worker::builder(c.clone())
            .job::<OneSlot>()
            .executors(["one_slot"])
            .lease_time(Duration::from_secs(1))
            .rescue_interval(Duration::from_millis(100))
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    );
    // A fast pace first, so that the worker buffers ahead.
    for _ in 0..50 {
        OneSlot::enqueue_with(&c, 1).await.unwrap();
    }
    wait_for_history(&db.pool, 50, Duration::from_secs(10)).await;
    OneSlot::enqueue_with(&c, 6_000).await.unwrap();
    // Steady arrivals while it runs: 250 short jobs over 2.5 s.
    for _ in 0..25 {
        let batch: Vec<NewJob> = (0..10)
            .map(|_| NewJob::new("one_slot", "@after 0s").payload(serde_json::json!(1)))
            .collect();
        c.create_many(batch).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_history(&db.pool, 301, Duration::from_secs(30)).await;
    let failed = count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs_history WHERE status = 'failed'",
    )
    .await;
    assert_eq!(
        failed, 0,
        "jobs failed without a run (their lease ran out in the buffer)"
    );
    assert!(
        worker.metrics.rescued() > 0 || worker.metrics.handed_back() > 0,
        "the scenario made leases run out before their jobs started"
    );
    worker.stopper.hard();
}

#[tokio::test]
async fn jobs_whose_lease_answered_late_do_not_run_twice() {
    // A lease statement held up 3 s on the server (here by a lock it must wait for; in life a
    // saturated server or a slow network) while its clock runs from when it was sent: its jobs
    // arrive 3 s into their leases. Jobs of 1 s (run-time limit) taking 0.95 s. Before, their
    // leases (limit + 2 s of slack) ran out while they ran, a rescue made them ready again, and
    // they ran again, over and over.
    let db = TestDb::new().await;
    let k = qron_tests::jobs::key("late-answers");
    // A second worker serving another executor: its rescuer looks every second.
    let other = Running::start(
        Worker::builder(Client::new(db.pool.clone()))
            .executors(["act_lease"])
            .build()
            .unwrap(),
    );
    let running = Running::started(
        Worker::builder(Client::new(db.pool.clone()))
            .executors(["act"])
            .concurrency("act", 5)
            .build()
            .unwrap(),
    )
    .await;
    // Every statement that reads the pauses, the lease among them, waits for this lock. A
    // worker may be caught in its look for the next due job instead (it reads them too, right
    // after a lease that found nothing): then the lock is let go and taken again, until a
    // lease is the one waiting.
    let lease_waits = "SELECT count(*) FROM pg_stat_activity
              WHERE wait_event_type = 'Lock'
                -- the lease statement (its text is cut at 1 kB here)
                AND query LIKE '%WITH RECURSIVE%SELECT COALESCE($11, $14)::text%'";
    let mut attempts = 0;
    let lock = loop {
        attempts += 1;
        assert!(attempts <= 10, "no lease waited for the lock in 10 tries");
        let mut lock = db.pool.begin().await.unwrap();
        sqlx::query("LOCK TABLE qron.executor_pauses IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *lock)
            .await
            .unwrap();
        // A worker's next lease comes within its poll interval (1 s).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while count(&db.pool, lease_waits).await == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if count(&db.pool, lease_waits).await > 0 {
            break lock;
        }
        lock.rollback().await.unwrap();
    };
    // Through `COPY`, which does not read the pauses; the waiting lease, planned once the lock
    // is let go, sees them.
    Client::new(db.pool.clone())
        .create_many(
            qron_tests::jobs::script_jobs("act", 5, &k, Mode::Sleep(950))
                .into_iter()
                .map(|j| j.timeout(Duration::from_secs(1))),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    lock.commit().await.unwrap();
    // Bounded: before the fix, rescues kept the jobs from ever ending; the assertions below
    // say what ran.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count(&db.pool, "SELECT count(*) FROM qron.jobs_history").await < 5
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
    other.stop().await;
    let starts = qron_tests::jobs::probe(&k).starts.lock().unwrap().clone();
    let mut ids: Vec<i64> = starts.iter().map(|s| s.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every job ran: {starts:?}");
    assert_eq!(starts.len(), 5, "no job ran twice: {starts:?}");
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs_history WHERE status = 'succeeded' AND executions = 1"
        )
        .await,
        5,
        "each succeeded, with one execution recorded"
    );
}

/// Pools by probe key, for [`first_poll`].
fn pools() -> &'static std::sync::Mutex<std::collections::HashMap<String, sqlx::PgPool>> {
    static POOLS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, sqlx::PgPool>>,
    > = std::sync::OnceLock::new();
    POOLS.get_or_init(Default::default)
}

/// On its first poll, before any await, waits 300 ms (long past a completer's flush) and
/// reports whether its job is already marked as started.
#[qron::job(executor = "first_poll")]
async fn first_poll(ctx: qron::Context, key: String) -> Result<(), qron::JobError> {
    let pool = pools().lock().unwrap().get(&key).cloned().unwrap();
    let id = ctx.id();
    let marked = tokio::task::block_in_place(|| {
        std::thread::sleep(Duration::from_millis(300));
        tokio::runtime::Handle::current().block_on(
            sqlx::query_scalar::<_, bool>(
                "SELECT started_at IS NOT NULL FROM qron.jobs WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool),
        )
    })
    .unwrap();
    qron_tests::jobs::probe(&key)
        .values
        .lock()
        .unwrap()
        .push(i64::from(marked));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_leased_ahead_is_marked_started_only_once_its_handler_ran() {
    // A job leased ahead of its run time waits in the worker, registered for cancels. Before,
    // it was marked started when the wait ended, before its handler was first polled: a
    // worker killed just then charged an attempt the handler never made.
    let db = TestDb::new().await;
    let k = qron_tests::jobs::key("first-poll");
    pools().lock().unwrap().insert(k.clone(), db.pool.clone());
    let c = Client::new(db.pool.clone());
    let running = Running::started(
        Worker::builder(c.clone())
            .job::<FirstPoll>()
            .executors(["first_poll"])
            .build()
            .unwrap(),
    )
    .await;
    // Due in 200 ms: the worker, woken by its creation, leases it ahead and waits for it.
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(200);
    c.create(
        NewJob::new("first_poll", format!("@at {}", at.to_rfc3339())).payload(serde_json::json!(k)),
    )
    .await
    .unwrap();
    wait_for_history(&db.pool, 1, Duration::from_secs(10)).await;
    running.stop().await;
    let seen = qron_tests::jobs::probe(&k).values.lock().unwrap().clone();
    assert_eq!(
        seen,
        [0],
        "the job was marked started before its handler ran"
    );
}

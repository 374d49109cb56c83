//! An operator's actions: run a waiting job now, run a finished one again, and messages that
//! say what happened to a finished job rather than "not found".

use std::time::Duration;

use qron::{Client, Error, JobRef, JobStatus, JobUpdate, NewJob, Worker};
use qron_tests::TestDb;
use qron_tests::jobs::{Mode, key, script_job};

/// Runs the due jobs of `act` until none is left.
async fn run_due(c: &Client) {
    Worker::builder(c.clone())
        .executors(["act"])
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
}

#[tokio::test]
async fn run_now_makes_a_waiting_job_due_and_keeps_a_recurring_schedule() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("run-now");
    let later = c
        .create(script_job("act", "@after 1 hour", &k, Mode::Ok).name("later"))
        .await
        .unwrap();
    let hourly = c
        .create(script_job("act", "0 * * * *", &k, Mode::Ok))
        .await
        .unwrap();
    run_due(&c).await;
    assert_eq!(c.get(later.id).await.unwrap().executions, 0, "not due yet");

    c.run_now(JobRef::named("act", "later")).await.unwrap();
    let moved = c.run_now(hourly.id).await.unwrap();
    assert!(moved.run_at <= chrono::Utc::now());
    run_due(&c).await;
    assert_eq!(c.get(later.id).await.unwrap().status, JobStatus::Succeeded);
    // The recurring job's waiting occurrence ran now instead of at its time; the next one
    // follows the schedule.
    let hourly_after = c.get(hourly.id).await.unwrap();
    assert_eq!(hourly_after.executions, 1);
    assert_eq!(
        hourly_after.run_at,
        hourly.run_at + chrono::Duration::hours(1)
    );

    // Not for a paused job, nor a finished one, nor another owner's.
    c.stop(hourly.id).await.unwrap();
    let paused = c.run_now(hourly.id).await.unwrap_err();
    assert!(
        matches!(&paused, Error::WrongStatus { status, .. } if status == "stopped"),
        "{paused}"
    );
    let finished = c.run_now(later.id).await.unwrap_err();
    assert_eq!(
        finished.to_string(),
        format!(
            "job {} is succeeded: it has finished; use retry to run it again",
            later.id
        )
    );
    let other = c.owner("acme").run_now(hourly.id).await.unwrap_err();
    assert!(matches!(other, Error::NotFound { .. }), "{other}");
}

#[tokio::test]
async fn retry_runs_a_finished_job_again_with_a_fresh_attempt_budget() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("retry");
    // `act` allows 3 attempts: this one fails each of them.
    let job = c
        .create(script_job("act", "@after 0s", &k, Mode::Fail).max_attempts(1))
        .await
        .unwrap();
    run_due(&c).await;
    let failed = c.get(job.id).await.unwrap();
    assert_eq!((failed.status, failed.errors.len()), (JobStatus::Failed, 1));

    // What the operator is told on the way: the job finished, retry it.
    let stop = c.stop(job.id).await.unwrap_err();
    assert_eq!(
        stop.to_string(),
        format!(
            "job {} is failed: it has finished; use retry to run it again",
            job.id
        )
    );
    let update = c
        .update(job.id, JobUpdate::new().max_attempts(3))
        .await
        .unwrap_err();
    assert!(matches!(update, Error::WrongStatus { .. }), "{update}");

    // Retried with a payload that succeeds: same id, attempts afresh, history kept.
    let payload = serde_json::to_value(qron_tests::jobs::Script::new(&k, Mode::Ok)).unwrap();
    let again = c.retry_with_payload(job.id, payload).await.unwrap();
    assert_eq!(
        (again.id, again.status, again.attempt),
        (job.id, JobStatus::Ready, 0)
    );
    assert_eq!(again.errors.len(), 1, "the error history stays");
    let live = c.retry(job.id).await.unwrap_err();
    assert!(
        matches!(&live, Error::WrongStatus { status, .. } if status == "ready"),
        "{live}"
    );
    run_due(&c).await;
    let done = c.get(job.id).await.unwrap();
    assert_eq!((done.status, done.executions), (JobStatus::Succeeded, 2));
    let history: i64 = qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs_history").await;
    assert_eq!(history, 1, "one row per job");
}

#[tokio::test]
async fn retry_by_name_refuses_a_name_taken_since_and_other_owners() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("retry-name");
    c.create(script_job("act", "@after 0s", &k, Mode::Ok).name("report"))
        .await
        .unwrap();
    run_due(&c).await;
    assert_eq!(
        c.owner("acme")
            .retry(JobRef::named("act", "report"))
            .await
            .unwrap_err()
            .to_string(),
        "job named `report` of executor `act` not found for owner `acme`"
    );
    // A new job took the name meanwhile.
    c.create(NewJob::new("act", "@after 1 hour").name("report"))
        .await
        .unwrap();
    // By name, the live one is found first: it has not finished.
    let live = c.retry(JobRef::named("act", "report")).await.unwrap_err();
    assert!(matches!(live, Error::WrongStatus { .. }), "{live}");
    let finished: i64 = qron_tests::count(&db.pool, "SELECT id FROM qron.jobs_history").await;
    let taken = c.retry(finished).await.unwrap_err();
    assert!(matches!(taken, Error::AlreadyExists { .. }), "{taken}");
}

/// A worker serving `act`, in the background of the test.
fn start_worker(c: &Client) -> qron_tests::Running {
    qron_tests::Running::start(
        Worker::builder(c.clone())
            .executors(["act"])
            .poll_interval(std::time::Duration::from_millis(50))
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn cancel_ends_a_waiting_job_and_tells_a_running_one_within_a_second() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("cancel");
    let waiting = c
        .create(script_job("act", "@after 1 hour", &k, Mode::Ok).name("later"))
        .await
        .unwrap();
    let recurring = c
        .create(script_job("act", "@every 1 hour", &k, Mode::Ok))
        .await
        .unwrap();
    // Another owner's job is not found, by id or by name.
    let other = c.owner("acme").cancel(waiting.id).await.unwrap_err();
    assert!(matches!(other, Error::NotFound { .. }), "{other}");
    let other = c
        .owner("acme")
        .cancel(JobRef::named("act", "later"))
        .await
        .unwrap_err();
    assert!(matches!(other, Error::NotFound { .. }), "{other}");

    let cancelled = c.cancel(JobRef::named("act", "later")).await.unwrap();
    assert_eq!(
        (
            cancelled.id,
            cancelled.status,
            cancelled.last_error.as_deref()
        ),
        (waiting.id, JobStatus::Cancelled, Some("cancelled"))
    );
    assert!(cancelled.finished_at.is_some());
    assert_eq!(
        c.get(waiting.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    // A recurring job ends too.
    assert_eq!(
        c.cancel(recurring.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    // Once finished, it says so (and retry brings it back).
    let again = c.cancel(waiting.id).await.unwrap_err();
    assert!(
        matches!(&again, Error::WrongStatus { status, .. } if status == "cancelled"),
        "{again}"
    );
    assert_eq!(c.retry(waiting.id).await.unwrap().status, JobStatus::Ready);

    // A running job: its handler is told, and what it returns then changes nothing.
    let k = key("cancel-running");
    let running = c
        .create(script_job("act", "@after 0s", &k, Mode::UntilCancelled))
        .await
        .unwrap();
    let worker = start_worker(&c);
    let probe = qron_tests::jobs::probe(&k);
    qron_tests::wait_for("the handler to start", Duration::from_secs(10), || async {
        probe.started() == 1
    })
    .await;
    let asked = std::time::Instant::now();
    let row = c.cancel(running.id).await.unwrap();
    assert_eq!(row.status, JobStatus::Cancelled);
    qron_tests::wait_for(
        "the handler to be told of the cancel",
        Duration::from_secs(1),
        || async { !probe.values.lock().unwrap().is_empty() },
    )
    .await;
    let told_in = asked.elapsed();
    assert!(told_in < Duration::from_secs(1), "told after {told_in:?}");
    worker.stop().await;
    let after = c.get(running.id).await.unwrap();
    assert_eq!(
        (after.status, after.executions),
        (JobStatus::Cancelled, 1),
        "the handler's success after the cancel changed nothing"
    );
}

#[tokio::test]
async fn a_paused_executor_holds_its_owners_jobs_and_no_one_elses() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let acme = c.owner("acme");
    let k = key("pause");
    // Held already when paused: a waiting job, and one due.
    let before = c
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    c.pause_executor("act").await.unwrap();
    c.pause_executor("act").await.unwrap(); // a second pause changes nothing
    let worker = start_worker(&c);
    // Created while paused.
    let during = c
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    // Another owner's job of the same executor runs as ever.
    let theirs = acme
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    qron_tests::wait_for("the other owner's job", Duration::from_secs(10), || async {
        acme.get(theirs.id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    // A job made ready while paused some other way (here: a retry) waits as well: the other
    // owner's job created after it runs, and it does not.
    let retried = c
        .create(script_job("act", "@after 1 hour", &k, Mode::Ok))
        .await
        .unwrap();
    c.cancel(retried.id).await.unwrap();
    c.retry(retried.id).await.unwrap();
    let later = acme
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    qron_tests::wait_for(
        "the other owner's later job",
        Duration::from_secs(10),
        || async { acme.get(later.id).await.unwrap().status == JobStatus::Succeeded },
    )
    .await;
    for id in [before.id, during.id, retried.id] {
        let j = c.get(id).await.unwrap();
        assert_eq!((j.status, j.executions), (JobStatus::Ready, 0), "job {id}");
    }
    let listed = c.executors().await.unwrap();
    let act = listed.iter().find(|e| e.executor == "act").unwrap();
    assert!(act.is_paused());
    assert_eq!((act.ready, act.running), (3, 0));
    assert!(
        !acme.executors().await.unwrap()[0].is_paused(),
        "paused for one owner only"
    );

    // Bad names are refused, naming the field.
    for bad in ["", "a\0b"] {
        let e = c.pause_executor(bad).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    field: "executor",
                    ..
                }
            ),
            "{e}"
        );
    }
    let long = "x".repeat(qron::MAX_NAME_LEN + 1);
    assert!(c.resume_executor(&long).await.is_err());

    c.resume_executor("act").await.unwrap();
    for id in [before.id, during.id, retried.id] {
        qron_tests::wait_for(
            &format!("job {id} to run"),
            Duration::from_secs(10),
            || async { c.get(id).await.unwrap().status == JobStatus::Succeeded },
        )
        .await;
    }
    assert!(!c.executors().await.unwrap()[0].is_paused());
    c.resume_executor("act").await.unwrap(); // resuming again changes nothing
    worker.stop().await;
}

#[tokio::test]
async fn executors_lists_what_the_rows_say() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("executors");
    for _ in 0..3 {
        c.create(script_job("act", "@after 1 hour", &k, Mode::Ok))
            .await
            .unwrap();
    }
    let due = c
        .create(script_job("other", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    let stopped = c
        .create(script_job("other", "@after 1 hour", &k, Mode::Ok))
        .await
        .unwrap();
    c.stop(stopped.id).await.unwrap();
    c.owner("acme")
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    c.pause_executor("paused-only").await.unwrap();
    sqlx::query(
        "INSERT INTO qron.workers VALUES ('w1', '{act}', now(), now(), '1 hour'),
                                          ('gone', '{act}', now(), now() - interval '2 hours', '1 hour')",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let list = c.executors().await.unwrap();
    let names: Vec<&str> = list.iter().map(|e| e.executor.as_str()).collect();
    assert_eq!(names, ["act", "other", "paused-only"]);
    let (act, other, paused) = (&list[0], &list[1], &list[2]);
    assert_eq!(
        (act.ready, act.running, act.stopped),
        (3, 0, 0),
        "acme's job is not counted"
    );
    assert_eq!(act.oldest_due_at, None, "none is due");
    assert_eq!(act.workers, ["w1"], "the gone worker is not listed");
    assert_eq!((other.ready, other.stopped), (1, 1));
    assert_eq!(other.oldest_due_at, Some(due.run_at));
    assert!(other.lateness.is_some());
    assert!(other.workers.is_empty());
    assert!(paused.is_paused() && !act.is_paused());
    // The counts are the rows'.
    let rows: i64 = qron_tests::count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs WHERE owner = 'default'",
    )
    .await;
    assert_eq!(
        list.iter()
            .map(|e| e.ready + e.running + e.stopped)
            .sum::<i64>(),
        rows
    );
}

#[tokio::test]
async fn a_worker_that_starts_during_a_pause_leases_none_of_the_paused_jobs() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("pause-start");
    c.pause_executor("act").await.unwrap();
    // A job made ready without being held (as a bulk insert or a rescue makes one), and no
    // rescuer pass to hold it (the test holds the pass's lock): only the lease stands between
    // it and a worker that starts now.
    let payload = serde_json::to_string(&qron_tests::jobs::Script::new(&k, Mode::Ok)).unwrap();
    let paused: i64 = sqlx::query_scalar(
        "INSERT INTO qron.jobs (executor, expr, recurring, run_at, slot_at, payload)
         VALUES ('act', '@after 0s', false, now(), now(), $1::jsonb) RETURNING id",
    )
    .bind(&payload)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut lock = db.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('qron.jobs_hold_paused'))")
        .execute(&mut *lock)
        .await
        .unwrap();
    let theirs = c
        .owner("acme")
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    let worker = start_worker(&c);
    qron_tests::wait_for("the other owner's job", Duration::from_secs(10), || async {
        c.owner("acme").get(theirs.id).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    worker.stop().await;
    let j = c.get(paused).await.unwrap();
    assert_eq!((j.status, j.executions), (JobStatus::Ready, 0));
}

#[tokio::test]
async fn a_recurring_job_keeps_its_last_runs_with_their_outcomes() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("runs");
    let hourly = c
        .create(script_job("act", "0 * * * *", &k, Mode::Ok))
        .await
        .unwrap();
    let flaky = c
        .create(script_job("act", "0 * * * *", &k, Mode::Retry))
        .await
        .unwrap();
    let once = c
        .create(script_job("act", "@after 0 seconds", &k, Mode::Ok))
        .await
        .unwrap();
    let mut slots = Vec::new();
    for _ in 0..3 {
        slots.push(c.run_now(hourly.id).await.unwrap().run_at);
        run_due(&c).await;
    }
    c.run_now(flaky.id).await.unwrap();
    run_due(&c).await;

    let runs = c.get(hourly.id).await.unwrap().runs;
    assert_eq!(
        runs.iter()
            .map(|r| (r.slot, r.outcome.as_str()))
            .collect::<Vec<_>>(),
        slots.iter().map(|s| (*s, "succeeded")).collect::<Vec<_>>(),
        "each run, oldest first, for the slot it ran"
    );
    assert!(
        runs.iter()
            .all(|r| r.worker.is_some() && r.error.is_none() && r.at >= r.slot)
    );
    // Each attempt at the flaky job's slot is a run (as many as ran before the worker found
    // nothing due: its retries wait out a short back-off).
    let flaky = c.get(flaky.id).await.unwrap();
    let failed = flaky.runs;
    assert!(!failed.is_empty());
    assert_eq!(failed.len() as i64, flaky.executions);
    assert!(
        failed
            .iter()
            .all(|r| r.outcome == "failed" && r.error.as_deref() == Some("transient trouble")),
        "{failed:?}"
    );
    // A one-off job keeps none; a cancelled recurring job keeps its runs in the history.
    assert!(c.get(once.id).await.unwrap().runs.is_empty());
    assert_eq!(c.cancel(hourly.id).await.unwrap().runs.len(), 3);
    assert_eq!(c.get(hourly.id).await.unwrap().runs.len(), 3);

    // At most 20, the oldest dropped first.
    let (kept, oldest): (i32, String) = sqlx::query_as(
        "WITH RECURSIVE r(n, runs) AS (
             SELECT 0, '[]'::jsonb
             UNION ALL
             SELECT n + 1, qron.runs_push(runs, timestamptz '2027-01-01' + n * interval '1 hour',
                                          now(), 'w', 'succeeded', NULL)
               FROM r WHERE n < 25)
         SELECT jsonb_array_length(runs), runs -> 0 ->> 'slot' FROM r WHERE n = 25",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kept as usize, qron::MAX_RUNS_KEPT);
    assert!(oldest.starts_with("2027-01-01T05:00:00"), "{oldest}");
}

#[tokio::test]
async fn a_pause_hands_back_the_pairs_buffered_jobs_at_its_notice() {
    // One slot running 20 ms jobs: the worker buffers a reserve of the next ones. A pause
    // hands the reserve back at its notice instead of running it: no job of the pair starts
    // once the notice had time to arrive.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("pause-buffer");
    c.create_many((0..300).map(|_| script_job("act", "@after 0s", &k, Mode::Sleep(20))))
        .await
        .unwrap();
    let worker = Worker::builder(Client::new(db.pool.clone()))
        .executors(["act"])
        .concurrency("act", 1)
        .build()
        .unwrap();
    let metrics = worker.metrics();
    let running = qron_tests::Running::start(worker);
    qron_tests::wait_for(
        "a reserve in the buffer",
        Duration::from_secs(10),
        || async { metrics.buffered() >= 5 },
    )
    .await;
    c.pause_executor("act").await.unwrap();
    let paused_at = chrono::Utc::now();
    qron_tests::wait_for("the buffer emptied", Duration::from_secs(5), || async {
        metrics.buffered() == 0
    })
    .await;
    running.stop().await;
    let starts = qron_tests::jobs::probe(&k).starts.lock().unwrap().clone();
    // The notice takes a moment to come: a job may start meanwhile. Before, the reserve (about
    // 12 jobs) ran on for 250 ms.
    let late: Vec<_> = starts
        .iter()
        .filter(|s| s.2 > paused_at + chrono::Duration::milliseconds(100))
        .collect();
    assert!(
        late.is_empty(),
        "{} jobs started after the pause's notice: {late:?}",
        late.len()
    );
    assert!(metrics.handed_back() >= 5, "{}", metrics.handed_back());
    // What went back waits with the rest, uncharged.
    let ran = starts.len() as i64;
    assert_eq!(
        qron_tests::count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs
              WHERE status = 'ready' AND attempt = 0 AND lease_owner IS NULL"
        )
        .await,
        300 - ran,
        "every job that did not run is ready, with no attempt counted"
    );
}

#[tokio::test]
async fn a_pause_and_a_resume_write_no_job_row_whatever_the_backlog() {
    // A pause is one row the lease consults: 200,000 ready jobs of the pair are not written,
    // neither by the pause nor by the resume (before, each rewrote every one of them).
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    sqlx::query(
        "INSERT INTO qron.jobs (executor, owner, expr, recurring, run_at, slot_at)
         SELECT 'act', 'default', '@after 0s', false, now(), now()
           FROM generate_series(1, 200000)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // Rows written since: a written row is a new version, with a newer transaction id.
    let written_since = |xid: i64| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM qron.jobs WHERE xmin::text::bigint >= $1",
            )
            .bind(xid)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let xid = || async {
        sqlx::query_scalar::<_, i64>("SELECT txid_current() % 4294967296")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let before = xid().await;
    c.pause_executor("act").await.unwrap();
    assert_eq!(written_since(before).await, 0, "the pause wrote job rows");
    assert_eq!(c.executors().await.unwrap()[0].ready, 200_000);
    assert!(c.executors().await.unwrap()[0].is_paused());
    let before = xid().await;
    c.resume_executor("act").await.unwrap();
    assert_eq!(written_since(before).await, 0, "the resume wrote job rows");
    assert!(!c.executors().await.unwrap()[0].is_paused());
}

#[tokio::test]
async fn run_until_idle_returns_when_only_paused_jobs_are_due() {
    // A paused owner's due jobs are not work for the worker: it is idle when they are all that
    // is left (before, it waited for them for ever).
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("idle-paused");
    c.pause_executor("act").await.unwrap();
    let paused = c
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    let other = c
        .owner("acme")
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), run_due(&c))
        .await
        .expect("the worker did not become idle");
    assert_eq!(c.get(paused.id).await.unwrap().status, JobStatus::Ready);
    assert_eq!(
        c.owner("acme").get(other.id).await.unwrap().status,
        JobStatus::Succeeded
    );
}

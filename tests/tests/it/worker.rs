//! The worker against a real database: the outcome matrix, the in-flight bound, batching,
//! wake-ups, recurring schedules, shutdown and the lease guard.

use std::time::Duration;

use chrono::Utc;
use qron::{Client, JobStatus, NewJob, Worker};
use qron_tests::jobs::{Mode, Script, key, probe, script_job, script_jobs as scripts};
use qron_tests::{Running, TestDb, count, wait_for, wait_for_history};
use serde_json::json;

fn worker(db: &TestDb, executors: &[&str]) -> qron::WorkerBuilder {
    Worker::builder(Client::new(db.pool.clone()))
        .executors(executors.iter().copied())
        .poll_interval(Duration::from_millis(100))
        .rescue_interval(Duration::from_millis(50))
}

async fn job(c: &Client, executor: &str, expr: &str, script: &Script) -> qron::JobRow {
    c.create(
        NewJob::new(executor, expr)
            .payload(serde_json::to_value(script).unwrap())
            .max_attempts(qron::DEFAULT_MAX_ATTEMPTS)
            .timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap()
}

/// A job of `act` on `expr` running `mode`, reporting to probe `k`.
fn script(expr: &str, k: &str, mode: Mode) -> NewJob {
    script_job("act", expr, k, mode)
}

/// A worker on `act` polling every `poll`, once its producer has looked at the queue (and
/// gone idle on that poll).
async fn idle_worker(db: &TestDb, poll: Duration) -> Running {
    let running = Running::start(worker(db, &["act"]).poll_interval(poll).build().unwrap());
    let metrics = running.metrics.clone();
    wait_for("the first lease", Duration::from_secs(5), || async {
        metrics.polls() >= 1
    })
    .await;
    running
}

/// Waits until no job of the test is running or due within a second (a retry after a short
/// back-off is written, ready, a few milliseconds before it is due).
async fn settle(db: &TestDb) {
    wait_for("the queue to settle", Duration::from_secs(20), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'running'
               OR (status = 'ready' AND run_at <= now() + interval '1 second')",
        )
        .await
            == 0
    })
    .await;
}

#[tokio::test]
async fn one_off_outcomes() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("oneoff");
    let ok = job(&c, "act", "@after 0s", &Script::new(&k, Mode::Ok)).await;
    let retry = job(&c, "act", "@after 0s", &Script::new(&k, Mode::Retry)).await;
    let fail = job(&c, "act", "@after 0s", &Script::new(&k, Mode::Fail)).await;
    let panic = job(&c, "act", "@after 0s", &Script::new(&k, Mode::Panic)).await;
    let hang = job(&c, "act", "@after 0s", &Script::new(&k, Mode::Hang)).await;
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for_history(&db.pool, 5, Duration::from_secs(20)).await;
    running.stop().await;

    let got = |id| {
        let c = c.clone();
        async move { c.get(id).await.unwrap() }
    };
    let j = got(ok.id).await;
    assert_eq!(
        (j.status, j.attempt, j.executions, j.last_error.clone()),
        (JobStatus::Succeeded, 1, 1, None)
    );
    assert!(j.finished_at.is_some());
    // Retried until the attempts (5, the default, set on the job) ran out, then failed with
    // the last error.
    let j = got(retry.id).await;
    assert_eq!(
        (j.status, j.attempt, j.executions),
        (JobStatus::Failed, 5, 5)
    );
    assert_eq!(j.last_error.as_deref(), Some("transient trouble"));
    // Fail: no retry.
    let j = got(fail.id).await;
    assert_eq!(
        (j.status, j.attempt, j.executions),
        (JobStatus::Failed, 1, 1)
    );
    assert_eq!(j.last_error.as_deref(), Some("permanent trouble"));
    // A panic retries like an error.
    let j = got(panic.id).await;
    assert_eq!((j.status, j.executions), (JobStatus::Failed, 5));
    assert!(j.last_error.unwrap().contains("panicked: handler exploded"));
    // A handler that exceeds its timeout is abandoned and retried.
    let j = got(hang.id).await;
    assert_eq!((j.status, j.executions), (JobStatus::Failed, 5));
    assert!(j.last_error.unwrap().contains("timed out"));
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM qron.jobs").await,
        0,
        "finished jobs leave the live table"
    );
}

#[tokio::test]
async fn recurring_outcomes_keep_the_schedule() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("recurring");
    let mut ids = Vec::new();
    for mode in [Mode::Ok, Mode::Retry, Mode::Fail, Mode::Panic, Mode::Hang] {
        let j = c
            .create(
                script("@every 1 hour", &k, mode)
                    .timeout(Duration::from_millis(300))
                    .start_at(Utc::now() - chrono::Duration::minutes(61)),
            )
            .await
            .unwrap();
        ids.push(j);
    }
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    settle(&db).await;
    running.stop().await;
    for (j, (executions, error)) in ids.iter().zip([
        (1, None),
        (5, Some("transient trouble")),
        (1, Some("permanent trouble")),
        (5, Some("the handler panicked: handler exploded")),
        (5, Some("the handler timed out after 300ms")),
    ]) {
        let now = c.get(j.id).await.unwrap();
        // Never failed for good: ready at the next slot, attempt reset, on the slot grid.
        assert_eq!(now.status, JobStatus::Ready, "{executions} {error:?}");
        assert_eq!(now.attempt, 0);
        assert_eq!(now.executions, executions);
        assert_eq!(now.last_error.as_deref(), error);
        assert_eq!(now.run_at, j.run_at + chrono::Duration::hours(1));
        assert!(now.finished_at.is_none());
    }
}

#[tokio::test]
async fn backoff_grows_between_retries_and_respects_its_cap() {
    let b = qron::Backoff::new(Duration::from_millis(10), Duration::from_secs(5));
    let mut last = Duration::ZERO;
    for attempt in 1..=9 {
        let full = Duration::from_millis(10) * 2u32.pow(attempt - 1);
        let d = b.delay(attempt as i32);
        assert!(
            d >= full.mul_f64(0.75) && d <= full,
            "attempt {attempt}: {d:?}"
        );
        assert!(d > last, "attempt {attempt}: {d:?} after {last:?}");
        last = d;
    }
    for attempt in 10..=20 {
        let d = b.delay(attempt);
        assert!(
            d <= Duration::from_secs(5) && d >= Duration::from_millis(3750),
            "{d:?}"
        );
    }
}

#[tokio::test]
async fn the_in_flight_bound_holds() {
    // 4: one producer; 100: two producers leasing at once, which share the bound.
    for (n, sleep) in [(4, 20), (100, 30)] {
        let db = TestDb::new().await;
        let c = Client::new(db.pool.clone());
        let k = key("bound");
        let total = 10 * n;
        let jobs = scripts("act", total, &k, Mode::Sleep(sleep));
        c.create_many(jobs).await.unwrap();
        let running = Running::start(worker(&db, &["act"]).concurrency("act", n).build().unwrap());
        wait_for_history(&db.pool, total as i64, Duration::from_secs(30)).await;
        running.stop().await;
        let p = probe(&k);
        assert_eq!(p.started(), total);
        let max = p.max_running.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            max <= n as i64 && max >= 2,
            "concurrency {n}: max running {max}"
        );
    }
}

#[tokio::test]
async fn twenty_slots_lease_twenty_of_fifty() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("twenty");
    let jobs = scripts("act_lease", 50, &k, Mode::Hang);
    c.create_many(jobs).await.unwrap();
    let running = Running::start(
        worker(&db, &["act_lease"])
            .concurrency("act_lease", 20)
            .build()
            .unwrap(),
    );
    wait_for("20 running", Duration::from_secs(10), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'running'",
        )
        .await
            == 20
    })
    .await;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'ready'"
        )
        .await,
        30
    );
    running.stopper.hard();
}

#[tokio::test]
async fn eight_workers_of_five_never_overlap() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("eight");
    let jobs = scripts("act_lease", 50, &k, Mode::Hang);
    c.create_many(jobs).await.unwrap();
    let workers: Vec<Running> = (0..8)
        .map(|_| {
            Running::start(
                worker(&db, &["act_lease"])
                    .concurrency("act_lease", 5)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    // Leased (the database says running) comes before the handler starts: wait for both.
    wait_for("40 running", Duration::from_secs(10), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'running'",
        )
        .await
            == 40
            && probe(&k).started() >= 40
    })
    .await;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'ready'"
        )
        .await,
        10
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(DISTINCT lease_owner) FROM qron.jobs WHERE status = 'running'"
        )
        .await,
        8
    );
    let p = probe(&k);
    let starts = p.starts.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<i64> = starts.iter().map(|s| s.0).collect();
    assert_eq!(starts.len(), 40, "40 executions: {starts:?}");
    assert_eq!(
        ids.len(),
        40,
        "no job was handed to two workers: {starts:?}"
    );
    for w in workers {
        w.stopper.hard();
    }
}

#[tokio::test]
async fn two_workers_split_a_hundred_jobs_with_no_overlap() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("split");
    // 50 ms jobs: a worker's reserve holds what its 5 slots start in 250 ms (25 jobs), so one
    // worker cannot take the whole second of work before the other starts.
    let jobs = scripts("act", 100, &k, Mode::Sleep(50));
    // Created before any worker started: all delivered once they start.
    c.create_many(jobs).await.unwrap();
    let a = Running::start(worker(&db, &["act"]).concurrency("act", 5).build().unwrap());
    let b = Running::start(worker(&db, &["act"]).concurrency("act", 5).build().unwrap());
    wait_for("100 finished", Duration::from_secs(20), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs_history WHERE status = 'succeeded'",
        )
        .await
            == 100
    })
    .await;
    let (ma, mb) = (a.metrics.clone(), b.metrics.clone());
    a.stop().await;
    b.stop().await;
    assert_eq!(ma.leased() + mb.leased(), 100, "each job delivered once");
    assert!(ma.leased() > 0 && mb.leased() > 0);
    assert_eq!(probe(&k).started(), 100);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs_history WHERE executions <> 1"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn outcomes_are_written_in_batches() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // Count the statements that end one-off jobs (they delete from the live table).
    sqlx::raw_sql(
        "CREATE TABLE public.deletes (n int NOT NULL);
         INSERT INTO public.deletes VALUES (0);
         CREATE FUNCTION public.count_delete() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN UPDATE public.deletes SET n = n + 1; RETURN NULL; END $$;
         CREATE TRIGGER count_delete AFTER DELETE ON qron.jobs
           FOR EACH STATEMENT EXECUTE FUNCTION public.count_delete();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let jobs: Vec<NewJob> = (0..10_000)
        .map(|_| NewJob::new("noop", "@after 0s"))
        .collect();
    c.create_many(jobs).await.unwrap();
    let batch = 1000;
    let running = Running::start(
        worker(&db, &["noop"])
            .batch_size(batch)
            .flush_interval(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    wait_for_history(&db.pool, 10_000, Duration::from_secs(60)).await;
    running.stop().await;
    let statements = count(&db.pool, "SELECT n::bigint FROM public.deletes").await;
    assert!(
        statements <= 10_000 / batch as i64 + 5,
        "{statements} outcome statements for 10,000 jobs"
    );
}

#[tokio::test]
async fn a_batch_mixing_outcomes_records_each_in_the_history() {
    // Plain successes are finished by one statement, successes that change their payload and
    // failures by another: every job must land in the history with its own outcome.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("mixed");
    let mut jobs = scripts("act", 30, &k, Mode::Ok);
    jobs.extend(scripts("act", 30, &k, Mode::Count));
    jobs.extend(scripts("act", 30, &k, Mode::Fail));
    c.create_many(jobs).await.unwrap();
    let running = Running::start(
        worker(&db, &["act"])
            .flush_interval(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    wait_for_history(&db.pool, 90, Duration::from_secs(20)).await;
    running.stop().await;
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT status::text, payload->>'mode', (payload->>'count')::bigint, last_error
           FROM qron.jobs_history ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for r in rows {
        *seen.entry(r).or_insert(0) += 1;
    }
    let expected: std::collections::BTreeMap<_, _> = [
        (
            (
                "failed".to_owned(),
                "fail".to_owned(),
                0,
                Some("permanent trouble".to_owned()),
            ),
            30,
        ),
        (("succeeded".to_owned(), "count".to_owned(), 1, None), 30),
        (("succeeded".to_owned(), "ok".to_owned(), 0, None), 30),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM qron.jobs").await, 0);
}

#[tokio::test]
async fn three_executors_each_outcome_on_its_own_job() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    for executor in ["tag_a", "tag_b", "tag_c"] {
        let jobs: Vec<NewJob> = (0..1000)
            .map(|i| NewJob::new(executor, "@after 0s").payload(json!({ "i": i })))
            .collect();
        c.create_many(jobs).await.unwrap();
    }
    let running = Running::start(worker(&db, &["tag_a", "tag_b", "tag_c"]).build().unwrap());
    wait_for_history(&db.pool, 3000, Duration::from_secs(60)).await;
    running.stop().await;
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM qron.jobs_history WHERE payload->>'done_by' = executor AND status = 'succeeded'").await,
        3000
    );
}

#[tokio::test]
async fn a_notification_wakes_an_idle_worker() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("wake");
    let running = idle_worker(&db, Duration::from_secs(10)).await;
    let mut delays = Vec::new();
    for i in 0..15 {
        let enqueued = Utc::now();
        let j = job(&c, "act", "@after 0s", &Script::new(&k, Mode::Ok)).await;
        wait_for("the handler to start", Duration::from_secs(5), || async {
            probe(&k).started() > i
        })
        .await;
        let started = probe(&k)
            .starts
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.0 == j.id)
            .map(|s| s.2)
            .unwrap();
        delays.push((started - enqueued).num_microseconds().unwrap());
    }
    running.stop().await;
    delays.sort();
    let median = delays[delays.len() / 2];
    assert!(
        median < 50_000,
        "median enqueue-to-start {median} µs with a 10 s poll interval: {delays:?}"
    );
}

#[tokio::test]
async fn a_notification_during_a_lease_is_not_lost() {
    // Regression (issue 14's producer): a notification that came while a lease ran woke the
    // producer, which then rested until the poll when that lease came back empty, although
    // the notified job had committed too late for the lease to see it.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("wake-during-lease");
    let running = idle_worker(&db, Duration::from_secs(30)).await;
    // Jobs created a millisecond or two apart: a later one's notification tends to arrive
    // while the lease an earlier one started is running.
    let mut rng = qron_tests::Rng::new(14);
    for round in 0..100 {
        let mut creating = Vec::new();
        for i in 0..2u64 {
            let (c, k) = (c.clone(), k.clone());
            let delay = Duration::from_micros(i * rng.below(2000));
            creating.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                c.create(script("@after 0s", &k, Mode::Ok)).await.unwrap();
            }));
        }
        for t in creating {
            t.await.unwrap();
        }
        wait_for(
            &format!("round {round}: every job to start well before the 30 s poll"),
            Duration::from_secs(5),
            || async { probe(&k).started() == 2 * (round + 1) },
        )
        .await;
    }
    running.stop().await;
}

#[tokio::test]
async fn a_bulk_enqueue_wakes_an_idle_worker() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("bulkwake");
    let running = idle_worker(&db, Duration::from_secs(30)).await;
    c.create_many(scripts("act", 50, &k, Mode::Ok))
        .await
        .unwrap();
    wait_for("the 50 jobs to start", Duration::from_secs(10), || async {
        probe(&k).started() == 50
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn a_job_due_earlier_is_not_starved_by_a_busy_queue() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("starve");
    let early = key("early");
    // Enough work to keep the worker busy for a few seconds: it leases in full batches, each
    // after the last one leased.
    c.create_many(scripts("act", 3_000, &k, Mode::Sleep(20)))
        .await
        .unwrap();
    let running = Running::start(
        worker(&db, &["act"])
            .poll_interval(Duration::from_millis(200))
            .concurrency("act", 20)
            .build()
            .unwrap(),
    );
    wait_for("the queue to be busy", Duration::from_secs(5), || async {
        probe(&k).started() >= 100
    })
    .await;
    // Due an hour ago: before every job of the queue in the lease order.
    let j = c
        .create(
            script("@after 0s", &early, Mode::Ok).start_at(Utc::now() - chrono::Duration::hours(1)),
        )
        .await
        .unwrap();
    let created = Utc::now();
    wait_for("the early job", Duration::from_secs(10), || async {
        probe(&early).started() == 1
    })
    .await;
    let started = probe(&early).starts.lock().unwrap()[0].2;
    let queue_left = count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs WHERE status = 'ready'",
    )
    .await;
    running.stop().await;
    assert!(
        queue_left > 0,
        "the queue drained before the early job {} ran",
        j.id
    );
    assert!(
        started - created < chrono::Duration::seconds(1),
        "started {started}, created {created}: it waited behind the queue"
    );
}

#[tokio::test]
async fn a_restart_or_an_update_that_makes_a_job_due_wakes_an_idle_worker() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("rewake");
    // Paused while due, and due in an hour: neither is leased.
    let paused = c.create(script("@after 0s", &k, Mode::Ok)).await.unwrap();
    c.stop(paused.id).await.unwrap();
    let later = c
        .create(script("@after 1 hour", &k, Mode::Ok))
        .await
        .unwrap();
    let running = idle_worker(&db, Duration::from_secs(30)).await;
    c.restart(paused.id).await.unwrap();
    wait_for("the restarted job", Duration::from_secs(5), || async {
        probe(&k).started() == 1
    })
    .await;
    c.update(later.id, qron::JobUpdate::new().expr("@after 0s"))
        .await
        .unwrap();
    wait_for("the updated job", Duration::from_secs(5), || async {
        probe(&k).started() == 2
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn a_one_off_runs_at_its_start_plus_interval() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("start");
    let start = Utc::now() + chrono::Duration::seconds(1);
    let j = c
        .create(script("@after 100ms", &k, Mode::Ok).start_at(start))
        .await
        .unwrap();
    let running = Running::start(
        worker(&db, &["act"])
            .poll_interval(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    wait_for("the run", Duration::from_secs(5), || async {
        probe(&k).started() == 1
    })
    .await;
    running.stop().await;
    let ran = probe(&k).starts.lock().unwrap()[0].2;
    let due = start + chrono::Duration::milliseconds(100);
    assert_eq!(j.run_at, chrono::SubsecRound::trunc_subsecs(due, 6));
    assert!(ran >= j.run_at, "ran {ran} before {}", j.run_at);
    assert!(
        ran < j.run_at + chrono::Duration::milliseconds(250),
        "ran {ran}, due {}",
        j.run_at
    );
}

#[tokio::test]
async fn a_job_leased_ahead_waits_for_its_run_time() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("ahead");
    let j = c
        .create(script("@after 1500ms", &k, Mode::Ok))
        .await
        .unwrap();
    let running = Running::start(
        worker(&db, &["act"])
            .lease_ahead(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    // Leased while its run time is still ahead, and held: not started.
    wait_for("the lease", Duration::from_secs(5), || async {
        c.get(j.id).await.unwrap().status == JobStatus::Running
    })
    .await;
    let leased_at = Utc::now();
    assert!(
        leased_at < j.run_at,
        "leased at {leased_at}, due {}",
        j.run_at
    );
    assert_eq!(probe(&k).started(), 0, "started before its run time");
    wait_for("the run", Duration::from_secs(5), || async {
        probe(&k).started() == 1
    })
    .await;
    running.stop().await;
    let ran = probe(&k).starts.lock().unwrap()[0].2;
    assert!(ran >= j.run_at, "ran {ran} before {}", j.run_at);
    assert!(
        ran < j.run_at + chrono::Duration::milliseconds(300),
        "held past its run time: ran {ran}, due {}",
        j.run_at
    );
}

#[tokio::test]
async fn a_recurring_job_is_leased_again_before_its_next_slot() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("slots");
    let j = c
        .create(script("@every 1 second", &k, Mode::Ok))
        .await
        .unwrap();
    // Polling alone (10 s) would start the second run 9 s late: the worker must see that the
    // job it ran is due again, and lease it ahead of its slot.
    let running = Running::start(
        worker(&db, &["act"])
            .poll_interval(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    wait_for("3 runs", Duration::from_secs(6), || async {
        probe(&k).started() >= 3
    })
    .await;
    running.stop().await;
    for (i, (_, _, at)) in probe(&k).starts.lock().unwrap().iter().enumerate() {
        let slot = j.run_at + chrono::Duration::seconds(i as i64);
        assert!(*at >= slot, "run {i} at {at} before its slot {slot}");
        assert!(
            *at < slot + chrono::Duration::milliseconds(500),
            "run {i} at {at}, late for its slot {slot}"
        );
    }
}

#[tokio::test]
async fn a_recurring_counter_runs_on_its_slots() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("counter");
    let j = c
        .create(script("@every 1 second", &k, Mode::Count))
        .await
        .unwrap();
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for("3 runs", Duration::from_secs(10), || async {
        c.get(j.id).await.unwrap().executions >= 3
    })
    .await;
    running.stop().await;
    let now = c.get(j.id).await.unwrap();
    let k_runs = now.executions;
    assert_eq!(
        now.payload["count"],
        json!(k_runs),
        "the payload counts every run"
    );
    // The size a worker's memory budget counts follows the payload the handler wrote.
    let bytes: i32 = sqlx::query_scalar("SELECT bytes FROM qron.jobs WHERE id = $1")
        .bind(j.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        bytes as usize,
        serde_json::to_string(&now.payload).unwrap().len() + "{}".len(),
        "the stored size of the handler's payload"
    );
    // No drift: the next slot is on the grid, whatever the processing time.
    assert_eq!(now.run_at, j.run_at + chrono::Duration::seconds(k_runs));
    for (i, (_, _, at)) in probe(&k).starts.lock().unwrap().iter().enumerate() {
        let slot = j.run_at + chrono::Duration::seconds(i as i64);
        assert!(*at >= slot, "run {i} at {at} before its slot {slot}");
    }
}

#[tokio::test]
async fn a_handler_reschedules_itself() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("resched");
    let mut script = Script::new(&k, Mode::Reschedule("@after 200ms".into()));
    script.count = 2;
    let j = job(&c, "act", "@after 0s", &script).await;
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for_history(&db.pool, 1, Duration::from_secs(5)).await;
    running.stop().await;
    let done = c.get(j.id).await.unwrap();
    assert_eq!((done.status, done.executions), (JobStatus::Succeeded, 3));
    assert_eq!(done.expr, "@after 0.2 seconds");
    let starts = probe(&k).starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 3);
    for w in starts.windows(2) {
        assert!(
            w[1].2 - w[0].2 >= chrono::Duration::milliseconds(200),
            "{starts:?}"
        );
    }
}

#[tokio::test]
async fn a_handler_stops_its_recurring_job() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("stop");
    let j = job(&c, "act", "@every 1 hour", &Script::new(&k, Mode::Stop)).await;
    sqlx::query("UPDATE qron.jobs SET run_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for("the pause", Duration::from_secs(5), || async {
        c.get(j.id).await.unwrap().status == JobStatus::Stopped
    })
    .await;
    running.stop().await;
    assert_eq!(c.get(j.id).await.unwrap().executions, 1);
}

#[tokio::test]
async fn a_soft_stop_writes_every_started_execution() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("drain");
    let jobs = scripts("act", 30, &k, Mode::Sleep(150));
    c.create_many(jobs).await.unwrap();
    let running = Running::start(
        worker(&db, &["act"])
            .concurrency("act", 10)
            .build()
            .unwrap(),
    );
    wait_for("handlers to start", Duration::from_secs(5), || async {
        probe(&k).started() >= 5
    })
    .await;
    running.stop().await;
    let started = probe(&k).started() as i64;
    assert!(started >= 5);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'running'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs_history WHERE status = 'succeeded'"
        )
        .await,
        started,
        "every execution that started has its outcome"
    );
}

#[tokio::test]
async fn recurring_commits_survive_shutdown() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("every100");
    let a = job(&c, "act", "@every 100ms", &Script::new(&k, Mode::Ok)).await;
    let b = job(&c, "act", "@every 100ms", &Script::new(&k, Mode::Ok)).await;
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    // Committed while they run (about 350 ms: a few deliveries each), then stopped.
    wait_for("a few deliveries", Duration::from_secs(5), || async {
        probe(&k).started() >= 6
    })
    .await;
    running.stop().await;
    let delivered = probe(&k).started() as i64;
    let executions = c.get(a.id).await.unwrap().executions + c.get(b.id).await.unwrap().executions;
    assert!(delivered >= 2, "{delivered}");
    assert_eq!(
        executions, delivered,
        "every delivery's outcome was committed"
    );
}

#[tokio::test]
async fn an_edit_made_while_running_is_kept() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("edit");
    let j = job(
        &c,
        "act",
        "@every 1 hour",
        &Script::new(&k, Mode::Sleep(150)),
    )
    .await;
    sqlx::query("UPDATE qron.jobs SET run_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for("the run", Duration::from_secs(5), || async {
        probe(&k).started() == 1
    })
    .await;
    let edited = c
        .update(
            j.id,
            qron::JobUpdate::new()
                .expr("@every 2 hours")
                .payload(serde_json::to_value(Script::new(&k, Mode::Fail)).unwrap()),
        )
        .await
        .unwrap();
    wait_for("the outcome", Duration::from_secs(5), || async {
        c.get(j.id).await.unwrap().status == JobStatus::Ready
    })
    .await;
    running.stop().await;
    let now = c.get(j.id).await.unwrap();
    assert_eq!(now.expr, "@every 2 hours");
    assert_eq!(now.payload, edited.payload);
    assert_eq!(now.run_at, edited.run_at);
    assert_eq!(now.executions, 1);
}

#[tokio::test]
async fn paused_while_running_stays_paused_with_its_outcome() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("pause");
    let j = job(&c, "act", "@after 0s", &Script::new(&k, Mode::Sleep(300))).await;
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for("the run", Duration::from_secs(5), || async {
        probe(&k).started() == 1
    })
    .await;
    assert_eq!(c.stop(j.id).await.unwrap().status, JobStatus::Stopped);
    wait_for("the outcome", Duration::from_secs(5), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE lease_expires_at IS NULL",
        )
        .await
            == 1
    })
    .await;
    running.stop().await;
    let now = c.get(j.id).await.unwrap();
    assert_eq!((now.status, now.executions), (JobStatus::Stopped, 1));
}

#[tokio::test]
async fn a_stale_outcome_changes_nothing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("stale");
    // Worker A's handler waits at a gate while its lease is expired by hand, so that worker B
    // takes the job over and runs it; then A finishes, late. The job's time limit is far longer
    // than the test (and under the lease time, so no renewal): only the gate ends A's run (with
    // 300 ms, a busy machine could end it by its timeout first, and the retry outcome raced
    // the expiry by hand).
    let j = c
        .create(script("@after 0s", &k, Mode::GateFirst).timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    let a = Running::start(
        worker(&db, &["act"])
            .rescue_interval(Duration::from_secs(3600))
            .build()
            .unwrap(),
    );
    // Started, and marked so (with A's next batch): the rescue then counts A's attempt.
    wait_for("A's run", Duration::from_secs(5), || async {
        probe(&k).started() == 1
            && count(
                &db.pool,
                "SELECT count(*) FROM qron.jobs WHERE started_at IS NOT NULL",
            )
            .await
                == 1
    })
    .await;
    sqlx::query("UPDATE qron.jobs SET lease_expires_at = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    // A rescuer returns the job to the pool (counting A's attempt) and a worker runs it again
    // (either one: the rescue wakes both); the second attempt does not wait.
    let b = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for_history(&db.pool, 1, Duration::from_secs(10)).await;
    probe(&k).open_gate();
    wait_for("A's late outcome", Duration::from_secs(10), || async {
        a.metrics.stale() == 1
    })
    .await;
    let (ma, mb) = (a.metrics.clone(), b.metrics.clone());
    a.stop().await;
    b.stop().await;
    assert_eq!(
        ma.stale(),
        1,
        "A's late outcome met a lease that had moved on"
    );
    // One rescue returned the lease: B's, or A's own when its first pass comes after the
    // expiry (a busy machine can start A's rescuer after its handler).
    assert_eq!(ma.rescued() + mb.rescued(), 1);
    let done = c.get(j.id).await.unwrap();
    assert_eq!(
        (done.status, done.attempt, done.executions),
        (JobStatus::Succeeded, 2, 2)
    );
}

#[tokio::test]
async fn maintenance_keeps_partitions_ahead_and_drops_old_ones() {
    let db = TestDb::new().await;
    let today = Utc::now().date_naive();
    for days_ago in [40, 31, 29] {
        sqlx::query("SELECT qron.history_partition_create($1)")
            .bind(today - chrono::Duration::days(days_ago))
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let partitions = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'qron.jobs_history'::regclass ORDER BY 1",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    let name = |d: chrono::NaiveDate| d.format("jobs_history_%Y%m%d").to_string();
    // A worker runs maintenance when it starts: two workers at once, one pass wins the lock.
    let a = Running::start(
        worker(&db, &["act"])
            .history_retention(Duration::from_secs(30 * 86_400))
            .build()
            .unwrap(),
    );
    let b = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for("old partitions to go", Duration::from_secs(10), || async {
        !partitions()
            .await
            .contains(&name(today - chrono::Duration::days(31)))
    })
    .await;
    a.stop().await;
    b.stop().await;
    let parts = partitions().await;
    assert!(
        !parts.contains(&name(today - chrono::Duration::days(40))),
        "{parts:?}"
    );
    assert!(
        parts.contains(&name(today - chrono::Duration::days(29))),
        "{parts:?}"
    );
    for ahead in 0..3 {
        assert!(
            parts.contains(&name(today + chrono::Duration::days(ahead))),
            "{parts:?}"
        );
    }
    assert!(parts.contains(&"jobs_history_default".to_owned()));
}

/// Starts of `k`'s handler per job id, in order.
fn starts_by_job(k: &str) -> std::collections::BTreeMap<i64, Vec<chrono::DateTime<Utc>>> {
    let mut by_job = std::collections::BTreeMap::<i64, Vec<_>>::new();
    for (id, _, at) in probe(k).starts.lock().unwrap().iter() {
        by_job.entry(*id).or_default().push(*at);
    }
    by_job
}

#[tokio::test]
async fn jobs_the_worker_makes_due_again_do_not_wait_for_the_poll() {
    // Regression (issue 13, defect 1): the next slot of a recurring job and a retry after its
    // back-off waited for the poll interval (1 s, the default) instead of starting on time.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("rewake");
    let kr = key("retrywake");
    let running = idle_worker(&db, qron::DEFAULT_POLL_INTERVAL).await;
    let a = c
        .create(script("@every 100ms", &k, Mode::Ok))
        .await
        .unwrap();
    let b = c
        .create(script("@every 100ms", &k, Mode::Ok))
        .await
        .unwrap();
    // 3 attempts, back-off 1–5 ms: every retry is due within a few milliseconds.
    let r = c
        .create(script("@after 0s", &kr, Mode::Retry).max_attempts(3))
        .await
        .unwrap();
    wait_for(
        "ten runs of each recurring job",
        Duration::from_secs(10),
        || async {
            starts_by_job(&k).values().all(|s| s.len() >= 10) && starts_by_job(&k).len() == 2
        },
    )
    .await;
    wait_for_history(&db.pool, 1, Duration::from_secs(10)).await;
    running.stop().await;
    for id in [a.id, b.id] {
        let starts = &starts_by_job(&k)[&id];
        let worst = starts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            worst < chrono::Duration::milliseconds(180),
            "job {id}: a gap of {worst} between runs of an @every 100ms job: {starts:?}"
        );
    }
    let retries = &starts_by_job(&kr)[&r.id];
    assert_eq!(retries.len(), 3);
    let span = retries[2] - retries[0];
    assert!(
        span < chrono::Duration::milliseconds(200),
        "three attempts with a 1–5 ms back-off took {span}: {retries:?}"
    );
}

#[tokio::test]
async fn a_batch_written_in_part_counts_each_outcome_once() {
    // Regression (issue 13, defect 11): a batch whose first statement committed and whose
    // second failed was retried whole; the outcomes already written then counted as stale.
    let db = TestDb::new().await;
    for sql in [
        "CREATE SEQUENCE test_once",
        "CREATE FUNCTION test_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF nextval('test_once') = 1 THEN RAISE EXCEPTION 'transient trouble'; END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER test_fail_once BEFORE UPDATE ON qron.jobs FOR EACH ROW
         WHEN (OLD.status = 'running' AND NEW.status = 'ready') EXECUTE FUNCTION test_fail_once()",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }
    let c = Client::new(db.pool.clone());
    let k = key("partial");
    let mut jobs = scripts("act", 30, &k, Mode::Ok);
    jobs.push(
        script("@every 1 hour", &k, Mode::Ok).start_at(Utc::now() - chrono::Duration::minutes(61)),
    );
    c.create_many(jobs).await.unwrap();
    // One batch for all 31 outcomes: finishes first, then the recurring job's, which fails once.
    let running = Running::start(
        worker(&db, &["act"])
            .flush_interval(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    wait_for_history(&db.pool, 30, Duration::from_secs(10)).await;
    wait_for("the recurring outcome", Duration::from_secs(10), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'ready' AND executions = 1",
        )
        .await
            == 1
    })
    .await;
    let m = running.metrics.clone();
    running.stop().await;
    assert_eq!(
        count(&db.pool, "SELECT nextval('test_once')").await,
        3,
        "the recurring outcome failed once, then was written"
    );
    assert_eq!((m.written(), m.stale()), (31, 0));
}

/// The partitions of the history, by name.
async fn history_partitions(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'qron.jobs_history'::regclass ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rows_in_the_default_partition_move_into_their_days_partition() {
    // Regression (issue 13, defect 9): a row in the default partition made the creation of
    // its day's partition fail for good, and retention stopped with it.
    let db = TestDb::new().await;
    let day = Utc::now().date_naive() + chrono::Duration::days(2);
    let name = day.format("jobs_history_%Y%m%d").to_string();
    sqlx::query("SELECT qron.history_partition_drop($1)")
        .bind(&name)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO qron.jobs_history (id, executor, owner, expr, recurring, status, run_at,
             payload, meta, attempt, executions, max_attempts, timeout, created_at, updated_at,
             start_at, finished_at)
         VALUES (1, 'act', 'default', '@after 1s', false, 'succeeded', now(), 'null', '{}',
             1, 1, 5, '5 minutes', now(), now(), now(), $1::date + interval '12 hours')",
    )
    .bind(day)
    .execute(&db.pool)
    .await
    .unwrap();
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    wait_for("the day's partition", Duration::from_secs(10), || async {
        history_partitions(&db).await.contains(&name)
    })
    .await;
    running.stop().await;
    let part: String = sqlx::query_scalar("SELECT tableoid::regclass::text FROM qron.jobs_history")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(part, format!("qron.{name}"));
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM qron.jobs_history_default").await,
        0
    );
}

#[tokio::test]
async fn maintenance_gives_way_to_a_long_search() {
    // Regression (issue 13, defect 9): dropping an old partition waited, with no timeout, for
    // a long search of the history, and every job's finish queued behind it.
    let db = TestDb::new().await;
    let old = Utc::now().date_naive() - chrono::Duration::days(40);
    sqlx::query("SELECT qron.history_partition_create($1)")
        .bind(old)
        .execute(&db.pool)
        .await
        .unwrap();
    // A search that holds its read lock on the history until the test ends.
    let mut search = db.pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM qron.jobs_history")
        .execute(&mut *search)
        .await
        .unwrap();
    let c = Client::new(db.pool.clone());
    let k = key("giveway");
    let running = Running::start(worker(&db, &["act"]).build().unwrap());
    c.create_many(scripts("act", 10, &k, Mode::Ok))
        .await
        .unwrap();
    // Bounded from outside too: behind a queued lock, even the poll's count would wait.
    tokio::time::timeout(
        Duration::from_secs(15),
        wait_for_history(&db.pool, 10, Duration::from_secs(10)),
    )
    .await
    .expect("the jobs finished while the search held the history");
    running.stop().await;
    search.rollback().await.unwrap();
    assert!(
        history_partitions(&db)
            .await
            .contains(&old.format("jobs_history_%Y%m%d").to_string()),
        "the drop gave up, to be tried again later"
    );
}

#[tokio::test]
async fn builder_settings_that_would_spin_or_stall_are_refused() {
    // Regression (issue 13, defect 10): a zero poll interval hot-looped.
    let db = TestDb::new().await;
    let field = |b: qron::WorkerBuilder| match b.build() {
        Err(qron::Error::InvalidArgument { field, .. }) => field,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert_eq!(
        field(worker(&db, &["act"]).poll_interval(Duration::ZERO)),
        "poll_interval"
    );
    assert_eq!(
        field(worker(&db, &["act"]).rescue_interval(Duration::ZERO)),
        "rescue_interval"
    );
    assert_eq!(
        field(worker(&db, &["act"]).flush_interval(Duration::ZERO)),
        "flush_interval"
    );
    assert_eq!(
        field(worker(&db, &["act"]).concurrency("act", 0)),
        "concurrency"
    );
    assert_eq!(field(worker(&db, &["act"]).batch_size(0)), "batch_size");
    assert_eq!(
        field(worker(&db, &["act"]).backlog_limit(0)),
        "backlog_limit"
    );
    assert_eq!(
        field(worker(&db, &["act"]).history_retention(Duration::from_secs(3600))),
        "history_retention"
    );
    assert_eq!(
        field(worker(&db, &["act"]).lease_ahead(Duration::from_secs(3600))),
        "lease_ahead"
    );
}

#[tokio::test]
async fn a_duration_setting_at_its_limit_is_refused_by_name_or_works() {
    // Regression: `flush_interval(Duration::MAX)` built a worker that panicked on its first
    // flush (a deadline past the clock's range).
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    type Set = fn(qron::WorkerBuilder, Duration) -> qron::WorkerBuilder;
    let settings: [(&str, Set); 10] = [
        ("poll_interval", qron::WorkerBuilder::poll_interval),
        ("lease_ahead", qron::WorkerBuilder::lease_ahead),
        ("flush_interval", qron::WorkerBuilder::flush_interval),
        ("rescue_interval", qron::WorkerBuilder::rescue_interval),
        ("lease_time", qron::WorkerBuilder::lease_time),
        ("unserved_after", qron::WorkerBuilder::unserved_after),
        ("queue_refresh", qron::WorkerBuilder::queue_refresh),
        ("shutdown_grace", qron::WorkerBuilder::shutdown_grace),
        ("flush_timeout", qron::WorkerBuilder::flush_timeout),
        ("history_retention", qron::WorkerBuilder::history_retention),
    ];
    for (name, set) in settings {
        let built = set(worker(&db, &["act"]), Duration::MAX).build();
        let w = match built {
            Err(qron::Error::InvalidArgument { field, reason }) => {
                assert_eq!(field, name, "{reason}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(w) => w,
        };
        // Accepted: then a worker with it runs a job to its end and stops.
        let k = key(&format!("limit-{name}"));
        let running = Running::start(w);
        let job = c.create(script("@after 0s", &k, Mode::Ok)).await.unwrap();
        wait_for(name, Duration::from_secs(10), || async {
            c.get(job.id).await.unwrap().status == JobStatus::Succeeded
        })
        .await;
        assert_eq!(probe(&k).started(), 1, "{name}");
        tokio::time::timeout(Duration::from_secs(10), running.stop())
            .await
            .unwrap_or_else(|_| panic!("{name}: the worker stops"));
    }
}

#[tokio::test]
async fn dropping_the_run_future_stops_the_worker() {
    // Regression (issue 13, defect 10): dropping `Worker::run`'s future left its producers,
    // rescuer and listener running.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("dropped");
    let w = worker(&db, &["act"]).build().unwrap();
    let metrics = w.metrics();
    let run = tokio::spawn(w.run());
    c.create(script("@after 0s", &k, Mode::Hang)).await.unwrap();
    wait_for("the first job", Duration::from_secs(5), || async {
        probe(&k).started() == 1
    })
    .await;
    run.abort();
    let _ = run.await;
    let polls = metrics.polls();
    c.create(script("@after 0s", &k, Mode::Ok)).await.unwrap();
    // A window for the fault to show: a live producer leases within a poll (100 ms). (Not the
    // new job's status: a lease statement sent just before the drop may still run on a busy
    // server after the job is created, and lease it; its lease then expires as a killed
    // worker's would.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metrics.polls(), polls, "a producer still leases");
    wait_for(
        "the running handler to be cancelled",
        Duration::from_secs(5),
        || async { metrics.in_flight() == 0 },
    )
    .await;
}

#[tokio::test]
async fn a_stop_returns_while_the_database_cannot_be_reached() {
    // Regression (issue 13, defect 10): the final flush had no bound, so a stop never
    // returned while the database was unreachable.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("unreachable");
    c.create_many(scripts("act", 5, &k, Mode::Sleep(300)))
        .await
        .unwrap();
    let running = Running::start(
        worker(&db, &["act"])
            .flush_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    wait_for("the handlers", Duration::from_secs(5), || async {
        probe(&k).started() == 5
    })
    .await;
    // The database goes away while the handlers run: their outcomes cannot be written.
    let admin = qron_tests::admin_options().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&admin)
        .await
        .unwrap();
    for sql in [
        format!(r#"ALTER DATABASE "{}" ALLOW_CONNECTIONS false"#, db.name),
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            db.name
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(15), running.stop())
        .await
        .expect("the soft stop returned");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"ALTER DATABASE "{}" ALLOW_CONNECTIONS true"#,
        db.name
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

static CLOCK_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn clock_that_may_panic() -> chrono::DateTime<Utc> {
    assert!(
        !CLOCK_PANICS.load(std::sync::atomic::Ordering::SeqCst),
        "the host clock broke"
    );
    Utc::now()
}

#[tokio::test]
async fn a_panic_in_a_worker_task_stops_the_worker_with_an_error() {
    // Regression (issue 13, defect 10): a panic in a background task went unnoticed.
    let db = TestDb::new().await;
    let w = worker(&db, &["act"])
        .host_clock(clock_that_may_panic)
        .build()
        .unwrap();
    let metrics = w.metrics();
    let run = tokio::spawn(w.run());
    wait_for("the first lease", Duration::from_secs(5), || async {
        metrics.polls() >= 1
    })
    .await;
    CLOCK_PANICS.store(true, std::sync::atomic::Ordering::SeqCst);
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the worker stopped")
        .unwrap();
    CLOCK_PANICS.store(false, std::sync::atomic::Ordering::SeqCst);
    match result {
        Err(qron::Error::WorkerTask { reason, .. }) => {
            assert!(reason.contains("the host clock broke"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_history_keeps_what_the_executor_asks_for() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("history");
    let mut ids = std::collections::HashMap::new();
    for executor in ["act_failed_only", "act_no_history"] {
        let mut jobs = scripts(executor, 10, &k, Mode::Ok);
        jobs.extend(scripts(executor, 5, &k, Mode::Fail));
        ids.insert(executor, c.create_many(jobs).await.unwrap());
    }
    let running = Running::start(
        worker(&db, &["act_failed_only", "act_no_history"])
            .build()
            .unwrap(),
    );
    wait_for("every job to end", Duration::from_secs(10), || async {
        count(&db.pool, "SELECT count(*) FROM qron.jobs").await == 0
    })
    .await;
    let m = running.metrics.clone();
    running.stop().await;
    assert_eq!((m.written(), m.stale()), (30, 0));
    assert_eq!(probe(&k).started(), 30);
    let kept: Vec<(String, String)> =
        sqlx::query_as("SELECT executor, status::text FROM qron.jobs_history ORDER BY 1, 2")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        kept,
        vec![("act_failed_only".to_owned(), "failed".to_owned()); 5]
    );
    // A success that is not kept leaves nothing to find.
    let gone = ids["act_failed_only"][0];
    assert!(matches!(
        c.get(gone).await,
        Err(qron::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_soft_stop_hands_back_at_once_a_job_held_for_its_run_time() {
    // Issue 29, defect 7: a job leased ahead waits in its slot until its run time; a soft stop
    // meanwhile starts nothing new, so it goes back unstarted, and the stop does not wait.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("ahead-stop");
    let j = c.create(script("@after 4s", &k, Mode::Ok)).await.unwrap();
    let w = Running::start(
        worker(&db, &["act"])
            .lease_ahead(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    wait_for("the job leased ahead", Duration::from_secs(5), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'running'",
        )
        .await
            == 1
    })
    .await;
    let stopping = std::time::Instant::now();
    w.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "the stop waited {:?} for the job's run time",
        stopping.elapsed()
    );
    let job = c.get(j.id).await.unwrap();
    assert_eq!(
        (job.status, job.attempt, job.executions),
        (JobStatus::Ready, 0, 0)
    );
    assert_eq!(probe(&k).started(), 0, "nothing started after the stop");
}

#[tokio::test]
async fn a_job_scheduled_for_later_runs_on_time_even_when_no_rescuer_staged_it() {
    // A job due later is written as scheduled, out of the lease index; rescuers' passes stage
    // it ahead of its run time. Here the only rescuer looks once a minute, and the job is made
    // due in 3 s right after its first pass: no pass stages it in time, and the worker, waking
    // for it, stages it itself.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("staged");
    let j = c
        .create(script("@after 1 hour", &k, Mode::Ok))
        .await
        .unwrap();
    // Staged by the first pass (due within a pass and two seconds): it shows the pass was made.
    let marker = c
        .create(NewJob::new("unserved", "@after 30s"))
        .await
        .unwrap();
    let scheduled = |id: i64| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT scheduled FROM qron.jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert!(scheduled(j.id).await && scheduled(marker.id).await);
    let running = Running::start(
        worker(&db, &["act"])
            .rescue_interval(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    wait_for(
        "the rescuer's first pass",
        Duration::from_secs(10),
        || async { !scheduled(marker.id).await },
    )
    .await;
    let due: chrono::DateTime<Utc> = sqlx::query_scalar(
        "UPDATE qron.jobs SET run_at = now() + interval '3 seconds' WHERE id = $1 RETURNING run_at",
    )
    .bind(j.id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        scheduled(j.id).await,
        "still scheduled: no pass comes before it is due"
    );
    wait_for("the run", Duration::from_secs(10), || async {
        probe(&k).started() == 1
    })
    .await;
    running.stop().await;
    let ran = probe(&k).starts.lock().unwrap()[0].2;
    assert!(ran >= due, "ran {ran} before {due}");
    assert!(
        ran < due + chrono::Duration::milliseconds(300),
        "ran {ran}, due {due}"
    );
}

#[tokio::test]
async fn a_stopping_worker_leaves_no_connection_of_the_pool_inside_a_transaction() {
    // A worker stopped while a background pass (the history's upkeep, which the worker runs
    // at start) is in the middle of opening a transaction: cutting the pass short there
    // leaves the connection inside a transaction (sqlx#4393), which the pool then hands to the
    // application: its statements would never commit. Stops at every moment of the start-up.
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    for i in 0..100u64 {
        let worker = Worker::builder(c.clone())
            .executors(["act"])
            .build()
            .unwrap();
        let running = qron_tests::Running::start(worker);
        tokio::time::sleep(Duration::from_micros(100 * (i % 100))).await;
        running.stop().await;
    }
    let stuck: Vec<String> = sqlx::query_scalar(
        "SELECT left(query, 60) FROM pg_stat_activity
          WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        stuck.is_empty(),
        "connections left inside a transaction: {stuck:?}"
    );
}

//! Jobs that wait for other jobs: released in order, with what those recorded; cancelled, run
//! anyway or held when one does not succeed; refused when they would wait for what cannot be
//! waited for.

use std::time::Duration;

use qron::{Client, Context, Error, JobError, JobStatus, NewJob, OnDependencyFailure, Worker};
use qron_tests::{Running, TestDb, count, wait_for};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Step {
    name: String,
    fail: bool,
}

/// Records its name and, in brackets, what the jobs it waited for recorded; fails when asked.
#[qron::job(executor = "dep_step", max_attempts = 1)]
async fn dep_step(ctx: Context, step: Step) -> Result<(), JobError> {
    let seen: Vec<(i64, Option<String>)> = ctx.output().await?;
    if step.fail {
        return Err(JobError::fail("asked to fail"));
    }
    let seen: Vec<String> = seen
        .into_iter()
        .map(|(_, o)| o.unwrap_or_else(|| "-".to_owned()))
        .collect();
    ctx.record(&format!("{}({})", step.name, seen.join(",")))?;
    Ok(())
}

/// The same, for an executor whose history keeps nothing.
#[qron::job(executor = "dep_unkept", max_attempts = 1, history = "none")]
async fn dep_unkept(ctx: Context, step: Step) -> Result<(), JobError> {
    ctx.record(&step.name)?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Pick {
    of: i64,
}

/// Records what one job it waited for recorded.
#[qron::job(executor = "dep_pick", max_attempts = 1)]
async fn dep_pick(ctx: Context, pick: Pick) -> Result<(), JobError> {
    let picked: Option<String> = ctx.output_of(pick.of).await?;
    ctx.record(&picked)?;
    Ok(())
}

fn step(name: &str) -> Step {
    Step {
        name: name.to_owned(),
        fail: false,
    }
}

fn failing(name: &str) -> Step {
    Step {
        name: name.to_owned(),
        fail: true,
    }
}

/// Jobs that still wait for something, or were left waiting for nothing.
async fn left_waiting(db: &TestDb) -> i64 {
    count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs WHERE status = 'waiting' OR waits > 0",
    )
    .await
}

async fn worker(c: &Client) -> Running {
    Running::start(
        Worker::builder(c.clone())
            .executors(["dep_step", "dep_unkept", "dep_pick"])
            .build()
            .unwrap(),
    )
}

async fn status_of(c: &Client, id: i64) -> JobStatus {
    c.get(id).await.unwrap().status
}

async fn wait_status(c: &Client, id: i64, want: JobStatus) {
    wait_for(
        &format!("job {id} {want:?}"),
        Duration::from_secs(20),
        || async { status_of(c, id).await == want },
    )
    .await;
}

#[tokio::test]
async fn a_diamond_runs_in_order_and_each_job_reads_what_the_jobs_it_waited_for_recorded() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let a = DepStep::schedule_with(&c, "@after 0s", step("A"))
        .await
        .unwrap();
    let b = DepStep::schedule_with(&c, "@after 0s", step("B"))
        .after([&a])
        .await
        .unwrap();
    let cc = DepStep::schedule_with(&c, "@after 0s", step("C"))
        .after([&a])
        .await
        .unwrap();
    let d = DepStep::schedule_with(&c, "@after 0s", step("D"))
        .after([&b, &cc])
        .await
        .unwrap();
    // One of the outputs, by its job's id.
    let pick = DepPick::schedule_with(&c, "@after 0s", Pick { of: cc.id })
        .after([&b, &cc])
        .await
        .unwrap();
    assert_eq!(a.status, JobStatus::Ready);
    assert_eq!(d.status, JobStatus::Waiting);
    assert_eq!(status_of(&c, d.id).await, JobStatus::Waiting);
    let running = worker(&c).await;
    wait_status(&c, d.id, JobStatus::Succeeded).await;
    wait_status(&c, pick.id, JobStatus::Succeeded).await;
    running.stop().await;
    // D ran after B and C, which ran after A: each saw what the jobs before it recorded.
    let output = c.get(d.id).await.unwrap().output;
    assert_eq!(output, Some(serde_json::json!("D(B(A()),C(A()))")));
    assert_eq!(
        c.get(pick.id).await.unwrap().output,
        Some(serde_json::json!("C(A())"))
    );
    assert_eq!(left_waiting(&db).await, 0);
}

#[tokio::test]
async fn a_job_that_did_not_succeed_cancels_its_dependents_or_runs_or_holds_them_by_their_choice() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let a = DepStep::schedule_with(&c, "@after 0s", failing("A"))
        .await
        .unwrap();
    let ok = DepStep::schedule_with(&c, "@after 0s", step("ok"))
        .await
        .unwrap();
    // B cancels (the default), and E, which waits for B and cancels too, goes with it; F,
    // which waits for B but runs anyway, runs.
    let b = DepStep::schedule_with(&c, "@after 0s", step("B"))
        .after([&a, &ok])
        .await
        .unwrap();
    let e = DepStep::schedule_with(&c, "@after 0s", step("E"))
        .after([&b])
        .await
        .unwrap();
    let f = DepStep::schedule_with(&c, "@after 0s", step("F"))
        .after([&b])
        .on_dependency_failure(OnDependencyFailure::Run)
        .await
        .unwrap();
    let run = DepStep::schedule_with(&c, "@after 0s", step("R"))
        .after([&a, &ok])
        .on_dependency_failure(OnDependencyFailure::Run)
        .await
        .unwrap();
    let held = DepStep::schedule_with(&c, "@after 0s", step("H"))
        .after([&a])
        .on_dependency_failure(OnDependencyFailure::Hold)
        .await
        .unwrap();
    let running = worker(&c).await;
    wait_status(&c, run.id, JobStatus::Succeeded).await;
    wait_status(&c, f.id, JobStatus::Succeeded).await;
    wait_status(&c, held.id, JobStatus::Stopped).await;
    assert_eq!(status_of(&c, a.id).await, JobStatus::Failed);
    assert_eq!(status_of(&c, b.id).await, JobStatus::Cancelled);
    assert_eq!(status_of(&c, e.id).await, JobStatus::Cancelled);
    let cancelled = c.get(e.id).await.unwrap();
    assert!(
        cancelled
            .last_error
            .unwrap_or_default()
            .contains("did not succeed"),
        "the cancel says why"
    );
    // R saw A record nothing and `ok` record its name.
    assert_eq!(
        c.get(run.id).await.unwrap().output,
        Some(serde_json::json!("R(-,ok())"))
    );
    // The held job waits for an operator; a restart runs it.
    c.restart(held.id).await.unwrap();
    wait_status(&c, held.id, JobStatus::Succeeded).await;
    running.stop().await;
    assert_eq!(left_waiting(&db).await, 0);
}

#[tokio::test]
async fn a_job_waited_for_is_kept_in_the_history_and_a_delete_or_cancel_releases_by_policy() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // Its executor keeps no history: the job others wait for is kept all the same.
    let unkept = DepUnkept::schedule_with(&c, "@after 0s", step("U"))
        .await
        .unwrap();
    let after_unkept = DepStep::schedule_with(&c, "@after 0s", step("V"))
        .after([&unkept])
        .await
        .unwrap();
    let plain = DepUnkept::schedule_with(&c, "@after 0s", step("P"))
        .await
        .unwrap();
    // Deleted and cancelled jobs, and what waited for them.
    let deleted = DepStep::schedule_with(&c, "@after 1 hour", step("X"))
        .await
        .unwrap();
    let cancelled = DepStep::schedule_with(&c, "@after 1 hour", step("Y"))
        .await
        .unwrap();
    let on_deleted = DepStep::schedule_with(&c, "@after 0s", step("W1"))
        .after([&deleted])
        .await
        .unwrap();
    let on_cancelled = DepStep::schedule_with(&c, "@after 0s", step("W2"))
        .after([&cancelled])
        .on_dependency_failure(OnDependencyFailure::Run)
        .await
        .unwrap();
    c.delete(deleted.id).await.unwrap();
    c.cancel(cancelled.id).await.unwrap();
    assert_eq!(status_of(&c, on_deleted.id).await, JobStatus::Cancelled);
    assert_eq!(status_of(&c, on_cancelled.id).await, JobStatus::Ready);
    let running = worker(&c).await;
    wait_status(&c, after_unkept.id, JobStatus::Succeeded).await;
    wait_status(&c, on_cancelled.id, JobStatus::Succeeded).await;
    wait_for("the plain job ends", Duration::from_secs(20), || async {
        c.get(plain.id).await.is_err()
    })
    .await;
    running.stop().await;
    assert_eq!(c.get(unkept.id).await.unwrap().status, JobStatus::Succeeded);
    assert_eq!(
        c.get(after_unkept.id).await.unwrap().output,
        Some(serde_json::json!("V(U)"))
    );
    assert_eq!(left_waiting(&db).await, 0);
}

#[tokio::test]
async fn a_job_cannot_wait_for_an_unknown_a_recurring_or_another_owners_job_and_nothing_is_written()
{
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let recurring = c
        .create(NewJob::new("dep_step", "@every 1 hour"))
        .await
        .unwrap();
    let theirs = c
        .owner("other")
        .create(NewJob::new("dep_step", "@after 1 hour"))
        .await
        .unwrap();
    let failed = DepStep::schedule_with(&c, "@after 0s", failing("F"))
        .await
        .unwrap();
    qron::testing::run_due::<DepStep>(&c).await.unwrap();
    assert_eq!(status_of(&c, failed.id).await, JobStatus::Failed);
    let jobs = || count(&db.pool, "SELECT count(*) FROM qron.jobs");
    let edges = || count(&db.pool, "SELECT count(*) FROM qron.job_dependencies");
    let before = jobs().await;
    let new = || NewJob::new("dep_step", "@after 0s");
    match c.create(new().after([987_654_321])).await {
        Err(Error::UnknownDependency { id, .. }) => assert_eq!(id, 987_654_321),
        other => panic!("expected an unknown dependency, got {other:?}"),
    }
    match c.create(new().after([theirs.id])).await {
        Err(Error::UnknownDependency { id, owner }) => {
            assert_eq!((id, owner.as_str()), (theirs.id, "default"));
        }
        other => panic!("expected an unknown dependency, got {other:?}"),
    }
    assert_eq!(
        crate::refused(c.create(new().after([recurring.id])).await.unwrap_err()),
        "after"
    );
    let too_many: Vec<i64> = (1..=i64::try_from(qron::MAX_DEPENDENCIES).unwrap() + 1).collect();
    assert_eq!(
        crate::refused(c.create(new().after(&too_many)).await.unwrap_err()),
        "after"
    );
    match c.create(new().after([i64::MAX])).await {
        Err(Error::UnknownDependency { id, .. }) => assert_eq!(id, i64::MAX),
        other => panic!("expected an unknown dependency, got {other:?}"),
    }
    assert_eq!(
        crate::refused(
            c.create(NewJob::new("dep_step", "@every 1 hour").after([failed.id]))
                .await
                .unwrap_err()
        ),
        "expr"
    );
    assert_eq!(
        crate::refused(c.create_many([new().after([failed.id])]).await.unwrap_err()),
        "after"
    );
    match c.create(new().after([failed.id])).await {
        Err(Error::DependencyFailed { id, status }) => {
            assert_eq!((id, status.as_str()), (failed.id, "failed"));
        }
        other => panic!("expected a failed dependency, got {other:?}"),
    }
    assert_eq!(jobs().await, before);
    assert_eq!(edges().await, 0);
    // Run anyway: ready at once; hold: stopped at once.
    let run = c
        .create(
            new()
                .after([failed.id])
                .on_dependency_failure(OnDependencyFailure::Run),
        )
        .await
        .unwrap();
    assert_eq!(run.status, JobStatus::Ready);
    let held = c
        .create(
            new()
                .after([failed.id])
                .on_dependency_failure(OnDependencyFailure::Hold),
        )
        .await
        .unwrap();
    assert_eq!(held.status, JobStatus::Stopped);
    assert_eq!(status_of(&c, held.id).await, JobStatus::Stopped);
}

#[tokio::test]
async fn a_job_created_in_a_transaction_waits_as_it_commits_or_not_at_all() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let a = DepStep::schedule_with(&c, "@after 1 hour", step("A"))
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let b = DepStep::schedule_with(&mut *tx, "@after 0s", step("B"))
        .after([&a])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(c.get(b.id).await.is_err());
    let mut tx = db.pool.begin().await.unwrap();
    let b = DepStep::schedule_with(&mut *tx, "@after 0s", step("B"))
        .after([&a])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(status_of(&c, b.id).await, JobStatus::Waiting);
    // A stopped waiting job stays stopped when released; restarted before, it waits again.
    c.stop(b.id).await.unwrap();
    c.restart(b.id).await.unwrap();
    assert_eq!(status_of(&c, b.id).await, JobStatus::Waiting);
    c.run_now(a.id).await.unwrap();
    let running = worker(&c).await;
    wait_status(&c, b.id, JobStatus::Succeeded).await;
    running.stop().await;
}

#[tokio::test]
async fn a_job_that_waits_or_is_waited_for_cannot_be_made_recurring() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let a = DepStep::schedule_with(&c, "@after 1 hour", step("A"))
        .await
        .unwrap();
    let b = DepStep::schedule_with(&c, "@after 0s", step("B"))
        .after([&a])
        .await
        .unwrap();
    // Either would wait, or be waited for, forever: a recurring job never ends.
    for id in [a.id, b.id] {
        let refused = c
            .update(id, qron::JobUpdate::new().expr("@every 1 hour"))
            .await
            .unwrap_err();
        assert_eq!(crate::refused(refused), "expr", "job {id}");
        assert!(!c.get(id).await.unwrap().recurring);
    }
    // Another one-off time is fine.
    let moved = c
        .update(b.id, qron::JobUpdate::new().expr("@after 5 minutes"))
        .await
        .unwrap();
    assert_eq!(moved.status, JobStatus::Waiting);
}

#[tokio::test]
async fn a_history_row_moved_to_another_day_does_not_release_its_dependents_again() {
    let db = TestDb::new().await;
    // One session for everything: what a statement notes stays in its session.
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*db.pool.connect_options()).clone())
        .await
        .unwrap();
    let c = Client::new(one.clone());
    let later = || NewJob::new("dep_step", "@after 1 hour");
    let a = c.create(later()).await.unwrap();
    let x = c.create(later()).await.unwrap();
    let d = c
        .create(
            later()
                .after([a.id, x.id])
                .on_dependency_failure(OnDependencyFailure::Run),
        )
        .await
        .unwrap();
    // A ends (cancelled): D waits for X only.
    c.cancel(a.id).await.unwrap();
    let waits = || async {
        sqlx::query_as::<_, (String, i32)>(
            "SELECT status::text, waits FROM qron.jobs WHERE id = $1",
        )
        .bind(d.id)
        .fetch_one(&one)
        .await
        .unwrap()
    };
    assert_eq!(waits().await, ("waiting".to_owned(), 1));
    // An operator moves A's history row to the day before (an insert into that day's partition,
    // for PostgreSQL), in a session that has released dependents before, then ends another job.
    sqlx::query("SELECT qron.history_partition_create((now() - interval '1 day')::date)")
        .execute(&one)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE qron.jobs_history SET finished_at = finished_at - interval '1 day' WHERE id = $1",
    )
    .bind(a.id)
    .execute(&one)
    .await
    .unwrap();
    let other = c.create(later()).await.unwrap();
    c.cancel(other.id).await.unwrap();
    // D still waits for X, once.
    assert_eq!(waits().await, ("waiting".to_owned(), 1));
    c.cancel(x.id).await.unwrap();
    assert_eq!(waits().await, ("ready".to_owned(), 0));
}

#[tokio::test]
async fn a_role_without_the_temporary_privilege_ends_plain_jobs_and_is_told_for_waited_ones() {
    let db = TestDb::new().await;
    // A role of its own (roles are the cluster's: a name no other test uses), with every
    // privilege on qron's schema but none to make temporary tables in this database.
    let role = format!(
        "qron_no_temp_{}",
        db.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA qron TO {role}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA qron TO {role}"),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA qron TO {role}"),
        format!("REVOKE TEMPORARY ON DATABASE \"{}\" FROM PUBLIC", db.name),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let options = (*db.pool.connect_options()).clone().username(&role);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let c = Client::new(pool.clone());
    // A plain job ends into the history as ever.
    let plain = c
        .create(NewJob::new("dep_step", "@after 1 hour"))
        .await
        .unwrap();
    c.cancel(plain.id).await.unwrap();
    assert_eq!(c.get(plain.id).await.unwrap().status, JobStatus::Cancelled);
    // A job another waits for cannot end under this role: the database says why, and nothing
    // changes.
    let a = c
        .create(NewJob::new("dep_step", "@after 1 hour"))
        .await
        .unwrap();
    let b = c
        .create(NewJob::new("dep_step", "@after 0s").after([a.id]))
        .await
        .unwrap();
    let refused = c.cancel(a.id).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("permission denied to create temporary tables"),
        "{refused}"
    );
    assert_eq!(c.get(b.id).await.unwrap().status, JobStatus::Waiting);
    assert_eq!(c.get(a.id).await.unwrap().status, JobStatus::Ready);
    pool.close().await;
    for statement in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

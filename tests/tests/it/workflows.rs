//! Workflows: jobs created together by step name, run in the order their dependencies give,
//! followed and cancelled as one.

use std::time::Duration;

use qron::{
    Client, Context, Error, JobError, JobStatus, NewJob, OnDependencyFailure, Worker, Workflow,
    WorkflowStatus,
};
use qron_tests::{Running, TestDb, assert_empty, count, wait_for};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Page {
    n: u32,
}

#[derive(Serialize, Deserialize)]
struct Nothing;

/// Pages 100 and up whose fetch failed once already.
static FAILED_ONCE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Records a page's word count (ten times its number); page 13 fails, and pages from 100 fail
/// the first time.
#[qron::job(executor = "wf_fetch", max_attempts = 1)]
async fn wf_fetch(ctx: Context, page: Page) -> Result<(), JobError> {
    if page.n == 13 {
        return Err(JobError::fail("page 13 is missing"));
    }
    if page.n >= 100 {
        let mut failed = FAILED_ONCE.lock().unwrap();
        if !failed.contains(&page.n) {
            failed.push(page.n);
            return Err(JobError::fail("not yet"));
        }
    }
    ctx.record(&(page.n * 10))?;
    Ok(())
}

/// Sums what the fetches recorded.
#[qron::job(executor = "wf_merge", max_attempts = 1)]
async fn wf_merge(ctx: Context, _n: Nothing) -> Result<(), JobError> {
    let pages: Vec<(i64, Option<u32>)> = ctx.output().await?;
    ctx.record(&pages.iter().filter_map(|(_, w)| *w).sum::<u32>())?;
    Ok(())
}

/// Records what the merge recorded, or that there was nothing.
#[qron::job(executor = "wf_notify", max_attempts = 1)]
async fn wf_notify(ctx: Context, _n: Nothing) -> Result<(), JobError> {
    let merged: Vec<(i64, Option<u32>)> = ctx.output().await?;
    let total = merged.first().and_then(|(_, t)| *t);
    ctx.record(&format!("total {total:?}"))?;
    Ok(())
}

fn etl(pages: &[u32]) -> Workflow {
    let mut wf = Workflow::new("etl");
    let mut fetches = Vec::new();
    for &n in pages {
        wf.add::<WfFetch>(format!("fetch-{n}"), Page { n });
        fetches.push(format!("fetch-{n}"));
    }
    wf.add::<WfMerge>("merge", Nothing).after(fetches);
    wf.add::<WfNotify>("notify", Nothing)
        .after(["merge"])
        .on_dependency_failure(OnDependencyFailure::Run);
    wf
}

fn worker(c: &Client) -> Running {
    Running::start(
        Worker::builder(c.clone())
            .executors(["wf_fetch", "wf_merge", "wf_notify"])
            .build()
            .unwrap(),
    )
}

async fn wait_status(c: &Client, id: i64, want: WorkflowStatus) {
    wait_for(
        &format!("workflow {id} {want:?}"),
        Duration::from_secs(20),
        || async { c.workflow(id).await.unwrap().status == want },
    )
    .await;
}

/// Jobs that still wait for something.
async fn left_waiting(db: &TestDb) -> i64 {
    count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs WHERE status = 'waiting' OR waits > 0",
    )
    .await
}

#[tokio::test]
async fn a_workflows_steps_run_in_order_and_its_status_and_progress_follow_them() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let created = etl(&[1, 2, 3]).create(&c).await.unwrap();
    assert_eq!(created.jobs.len(), 5);
    let info = c.workflow(created.id).await.unwrap();
    assert_eq!(info.name, "etl");
    assert_eq!(info.status, WorkflowStatus::Running);
    assert_eq!(info.progress(), (0, 5));
    let merge = info.steps.iter().find(|s| s.step == "merge").unwrap();
    assert_eq!(merge.after, ["fetch-1", "fetch-2", "fetch-3"]);
    assert_eq!(merge.status, Some(JobStatus::Waiting));
    let running = worker(&c);
    wait_status(&c, created.id, WorkflowStatus::Succeeded).await;
    running.stop().await;
    assert_eq!(c.workflow(created.id).await.unwrap().progress(), (5, 5));
    let notify = c.get(created.job("notify").unwrap()).await.unwrap();
    assert_eq!(notify.output, Some(serde_json::json!("total Some(60)")));
    // Another owner sees no such workflow, and cannot cancel it.
    let other = c.owner("other");
    assert!(matches!(
        other.workflow(created.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        other.cancel_workflow(created.id).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_failed_step_cancels_what_waits_for_it_and_the_workflow_ends_failed() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let created = etl(&[1, 13]).create(&c).await.unwrap();
    let running = worker(&c);
    wait_status(&c, created.id, WorkflowStatus::Failed).await;
    running.stop().await;
    let info = c.workflow(created.id).await.unwrap();
    let status = |step: &str| info.steps.iter().find(|s| s.step == step).unwrap().status;
    assert_eq!(status("fetch-1"), Some(JobStatus::Succeeded));
    assert_eq!(status("fetch-13"), Some(JobStatus::Failed));
    assert_eq!(status("merge"), Some(JobStatus::Cancelled));
    // The notification runs anyway, and says there was nothing.
    assert_eq!(status("notify"), Some(JobStatus::Succeeded));
    let notify = c.get(created.job("notify").unwrap()).await.unwrap();
    assert_eq!(notify.output, Some(serde_json::json!("total None")));
    assert_eq!(left_waiting(&db).await, 0);
}

#[tokio::test]
async fn a_cycle_an_unknown_step_or_a_step_named_twice_is_refused_and_nothing_is_written() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let job = || NewJob::new("wf_fetch", "@after 0s");
    let mut cycle = Workflow::new("cycle");
    cycle.add_job("start", job());
    cycle.add_job("a", job()).after(["start", "c"]);
    cycle.add_job("b", job()).after(["a"]);
    cycle.add_job("c", job()).after(["b"]);
    match cycle.create(&c).await {
        Err(Error::WorkflowCycle { steps }) => assert_eq!(steps, ["a", "b", "c"]),
        other => panic!("expected a cycle, got {other:?}"),
    }
    let mut unknown = Workflow::new("unknown");
    unknown.add_job("a", job()).after(["nowhere"]);
    assert_eq!(
        crate::refused(unknown.create(&c).await.unwrap_err()),
        "after"
    );
    let mut twice = Workflow::new("twice");
    twice.add_job("a", job());
    twice.add_job("a", job());
    assert_eq!(crate::refused(twice.create(&c).await.unwrap_err()), "step");
    assert_eq!(
        crate::refused(Workflow::new("empty").create(&c).await.unwrap_err()),
        "workflow"
    );
    // Names the database could not store.
    let mut nul = Workflow::new("nightly\0");
    nul.add_job("a", job());
    assert_eq!(
        crate::refused(nul.create(&c).await.unwrap_err()),
        "workflow"
    );
    let mut nul_step = Workflow::new("nightly");
    nul_step.add_job("a\0b", job());
    assert_eq!(
        crate::refused(nul_step.create(&c).await.unwrap_err()),
        "step"
    );
    // A bad job in the middle: the steps before it are not kept.
    let mut bad = Workflow::new("bad");
    bad.add_job("a", job());
    bad.add_job("b", NewJob::new("wf_fetch", "@every 1 hour"))
        .after(["a"]);
    assert_eq!(crate::refused(bad.create(&c).await.unwrap_err()), "expr");
    assert_empty(
        &db.pool,
        &[
            "qron.jobs",
            "qron.workflows",
            "qron.workflow_jobs",
            "qron.job_dependencies",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_workflow_cancelled_half_way_leaves_no_job_waiting() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // A chain whose second step is due in an hour: the first runs, the rest wait.
    let mut chain = Workflow::new("chain");
    chain.add::<WfFetch>("s0", Page { n: 1 });
    chain
        .add_job(
            "s1",
            NewJob::new("wf_fetch", "@after 1 hour").payload(serde_json::json!({ "n": 2 })),
        )
        .after(["s0"]);
    for i in 2..10 {
        let step = chain
            .add::<WfFetch>(format!("s{i}"), Page { n: i })
            .after([format!("s{}", i - 1)]);
        if i == 5 {
            step.on_dependency_failure(OnDependencyFailure::Run);
        }
    }
    let created = chain.create(&c).await.unwrap();
    let running = worker(&c);
    wait_for("the first step", Duration::from_secs(20), || async {
        c.get(created.job("s0").unwrap()).await.unwrap().status == JobStatus::Succeeded
    })
    .await;
    running.stop().await;
    assert_eq!(c.cancel_workflow(created.id).await.unwrap(), 9);
    assert_eq!(c.cancel_workflow(created.id).await.unwrap(), 0);
    let info = c.workflow(created.id).await.unwrap();
    assert_eq!(info.status, WorkflowStatus::Cancelled);
    assert_eq!(info.progress(), (10, 10));
    assert_eq!(left_waiting(&db).await, 0);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM qron.jobs").await, 0);

    // Retried: the nine cancelled steps come back (the first one is done with), the second due
    // now, each other one waiting for the one before it, with the policy it was created with.
    let revived = c.retry_workflow(created.id).await.unwrap();
    let ids: Vec<i64> = (1..10)
        .map(|i| created.job(&format!("s{i}")).unwrap())
        .collect();
    assert_eq!(revived, ids);
    assert_eq!(
        c.get(ids[0]).await.unwrap().status,
        JobStatus::Ready,
        "s1, due now"
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE status = 'waiting' AND waits = 1"
        )
        .await,
        8
    );
    let policy: Option<String> =
        sqlx::query_scalar("SELECT on_dependency_failure FROM qron.jobs WHERE id = $1")
            .bind(created.job("s5").unwrap())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(policy.as_deref(), Some("run"));
    assert_eq!(
        c.workflow(created.id).await.unwrap().status,
        WorkflowStatus::Running
    );
    let running = worker(&c);
    wait_status(&c, created.id, WorkflowStatus::Succeeded).await;
    running.stop().await;
    // Nothing left to retry.
    assert!(c.retry_workflow(created.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_retried_workflow_runs_its_failed_steps_again_and_the_rest_continue() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    // Page 101 fails the first time: the merge is cancelled, the notification runs anyway.
    let created = etl(&[1, 101]).create(&c).await.unwrap();
    let running = worker(&c);
    wait_status(&c, created.id, WorkflowStatus::Failed).await;
    // Another owner cannot retry it; a missing workflow is not found.
    for (client, id) in [(c.owner("other"), created.id), (c.clone(), created.id + 1)] {
        assert!(matches!(
            client.retry_workflow(id).await,
            Err(Error::NotFound { .. })
        ));
    }
    let fetch = created.job("fetch-101").unwrap();
    let merge = created.job("merge").unwrap();
    assert_eq!(c.retry_workflow(created.id).await.unwrap(), [fetch, merge]);
    wait_status(&c, created.id, WorkflowStatus::Succeeded).await;
    running.stop().await;
    // The merge saw both pages; the step that succeeded ran once, and the notification, which
    // had run already, did not run again.
    assert_eq!(
        c.get(merge).await.unwrap().output,
        Some(serde_json::json!(1020))
    );
    assert_eq!(
        c.get(created.job("fetch-1").unwrap())
            .await
            .unwrap()
            .executions,
        1
    );
    let notify = c.get(created.job("notify").unwrap()).await.unwrap();
    assert_eq!(notify.output, Some(serde_json::json!("total None")));
    assert_eq!(left_waiting(&db).await, 0);
}

#[tokio::test]
async fn a_retry_whose_step_name_a_live_job_took_is_refused_and_revives_nothing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let mut wf = Workflow::new("named");
    wf.add_job(
        "first",
        NewJob::new("wf_fetch", "@after 0s")
            .name("page-13")
            .payload(serde_json::json!({ "n": 13 })),
    );
    wf.add::<WfFetch>("then", Page { n: 2 }).after(["first"]);
    let created = wf.create(&c).await.unwrap();
    let running = worker(&c);
    wait_status(&c, created.id, WorkflowStatus::Failed).await;
    running.stop().await;
    c.create(NewJob::new("wf_fetch", "@after 1 hour").name("page-13"))
        .await
        .unwrap();
    match c.retry_workflow(created.id).await {
        Err(Error::AlreadyExists { executor, name }) => {
            assert_eq!((executor.as_str(), name.as_str()), ("wf_fetch", "page-13"));
        }
        other => panic!("expected the name to be taken, got {other:?}"),
    }
    assert_eq!(count(&db.pool, "SELECT count(*) FROM qron.jobs").await, 1);
    assert_eq!(
        c.workflow(created.id).await.unwrap().status,
        WorkflowStatus::Failed
    );
}

//! Batches: many jobs written with `COPY` and a callback that runs once when all have ended,
//! with how each ended; jobs added to a batch from inside it.

use std::time::Duration;

use qron::{Batch, Client, Context, Error, JobError, JobStatus, NewJob, Worker};
use qron_tests::{Running, TestDb, assert_empty, count, wait_for};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Row {
    n: u32,
}

/// Imports a row; every hundredth fails.
#[qron::job(executor = "b_row", max_attempts = 1, concurrency = 50)]
async fn b_row(row: Row) -> Result<(), JobError> {
    if row.n % 100 == 99 {
        return Err(JobError::fail("a bad row"));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Summary {
    file: String,
}

/// Records how the batch's jobs ended: (succeeded, failed).
#[qron::job(executor = "b_done", max_attempts = 1)]
async fn b_done(ctx: Context, _s: Summary) -> Result<(), JobError> {
    let r = ctx.batch_results().await?;
    assert!(r.live.is_empty(), "the callback runs once every job ended");
    ctx.record(&(r.succeeded.len(), r.failed.len()))?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Page {
    depth: u32,
}

/// Crawls a page: below depth 2, each page links to two more, added to the crawl's batch.
#[qron::job(executor = "b_crawl", max_attempts = 1)]
async fn b_crawl(ctx: Context, page: Page) -> Result<(), JobError> {
    if page.depth < 2 {
        for _ in 0..2 {
            let next = NewJob::new("b_crawl", "@after 0s")
                .payload(serde_json::json!({ "depth": page.depth + 1 }));
            ctx.add_to_batch(next).await?;
        }
    }
    Ok(())
}

/// Tries to add a job to a batch it is not in, and records what it was told.
#[qron::job(executor = "b_alone", max_attempts = 1)]
async fn b_alone(ctx: Context, _p: Page) -> Result<(), JobError> {
    let told = match ctx.add_to_batch(NewJob::new("b_crawl", "@after 0s")).await {
        Err(Error::InvalidArgument { field, .. }) => field.to_owned(),
        other => format!("{other:?}"),
    };
    ctx.record(&told)?;
    Ok(())
}

fn worker(c: &Client) -> Running {
    Running::start(
        Worker::builder(c.clone())
            .executors(["b_row", "b_done", "b_crawl", "b_alone"])
            .build()
            .unwrap(),
    )
}

async fn ended(c: &Client, id: i64) {
    wait_for(
        &format!("job {id} to end"),
        Duration::from_secs(30),
        || async { c.get(id).await.unwrap().finished_at.is_some() },
    )
    .await;
}

#[tokio::test]
async fn a_batchs_callback_runs_once_after_every_job_with_the_counts() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let mut batch = Batch::new();
    for n in 0..1000 {
        batch.add::<BRow>(Row { n });
    }
    batch.on_finish::<BDone>(Summary {
        file: "rows.csv".into(),
    });
    let created = batch.create(&c).await.unwrap();
    assert_eq!(created.jobs.len(), 1000);
    // Written with their edges, each marked as waited for; the callback waits for all.
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM qron.job_dependencies").await,
        1000
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs WHERE has_dependents AND executor = 'b_row'"
        )
        .await,
        1000
    );
    let info = c.batch(created.callback).await.unwrap();
    assert_eq!(info.callback_status, JobStatus::Waiting);
    assert_eq!(info.jobs.live.len(), 1000);
    let running = worker(&c);
    ended(&c, created.callback).await;
    running.stop().await;
    let callback = c.get(created.callback).await.unwrap();
    assert_eq!(callback.status, JobStatus::Succeeded);
    assert_eq!(callback.executions, 1);
    assert_eq!(callback.output, Some(serde_json::json!([990, 10])));
    let info = c.batch(created.callback).await.unwrap();
    assert_eq!(info.callback_status, JobStatus::Succeeded);
    assert_eq!(
        (
            info.jobs.succeeded.len(),
            info.jobs.failed.len(),
            info.jobs.total()
        ),
        (990, 10, 1000)
    );
    assert_eq!(info.jobs.failed[0], created.jobs[99]);
    // Another owner sees no such batch.
    assert!(matches!(
        c.owner("other").batch(created.callback).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn jobs_added_to_a_batch_from_inside_it_are_waited_for_too() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let mut batch = Batch::new();
    for _ in 0..3 {
        batch.add::<BCrawl>(Page { depth: 0 });
    }
    batch.on_finish::<BDone>(Summary {
        file: "crawl".into(),
    });
    let created = batch.create(&c).await.unwrap();
    let alone = c
        .create(NewJob::new("b_alone", "@after 0s").payload(serde_json::json!({ "depth": 0 })))
        .await
        .unwrap();
    let running = worker(&c);
    ended(&c, created.callback).await;
    ended(&c, alone.id).await;
    running.stop().await;
    // 3 pages, 6 at depth 1, 12 at depth 2: all ended before the callback ran, once.
    let callback = c.get(created.callback).await.unwrap();
    assert_eq!(callback.output, Some(serde_json::json!([21, 0])));
    assert_eq!(callback.executions, 1);
    assert_eq!(c.batch(created.callback).await.unwrap().jobs.total(), 21);
    // A job in no batch is told so, and adds nothing.
    assert_eq!(
        c.get(alone.id).await.unwrap().output,
        Some(serde_json::json!("batch"))
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM qron.jobs_all WHERE executor = 'b_crawl'"
        )
        .await,
        21
    );
    // A detached context is in no batch.
    assert_eq!(
        crate::refused(
            Context::detached("b_crawl")
                .add_to_batch(NewJob::new("b_crawl", "@after 0s"))
                .await
                .unwrap_err()
        ),
        "batch"
    );
}

#[tokio::test]
async fn a_bad_batch_is_refused_by_field_and_writes_nothing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let row = || NewJob::new("b_row", "@after 0s");
    let done = || NewJob::new("b_done", "@after 0s");
    let with = |jobs: Vec<NewJob>, callback: Option<NewJob>| {
        let mut b = Batch::new();
        for j in jobs {
            b.add_job(j);
        }
        if let Some(cb) = callback {
            b.on_finish_job(cb);
        }
        b
    };
    let cases = [
        (with(vec![row()], None), "callback"),
        (with(vec![], Some(done())), "jobs"),
        (
            with(
                vec![row(), NewJob::new("b_row", "@every 1 hour")],
                Some(done()),
            ),
            "expr",
        ),
        (with(vec![row().name("x")], Some(done())), "name"),
        (
            with(
                vec![row().unique(qron::Unique::by_executor())],
                Some(done()),
            ),
            "unique",
        ),
        (with(vec![row().after([1])], Some(done())), "after"),
        (
            with(vec![row()], Some(NewJob::new("b_done", "@every 1 hour"))),
            "expr",
        ),
        (with(vec![row()], Some(done().after([1]))), "callback"),
    ];
    for (batch, field) in cases {
        assert_eq!(crate::refused(batch.create(&c).await.unwrap_err()), field);
    }
    let bad_expr = with(
        vec![row(), NewJob::new("b_row", "@after nonsense")],
        Some(done()),
    );
    assert!(matches!(
        bad_expr.create(&c).await,
        Err(Error::InvalidExpression(_))
    ));
    let too_many = with(
        (0..=qron::MAX_DEPENDENCIES).map(|_| row()).collect(),
        Some(done()),
    );
    assert_eq!(
        crate::refused(too_many.create(&c).await.unwrap_err()),
        "jobs"
    );
    // Rolled back with the caller's transaction.
    let mut tx = db.pool.begin().await.unwrap();
    with(vec![row(), row()], Some(done()))
        .create_with(&c, &mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_empty(
        &db.pool,
        &["qron.jobs", "qron.job_dependencies", "qron.jobs_history"],
    )
    .await;
}

#[tokio::test]
async fn hostile_inputs_to_batches_and_workflow_lists_are_typed_errors_that_write_nothing() {
    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let one = |job: NewJob, callback: NewJob| {
        let mut b = Batch::new();
        b.add_job(NewJob::new("b_row", "@after 0s"));
        b.add_job(job);
        b.on_finish_job(callback);
        b
    };
    let done = || NewJob::new("b_done", "@after 0s");
    let row = || NewJob::new("b_row", "@after 0s");
    // A NUL byte in a job's payload, meta or executor, or in the callback's: refused by
    // field, the COPY under way abandoned.
    for (batch, field) in [
        (
            one(row().payload(serde_json::json!("a\0b")), done()),
            "payload",
        ),
        (
            one(row().meta(serde_json::json!({ "k": "a\0" })), done()),
            "meta",
        ),
        (one(NewJob::new("b\0row", "@after 0s"), done()), "executor"),
        (
            one(row(), done().payload(serde_json::json!("\0"))),
            "payload",
        ),
        (one(row().max_attempts(0), done()), "max_attempts"),
    ] {
        assert_eq!(crate::refused(batch.create(&c).await.unwrap_err()), field);
    }
    assert_eq!(count(&db.pool, "SELECT count(*) FROM qron.jobs").await, 0);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM qron.job_dependencies").await,
        0
    );
    // A time at its type's limit: kept as given, with the batch's edges.
    let far = one(NewJob::new("b_row", "@at 9999-12-31T23:59:59Z"), done());
    let created = far.create(&c).await.unwrap();
    assert_eq!(
        c.get(created.jobs[1]).await.unwrap().run_at.to_rfc3339(),
        "9999-12-31T23:59:59+00:00"
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM qron.job_dependencies").await,
        2
    );
    // Ids and limits at their limits.
    for id in [i64::MAX, i64::MIN, 0, -1] {
        assert!(
            matches!(c.batch(id).await, Err(Error::NotFound { .. })),
            "{id}"
        );
        assert!(
            matches!(c.retry_workflow(id).await, Err(Error::NotFound { .. })),
            "{id}"
        );
    }
    for limit in [0, 1001, usize::MAX] {
        assert_eq!(
            crate::refused(c.workflows(None, limit).await.unwrap_err()),
            "limit"
        );
    }
    assert!(c.workflows(Some(i64::MIN), 1000).await.unwrap().is_empty());
}

//! Workflows: a chain of steps, each waiting for the one before, timed from one step's end to
//! the next one's start (the hand-off); and a fan-in, a batch of jobs with a callback, beside
//! the same number of plain jobs.

use std::sync::Mutex;
use std::time::Instant;

use qron::{Client, Context, JobError, NewJob, Workflow};

use crate::Figure;
use crate::queue::{Res, drop_db, fig, fresh, percentile, run_until_written};

/// Each chain step's start and end, by step number.
static STEPS: Mutex<Vec<(u32, Instant, Instant)>> = Mutex::new(Vec::new());

#[derive(serde::Serialize, serde::Deserialize)]
struct Link {
    n: u32,
}

/// A chain's step: notes when it ran.
#[qron::job(executor = "bench_link")]
async fn bench_link(link: Link) -> Result<(), JobError> {
    let start = Instant::now();
    let end = Instant::now();
    STEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((link.n, start, end));
    Ok(())
}

/// A fan-in's callback: records how many jobs it waited for.
#[qron::job(executor = "bench_callback")]
async fn bench_callback(ctx: Context, _: ()) -> Result<(), JobError> {
    let results = ctx.batch_results().await?;
    ctx.record(&results.total())?;
    Ok(())
}

/// A chain of `steps` steps with the default settings, then a fan-in of `fan_in` jobs (and
/// the same number of plain jobs) at `concurrency`.
pub async fn workflow(steps: u32, fan_in: u64, concurrency: usize) -> Res<Vec<Figure>> {
    let mut out = chain(steps).await?;
    let (plain, plain_created) = jobs_rate(fan_in, concurrency, false).await?;
    let (waited, batch_created) = jobs_rate(fan_in, concurrency, true).await?;
    out.push(fig(
        format!("{fan_in} plain jobs created (create_many, COPY) in"),
        plain_created * 1000.0,
        "ms",
    ));
    out.push(fig(
        format!("a batch of {fan_in} jobs and its callback created (Batch, COPY) in"),
        batch_created * 1000.0,
        "ms",
    ));
    out.push(fig(
        format!("{fan_in} plain jobs (concurrency {concurrency})"),
        plain,
        "jobs/s",
    ));
    out.push(fig(
        format!("{fan_in} jobs a callback waits for (concurrency {concurrency})"),
        waited,
        "jobs/s",
    ));
    out.push(fig("fan-in jobs / plain jobs", 100.0 * waited / plain, "%"));
    Ok(out)
}

/// A chain of `steps`: the hand-offs' median and p99, and the whole chain's time.
async fn chain(steps: u32) -> Res<Vec<Figure>> {
    let (name, pool) = fresh("chain", 8).await?;
    let client = Client::new(pool.clone());
    STEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    let mut wf = Workflow::new("chain");
    for n in 0..steps {
        let step = wf.add::<BenchLink>(format!("s{n}"), Link { n });
        if n > 0 {
            step.after([format!("s{}", n - 1)]);
        }
    }
    let t = Instant::now();
    let created = wf.create(&client).await?;
    let created_in = t.elapsed();
    let worker = qron::Worker::builder(client.clone())
        .executors(["bench_link"])
        .build()?;
    let took = run_until_written(worker, u64::from(steps), u64::from(steps)).await?;
    let info = client.workflow(created.id).await?;
    if info.status != qron::WorkflowStatus::Succeeded {
        return Err(format!("the chain ended {:?}", info.status).into());
    }
    let mut ran = std::mem::take(
        &mut *STEPS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    ran.sort_by_key(|r| r.0);
    let mut hand_offs: Vec<i64> = ran
        .windows(2)
        .map(|w| i64::try_from(w[1].1.duration_since(w[0].2).as_micros()).unwrap_or(i64::MAX))
        .collect();
    hand_offs.sort_unstable();
    drop_db(&name, pool).await?;
    Ok(vec![
        fig(
            format!("chain of {steps}: created in"),
            created_in.as_secs_f64() * 1000.0,
            "ms",
        ),
        fig(
            format!("chain of {steps}: ran in"),
            took.as_secs_f64() * 1000.0,
            "ms",
        ),
        fig(
            format!("chain of {steps}: hand-off p50"),
            percentile(&hand_offs, 0.5) / 1000.0,
            "ms",
        ),
        fig(
            format!("chain of {steps}: hand-off p99"),
            percentile(&hand_offs, 0.99) / 1000.0,
            "ms",
        ),
    ])
}

/// `jobs` no-op jobs run at `concurrency`, in a batch with a callback when `waited`: jobs per
/// second, from the worker's start to the last one's outcome (the callback apart); and the
/// seconds their creation took.
async fn jobs_rate(jobs: u64, concurrency: usize, waited: bool) -> Res<(f64, f64)> {
    let (name, pool) = fresh("fan_in", 8).await?;
    let client = Client::new(pool.clone());
    let job = || NewJob::new("bench_noop", "@after 0s");
    let t = Instant::now();
    if waited {
        let mut batch = qron::Batch::new();
        for _ in 0..jobs {
            batch.add_job(job());
        }
        batch.on_finish_job(NewJob::new("bench_callback", "@after 0s"));
        batch.create(&client).await?;
    } else {
        client.create_many((0..jobs).map(|_| job())).await?;
    }
    let created = t.elapsed().as_secs_f64();
    let worker = qron::Worker::builder(client.clone())
        .executors(["bench_noop", "bench_callback"])
        .concurrency("bench_noop", concurrency)
        .build()?;
    // The callback's outcome too, when there is one, before the worker stops.
    let took = run_until_written(worker, jobs, jobs + u64::from(waited)).await?;
    drop_db(&name, pool).await?;
    Ok((jobs as f64 / took.as_secs_f64(), created))
}

//! `remote`: a worker outside the process, in Rust, leasing and completing through the JSON
//! endpoints of `qron::http` (batches of `batch`, `loops` at once), beside the in-process
//! worker on the same number of jobs.

use std::time::Instant;

use qron::{Client, NewJob};
use serde_json::{Value, json};

use crate::Figure;
use crate::queue::{Res, drop_db, fig, fresh, throughput_with};

/// The remote worker's executor (declared nowhere: the defaults apply).
const EXECUTOR: &str = "bench_remote";

pub async fn remote(jobs: u64, batch: usize, loops: usize) -> Res<Vec<Figure>> {
    let inproc = throughput_with(jobs, 1, false, Some(100), qron::History::All).await?;
    let inproc_rate = inproc.first().map_or(0.0, |f| f.value);

    let (name, pool) = fresh("remote", 16).await?;
    let client = Client::new(pool.clone());
    client
        .create_many((0..jobs).map(|_| NewJob::new(EXECUTOR, "@after 0s")))
        .await?;
    sqlx::query("VACUUM ANALYZE qron.jobs")
        .execute(&pool)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            qron::http::Api::new(client).allow_anonymous().router(),
        )
        .await
    });
    let http = reqwest::Client::new();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..loops.max(1) {
        let (http, base) = (http.clone(), base.clone());
        tasks.spawn(async move {
            let mut done = 0u64;
            loop {
                let leased: Value = http
                    .post(format!("{base}/workers/lease"))
                    .json(&json!({ "executor": EXECUTOR, "limit": batch, "lease_seconds": 60, "worker": format!("bench-{i}") }))
                    .send()
                    .await?
                    .json()
                    .await?;
                let jobs = leased["jobs"].as_array().cloned().unwrap_or_default();
                if jobs.is_empty() {
                    return Ok::<u64, reqwest::Error>(done);
                }
                let outcomes: Vec<Value> = jobs
                    .iter()
                    .map(|j| json!({ "id": j["id"], "token": j["token"], "result": "commit" }))
                    .collect();
                let reported: Value = http
                    .post(format!("{base}/workers/complete"))
                    .json(&json!({ "outcomes": outcomes }))
                    .send()
                    .await?
                    .json()
                    .await?;
                done += reported["reported"].as_array().map_or(0, |r| r.len() as u64);
            }
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        done += r??;
    }
    let elapsed = t.elapsed();
    server.abort();
    drop_db(&name, pool).await?;
    let rate = done as f64 / elapsed.as_secs_f64();
    let label = format!("remote worker (JSON, batches of {batch}, {loops} loops)");
    let mut out = vec![fig(label.clone(), rate, "jobs/s")];
    out.extend(inproc);
    out.push(fig(
        format!("{label} / in-process (concurrency 100)"),
        100.0 * rate / inproc_rate,
        "%",
    ));
    Ok(out)
}

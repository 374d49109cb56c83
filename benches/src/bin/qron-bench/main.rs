//! qron's benchmarks: `cargo run --release -p benches --bin qron-bench -- <scenario> [flags]`.
//!
//! Each scenario prints one line per result; `--json` prints one JSON object per result instead.
//! Scenarios that need a database use `DATABASE_URL`, or start a throwaway PostgreSQL.
#![allow(clippy::print_stdout)]

use clap::{Parser, Subcommand};

mod dashboard;
mod expr;
mod flow;
mod history;
mod owners;
mod plot;
mod queue;
mod remote;
mod scale;
mod workflow;

#[derive(Parser)]
#[command(about = "qron's benchmarks", version)]
struct Cli {
    /// Print one JSON object per result.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Cost of parsing each expression form and of computing its next run (no database).
    Expr {
        /// Operations per timed batch.
        #[arg(long, default_value_t = 20_000)]
        iterations: u32,
        /// Timed batches; the median is reported.
        #[arg(long, default_value_t = 5)]
        batches: u32,
    },
    /// The raw-SQL floor: bulk insert, then tasks leasing and deleting batches.
    Floor {
        /// Jobs per run.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// Concurrent loops.
        #[arg(long, default_value_t = 4)]
        tasks: usize,
        /// Batch sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        batch: Vec<u64>,
    },
    /// Enqueue: bulk (`schedule_many`) and one at a time from concurrent callers.
    Enqueue {
        /// Jobs for the bulk form (a tenth of it one at a time).
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// Concurrent callers of `schedule`.
        #[arg(long, default_value_t = 8)]
        callers: usize,
        /// Rounds of (floor insert, bulk enqueue); the medians are reported.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// The dashboard under load: viewers polling the overview every second against many jobs;
    /// the count queries it costs (pg_stat_statements) and each page's render time.
    Dashboard {
        /// Live jobs.
        #[arg(long, default_value_t = 1_000_000)]
        jobs: u64,
        /// Viewers polling the overview every second.
        #[arg(long, default_value_t = 50)]
        viewers: usize,
        /// How long they poll.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// A remote worker in Rust leasing and completing through the JSON endpoints of the HTTP
    /// API, beside the in-process worker (concurrency 100) on the same jobs.
    Remote {
        /// Jobs per run.
        #[arg(long, default_value_t = 50_000)]
        jobs: u64,
        /// Jobs per lease (and per report).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Lease-and-complete loops at once.
        #[arg(long, default_value_t = 4)]
        loops: usize,
        /// Rounds; the medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Throughput: due no-op jobs processed by W worker processes.
    Throughput {
        /// Jobs per run.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// Worker processes per run (1 runs in this process).
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        workers: Vec<usize>,
        /// Rounds of (floor, each W); the medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also measure one in-process worker at each of these concurrencies (`10,100,1000`),
        /// with each history of `--history`, against the same round's floor.
        #[arg(long, value_delimiter = ',')]
        concurrency: Vec<usize>,
        /// The histories for `--concurrency`: `all`, `failed`.
        #[arg(long, value_delimiter = ',', default_value = "all,failed")]
        history: Vec<String>,
    },
    /// Scale: throughput, the lease statement's p50/p99 and one-job enqueues with more and
    /// more jobs waiting, beside the same-work floor on the same backlog.
    Scale {
        /// Jobs waiting, one run each (built on the server).
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        sizes: Vec<u64>,
        /// Jobs worked through at each size (at most all of them).
        #[arg(long, default_value_t = 100_000)]
        work: u64,
        /// The worker's concurrency.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Jobs per lease and per outcome batch at most (default: the worker's).
        #[arg(long)]
        batch: Option<usize>,
        /// Rounds; the medians are reported.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Also draw the medians as SVG charts in this directory (`scale-throughput.svg`,
        /// `scale-leases.svg`).
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
    },
    /// A large history: a job by id, a search by name, the dashboard's overview and the
    /// retention's drop of a day, with `rows` finished jobs over `days` day partitions (built
    /// on the server).
    History {
        /// Finished jobs in the history.
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Days (a partition each) they are spread over.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Reads of each kind.
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// Latency: enqueue-to-start with an idle worker polling every second.
    Latency {
        /// Jobs per second.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Recurring: lateness of `@every 1 second` jobs against their slots.
    Recurring {
        /// Jobs.
        #[arg(long, default_value_t = 5000)]
        jobs: u64,
        /// Seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Throughput while another transaction holds the xmin horizon.
    Bloat {
        /// Jobs per run.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// Rounds of (normal, held); the medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Workflows: a chain's hand-offs, and jobs a callback waits for beside plain jobs.
    Workflow {
        /// Steps of the chain.
        #[arg(long, default_value_t = 1000)]
        steps: u32,
        /// Jobs of the fan-in (at most `qron::MAX_DEPENDENCIES`).
        #[arg(long, default_value_t = 100_000)]
        fan_in: u64,
        /// The fan-in worker's concurrency.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Rounds; the median of each figure is printed.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Flow control: throughput at one priority and at ten mixed; enqueue plain, unique, and
    /// unique with every key taken.
    Flow {
        /// Jobs per throughput run.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// The worker's concurrency.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Jobs per enqueue run.
        #[arg(long, default_value_t = 100_000)]
        enqueued: u64,
        /// Rounds; the median of each figure is printed.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Owners: throughput with the due jobs spread over many owners, and a pause and a resume
    /// with a large backlog.
    Owners {
        /// Jobs per run.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// The counts of owners the jobs are spread over, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
        owners: Vec<u64>,
        /// Other owners, each with one job due in an hour.
        #[arg(long, default_value_t = 0)]
        idle: u64,
        /// The worker's concurrency.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Ready jobs of the owner that pauses and resumes.
        #[arg(long, default_value_t = 200_000)]
        backlog: u64,
        /// Rounds; the medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Peak RSS of a worker process.
    Memory {
        /// Due jobs.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// The worker's concurrency.
        #[arg(long, default_value_t = 1000)]
        concurrency: usize,
        /// Each job's payload, a JSON string of this many bytes (0: no payload).
        #[arg(long, default_value_t = 0)]
        payload_bytes: usize,
    },
    /// (internal) A worker process serving the bench jobs until SIGTERM.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        url: String,
        #[arg(long)]
        database: String,
        #[arg(long, default_value = "bench_noop")]
        executor: String,
        #[arg(long)]
        concurrency: Option<usize>,
    },
}

/// One measured figure.
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// Each figure's median over rounds that measured the same figures (in the first round's order).
fn medians(rounds: Vec<Vec<Figure>>) -> Vec<Figure> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|f| {
            let values = rounds
                .iter()
                .filter_map(|r| r.iter().find(|g| g.name == f.name).map(|g| g.value))
                .collect();
            Figure {
                name: f.name.clone(),
                value: queue::median(values),
                unit: f.unit,
            }
        })
        .collect()
}

fn report(json: bool, figures: &[Figure]) {
    for f in figures {
        if json {
            println!(
                "{}",
                serde_json::json!({ "name": f.name, "value": f.value, "unit": f.unit })
            );
        } else {
            println!("{:<48} {:>12.1} {}", f.name, f.value, f.unit);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let figures = match cli.scenario {
        Scenario::Expr {
            iterations,
            batches,
        } => expr::run(iterations, batches),
        Scenario::Floor { jobs, tasks, batch } => queue::floor(jobs, &batch, tasks).await?,
        Scenario::Enqueue {
            jobs,
            callers,
            rounds,
        } => queue::enqueue(jobs, callers, rounds).await?,
        Scenario::Throughput {
            jobs,
            workers,
            rounds,
            concurrency,
            history,
        } => {
            let histories = history
                .iter()
                .map(|h| match h.as_str() {
                    "all" => Ok(qron::History::All),
                    "failed" => Ok(qron::History::Failed),
                    other => Err(format!("--history takes all or failed, not `{other}`")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut all = Vec::new();
            for _ in 0..rounds.max(1) {
                // The floor first, in the same round, for the ratio.
                let floor = queue::floor_best(jobs).await?;
                let same_work = queue::floor_same_work(jobs).await?;
                let mut out = vec![
                    queue::fig("floor process (batch 1000, 4 tasks)", floor, "jobs/s"),
                    queue::fig(
                        "same-work floor (lease 1,000, move to history, 4 tasks)",
                        same_work,
                        "jobs/s",
                    ),
                ];
                let mut best: f64 = 0.0;
                for &w in &workers {
                    let figures = queue::throughput(jobs, w, false).await?;
                    best = best.max(figures.first().map_or(0.0, |f| f.value));
                    out.extend(figures);
                }
                out.push(queue::fig(
                    "throughput, best / floor",
                    100.0 * best / floor,
                    "%",
                ));
                for &c in &concurrency {
                    for &h in &histories {
                        let figures = queue::throughput_with(jobs, 1, false, Some(c), h).await?;
                        let rate = figures.first().map_or(0.0, |f| f.value);
                        let label = figures.first().map(|f| f.name.clone()).unwrap_or_default();
                        out.extend(figures);
                        out.push(queue::fig(
                            format!("{label} / floor"),
                            100.0 * rate / floor,
                            "%",
                        ));
                        out.push(queue::fig(
                            format!("{label} / same-work floor"),
                            100.0 * rate / same_work,
                            "%",
                        ));
                    }
                }
                all.push(out);
            }
            medians(all)
        }
        Scenario::Scale {
            sizes,
            work,
            concurrency,
            batch,
            rounds,
            plot,
        } => {
            let mut all = Vec::new();
            for _ in 0..rounds.max(1) {
                all.push(scale::scale(&sizes, work, concurrency, batch).await?);
            }
            let figures = medians(all);
            if let Some(dir) = plot {
                let (throughput, leases) = scale::charts(&figures, &sizes);
                std::fs::write(dir.join("scale-throughput.svg"), throughput)?;
                std::fs::write(dir.join("scale-leases.svg"), leases)?;
            }
            figures
        }
        Scenario::Dashboard {
            jobs,
            viewers,
            seconds,
        } => dashboard::dashboard(jobs, viewers, seconds).await?,
        Scenario::History {
            rows,
            days,
            samples,
        } => history::history(rows, days, samples).await?,
        Scenario::Remote {
            jobs,
            batch,
            loops,
            rounds,
        } => {
            let mut all = Vec::new();
            for _ in 0..rounds.max(1) {
                all.push(remote::remote(jobs, batch, loops).await?);
            }
            medians(all)
        }
        Scenario::Latency { rate, seconds } => queue::latency(rate, seconds).await?,
        Scenario::Recurring { jobs, seconds } => queue::recurring(jobs, seconds).await?,
        Scenario::Bloat { jobs, rounds } => {
            let mut all = Vec::new();
            for _ in 0..rounds.max(1) {
                let mut out = queue::throughput(jobs, 1, false).await?;
                let normal = out.first().map_or(0.0, |f| f.value);
                let held = queue::throughput(jobs, 1, true).await?;
                let slowed = held.first().map_or(0.0, |f| f.value);
                out.extend(held);
                out.push(queue::fig(
                    "xmin held / normal",
                    100.0 * slowed / normal,
                    "%",
                ));
                all.push(out);
            }
            medians(all)
        }
        Scenario::Workflow {
            steps,
            fan_in,
            concurrency,
            rounds,
        } => {
            let mut all = Vec::new();
            for _ in 0..rounds.max(1) {
                all.push(workflow::workflow(steps, fan_in, concurrency).await?);
            }
            medians(all)
        }
        Scenario::Flow {
            jobs,
            concurrency,
            enqueued,
            rounds,
        } => {
            let mut all = Vec::new();
            for _ in 0..rounds.max(1) {
                all.push(flow::flow(jobs, concurrency, enqueued).await?);
            }
            medians(all)
        }
        Scenario::Owners {
            jobs,
            owners,
            idle,
            concurrency,
            backlog,
            rounds,
        } => {
            let mut all = Vec::new();
            for _ in 0..rounds.max(1) {
                all.push(owners::owners(jobs, &owners, idle, concurrency, backlog).await?);
            }
            medians(all)
        }
        Scenario::Memory {
            jobs,
            concurrency,
            payload_bytes,
        } => queue::memory(jobs, concurrency, payload_bytes).await?,
        Scenario::Serve {
            url,
            database,
            executor,
            concurrency,
        } => {
            queue::serve(&url, &database, &executor, concurrency).await?;
            Vec::new()
        }
    };
    report(cli.json, &figures);
    Ok(())
}

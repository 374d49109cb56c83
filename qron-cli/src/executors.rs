//! `qron executors`: the owner's executors, pausing or resuming one, and its limits across
//! every worker.

use clap::Subcommand;

use crate::output::{Cell, cut, duration, parse_duration};
use crate::{Failure, Global};

#[derive(Subcommand)]
pub(crate) enum Action {
    /// Lists the executors: live jobs by status, paused or not, the lateness of the oldest due
    /// job, and the workers serving it (the default).
    List,
    /// Stops every worker leasing this executor's jobs (this owner's), until resumed; survives
    /// restarts.
    Pause {
        /// The executor.
        name: String,
    },
    /// Lets workers lease this executor's jobs again.
    Resume {
        /// The executor.
        name: String,
    },
    /// Limits how many of this executor's jobs run at once, or start per period, across every
    /// worker, for every owner (replacing its limits): `--concurrency 20`, `--per-owner 2`,
    /// `--per-field customer_id --per-key 2`, `--rate 100 --rate-period 1m --rate-per-owner`.
    Limit {
        /// The executor.
        name: String,
        /// At most this many at once, in all (1 to 1,000,000).
        #[arg(long)]
        concurrency: Option<u32>,
        /// At most this many at once per owner.
        #[arg(long, conflicts_with_all = ["per_field", "per_key"])]
        per_owner: Option<u32>,
        /// Count per value of this payload field (with `--per-key`).
        #[arg(long, requires = "per_key")]
        per_field: Option<String>,
        /// At most this many at once per value of `--per-field`.
        #[arg(long, requires = "per_field")]
        per_key: Option<u32>,
        /// At most this many starts per `--rate-period` (1 to 1,000,000).
        #[arg(long, requires = "rate_period")]
        rate: Option<u32>,
        /// The rate limit's period: 1s to 366d (30s, 1m, 1h...).
        #[arg(long, value_parser = parse_duration, requires = "rate")]
        rate_period: Option<std::time::Duration>,
        /// Starts at once after a quiet spell (a twentieth of `--rate` by default).
        #[arg(long, requires = "rate")]
        rate_burst: Option<u32>,
        /// The rate limit per owner.
        #[arg(long, requires = "rate", conflicts_with = "rate_per_field")]
        rate_per_owner: bool,
        /// The rate limit per value of this payload field.
        #[arg(long, requires = "rate")]
        rate_per_field: Option<String>,
    },
    /// Caps the owner's own jobs of this executor: at most this many at once across every
    /// worker (the other owners' jobs are not held back).
    Cap {
        /// The executor.
        name: String,
        /// At most this many of the owner's jobs at once (1 to 1,000,000).
        concurrency: u32,
    },
    /// Removes the owner's cap on this executor.
    Uncap {
        /// The executor.
        name: String,
    },
    /// Removes this executor's limits.
    Unlimit {
        /// The executor.
        name: String,
    },
}

pub(crate) async fn run(global: &Global, action: Option<Action>) -> Result<(), Failure> {
    let client = crate::client(global).await?;
    let out = &global.out;
    match action.unwrap_or(Action::List) {
        Action::Pause { name } => {
            client.pause_executor(&name).await?;
            say(global, &name, "paused");
        }
        Action::Resume { name } => {
            client.resume_executor(&name).await?;
            say(global, &name, "resumed");
        }
        Action::Limit {
            name,
            concurrency,
            per_owner,
            per_field,
            per_key,
            rate,
            rate_period,
            rate_burst,
            rate_per_owner,
            rate_per_field,
        } => {
            let mut limits = qron::ExecutorLimits::new();
            if let Some(n) = concurrency {
                limits = limits.concurrency(n);
            }
            if let Some(n) = per_owner {
                limits = limits.per_owner(n);
            }
            if let (Some(field), Some(n)) = (per_field, per_key) {
                limits = limits.per_field(field, n);
            }
            if let (Some(n), Some(period)) = (rate, rate_period) {
                let mut rate = qron::RateLimit::new(n, period);
                if let Some(b) = rate_burst {
                    rate = rate.burst(b);
                }
                if rate_per_owner {
                    rate = rate.per_owner();
                }
                if let Some(field) = rate_per_field {
                    rate = rate.per_field(field);
                }
                limits = limits.rate(rate);
            }
            client.set_executor_limits(&name, limits.clone()).await?;
            if global.out.json {
                global
                    .out
                    .json_line(&serde_json::json!({ "executor": name, "limits": limits }));
            } else {
                println!(
                    "executor {} limited to {} across every worker",
                    crate::output::clean(&name),
                    describe(&limits)
                );
            }
        }
        Action::Cap { name, concurrency } => {
            client.set_owner_cap(&name, concurrency).await?;
            say(global, &name, &format!("capped at {concurrency} at once"));
        }
        Action::Uncap { name } => {
            let had = client.clear_owner_cap(&name).await?;
            say(global, &name, if had { "uncapped" } else { "had no cap" });
        }
        Action::Unlimit { name } => {
            let had = client.clear_executor_limits(&name).await?;
            let what = if had { "unlimited" } else { "had no limits" };
            if global.out.json {
                global
                    .out
                    .json_line(&serde_json::json!({ "executor": name, "state": what }));
            } else {
                println!("executor {} {what}", crate::output::clean(&name));
            }
        }
        Action::List => {
            let all = client.executors().await?;
            if out.json {
                for e in &all {
                    out.json_line(e);
                }
                return Ok(());
            }
            let rows = all
                .iter()
                .map(|e| {
                    vec![
                        Cell::from(cut(&e.executor, 32)),
                        Cell::from(e.ready.to_string()),
                        Cell::from(e.running.to_string()),
                        Cell::from(e.stopped.to_string()),
                        match e.paused_at {
                            Some(at) => out.colored(&format!("since {}", out.time(at)), "33"),
                            None => Cell::from("no"),
                        },
                        Cell::from(e.lateness.map_or_else(|| "-".to_owned(), duration)),
                        Cell::from(e.workers.len().to_string()),
                        match &e.limits {
                            Some(l) if e.is_at_limit() => out.colored(
                                &format!("{} (full: {} in use)", describe(l), e.limit_taken),
                                "33",
                            ),
                            Some(l) => {
                                Cell::from(format!("{} ({} in use)", describe(l), e.limit_taken))
                            }
                            None => Cell::from("-"),
                        },
                        Cell::from(e.owner_cap.map_or_else(
                            || "-".to_owned(),
                            |cap| format!("{cap} ({} in use)", e.owner_cap_taken),
                        )),
                    ]
                })
                .collect();
            out.table(
                &[
                    "EXECUTOR", "READY", "RUNNING", "STOPPED", "PAUSED", "LATENESS", "WORKERS",
                    "LIMITS", "CAP",
                ],
                rows,
            );
            if all.is_empty() {
                println!(
                    "no executors have live jobs or workers for owner {}",
                    global.owner
                );
            }
        }
    }
    Ok(())
}

fn say(global: &Global, executor: &str, what: &str) {
    if global.out.json {
        global
            .out
            .json_line(&serde_json::json!({ "executor": executor, "state": what }));
    } else {
        println!(
            "executor {} {what} for owner {}",
            crate::output::clean(executor),
            crate::output::clean(&global.owner)
        );
    }
}

/// Limits in words, safe for a terminal (a field name could hold control characters).
fn describe(l: &qron::ExecutorLimits) -> String {
    crate::output::clean(&l.to_string())
}

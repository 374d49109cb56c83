//! `qron executors`: the owner's executors, and pausing or resuming one.

use clap::Subcommand;

use crate::output::{Cell, cut, duration};
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
                    ]
                })
                .collect();
            out.table(
                &[
                    "EXECUTOR", "READY", "RUNNING", "STOPPED", "PAUSED", "LATENESS", "WORKERS",
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

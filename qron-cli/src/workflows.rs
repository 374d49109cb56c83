//! `qron batch ID`: a batch, its callback and how its jobs stand.
//!
//! `qron workflows`: the owner's workflows; one of them, step by step; cancelling what is left of it, or
//! running its failed and cancelled steps again.

use clap::Subcommand;

use crate::output::{Cell, clean};
use crate::{Failure, Global};

#[derive(Subcommand)]
pub(crate) enum Action {
    /// Lists the owner's workflows, newest first, with their status.
    List {
        /// How many (1 to 1,000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only those with ids below this one (the next page).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Shows a workflow: its status, progress, and each step's job, status and what it waits
    /// for.
    Show {
        /// The workflow's id.
        id: i64,
    },
    /// Cancels every job of a workflow that has not ended.
    Cancel {
        /// The workflow's id.
        id: i64,
    },
    /// Runs a workflow's failed and cancelled steps again; the rest continue.
    Retry {
        /// The workflow's id.
        id: i64,
    },
}

pub(crate) async fn run(global: &Global, action: Action) -> Result<(), Failure> {
    let client = crate::client(global).await?;
    let out = &global.out;
    match action {
        Action::List { limit, before } => {
            let list = client.workflows(before, limit).await?;
            if out.json {
                for w in &list {
                    out.json_line(w);
                }
                return Ok(());
            }
            let rows = list
                .iter()
                .map(|w| {
                    vec![
                        Cell::from(w.id.to_string()),
                        Cell::from(clean(&w.name)),
                        Cell::from(w.status.as_str()),
                        Cell::from(out.time(w.created_at)),
                    ]
                })
                .collect();
            out.table(&["ID", "NAME", "STATUS", "CREATED"], rows);
        }
        Action::Show { id } => {
            let wf = client.workflow(id).await?;
            if out.json {
                out.json_line(&wf);
                return Ok(());
            }
            let (done, total) = wf.progress();
            println!(
                "workflow {} {}: {}, {done} of {total} jobs ended",
                wf.id,
                clean(&wf.name),
                wf.status.as_str()
            );
            let rows = wf
                .steps
                .iter()
                .map(|s| {
                    vec![
                        Cell::from(clean(&s.step)),
                        Cell::from(s.job.to_string()),
                        Cell::from(clean(s.executor.as_deref().unwrap_or("-"))),
                        s.status
                            .map_or_else(|| Cell::from("deleted"), |st| out.status(st)),
                        Cell::from(clean(&s.after.join(", "))),
                    ]
                })
                .collect();
            out.table(&["STEP", "JOB", "EXECUTOR", "STATUS", "AFTER"], rows);
        }
        Action::Cancel { id } => {
            let n = client.cancel_workflow(id).await?;
            if out.json {
                out.json_line(&serde_json::json!({ "workflow": id, "cancelled": n }));
            } else {
                println!("workflow {id}: {n} jobs cancelled");
            }
        }
        Action::Retry { id } => {
            let revived = client.retry_workflow(id).await?;
            if out.json {
                out.json_line(&serde_json::json!({ "workflow": id, "retried": revived }));
            } else {
                println!("workflow {id}: {} jobs retried", revived.len());
            }
        }
    }
    Ok(())
}

/// `qron batch ID`: the callback's status, then the jobs counted by status (with `--json`, the
/// ids too).
pub(crate) async fn batch(global: &Global, id: i64) -> Result<(), Failure> {
    let client = crate::client(global).await?;
    let out = &global.out;
    let batch = client.batch(id).await?;
    if out.json {
        out.json_line(&batch);
        return Ok(());
    }
    let j = &batch.jobs;
    println!(
        "batch {id}: callback {}, {} of {} jobs ended",
        batch.callback_status.as_str(),
        j.total() - j.live.len(),
        j.total()
    );
    let rows = [
        ("succeeded", &j.succeeded),
        ("failed", &j.failed),
        ("cancelled", &j.cancelled),
        ("deleted", &j.deleted),
        ("live", &j.live),
    ]
    .into_iter()
    .filter(|(_, ids)| !ids.is_empty())
    .map(|(status, ids)| {
        let first: Vec<String> = ids.iter().take(10).map(i64::to_string).collect();
        let more = if ids.len() > 10 {
            format!(" and {} more", ids.len() - 10)
        } else {
            String::new()
        };
        vec![
            Cell::from(status),
            Cell::from(ids.len().to_string()),
            Cell::from(format!("{}{more}", first.join(", "))),
        ]
    })
    .collect();
    out.table(&["STATUS", "JOBS", "IDS"], rows);
    Ok(())
}

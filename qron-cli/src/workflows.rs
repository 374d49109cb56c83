//! `qron workflows`: a workflow of the owner, step by step, and cancelling what is left of it.

use clap::Subcommand;

use crate::output::{Cell, clean};
use crate::{Failure, Global};

#[derive(Subcommand)]
pub(crate) enum Action {
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
}

pub(crate) async fn run(global: &Global, action: Action) -> Result<(), Failure> {
    let client = crate::client(global).await?;
    let out = &global.out;
    match action {
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
    }
    Ok(())
}

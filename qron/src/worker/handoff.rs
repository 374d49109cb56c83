//! The hand-over: under limits that bind, the outcomes of an executor's jobs go with its next
//! lease, written in the same transaction, so that the places they free are taken in the same
//! commit (see `ExecutorState::hand_off`, and `Producer::run` for when a lease carries them).

use super::Shared;
use crate::completer::CompleterHandle;
use crate::db::{self, LeasedJob};
use crate::outcome::Outcome;

/// A limited executor's lease, in one transaction with the outcomes of its jobs that just ended
/// (handed off by their slots): the places those outcomes free are taken by the jobs leased in
/// the same commit, so none stays free in between, and under load one transaction carries many
/// outcomes and as many new jobs. When the transaction fails, the outcomes go to the completer
/// (retried and split as every outcome is; one written already meets its moved lease there,
/// harmlessly). Without outcomes, a lease `in_lane` may go beside others (see
/// `db::job_lease_limited`).
pub(super) async fn hand_over(
    shared: &Shared,
    lease: &db::Lease<'_>,
    outcomes: Vec<Outcome>,
    in_lane: bool,
    holders: &[(i64, i64)],
) -> sqlx::Result<Vec<LeasedJob>> {
    if outcomes.is_empty() {
        return db::job_lease_limited(&shared.limited_pool, lease, in_lane, holders).await;
    }
    if let Some(kept) = one_finish_kind(&outcomes) {
        return in_one_statement(shared, lease, kept, outcomes, holders).await;
    }
    let attempt = async {
        let mut tx = shared.limited_pool.begin().await?;
        // Counted once the transaction commits.
        let scratch = crate::metrics::Metrics::default();
        let now = shared.clock.now();
        let applied = crate::completer::write_in(&mut tx, outcomes.clone(), now, &scratch).await?;
        let jobs = db::job_lease_limited(&mut *tx, lease, false, holders).await?;
        tx.commit().await?;
        Ok((applied, jobs))
    };
    match attempt.await {
        Ok((applied, jobs)) => {
            shared
                .metrics
                .add_written(applied, outcomes.len().saturating_sub(applied));
            Ok(jobs)
        }
        Err(e) => {
            handoff_failed(shared, outcomes, &e).await;
            Err(e)
        }
    }
}

/// Whether `outcomes` all end one-off jobs in a way the hand-over writes in the lease's own
/// statement: `Some(true)` for plain successes the history keeps, `Some(false)` for ends it
/// does not keep (see `db::FinishKind`), all of one kind.
fn one_finish_kind(outcomes: &[Outcome]) -> Option<bool> {
    let mut kinds = outcomes.iter().map(|o| match o {
        Outcome::Finish(f) => Some(f.kind()),
        Outcome::Complete(_) => None,
    });
    let first = kinds.next().flatten()?;
    let kept = match first {
        db::FinishKind::PlainSuccess => true,
        db::FinishKind::Deleted => false,
        db::FinishKind::Other => return None,
    };
    kinds.all(|k| k == Some(first)).then_some(kept)
}

/// The hand-over in the lease's own statement (see `db::job_hand_over`): the outcomes of jobs
/// that did not end there (paused or given a new schedule while they ran: they stay live; or
/// their lease moved on) go to the completer as it writes them.
async fn in_one_statement(
    shared: &Shared,
    lease: &db::Lease<'_>,
    kept: bool,
    outcomes: Vec<Outcome>,
    holders: &[(i64, i64)],
) -> sqlx::Result<Vec<LeasedJob>> {
    let finishes: Vec<&crate::db::Finish> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Finish(f) => Some(f),
            Outcome::Complete(_) => None,
        })
        .collect();
    match db::job_hand_over(&shared.limited_pool, lease, kept, &finishes, holders).await {
        Ok((jobs, moved)) => {
            let moved: std::collections::HashSet<(i64, i64)> = moved.into_iter().collect();
            let mut live = Vec::new();
            for o in outcomes {
                if let Outcome::Finish(f) = o
                    && !moved.contains(&(f.id, f.token))
                {
                    live.push(if kept {
                        Outcome::Complete(f.kept_live())
                    } else {
                        // Not deleted: other jobs may wait for it (the completer ends it into
                        // the history, or finds it live).
                        Outcome::Finish(f.keeping())
                    });
                }
            }
            shared.metrics.add_written(moved.len(), 0);
            to_completer(shared, live);
            Ok(jobs)
        }
        Err(e) => {
            handoff_failed(shared, outcomes, &e).await;
            Err(e)
        }
    }
}

/// Outcomes handed off for a lease that could not write them: the completer does.
async fn handoff_failed(shared: &Shared, outcomes: Vec<Outcome>, e: &sqlx::Error) {
    tracing::debug!(error = %e, outcomes = outcomes.len(), "could not write outcomes with a lease; the completer will");
    for o in outcomes {
        if !shared.completer.send(o).await {
            tracing::error!("the completer is gone: a job will come back when its lease expires");
        }
    }
}

/// Hands outcomes left for a lease to the completer instead (its own task: the completer's
/// queue may be full).
pub(super) fn to_completer(shared: &Shared, outcomes: Vec<Outcome>) {
    if outcomes.is_empty() {
        return;
    }
    let completer: CompleterHandle = shared.completer.clone();
    tokio::spawn(async move {
        for o in outcomes {
            if !completer.send(o).await {
                tracing::error!(
                    "the completer is gone: a job will come back when its lease expires"
                );
            }
        }
    });
}

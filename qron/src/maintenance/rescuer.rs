//! The rescuer: returns expired leases to the pool, counting the attempt (or ends the job when
//! its attempts are spent).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::JobError;
use crate::completer::{self, Outcome};
use crate::db;
use crate::handler::{JobOptions, Requests};
use crate::worker::outcome::{OutcomeInput, decide};
use crate::worker::{ExecutorState, Shared};

/// Returns expired leases to the pool (or ends their jobs when attempts are spent).
pub(crate) async fn rescue(
    shared: Arc<Shared>,
    executors: Vec<Arc<ExecutorState>>,
    every: Duration,
) {
    let options: HashMap<&str, JobOptions> = executors
        .iter()
        .map(|e| (e.registration.executor, e.registration.options))
        .collect();
    loop {
        // The rescuer keeps the clock's offset fresh (a host's clock drifts, or is set).
        if shared.clock.stale()
            && let Err(e) = shared.clock.sync(&shared.pool).await
        {
            tracing::debug!(error = %e, "could not read the database's clock");
        }
        match rescue_once(&shared, &options, shared.clock.now()).await {
            Ok(n) if n > 0 => {
                tracing::info!(rescued = n, "returned expired leases to the pool");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for expired leases"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.soft.cancelled() => return,
        }
    }
}

/// One pass of the rescuer: up to 1000 expired leases. Safe when many workers run it at once:
/// the lease guard lets one write win.
pub(crate) async fn rescue_once(
    shared: &Shared,
    options: &HashMap<&str, JobOptions>,
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    let expired = db::job_expired_leases(&shared.pool, now, 1000).await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let outcomes: Vec<Outcome> = expired
        .iter()
        .map(|l| {
            let input = OutcomeInput {
                id: l.id,
                token: l.lease_token,
                revision: l.revision,
                recurring: l.recurring,
                run_at: l.run_at,
                slot_at: l.slot_at,
                attempt: l.attempt,
                max_attempts: l.max_attempts,
                start_at: l.start_at,
            };
            // Leases of executors this worker does not serve get the defaults.
            let o = options
                .get(l.executor.as_str())
                .copied()
                .unwrap_or_default();
            decide(
                &input,
                Err(JobError::retry(
                    "the lease expired: the worker died, hung or lost its connection",
                )),
                Requests::default(),
                now,
                shared.schedule(&l.expr).as_ref(),
                o.backoff,
                o.history,
            )
            .0
        })
        .collect();
    let n = completer::write(&shared.pool, outcomes, &shared.metrics, &shared.clock).await;
    shared
        .metrics
        .rescued
        .fetch_add(n as u64, Ordering::Relaxed);
    Ok(expired.len())
}

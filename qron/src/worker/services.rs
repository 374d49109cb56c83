//! A running worker's services: started together, watched together, and stopped in one order
//! that is written here as code.
//!
//! The order of the stop: the producers first (no new lease), then the lease pool; running
//! handlers get the grace period to finish (then they are cancelled); the heartbeat renews
//! their leases until the last one returned; the background services end; the worker leaves
//! the registry of workers. The completer, which writes the outcomes, is the caller's to wait
//! for last.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::notifier::{self, Notifier};
use super::producer::Producer;
use super::shutdown::supervised;
use super::{ExecutorState, Shared, Worker, heartbeat};
use crate::Error;
use crate::maintenance::{history, queue, rescuer, unserved};

/// A task's name and, if it panicked, why.
type Ended = (&'static str, Option<String>);

/// The tasks of one run.
pub(super) struct Services {
    /// The notification listener, the rescuer, the heartbeat and the maintenance; aborted
    /// when dropped.
    background: JoinSet<Ended>,
    /// One per executor; aborted when dropped.
    producers: JoinSet<Ended>,
    /// Stops the heartbeat and the charts' tally, which outlive the soft stop while handlers
    /// run.
    heartbeat_stop: CancellationToken,
}

impl Services {
    /// Starts every service of `worker` over `shared`.
    pub(super) async fn start(worker: &Worker, shared: &Arc<Shared>) -> Self {
        let mut services = Self {
            background: JoinSet::new(),
            producers: JoinSet::new(),
            heartbeat_stop: CancellationToken::new(),
        };
        let pool = shared.pool();
        let served: Vec<&'static str> = worker
            .executors
            .iter()
            .map(|e| e.registration.executor)
            .collect();
        let by_name: HashMap<&'static str, Arc<ExecutorState>> = worker
            .executors
            .iter()
            .map(|e| (e.registration.executor, e.clone()))
            .collect();
        // Before the first lease: a worker that starts during a pause must skip the paused
        // owners' jobs from its first lease on.
        notifier::refresh_pauses(pool, &by_name).await;
        notifier::refresh_limits(pool, &by_name).await;
        let notifier = Notifier {
            shared: shared.clone(),
            executors: by_name,
        };
        services.background_task("notification listener", notifier.run(shared.soft.clone()));
        let rescuer = rescuer::Rescuer::new(
            pool.clone(),
            shared.clock.clone(),
            shared.metrics.clone(),
            worker
                .executors
                .iter()
                .map(|e| (e.registration.executor, e.registration.options))
                .collect(),
            worker.settings.rescuer.clone(),
        );
        services.background_task("rescuer", rescuer.run(shared.soft.clone()));
        // Renews leases until every handler has returned (after the soft stop, the grace).
        let heartbeat = heartbeat::Heartbeat {
            pool: pool.clone(),
            clock: shared.clock.clone(),
            running: shared.running.clone(),
            config: worker.settings.heartbeat.clone(),
            worker_id: worker.id.clone(),
            executors: served.clone(),
            slack: shared.slack,
        };
        let heartbeat_stop = services.heartbeat_stop.clone();
        services.background_task("heartbeat", heartbeat.run(heartbeat_stop));
        let stats = super::stats::Stats {
            pool: pool.clone(),
            clock: shared.clock.clone(),
            tally: shared.tally.clone(),
            executors: worker.executors.clone(),
        };
        let stats_stop = services.heartbeat_stop.clone();
        services.background_task("charts' figures", stats.run(stats_stop));
        let watch = unserved::Watch {
            pool: pool.clone(),
            clock: shared.clock.clone(),
            config: worker.settings.unserved.clone(),
        };
        services.background_task("unserved executors watch", watch.run(shared.soft.clone()));
        let gauges = queue::Gauges::new(
            pool.clone(),
            shared.clock.clone(),
            served,
            worker.settings.queue.clone(),
        );
        services.background_task("queue gauges", gauges.run(shared.soft.clone()));
        let history = history::Maintainer {
            pool: pool.clone(),
            clock: shared.clock.clone(),
            config: worker.settings.history.clone(),
        };
        services.background_task("history maintenance", history.run(shared.soft.clone()));
        for e in &worker.executors {
            services.producers.spawn(supervised(
                "producer",
                Producer::new(e.clone(), shared.clone()).run(),
            ));
        }
        services
    }

    fn background_task(
        &mut self,
        name: &'static str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.background.spawn(supervised(name, task));
    }

    /// Waits until the worker is stopped, or one of its tasks ends on its own (it panicked):
    /// then stops the worker softly, and says which task and why.
    pub(super) async fn supervise(&mut self, shared: &Shared) -> Option<Error> {
        let mut failed = None;
        loop {
            let ended = tokio::select! {
                () = shared.soft.cancelled() => break,
                Some(r) = self.background.join_next() => r,
                Some(r) = self.producers.join_next() => r,
            };
            let (task, reason) = match ended {
                Ok((task, panic)) => (task, panic.unwrap_or_else(|| "it returned".to_owned())),
                Err(e) => ("task", e.to_string()),
            };
            if shared.soft.is_cancelled() {
                break;
            }
            tracing::error!(
                task,
                reason,
                "a worker task stopped unexpectedly; stopping the worker"
            );
            failed = Some(Error::WorkerTask { task, reason });
            shared.soft.cancel();
        }
        failed
    }

    /// The ordered stop (see the module's documentation), once the soft stop is given.
    pub(super) async fn stop(mut self, worker: &Worker, shared: Arc<Shared>) {
        while self.producers.join_next().await.is_some() {}
        shared.lease_pool.close().await;
        shared.limited_pool.close().await;
        worker.drain_slots(&shared).await;
        self.heartbeat_stop.cancel();
        // Each background task ends at its next look at the stop, after the pass it is in: one
        // cut short in the middle of opening a transaction would leave its connection inside
        // it, and the pool would hand that connection to the application, whose statements
        // would then never commit (sqlx#4393, fixed after sqlx 0.9.0). Only a task still busy
        // after the flush timeout is cut short.
        let timeout = worker.settings.completer.flush_timeout;
        let ended = async { while self.background.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, ended).await.is_err() {
            tracing::warn!("a background task did not end in time; cutting it short");
            self.background.shutdown().await;
        }
        // Gone from the registry of workers (a worker that dies is removed by others later).
        match tokio::time::timeout(timeout, crate::db::worker_delete(shared.pool(), &worker.id))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "could not remove the worker from qron.workers")
            }
            Err(_) => tracing::debug!("could not remove the worker from qron.workers in time"),
        }
    }
}

impl Worker {
    /// Lets running handlers finish within the grace period (every slot free again), then
    /// cancels the rest, which give their slots back at once.
    async fn drain_slots(&self, shared: &Shared) {
        let drain = async {
            for e in &self.executors {
                let _ = e.slots.acquire_many(e.capacity).await;
            }
        };
        tokio::pin!(drain);
        tokio::select! {
            () = &mut drain => return,
            () = tokio::time::sleep(self.settings.shutdown_grace) => {
                tracing::warn!("grace period over: cancelling running handlers");
                shared.hard.cancel();
            }
            () = shared.hard.cancelled() => {}
        }
        drain.await;
    }
}

//! The notifier: listens for notifications and acts on them at once. New due jobs
//! (`qron_jobs`) wake the idle producers of their executor; a cancel (`qron_cancel`) fires the
//! token of the job's execution, or drops it from the buffer; a pause or a resume
//! (`qron_pauses`) updates which executors have paused owners, and a pause hands back the
//! buffered jobs of the owners who paused; a change of limits (`qron_limits`) updates which
//! executors have limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgNotification};
use tokio_util::sync::CancellationToken;

use super::buffer::hand_back;
use super::{CHANNEL, ExecutorState, Shared};
use crate::db::{self, CANCEL_CHANNEL, LIMITS_CHANNEL, PAUSE_CHANNEL};
use crate::schema::channel;
use crate::{ExecutorLimits, Partition, RateLimit};

/// What the notifier acts on.
pub(crate) struct Notifier {
    pub(crate) shared: Arc<Shared>,
    pub(crate) executors: HashMap<&'static str, Arc<ExecutorState>>,
}

impl Notifier {
    /// Listens until `stop`; reconnects when the connection drops (polling meanwhile).
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            let listener = async {
                let mut l = PgListener::connect_with(self.shared.pool()).await?;
                l.listen_all([
                    channel(CHANNEL),
                    channel(CANCEL_CHANNEL),
                    channel(PAUSE_CHANNEL),
                    channel(LIMITS_CHANNEL),
                ])
                .await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = tokio::select! {
                l = listener => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not listen for new jobs; polling meanwhile");
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = stop.cancelled() => return,
                        }
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
                () = stop.cancelled() => return,
            };
            delay = Duration::from_millis(100);
            // Jobs may have come, and pauses and limits changed, while no one listened.
            self.refresh_pauses().await;
            refresh_limits(self.shared.pool(), &self.executors).await;
            for e in self.executors.values() {
                e.wake.notify_one();
            }
            loop {
                tokio::select! {
                    n = listener.recv() => match n {
                        Ok(n) => self.on(&n).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                            break;
                        }
                    },
                    () = stop.cancelled() => return,
                }
            }
        }
    }

    async fn on(&self, n: &PgNotification) {
        let (name, payload) = (n.channel(), n.payload());
        if name == channel(CHANNEL) {
            if let Some(e) = self.executors.get(payload) {
                e.wake.notify_one();
            }
        } else if name == channel(CANCEL_CHANNEL) {
            if let Ok(id) = payload.parse::<i64>() {
                self.cancel(id);
            }
        } else if name == channel(PAUSE_CHANNEL)
            && let Some(e) = self.executors.get(payload)
        {
            self.refresh_pauses().await;
            self.hand_back_paused(e).await;
        } else if name == channel(LIMITS_CHANNEL)
            && let Some(e) = self.executors.get(payload)
        {
            refresh_limits(self.shared.pool(), &self.executors).await;
            if e.limited.load(Ordering::Relaxed) {
                self.hand_back_buffered(e, "executor limited: handing back its buffered jobs");
            }
            // a limit lifted or raised: jobs may be leasable at once
            e.wake.notify_one();
        }
    }

    /// Hands back the buffered jobs of the owners who paused executor `e`: a pause stops what
    /// has not started, in this worker's buffer too.
    async fn hand_back_paused(&self, e: &ExecutorState) {
        let s = &self.shared;
        let owners = match db::executor_paused_owners(s.pool(), e.registration.executor).await {
            Ok(owners) => owners,
            Err(err) => {
                // They run, as jobs leased just before the pause do.
                tracing::warn!(error = %err, executor = e.registration.executor, "could not read who paused the executor; its buffered jobs run");
                return;
            }
        };
        if owners.is_empty() {
            return;
        }
        let paused = e.buffer.take_where(|j| owners.contains(&j.owner));
        self.hand_back(e, paused, "executor paused: handing back its buffered jobs");
    }

    /// Hands back every job buffered for executor `e`: limits now count them, and they would
    /// hold places without running.
    fn hand_back_buffered(&self, e: &ExecutorState, why: &'static str) {
        let jobs = e.buffer.take_where(|_| true);
        self.hand_back(e, jobs, why);
    }

    /// Hands back `jobs` taken from the buffer of executor `e`, in a task of their own (the
    /// notifier goes on listening meanwhile).
    fn hand_back(&self, e: &ExecutorState, jobs: Vec<crate::db::LeasedJob>, why: &'static str) {
        if jobs.is_empty() {
            return;
        }
        tracing::info!(
            executor = e.registration.executor,
            jobs = jobs.len(),
            "{why}"
        );
        let s = self.shared.clone();
        s.metrics.add_buffered(-(jobs.len() as i64));
        tokio::spawn(async move { hand_back(s.pool(), &s.clock, &s.metrics, jobs).await });
    }

    /// Stops job `id` if this worker has it: fires its execution's token, or drops it from a
    /// buffer before it starts (its row is gone: there is no lease to hand back).
    fn cancel(&self, id: i64) {
        if self.shared.cancels.cancel(id) {
            tracing::info!(job.id = id, "job cancelled while it ran: told its handler");
            return;
        }
        for e in self.executors.values() {
            if e.buffer.remove(id).is_some() {
                self.shared.metrics.add_buffered(-1);
                tracing::info!(job.id = id, "job cancelled before it started: dropped");
                return;
            }
        }
    }

    /// Reads which of this worker's executors some owner paused.
    async fn refresh_pauses(&self) {
        refresh_pauses(self.shared.pool(), &self.executors).await;
    }
}

/// Reads which of `executors` some owner paused, and sets their flags (at the worker's start,
/// before its first lease, and whenever pauses change).
pub(crate) async fn refresh_pauses(
    pool: &sqlx::PgPool,
    executors: &HashMap<&'static str, Arc<ExecutorState>>,
) {
    let names: Vec<&str> = executors.keys().copied().collect();
    match db::executors_paused(pool, &names).await {
        Ok(paused) => {
            for (name, e) in executors {
                let now = paused.iter().any(|p| p == name);
                if e.paused.swap(now, Ordering::Relaxed) != now {
                    tracing::info!(executor = name, paused = now, "executor pauses changed");
                }
            }
        }
        Err(e) => {
            // Not known: the lease skips paused owners' jobs until it is (a look at a small
            // table per lease, and never a paused job run).
            for e in executors.values() {
                e.paused.store(true, Ordering::Relaxed);
            }
            tracing::warn!(error = %e, "could not read the executors' pauses; assuming some");
        }
    }
}

/// Reads which of `executors` have limits, and sets their flags (at the worker's start, before
/// its first lease, and whenever limits change). When that cannot be read, each executor is
/// taken as limited: its leases then follow whatever limits the database holds (the limited
/// lease reads them itself), slower but never past them.
pub(crate) async fn refresh_limits(
    pool: &sqlx::PgPool,
    executors: &HashMap<&'static str, Arc<ExecutorState>>,
) {
    let names: Vec<&str> = executors.keys().copied().collect();
    match db::executors_capped(pool, &names).await {
        Ok(capped) => {
            for (name, e) in executors {
                e.capped
                    .store(capped.iter().any(|c| c == name), Ordering::Relaxed);
            }
        }
        Err(err) => {
            for e in executors.values() {
                e.capped.store(true, Ordering::Relaxed);
            }
            tracing::warn!(error = %err, "could not read the owners' caps; waiting as if capped");
        }
    }
    match db::executor_limits_get(pool, Some(&names)).await {
        Ok(limited) => {
            for (name, e) in executors {
                let limits = limited
                    .iter()
                    .find(|l| l.executor == *name)
                    .map(|l| &l.limits);
                let passes_over = limits.is_some_and(|l| {
                    matches!(l.partition(), Some((Partition::Field(_), _)))
                        || matches!(
                            l.rate_limit().and_then(RateLimit::partition),
                            Some(Partition::Field(_))
                        )
                });
                e.passes_over.store(passes_over, Ordering::Relaxed);
                let counted = limits
                    .is_some_and(|l| l.concurrency_limit().is_some() || l.partition().is_some());
                e.counted.store(counted, Ordering::Relaxed);
                let refill = limits.and_then(ExecutorLimits::rate_limit).map_or(0, |r| {
                    u64::try_from(r.refill().as_nanos()).unwrap_or(u64::MAX)
                });
                e.rate_refill.store(refill, Ordering::Relaxed);
                let now = limits.is_some();
                if e.limited.swap(now, Ordering::Relaxed) != now {
                    tracing::info!(executor = name, limited = now, "executor limits changed");
                }
            }
        }
        Err(err) => {
            for e in executors.values() {
                e.passes_over.store(true, Ordering::Relaxed);
                e.counted.store(true, Ordering::Relaxed);
                e.limited.store(true, Ordering::Relaxed);
            }
            tracing::warn!(error = %err, "could not read the executors' limits; leasing under any");
        }
    }
}

//! Why a running handler should wrap up: the worker is stopping, the run-time limit is near,
//! or the job's lease was lost. Read through [`Context::cancelled`](crate::Context::cancelled).

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long before its run-time limit a handler is told to wrap up: a tenth of the limit, at
/// most 30 s.
pub(crate) fn warning_before(limit: Duration) -> Duration {
    (limit / 10).min(Duration::from_secs(30))
}

/// The signals an execution listens to. Cheap to clone (two reference counts).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancellation {
    /// The worker's soft stop.
    stop: Option<CancellationToken>,
    /// The job's own: its lease was lost (see the heartbeat), or a test cancelled it.
    job: Option<CancellationToken>,
    /// When the run-time limit is near.
    near_limit: Option<Instant>,
}

impl Cancellation {
    /// For an execution of the worker.
    pub(crate) fn new(
        stop: CancellationToken,
        job: Option<CancellationToken>,
        near_limit: Option<Instant>,
    ) -> Self {
        Self {
            stop: Some(stop),
            job,
            near_limit,
        }
    }

    /// Already cancelled (for unit tests of a handler's wrap-up).
    pub(crate) fn fired() -> Self {
        let job = CancellationToken::new();
        job.cancel();
        Self {
            job: Some(job),
            ..Self::default()
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
            || self
                .job
                .as_ref()
                .is_some_and(CancellationToken::is_cancelled)
            || self.near_limit.is_some_and(|t| Instant::now() >= t)
    }

    pub(crate) async fn cancelled(&self) {
        let stop = async {
            match &self.stop {
                Some(t) => t.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let job = async {
            match &self.job {
                Some(t) => t.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let near = async {
            match self.near_limit {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop => {}
            () = job => {}
            () = near => {}
        }
    }
}

/// The executions of a worker that an operator can cancel, by job id: the notifier fires the
/// token of the job a cancel names ([`Client::cancel`](crate::Client::cancel)).
///
/// An execution registers only once its handler did not finish on its first poll: a job that
/// completes at once costs nothing here.
#[derive(Debug, Default)]
pub(crate) struct Cancels {
    /// By (job, lease token): two executions of one job (after a rescue) each have their own.
    running: std::sync::Mutex<std::collections::HashMap<(i64, i64), CancellationToken>>,
}

impl Cancels {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(i64, i64), CancellationToken>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers the execution of job `id` under lease `lease` until the guard drops.
    pub(crate) fn register(
        self: &std::sync::Arc<Self>,
        id: i64,
        lease: i64,
        token: CancellationToken,
    ) -> Registered {
        self.lock().insert((id, lease), token);
        Registered {
            cancels: self.clone(),
            key: (id, lease),
        }
    }

    /// Fires the tokens of job `id`'s executions here; whether this worker runs it.
    pub(crate) fn cancel(&self, id: i64) -> bool {
        let running = self.lock();
        let mut found = false;
        for ((job, _), token) in running.iter() {
            if *job == id {
                token.cancel();
                found = true;
            }
        }
        found
    }
}

/// An execution's place in [`Cancels`], removed on drop.
#[derive(Debug)]
pub(crate) struct Registered {
    cancels: std::sync::Arc<Cancels>,
    key: (i64, i64),
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.cancels.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_cancel_reaches_the_second_execution_after_the_first_ended() {
        let cancels = std::sync::Arc::new(Cancels::default());
        let first = CancellationToken::new();
        let second = CancellationToken::new();
        let a = cancels.register(7, 5, first.clone());
        let b = cancels.register(7, 6, second.clone());
        drop(a);
        assert!(cancels.cancel(7));
        assert!(second.is_cancelled() && !first.is_cancelled());
        drop(b);
        assert!(!cancels.cancel(7));
    }

    #[test]
    fn the_warning_comes_a_tenth_before_the_limit_and_at_most_half_a_minute() {
        assert_eq!(
            warning_before(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            warning_before(Duration::from_secs(7200)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_cancel_fires_the_token_of_a_registered_execution_only() {
        let cancels = std::sync::Arc::new(Cancels::default());
        let token = CancellationToken::new();
        let registered = cancels.register(7, 1, token.clone());
        assert!(!cancels.cancel(8));
        assert!(!token.is_cancelled());
        assert!(cancels.cancel(7));
        assert!(token.is_cancelled());
        drop(registered);
        assert!(!cancels.cancel(7), "removed when the execution ends");
    }

    #[tokio::test(start_paused = true)]
    async fn it_fires_on_any_of_its_signals() {
        assert!(!Cancellation::default().is_cancelled());
        assert!(Cancellation::fired().is_cancelled());
        Cancellation::fired().cancelled().await;

        let stop = CancellationToken::new();
        let c = Cancellation::new(stop.clone(), None, None);
        assert!(!c.is_cancelled());
        stop.cancel();
        assert!(c.is_cancelled());
        c.cancelled().await;

        let job = CancellationToken::new();
        let c = Cancellation::new(CancellationToken::new(), Some(job.clone()), None);
        job.cancel();
        c.cancelled().await;

        let at = Instant::now() + Duration::from_secs(5);
        let c = Cancellation::new(CancellationToken::new(), None, Some(at));
        assert!(!c.is_cancelled());
        c.cancelled().await;
        assert_eq!(Instant::now(), at);
        assert!(c.is_cancelled());
    }
}

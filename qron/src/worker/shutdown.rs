//! Stopping a worker: the [`Stopper`] an application holds, the guard that stops a worker
//! whose `run` future is dropped, the signals `run_until_signal` waits for, and the supervision
//! of the worker's own tasks.

use std::time::Duration;

use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;

use crate::job_error::panic_message;

/// Stops a running worker. Cheap to clone.
///
/// ```no_run
/// # async fn demo(worker: qron::Worker) {
/// let stop = worker.stopper();
/// let running = tokio::spawn(worker.run());
/// stop.soft(); // finish what runs, write every outcome, return
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Stopper {
    pub(crate) soft: CancellationToken,
    pub(crate) hard: CancellationToken,
}

impl Stopper {
    /// Stop leasing; let running handlers finish (within the grace period); write every
    /// outcome; return.
    ///
    /// ```no_run
    /// # fn demo(worker: qron::Worker) {
    /// worker.stopper().soft();
    /// # }
    /// ```
    pub fn soft(&self) {
        self.soft.cancel();
    }

    /// Cancel running handlers now; their jobs come back when their leases expire.
    ///
    /// ```no_run
    /// # fn demo(worker: qron::Worker) {
    /// worker.stopper().hard();
    /// # }
    /// ```
    pub fn hard(&self) {
        self.soft.cancel();
        self.hard.cancel();
    }
}

/// Runs one of the worker's tasks, reporting its name and, if it panicked, the panic's
/// message.
pub(super) async fn supervised(
    task: &'static str,
    f: impl std::future::Future<Output = ()>,
) -> (&'static str, Option<String>) {
    match std::panic::AssertUnwindSafe(f).catch_unwind().await {
        Ok(()) => (task, None),
        Err(panic) => (task, Some(format!("panicked: {}", panic_message(panic)))),
    }
}

/// Stops a worker whose `run` future is dropped before it returned: a hard stop, and the
/// completer's flush bounded by the flush timeout.
pub(super) struct RunGuard {
    pub(super) stopper: Stopper,
    /// The completer, until `run` has waited for it.
    pub(super) completer: Option<tokio::task::JoinHandle<()>>,
    pub(super) flush_timeout: Duration,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let Some(mut completer) = self.completer.take() else {
            return;
        };
        tracing::warn!("the worker's run future was dropped: stopping it hard");
        self.stopper.hard();
        let timeout = self.flush_timeout;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if tokio::time::timeout(timeout, &mut completer).await.is_err() {
                    completer.abort();
                }
            });
        } else {
            completer.abort();
        }
    }
}

/// Ctrl-C, and SIGTERM on Unix, listened for from the moment this is made: a signal that comes
/// before the first `recv` is not lost, and neither is a second one.
pub(super) struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening; from now on these signals no longer end the process. Needs a Tokio
    /// runtime.
    pub(super) fn listen() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// The next signal.
    pub(super) async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

//! The notifier: listens for `qron_jobs` notifications and wakes the idle producers of their
//! executor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{CHANNEL, ExecutorState};

/// Wakes producers on notifications of new due jobs; reconnects when the connection drops.
pub(crate) async fn listen(
    pool: sqlx::PgPool,
    executors: HashMap<&'static str, Arc<ExecutorState>>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
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
        // Jobs may have come while no one listened.
        for e in executors.values() {
            e.wake.notify_one();
        }
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) => {
                        if let Some(e) = executors.get(n.payload()) {
                            e.wake.notify_one();
                        }
                    }
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

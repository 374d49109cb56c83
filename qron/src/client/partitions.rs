//! The executors limited per key, as a client last read them: whether a new job's partition
//! key is worth looking up (see `migrations/0030_keyed_queue.sql`).
//!
//! The key is a way in for the workers' leases, never the rule they count by: a view a second
//! old only leaves a job written meanwhile without its key (its lease then finds it by the
//! scan of the queue), so a one-job insert for an executor without such a limit (most of them)
//! skips the look-up, at the cost of one read a second.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;

use crate::schema::sql;

/// How long a view of the limits serves before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The executors limited per key, read at most once a [`FRESH_FOR`].
#[derive(Debug, Default)]
pub(crate) struct Partitions {
    seen: Mutex<Option<(Instant, Arc<HashSet<String>>)>>,
}

impl Partitions {
    /// The executors limited per key: as read less than [`FRESH_FOR`] ago, or read now through
    /// `conn`.
    pub(crate) async fn read(&self, conn: &mut PgConnection) -> sqlx::Result<Arc<HashSet<String>>> {
        if let Some((at, executors)) = self.seen.lock().map_or(None, |s| s.clone())
            && at.elapsed() < FRESH_FOR
        {
            return Ok(executors);
        }
        let executors: Vec<String> = sqlx::query_scalar(sql(
            "SELECT executor FROM qron.executor_limits WHERE partition_by IS NOT NULL",
        ))
        .fetch_all(conn)
        .await?;
        let executors = Arc::new(executors.into_iter().collect::<HashSet<_>>());
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((Instant::now(), executors.clone()));
        }
        Ok(executors)
    }

    /// Forgets the view: the next insert reads the limits again (this client changed them).
    pub(crate) fn forget(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = None;
        }
    }
}

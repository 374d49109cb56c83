//! The producer: leases due jobs of one executor into its free slots, and sleeps until the
//! next due job, a notification or the poll interval when there is none.

use super::*;

/// Leases due jobs of one executor whenever it has free slots.
pub(crate) async fn produce(exec: Arc<ExecutorState>, shared: Arc<Shared>) {
    let executor = exec.registration.executor;
    let mut error_delay = Duration::from_millis(100);
    // Where the last full batch stopped in the lease order: the next lease starts after it,
    // past the entries of jobs just leased (see `db::job_lease`). A lease from the start at
    // least every poll interval, and whenever one after the cursor comes back short, serves
    // the jobs that became due before it (retries, restarts, rescued leases).
    let mut cursor: Option<(DateTime<Utc>, i64)> = None;
    let mut from_start = std::time::Instant::now();
    // Whether the last lease found fewer jobs than it asked for (see `db::job_lease`).
    let mut drained = true;
    loop {
        if shared.soft.is_cancelled() {
            break;
        }
        let free = exec.slots.available_permits();
        if free == 0 {
            tokio::select! {
                () = exec.slot_freed.notified() => continue,
                () = shared.soft.cancelled() => break,
            }
        }
        if shared.completer.over_limit() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if free < exec.gather {
            let deadline = tokio::time::Instant::now() + LEASE_GATHER;
            while exec.slots.available_permits() < exec.gather {
                tokio::select! {
                    () = exec.slot_freed.notified() => {}
                    () = tokio::time::sleep_until(deadline) => break,
                    () = shared.soft.cancelled() => break,
                }
            }
        }
        // Slots are taken before the lease, so that the executor's producers together never
        // lease more jobs than it has slots.
        let want = exec.slots.available_permits().min(shared.batch_size);
        if want == 0 {
            continue;
        }
        let Ok(mut reserved) = exec
            .slots
            .clone()
            .try_acquire_many_owned(u32::try_from(want).unwrap_or(u32::MAX))
        else {
            continue;
        };
        exec.freed.store(0, Ordering::Relaxed);
        let now = shared.clock.now();
        let after = cursor.filter(|_| from_start.elapsed() < shared.poll_interval);
        if after.is_none() {
            from_start = std::time::Instant::now();
        }
        let leased = db::job_lease(
            &shared.pool,
            drained && after.is_none(),
            executor,
            i64::try_from(want).unwrap_or(i64::MAX),
            now,
            now + shared.lease_ahead,
            after,
            &shared.worker_id,
        )
        .await;
        let jobs = match leased {
            Ok(jobs) => {
                error_delay = Duration::from_millis(100);
                jobs
            }
            Err(e) => {
                tracing::warn!(executor, error = %e, "could not lease jobs; retrying");
                tokio::select! {
                    () = tokio::time::sleep(error_delay) => {}
                    () = shared.soft.cancelled() => break,
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let full = jobs.len() == want;
        drained = !full;
        cursor = if full {
            jobs.iter().map(|j| (j.run_at, j.id)).max()
        } else {
            None
        };
        shared
            .metrics
            .leased
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        shared.metrics.polls.fetch_add(1, Ordering::Relaxed);
        for job in jobs {
            let Some(permit) = reserved.split(1) else {
                break;
            };
            shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
            // Boxed: the execution's state is large (1.7 KB), and spawning moves it several
            // times on its way into the task.
            tokio::spawn(Box::pin(execute(job, exec.clone(), shared.clone(), permit)));
        }
        // Slots reserved for jobs that were not there go back.
        drop(reserved);
        if full || after.is_some() {
            continue;
        }
        // Idle: sleep until the poll interval, the next job to lease, or a notification (of a
        // new job, or of one that any worker's outcome made ready again: see
        // `db::job_complete_many`).
        let longest = shared.poll_interval;
        // Only a job due before the longest sleep shortens it.
        let horizon = chrono::Duration::from_std(longest)
            .ok()
            .and_then(|d| d.checked_add(&shared.lease_ahead))
            .and_then(|d| shared.clock.now().checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let wait = match db::job_next_due(&shared.pool, executor, horizon).await {
            Ok(due) => match due {
                Some(due) => (due - shared.lease_ahead - shared.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(longest),
                None => longest,
            },
            Err(_) => longest,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = exec.wake.notified() => {}
            () = shared.soft.cancelled() => break,
        }
    }
}

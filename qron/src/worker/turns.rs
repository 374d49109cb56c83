//! Where an executor's next lease starts: the owner whose turn comes next, and the cursors past
//! the jobs the last leases took (see `db::job_lease`); and the order of one lease's jobs, in its
//! owners' rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::{Cursor, LeasedJob};

/// One executor's place in the lease order.
#[derive(Debug)]
pub(crate) struct Turns {
    /// Where the last full lease stopped in each owner's jobs: the next lease takes that
    /// owner's jobs after it, past the entries of jobs just leased. A lease from the start at
    /// least every poll interval, and whenever one after the cursors comes back short, serves
    /// the jobs that became due before them (retries, restarts, rescued leases).
    cursors: Arc<[Cursor]>,
    from_start: Instant,
    /// The owner whose turn came last: the next lease starts with the one before it (owners
    /// take turns in descending byte order, see `db::JOB_LEASE`).
    last: String,
}

/// Where one lease starts.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub cursors: Arc<[Cursor]>,
    pub turn_after: String,
}

impl Default for Turns {
    fn default() -> Self {
        Self {
            cursors: Arc::new([]),
            from_start: Instant::now(),
            last: String::new(),
        }
    }
}

impl Turns {
    /// Where the next lease starts: past the cursors, unless it is time (every `from_start`)
    /// to lease from the start.
    pub(crate) fn start(&mut self, from_start: Duration) -> Start {
        if self.from_start.elapsed() >= from_start {
            self.cursors = Arc::new([]);
        }
        if self.cursors.is_empty() {
            self.from_start = Instant::now();
        }
        Start {
            cursors: self.cursors.clone(),
            turn_after: self.last.clone(),
        }
    }

    /// Takes in the jobs a lease that started at `start` brought; `full` when it brought all
    /// it asked for.
    pub(crate) fn landed(&mut self, start: &Start, jobs: &[LeasedJob], full: bool) {
        // The owners took their turns in descending byte order from the one before
        // `turn_after`, wrapping round to the last: the last turn is the least owner from
        // `turn_after` on if the walk wrapped, else the least one.
        let owners = || jobs.iter().map(|j| j.owner.as_str());
        let last = owners()
            .filter(|o| *o >= start.turn_after.as_str())
            .min()
            .or_else(|| owners().min());
        if let Some(last) = last {
            last.clone_into(&mut self.last);
        }
        self.cursors = if full {
            let mut last: std::collections::BTreeMap<&str, (_, i64)> = Default::default();
            for j in jobs {
                let at = last.entry(j.owner.as_str()).or_insert((j.lease_at, j.id));
                *at = (*at).max((j.lease_at, j.id));
            }
            last.into_iter()
                .map(|(owner, (lease_at, id))| Cursor {
                    owner: owner.to_owned(),
                    lease_at,
                    id,
                })
                .collect()
        } else {
            Arc::new([])
        };
    }
}

/// Puts one lease's jobs (returned in no order) in the order the lease took them: each owner's
/// in its lease order (higher priorities first), the owners' in rounds by their weights (an
/// owner of weight 3 has three jobs a round), so that the buffer starts them as fairly as the
/// lease shared them.
pub(crate) fn in_lease_order(jobs: &mut Vec<LeasedJob>) {
    jobs.sort_unstable_by_key(|j| (j.turn, j.lease_at, j.id));
    let mut paced: Vec<(f64, i64, LeasedJob)> = Vec::with_capacity(jobs.len());
    let mut round = 0_u32;
    for (i, j) in jobs.drain(..).enumerate() {
        round = match paced.last() {
            Some((_, turn, _)) if i > 0 && *turn == j.turn => round + 1,
            _ => 1,
        };
        paced.push((f64::from(round) / f64::from(j.weight.max(1)), j.turn, j));
    }
    paced.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    jobs.extend(paced.into_iter().map(|(_, _, j)| j));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn job(id: i64, owner: &str, secs: i64) -> LeasedJob {
        let at = Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
        LeasedJob::for_test(id, owner, at)
    }

    #[test]
    fn the_next_turn_follows_the_last_owner_served_in_descending_byte_order_wrapping_round() {
        let mut turns = Turns::default();
        let start = turns.start(Duration::from_secs(1));
        assert_eq!(start.turn_after, "");
        // From the start: the last turn is the least.
        turns.landed(&start, &[job(1, "b", 1), job(2, "a", 1)], false);
        assert_eq!(turns.start(Duration::from_secs(1)).turn_after, "a");
        // Before "b": "a", then round to "c"; the last turn was "c", not "a".
        let start = Start {
            cursors: Arc::new([]),
            turn_after: "b".into(),
        };
        turns.landed(&start, &[job(3, "c", 1), job(4, "a", 1)], false);
        assert_eq!(turns.start(Duration::from_secs(1)).turn_after, "c");
        // Byte order: "B" comes before "a".
        let start = Start {
            cursors: Arc::new([]),
            turn_after: "a".into(),
        };
        turns.landed(&start, &[job(5, "a", 1), job(6, "B", 1)], false);
        assert_eq!(turns.start(Duration::from_secs(1)).turn_after, "a");
        // A lease that brought nothing leaves the turn where it was.
        turns.landed(&start, &[], false);
        assert_eq!(turns.start(Duration::from_secs(1)).turn_after, "a");
    }

    #[test]
    fn a_full_lease_leaves_a_cursor_per_owner_at_its_last_job_until_the_next_from_the_start() {
        let mut turns = Turns::default();
        let start = turns.start(Duration::from_secs(60));
        let jobs = [
            job(1, "a", 5),
            job(7, "b", 1),
            job(3, "a", 9),
            job(2, "a", 9),
        ];
        turns.landed(&start, &jobs, true);
        let next = turns.start(Duration::from_secs(60));
        let cursors: Vec<_> = next
            .cursors
            .iter()
            .map(|c| (c.owner.as_str(), c.lease_at.and_utc().timestamp(), c.id))
            .collect();
        assert_eq!(cursors, [("a", 9, 3), ("b", 1, 7)]);
        // A short lease: from the start again.
        turns.landed(&next, &jobs[..1], false);
        assert!(turns.start(Duration::from_secs(60)).cursors.is_empty());
        // And at least every `from_start`.
        turns.landed(&start, &jobs, true);
        assert!(turns.start(Duration::ZERO).cursors.is_empty());
    }
}

//! The hand-over: a limited executor's lease that first ends the one-off jobs whose outcomes a
//! worker handed off (see `worker::handoff`), in one statement, so that the places they free
//! are taken in the same commit, with one round trip and the limit lock held for the statement
//! alone.

use super::limited::{bind_holders, lease_limited};
use super::{Lease, LeasedJob, lease_query};
use crate::db::{
    Finish, finish_rows, history_columns, leases_only, leaves_depended_on, succeeded_history,
};
use sqlx::PgExecutor;

/// The limited lease's answer beside what the hand-over ended: every leased job's row, or one
/// row without a job when none was leased; the first row carries the leases (ids, tokens) of
/// the jobs ended (the others none: a lease of many jobs does not repeat them).
macro_rules! handed_over {
    () => {
        "SELECT l.*, CASE WHEN COALESCE(l.nth, 1) = 1 THEN m.ids END AS moved_ids,
            CASE WHEN COALESCE(l.nth, 1) = 1 THEN m.tokens END AS moved_tokens
       FROM (SELECT COALESCE(array_agg(id), '{}') AS ids,
                    COALESCE(array_agg(lease_token), '{}') AS tokens
               FROM done) m
       LEFT JOIN (SELECT leased.*, row_number() OVER () AS nth FROM leased) l ON true"
    };
}

/// The places the jobs ended here (`done`) freed: of those that held one under a limit per
/// key, each whose place did not pass to a successor (a row of its key holding it still).
macro_rules! freed_places {
    () => {
        "SELECT d.owner, d.limit_key AS key FROM done d
          WHERE d.limit_key IS NOT NULL AND d.place IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM qron.jobs s
                             WHERE s.executor = $1 AND s.limit_key = d.limit_key
                               AND s.lease_expires_at > $2 AND s.place = d.place
                               AND s.id <> d.id)"
    };
}

/// The executor's limits read (`lim`) before any row is ended: under a limit per key alone,
/// they take the executor's limit lock shared, and a change of the limits, which holds it and
/// then writes the leased rows, must find none of them locked by a hand-over waiting for it.
macro_rules! limits_first {
    () => {
        "
           AND (SELECT count(*) FROM lim) > 0"
    };
}

/// Plain successes moved to the history (as `FINISH_SUCCEEDED`: leases in `$19`–`$21`, ended
/// at the lease's time `$2`), then [`JOB_LEASE_LIMITED`](super::limited), which takes the
/// limit lock once they are done and counts the places as they left them (the limits are read
/// first: see `limits_first!`).
const HAND_OVER_SUCCEEDED: &str = lease_limited!(
    finished: concat!(
        "
    ",
        finish_rows!(
            ids: "$19",
            leases: leases_only!("$19", "$20", "$21"),
            returned: "j.*",
            also: limits_first!()
        ),
        ",",
        succeeded_history!("$2"),
        ","
    ),
    gate: "(SELECT count(*) FROM done) >= 0",
    freed: freed_places!(),
    select: handed_over!()
);

/// The same for jobs the history does not keep (as `FINISH_DELETED`).
const HAND_OVER_DELETED: &str = lease_limited!(
    finished: concat!(
        "
    ",
        finish_rows!(
            ids: "$19",
            leases: leases_only!("$19", "$20", "$21"),
            returned: "j.id, j.lease_token, j.owner, j.limit_key, j.place",
            also: concat!(leaves_depended_on!(), limits_first!())
        ),
        ","
    ),
    gate: "(SELECT count(*) FROM done) >= 0",
    freed: freed_places!(),
    select: handed_over!()
);

/// A row of a hand-over: a leased job, if any, and (on the first row) the leases of the jobs
/// ended.
struct HandedOver {
    job: Option<LeasedJob>,
    moved: Option<Vec<(i64, i64)>>,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for HandedOver {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row as _;
        let ids: Option<Vec<i64>> = row.try_get("moved_ids")?;
        let tokens: Option<Vec<i64>> = row.try_get("moved_tokens")?;
        let job = match row.try_get::<Option<i64>, _>("id")? {
            Some(_) => Some(LeasedJob::from_row(row)?),
            None => None,
        };
        Ok(Self {
            job,
            moved: ids.map(|ids| ids.into_iter().zip(tokens.unwrap_or_default()).collect()),
        })
    }
}

/// Ends `finishes` (plain successes the history keeps when `kept`, or else ends it does not
/// keep: see `FinishKind`) and leases as [`job_lease_limited`](super::job_lease_limited) does,
/// alone, in one statement. Returns the jobs leased and the leases (id, token) of the jobs
/// ended; a job not ended (paused or given a new schedule while it ran, or its lease moved
/// on) is the caller's to write as the completer does.
pub(crate) async fn job_hand_over<'e>(
    ex: impl PgExecutor<'e>,
    p: &Lease<'_>,
    kept: bool,
    finishes: &[&Finish],
    holders: &[(i64, i64)],
) -> sqlx::Result<(Vec<LeasedJob>, Vec<(i64, i64)>)> {
    let text = if kept {
        HAND_OVER_SUCCEEDED
    } else {
        HAND_OVER_DELETED
    };
    let rows: Vec<HandedOver> = bind_holders(lease_query(text, p).bind(false), holders)
        .bind(finishes.iter().map(|f| f.id).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| f.token).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| f.lease_run_at).collect::<Vec<_>>())
        .fetch_all(ex)
        .await?;
    let mut moved = Vec::new();
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        moved.extend(row.moved.into_iter().flatten());
        jobs.extend(row.job);
    }
    Ok((jobs, moved))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::schema::sql;
    use crate::{ExecutorLimits, History, JobStatus, NewJob};
    use chrono::Utc;
    use std::time::Duration;

    /// Hands `ends` over (kept by the history when `kept`) with lease `p` and no holders.
    async fn hand(
        db: &crate::testing::TestDb,
        p: &Lease<'_>,
        kept: bool,
        ends: &[Finish],
    ) -> (Vec<LeasedJob>, Vec<(i64, i64)>) {
        job_hand_over(db.pool(), p, kept, &ends.iter().collect::<Vec<_>>(), &[])
            .await
            .unwrap()
    }

    /// A plain success of `job`, as its slot hands it off.
    fn success(job: &LeasedJob, history: History) -> Finish {
        Finish {
            id: job.id,
            token: job.lease_token,
            revision: job.revision,
            lease_run_at: job.run_at,
            history,
            status: JobStatus::Succeeded,
            payload: None,
            output: None,
            kept: false,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_hand_over_ends_its_jobs_and_its_lease_takes_the_places_they_free() {
        let db = crate::testing::TestDb::new().await.unwrap();
        let client = db.client();
        client
            .create_many((0..6).map(|i| {
                NewJob::new("hand", "@after -1s").payload(serde_json::json!({ "k": i % 2 }))
            }))
            .await
            .unwrap();
        client
            .set_executor_limits("hand", ExecutorLimits::new().per_field("k", 1))
            .await
            .unwrap();
        let lease = || Lease::due("hand", "test", 10, Utc::now(), Duration::from_secs(30));
        let first = super::super::job_lease_limited(db.pool(), &lease(), false, &[])
            .await
            .unwrap();
        assert_eq!(first.len(), 2, "one a key");
        // The first key's job ended; the other's lease moved on (a stale outcome): one place
        // freed, taken in the same statement by the first key's next job.
        sqlx::query(sql(
            "UPDATE qron.jobs SET lease_token = lease_token + 1 WHERE id = $1",
        ))
        .bind(first[1].id)
        .execute(db.pool())
        .await
        .unwrap();
        let ends = [
            success(&first[0], History::default()),
            success(&first[1], History::default()),
        ];
        let (jobs, moved) = hand(&db, &lease(), true, &ends).await;
        assert_eq!(moved, [(first[0].id, first[0].lease_token)]);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].payload, first[0].payload,
            "the freed key's next job"
        );
        let kept: Vec<(i64, String)> =
            sqlx::query_as(sql("SELECT id, status::text FROM qron.jobs_history"))
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(kept, [(first[0].id, "succeeded".to_owned())]);
        // Nothing to lease: the ends are written, and said, all the same; ends the history
        // does not keep leave no row there.
        client
            .set_executor_limits("hand", ExecutorLimits::new().concurrency(1))
            .await
            .unwrap();
        let ends = [success(&jobs[0], History::Failed)];
        let (none, moved) = hand(&db, &lease(), false, &ends).await;
        assert!(none.is_empty(), "the stale job still holds the one place");
        assert_eq!(moved, [(jobs[0].id, jobs[0].lease_token)]);
        let history: i64 = sqlx::query_scalar(sql("SELECT count(*) FROM qron.jobs_history"))
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(history, 1);
        let left: i64 = sqlx::query_scalar(sql("SELECT count(*) FROM qron.jobs WHERE id = $1"))
            .bind(jobs[0].id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
        // Many jobs leased: the ends said once, not once a job.
        client
            .set_executor_limits("hand", ExecutorLimits::new().concurrency(100))
            .await
            .unwrap();
        let stale = Finish {
            token: first[1].lease_token + 1,
            ..success(&first[1], History::default())
        };
        let (many, moved) = job_hand_over(db.pool(), &lease(), true, &[&stale], &[])
            .await
            .unwrap();
        assert_eq!(many.len(), 3);
        assert_eq!(moved, [(first[1].id, first[1].lease_token + 1)]);
    }

    #[tokio::test]
    async fn a_hand_over_takes_the_places_its_ends_freed_however_deep_their_keys_next_jobs_lie() {
        let db = crate::testing::TestDb::new().await.unwrap();
        // Key a's next job lies behind 30 of key c's, which has room for one.
        super::super::key_behind_another(&db.client(), "refill", "c", 30).await;
        let lease = |n| Lease::due("refill", "test", n, Utc::now(), Duration::from_secs(30));
        let first = super::super::job_lease_limited(db.pool(), &lease(1), false, &[])
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        let ends = [success(&first[0], History::default())];
        let (jobs, moved) = hand(&db, &lease(10), true, &ends).await;
        assert_eq!(moved, [(first[0].id, first[0].lease_token)]);
        let mut keys: Vec<Option<String>> = jobs.iter().map(|j| j.payload.clone()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                Some(r#"{"k": "a"}"#.to_owned()),
                Some(r#"{"k": "c"}"#.to_owned())
            ],
            "a's freed place taken again, and c's one"
        );
    }

    #[tokio::test]
    async fn a_hand_over_waiting_for_a_change_of_the_limits_holds_no_row_the_change_writes() {
        // Under a limit per key alone, the hand-over reads the limits the change committed.
        let key = |n| ExecutorLimits::new().per_field("k", n);
        assert_eq!(hand_over_beside_a_change(key(1), key(2)).await, 2);
        // Under a limit in all, a change of its number writes no leased row; the hand-over
        // goes by the limit it read as it began (the change holds from the next lease).
        let all = |n| ExecutorLimits::new().concurrency(n);
        assert_eq!(hand_over_beside_a_change(all(2), all(3)).await, 1);
    }

    /// A hand-over that ends one of two jobs leased under `before`, and waits for a change to
    /// `after` that holds the executor's limit lock: the jobs it leased once the change is
    /// committed, without a deadlock.
    async fn hand_over_beside_a_change(before: ExecutorLimits, after: ExecutorLimits) -> usize {
        let db = crate::testing::TestDb::new().await.unwrap();
        let client = db.client();
        client.set_executor_limits("change", before).await.unwrap();
        client
            .create_many((0..4).map(|i| {
                NewJob::new("change", "@after -1s").payload(serde_json::json!({ "k": i % 2 }))
            }))
            .await
            .unwrap();
        let lease = || Lease::due("change", "test", 10, Utc::now(), Duration::from_secs(30));
        let first = super::super::job_lease_limited(db.pool(), &lease(), false, &[])
            .await
            .unwrap();
        assert_eq!(first.len(), 2, "one a key");
        // A change of the limits holds the executor's lock; a hand-over comes meanwhile.
        let mut change = db.pool().begin().await.unwrap();
        sqlx::query(sql(super::super::EXECUTOR_LIMIT_LOCK))
            .bind("change")
            .execute(&mut *change)
            .await
            .unwrap();
        let pool = db.pool().clone();
        let ends = [success(&first[0], History::default())];
        let handed = tokio::spawn(async move {
            let lease = Lease::due("change", "test", 10, Utc::now(), Duration::from_secs(30));
            job_hand_over(&pool, &lease, true, &ends.iter().collect::<Vec<_>>(), &[]).await
        });
        assert!(super::super::tests::waits_for_the_limit_lock(db.pool()).await);
        // The change then writes the leased rows' keys, the ended job's among them: it waits
        // for no row of the hand-over's, and the hand-over goes on once it is committed.
        tokio::time::timeout(
            Duration::from_secs(10),
            crate::db::executor_limits_set(&mut change, "change", &after, Utc::now()),
        )
        .await
        .expect("the change waits for no row of the hand-over's")
        .unwrap();
        change.commit().await.unwrap();
        let (jobs, moved) = tokio::time::timeout(Duration::from_secs(10), handed)
            .await
            .unwrap()
            .unwrap()
            .expect("no deadlock");
        assert_eq!(moved, [(first[0].id, first[0].lease_token)]);
        jobs.len()
    }
}

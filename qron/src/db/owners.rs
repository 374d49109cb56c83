//! Fairness between owners: their weights in the lease's shares, and their caps on their own
//! jobs of an executor (see `migrations/0019_owners.sql`; the leases read them in
//! `owner_columns`).

use sqlx::PgExecutor;

use crate::schema::sql;

/// Sets owner `$1`'s weight to `$2`.
const OWNER_WEIGHT_SET: &str = "
    INSERT INTO qron.owner_weights (owner, weight, updated_at) VALUES ($1, $2, now())
    ON CONFLICT (owner) DO UPDATE SET weight = EXCLUDED.weight, updated_at = EXCLUDED.updated_at";

/// Sets `owner`'s weight in the leases' shares.
pub(crate) async fn owner_weight_set<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    weight: i32,
) -> sqlx::Result<()> {
    sqlx::query(sql(OWNER_WEIGHT_SET))
        .bind(owner)
        .bind(weight)
        .execute(ex)
        .await?;
    Ok(())
}

/// Clears `owner`'s weight (back to 1); whether it had one.
pub(crate) async fn owner_weight_clear<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(sql("DELETE FROM qron.owner_weights WHERE owner = $1"))
        .bind(owner)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Every owner's weight that is set, by owner.
pub(crate) async fn owner_weights<'e>(ex: impl PgExecutor<'e>) -> sqlx::Result<Vec<(String, i32)>> {
    sqlx::query_as(sql(
        "SELECT owner, weight FROM qron.owner_weights ORDER BY owner",
    ))
    .fetch_all(ex)
    .await
}

/// Sets owner `$1`'s cap on executor `$2` to `$3`, and tells the workers (the executor's
/// producers then wait for places when its due jobs are all capped). The owner's jobs leased
/// now are counted under it at once (a lease on its way as it is set may not be: at most one
/// lease's jobs, once).
const OWNER_CAP_SET: &str = "
    WITH saved AS (
        INSERT INTO qron.owner_limits (owner, executor, concurrency, updated_at)
        VALUES ($1, $2, $3, now())
        ON CONFLICT (executor, owner)
        DO UPDATE SET concurrency = EXCLUDED.concurrency, updated_at = EXCLUDED.updated_at
        RETURNING 1),
    keyed AS (
        UPDATE qron.jobs j SET cap_key = j.owner
         WHERE j.executor = $2 AND j.owner = $1 AND j.lease_expires_at IS NOT NULL
        RETURNING 1)
    SELECT (SELECT count(*) FROM saved) + (SELECT count(*) FROM keyed),
           pg_notify('qron_limits', $2) IS NULL";

/// Sets `owner`'s cap on its jobs of `executor` (see [`OWNER_CAP_SET`]).
pub(crate) async fn owner_cap_set<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    executor: &str,
    concurrency: i32,
) -> sqlx::Result<()> {
    sqlx::query(sql(OWNER_CAP_SET))
        .bind(owner)
        .bind(executor)
        .bind(concurrency)
        .execute(ex)
        .await?;
    Ok(())
}

/// Clears owner `$1`'s cap on executor `$2`, and tells and wakes the workers.
const OWNER_CAP_CLEAR: &str = "
    WITH gone AS (DELETE FROM qron.owner_limits WHERE owner = $1 AND executor = $2 RETURNING 1)
    SELECT (SELECT count(*) FROM gone) > 0,
           pg_notify('qron_limits', $2) IS NULL AND pg_notify('qron_jobs', $2) IS NULL";

/// Clears `owner`'s cap on `executor`; whether it had one.
pub(crate) async fn owner_cap_clear<'e>(
    ex: impl PgExecutor<'e>,
    owner: &str,
    executor: &str,
) -> sqlx::Result<bool> {
    let (had, _): (bool, bool) = sqlx::query_as(sql(OWNER_CAP_CLEAR))
        .bind(owner)
        .bind(executor)
        .fetch_one(ex)
        .await?;
    Ok(had)
}

/// An owner's cap on an executor, and its jobs leased under it now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OwnerCap {
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub owner: String,
    pub executor: String,
    pub concurrency: i32,
    pub taken: i64,
}

/// The caps of `owner` (of every owner with `None`), by owner and executor: each with its jobs
/// leased under it now.
pub(crate) async fn owner_caps<'e>(
    ex: impl PgExecutor<'e>,
    owner: Option<&str>,
) -> sqlx::Result<Vec<OwnerCap>> {
    sqlx::query_as(sql("
        SELECT c.owner, c.executor, c.concurrency,
               (SELECT count(*) FROM qron.jobs j
                 WHERE j.executor = c.executor AND j.cap_key = c.owner
                   AND j.lease_expires_at IS NOT NULL AND j.lease_expires_at > now()) AS taken
          FROM qron.owner_limits c
         WHERE $1::text IS NULL OR c.owner = $1
         ORDER BY c.owner, c.executor"))
    .bind(owner)
    .fetch_all(ex)
    .await
}

/// Of `executors`, those on which some owner has a cap.
pub(crate) async fn executors_capped<'e>(
    ex: impl PgExecutor<'e>,
    executors: &[&str],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(sql(
        "SELECT DISTINCT executor FROM qron.owner_limits WHERE executor = ANY($1)",
    ))
    .bind(executors)
    .fetch_all(ex)
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::NewJob;
    use crate::db::{Lease, LeasedJob, job_lease, job_lease_limited};
    use crate::schema::sql;
    use chrono::Utc;
    use std::time::Duration;

    fn by_owner(jobs: &[LeasedJob]) -> (usize, usize) {
        let a = jobs.iter().filter(|j| j.owner == "a").count();
        (a, jobs.len() - a)
    }

    #[tokio::test]
    async fn a_lease_shares_itself_by_the_owners_weights_and_holds_an_owners_cap() {
        let db = crate::testing::TestDb::new().await.unwrap();
        let client = db.client();
        for owner in ["a", "b"] {
            client
                .owner(owner)
                .create_many((0..40).map(|_| NewJob::new("fair", "@after -1s")))
                .await
                .unwrap();
        }
        let lease = |n| Lease::due("fair", "test", n, Utc::now(), Duration::from_secs(60));
        // Equal weights: half each.
        assert_eq!(
            by_owner(&job_lease(db.pool(), &lease(8)).await.unwrap()),
            (4, 4)
        );
        // a weighs 3: three for each of b's.
        client.set_owner_weight("a", 3).await.unwrap();
        assert_eq!(
            by_owner(&job_lease(db.pool(), &lease(8)).await.unwrap()),
            (6, 2)
        );
        // a caps its jobs at 12 at once: it holds 10, so 2 more; b takes what a leaves, then
        // its last jobs.
        client.owner("a").set_owner_cap("fair", 12).await.unwrap();
        assert_eq!(
            by_owner(&job_lease(db.pool(), &lease(20)).await.unwrap()),
            (2, 18)
        );
        assert_eq!(
            by_owner(&job_lease(db.pool(), &lease(20)).await.unwrap()),
            (0, 16)
        );
        // A job of a's ended: one place back. Under the executor's limits too.
        sqlx::query(sql(
            "UPDATE qron.jobs SET status = 'ready', lease_expires_at = NULL
              WHERE id = (SELECT min(id) FROM qron.jobs WHERE owner = 'a' AND status = 'running')",
        ))
        .execute(db.pool())
        .await
        .unwrap();
        client
            .set_executor_limits("fair", crate::ExecutorLimits::new().concurrency(1000))
            .await
            .unwrap();
        assert_eq!(
            by_owner(
                &job_lease_limited(db.pool(), &lease(20), false, &[])
                    .await
                    .unwrap()
            ),
            (1, 0)
        );
        client.clear_executor_limits("fair").await.unwrap();
        // While another lease holds a's cap lock, a lease takes none of a's jobs, and does not
        // wait for it.
        client.owner("a").set_owner_cap("fair", 100).await.unwrap();
        let mut other = db.pool().begin().await.unwrap();
        sqlx::query(sql(
            "SELECT pg_advisory_xact_lock(hashtextextended('qron.owner_limits:fair:a', 0))",
        ))
        .execute(&mut *other)
        .await
        .unwrap();
        sqlx::query(sql(
            "UPDATE qron.jobs SET status = 'ready', lease_expires_at = NULL",
        ))
        .execute(db.pool())
        .await
        .unwrap();
        assert_eq!(
            by_owner(&job_lease(db.pool(), &lease(10)).await.unwrap()),
            (0, 10)
        );
        other.rollback().await.unwrap();
        // Cleared: no cap, the weight still 3.
        assert!(client.owner("a").clear_owner_cap("fair").await.unwrap());
        assert_eq!(
            by_owner(&job_lease(db.pool(), &lease(8)).await.unwrap()),
            (6, 2)
        );
        assert_eq!(client.owner_weights().await.unwrap(), [("a".to_owned(), 3)]);
    }
}

//! Fairness between owners: the operator's weights in the leases' shares, and an owner's cap on
//! its own jobs of an executor.

use super::Client;
use super::checks::check_name;
use crate::db;
use crate::{Error, MAX_EXECUTOR_LIMIT, Result};

/// The largest weight an owner may have against the others' (1 by default).
///
/// ```
/// assert_eq!(qron::MAX_OWNER_WEIGHT, 1000);
/// ```
pub const MAX_OWNER_WEIGHT: u32 = 1000;

impl Client {
    /// Sets an owner's weight in every lease's shares (1 to [`MAX_OWNER_WEIGHT`]; 1 by
    /// default): a lease shares itself between the owners with due jobs in proportion to their
    /// weights, so an owner of weight 3 gets three jobs for each one of an owner of weight 1
    /// while both have due jobs. The operator's setting, for every executor: not scoped to this
    /// client's owner.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `owner` or `weight`; nothing is written then.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// // The paying tenant gets three times the free tier's share.
    /// client.set_owner_weight("acme", 3).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_owner_weight(&self, owner: &str, weight: u32) -> Result<()> {
        check_name("owner", owner)?;
        let weight = in_range("weight", weight, MAX_OWNER_WEIGHT)?;
        db::owner_weight_set(&self.pool, owner, weight).await?;
        tracing::info!(owner, weight, "owner weight set");
        Ok(())
    }

    /// Clears an owner's weight (back to 1); whether it had one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad owner name.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.clear_owner_weight("acme").await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear_owner_weight(&self, owner: &str) -> Result<bool> {
        check_name("owner", owner)?;
        Ok(db::owner_weight_clear(&self.pool, owner).await?)
    }

    /// The owners' weights that are set (the others have 1), by owner.
    ///
    /// # Errors
    /// [`Error::Database`] when the query fails.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// for (owner, weight) in client.owner_weights().await? {
    ///     println!("{owner}: {weight}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn owner_weights(&self) -> Result<Vec<(String, u32)>> {
        Ok(db::owner_weights(&self.pool)
            .await?
            .into_iter()
            .map(|(owner, w)| (owner, u32::try_from(w).unwrap_or(1)))
            .collect())
    }

    /// Caps this client's owner's jobs of `executor`: at most `concurrency` of them leased at
    /// once across every worker (1 to [`MAX_EXECUTOR_LIMIT`]), so that a tenant's own
    /// downstream sees no more. Counted from the leased rows, as the executors' limits are; the
    /// other owners' jobs run as before, and their leases pay nothing for it. Workers are told
    /// at once; jobs already leased count against it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `executor` or `concurrency`; nothing is written then.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// // acme's mail server takes 5 connections.
    /// client.owner("acme").set_owner_cap("email", 5).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_owner_cap(&self, executor: &str, concurrency: u32) -> Result<()> {
        self.scope().check_owner()?;
        check_name("executor", executor)?;
        let n = in_range("concurrency", concurrency, MAX_EXECUTOR_LIMIT)?;
        db::owner_cap_set(&self.pool, &self.owner, executor, n).await?;
        tracing::info!(owner = %self.owner, executor, concurrency, "owner cap set");
        Ok(())
    }

    /// Clears this client's owner's cap on `executor`; whether it had one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad executor name.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.owner("acme").clear_owner_cap("email").await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear_owner_cap(&self, executor: &str) -> Result<bool> {
        self.scope().check_owner()?;
        check_name("executor", executor)?;
        Ok(db::owner_cap_clear(&self.pool, &self.owner, executor).await?)
    }

    /// This client's owner's caps: each executor capped, its cap and the jobs leased under
    /// it now.
    ///
    /// # Errors
    /// [`Error::Database`] when the query fails.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// for (executor, cap, taken) in client.owner("acme").owner_caps().await? {
    ///     println!("{executor}: {taken} of {cap}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn owner_caps(&self) -> Result<Vec<(String, u32, i64)>> {
        self.scope().check_owner()?;
        Ok(db::owner_caps(&self.pool, Some(&self.owner))
            .await?
            .into_iter()
            .map(|c| {
                (
                    c.executor,
                    u32::try_from(c.concurrency).unwrap_or(1),
                    c.taken,
                )
            })
            .collect())
    }
}

/// `n` as stored, when it is 1 to `max`; refused naming `field` otherwise.
fn in_range(field: &'static str, n: u32, max: u32) -> Result<i32> {
    if n == 0 || n > max {
        return Err(Error::InvalidArgument {
            field,
            reason: format!("is {n}, outside 1 to {max}"),
        });
    }
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::TestDb;

    fn field(e: Error) -> &'static str {
        match e {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn weights_and_caps_out_of_range_are_refused_and_an_owner_reaches_only_its_own() {
        let db = TestDb::new().await.unwrap();
        let c = db.client();
        for (owner, weight, refused) in [
            ("a\0b", 2, "owner"),
            ("", 2, "owner"),
            ("a", 0, "weight"),
            ("a", MAX_OWNER_WEIGHT + 1, "weight"),
        ] {
            let e = c.set_owner_weight(owner, weight).await.unwrap_err();
            assert_eq!(field(e), refused);
        }
        for (executor, n, refused) in [
            ("e\0", 2, "executor"),
            ("e", 0, "concurrency"),
            ("e", MAX_EXECUTOR_LIMIT + 1, "concurrency"),
        ] {
            let e = c.owner("a").set_owner_cap(executor, n).await.unwrap_err();
            assert_eq!(field(e), refused);
        }
        // Nothing written by the refusals.
        assert!(c.owner_weights().await.unwrap().is_empty());
        assert!(c.owner("a").owner_caps().await.unwrap().is_empty());
        // The limits themselves are accepted.
        c.set_owner_weight("a", MAX_OWNER_WEIGHT).await.unwrap();
        c.owner("a")
            .set_owner_cap("e", MAX_EXECUTOR_LIMIT)
            .await
            .unwrap();
        // Another owner neither sees nor clears a's cap.
        assert!(c.owner("b").owner_caps().await.unwrap().is_empty());
        assert!(!c.owner("b").clear_owner_cap("e").await.unwrap());
        assert_eq!(
            c.owner("a").owner_caps().await.unwrap(),
            [("e".to_owned(), MAX_EXECUTOR_LIMIT, 0)]
        );
        assert_eq!(
            c.owner_weights().await.unwrap(),
            [("a".to_owned(), MAX_OWNER_WEIGHT)]
        );
    }
}

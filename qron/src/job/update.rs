//! A change to a job.

use std::time::Duration;

use serde_json::Value;

/// Changes to a job; fields left unset stay as they are. An empty update changes nothing.
///
/// ```
/// let change = qron::JobUpdate::new().expr("@every 5 minutes").payload(serde_json::json!({ "v": 2 }));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobUpdate {
    pub(crate) expr: Option<String>,
    pub(crate) payload: Option<Value>,
    pub(crate) meta: Option<Value>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_attempts: Option<i32>,
    pub(crate) priority: Option<u8>,
    pub(crate) if_revision: Option<i64>,
}

impl JobUpdate {
    /// An update that changes nothing yet.
    ///
    /// ```
    /// assert!(qron::JobUpdate::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A new schedule; the run time is recomputed from now.
    ///
    /// ```
    /// let u = qron::JobUpdate::new().expr("0 9 * * *");
    /// ```
    pub fn expr(mut self, expr: impl Into<String>) -> Self {
        self.expr = Some(expr.into());
        self
    }

    /// A new payload.
    ///
    /// ```
    /// let u = qron::JobUpdate::new().payload(serde_json::json!([1, 2]));
    /// ```
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// New metadata (a JSON object).
    ///
    /// ```
    /// let u = qron::JobUpdate::new().meta(serde_json::json!({ "team": "ops" }));
    /// ```
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = Some(meta);
        self
    }

    /// A new priority: 0 (the highest) to 9, put back by the client's
    /// [aging bound](crate::ClientBuilder::priority_aging) as a new job would be.
    ///
    /// ```
    /// let u = qron::JobUpdate::new().priority(0);
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    limit_setters!(
        made: "qron::JobUpdate::new()",
        unset: "Unset: unchanged."
    );

    /// Applies the update only if the job's [`revision`](crate::JobRow::revision) is still `revision`:
    /// an edit based on a stale read fails with [`Error::RevisionMismatch`](crate::Error::RevisionMismatch)
    /// instead of overwriting someone else's change.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let job = client.get(42).await?;
    /// let change = qron::JobUpdate::new().max_attempts(9).if_revision(job.revision);
    /// client.update(job.id, change).await?;
    /// # Ok(()) }
    /// ```
    pub fn if_revision(mut self, revision: i64) -> Self {
        self.if_revision = Some(revision);
        self
    }

    /// Whether no change is set (a revision condition alone changes nothing).
    ///
    /// ```
    /// assert!(!qron::JobUpdate::new().max_attempts(2).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        Self {
            if_revision: None,
            ..self.clone()
        } == Self::default()
    }
}

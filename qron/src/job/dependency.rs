//! What a job waits for: the jobs it depends on, and what it does when one of them does not
//! succeed.

/// What a job does when a job it waits for fails, is cancelled or is deleted (see
/// [`NewJob::after`](crate::NewJob::after)).
///
/// ```
/// let job = qron::NewJob::new("report", "@after 0s")
///     .after([41, 42])
///     .on_dependency_failure(qron::OnDependencyFailure::Run);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDependencyFailure {
    /// The job is cancelled (the default), and so, in turn, are the jobs waiting for it that
    /// cancel too.
    #[default]
    Cancel,
    /// The job runs anyway once every job it waits for has ended.
    Run,
    /// The job is held for an operator: once every job it waits for has ended, it is
    /// [stopped](crate::JobStatus::Stopped); a restart runs it, a cancel ends it.
    Hold,
}

impl OnDependencyFailure {
    /// The policy as stored (`cancel`, `run`, `hold`).
    ///
    /// ```
    /// assert_eq!(qron::OnDependencyFailure::Hold.as_str(), "hold");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            OnDependencyFailure::Cancel => "cancel",
            OnDependencyFailure::Run => "run",
            OnDependencyFailure::Hold => "hold",
        }
    }
}

/// Something that names a job another job can wait for: its id, or what an enqueue returned.
///
/// ```
/// fn waits_for(job: impl qron::JobId) -> i64 {
///     job.job_id()
/// }
/// assert_eq!(waits_for(42), 42);
/// ```
pub trait JobId {
    /// The job's id.
    fn job_id(&self) -> i64;
}

impl JobId for i64 {
    fn job_id(&self) -> i64 {
        *self
    }
}

impl JobId for super::JobRow {
    fn job_id(&self) -> i64 {
        self.id
    }
}

impl JobId for super::Created {
    fn job_id(&self) -> i64 {
        self.id
    }
}

impl<T: JobId + ?Sized> JobId for &T {
    fn job_id(&self) -> i64 {
        (**self).job_id()
    }
}

/// A job another waited for, as its handler sees it
/// ([`Context::dependencies`](crate::Context::dependencies)).
///
/// ```
/// fn succeeded(done: &[qron::Dependency]) -> usize {
///     done.iter().filter(|d| d.status == Some(qron::JobStatus::Succeeded)).count()
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Dependency {
    /// The job's id.
    pub id: i64,
    /// How it ended (or, for a job the waiting one was released from anyway, where it is);
    /// `None` when it was deleted.
    pub status: Option<crate::JobStatus>,
    /// What its handler recorded ([`Context::record`](crate::Context::record)).
    pub output: Option<serde_json::Value>,
}

/// The most jobs one job can wait for.
pub const MAX_DEPENDENCIES: usize = 100_000;

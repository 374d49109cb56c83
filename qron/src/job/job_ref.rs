//! How a job is named in a call: by id, or by executor and name.

/// A job, by id or by (executor, name).
///
/// ```
/// let by_id: qron::JobRef = 42.into();
/// let by_name = qron::JobRef::named("backup", "nightly");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    /// By id.
    Id(i64),
    /// By name among the live jobs of an executor.
    Name {
        /// The executor.
        executor: String,
        /// The name.
        name: String,
    },
}

impl JobRef {
    /// The live job named `name` of `executor`.
    ///
    /// ```
    /// let r = qron::JobRef::named("backup", "nightly");
    /// ```
    pub fn named(executor: impl Into<String>, name: impl Into<String>) -> Self {
        JobRef::Name {
            executor: executor.into(),
            name: name.into(),
        }
    }
}

impl From<i64> for JobRef {
    fn from(id: i64) -> Self {
        JobRef::Id(id)
    }
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobRef::Id(id) => write!(f, "job {id}"),
            JobRef::Name { executor, name } => {
                write!(f, "job named `{name}` of executor `{executor}`")
            }
        }
    }
}

//! The error type of every fallible qron call.

use std::path::PathBuf;

/// Everything that can go wrong in a qron call, with a message that says what to do about it.
///
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a `_` arm.
///
/// ```
/// let err = qron::Error::PostgresNotFound { searched: vec![] };
/// assert!(err.to_string().contains("apt-get install postgresql"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database answered with an error, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Applying qron's migrations failed.
    #[error("could not migrate the qron schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// An expression that does not parse; the inner error says what, where and why.
    #[error(transparent)]
    InvalidExpression(#[from] crate::ExprError),

    /// An argument that breaks a rule: empty or over-long executor, name or owner; meta that is
    /// not a JSON object; attempts or timeout out of range.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// Which argument.
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },

    /// A payload or meta larger than the client's limit.
    #[error(
        "{field} is {size} bytes, over the limit of {limit} bytes (see ClientBuilder::max_json_bytes)"
    )]
    TooLarge {
        /// `payload` or `meta`.
        field: &'static str,
        /// Its size, serialized as JSON.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A live job of the same owner and executor already has this name.
    #[error(
        "a live job named `{name}` already exists for executor `{executor}`; pick another name, or create with OnConflict::Keep or OnConflict::Replace"
    )]
    AlreadyExists {
        /// The executor.
        executor: String,
        /// The name.
        name: String,
    },

    /// A job to create waits for a job that does not exist, or is another owner's (see
    /// [`NewJob::after`](crate::NewJob::after)). Nothing was written.
    #[error(
        "job {id}, which the new job would wait for (`after`), does not exist for owner `{owner}`"
    )]
    UnknownDependency {
        /// The job waited for.
        id: i64,
        /// The owner of the new job.
        owner: String,
    },

    /// A job to create waits for a job that has already ended without succeeding, and cancels
    /// on that ([`OnDependencyFailure::Cancel`](crate::OnDependencyFailure::Cancel)). Nothing was
    /// written.
    #[error(
        "job {id}, which the new job would wait for (`after`), has already ended {status}; create it with OnDependencyFailure::Run or Hold to wait for it anyway"
    )]
    DependencyFailed {
        /// The job waited for.
        id: i64,
        /// How it ended (`failed`, `cancelled`).
        status: String,
    },

    /// Steps of a [`Workflow`](crate::Workflow) wait for each other in a circle: none could
    /// ever run. Nothing was written.
    #[error(
        "the workflow's steps wait for each other in a circle (among {}): remove one of their `after`s",
        steps.join(", ")
    )]
    WorkflowCycle {
        /// The steps in the circle, or waiting on it.
        steps: Vec<String>,
    },

    /// No job matches, for this owner.
    #[error("{what} not found for owner `{owner}`")]
    NotFound {
        /// What was looked for (`job 42`, `job named … of executor …`).
        what: String,
        /// The owner the lookup was scoped to.
        owner: String,
    },

    /// The job is not in a state the operation applies to: finished (retry it instead), stopped
    /// (restart it first), running, or live where a finished one is expected.
    #[error("job {id} is {status}: {hint}")]
    WrongStatus {
        /// The job.
        id: i64,
        /// Its status (`succeeded`, `failed`, `stopped`, `running`, `ready`).
        status: String,
        /// What to do instead.
        hint: String,
    },

    /// A conditional update found the job changed since it was read.
    #[error(
        "job {id} changed since it was read (revision {actual}, expected {expected}); read it again and retry"
    )]
    RevisionMismatch {
        /// The job.
        id: i64,
        /// The revision the update expected.
        expected: i64,
        /// The job's revision now.
        actual: i64,
    },

    /// The database server could not be reached when connecting
    /// ([`Client::connect`](crate::Client::connect)).
    #[error(
        "could not connect to {target}: {reason}; is PostgreSQL running there? set DATABASE_URL to where it is"
    )]
    Connect {
        /// The server, as `host:port` or the socket directory.
        target: String,
        /// Why, from the connection attempt.
        reason: String,
    },

    /// The database did not answer in time (a failover, an overload); what was asked may not
    /// have been done: try again.
    #[error("the database did not answer within {after:?} while {what}; try again")]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// How long it waited.
        after: std::time::Duration,
    },

    /// A value could not be turned into JSON.
    #[error("could not serialize to JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// `Job::schedule` and friends were called before [`crate::init`] installed a default client.
    #[error(
        "no default qron client: call qron::init(client) at start-up, or pass a client explicitly"
    )]
    NotInitialized,

    /// One of a worker's own tasks (a producer, the rescuer…) stopped unexpectedly; the worker
    /// stopped with it, as on a soft stop. Run it again, and report the reason: it is a bug.
    #[error("the worker's {task} stopped unexpectedly ({reason}); the worker stopped")]
    WorkerTask {
        /// Which task.
        task: &'static str,
        /// Why: the panic's message.
        reason: String,
    },

    /// [`Worker::run_until_signal`](crate::Worker::run_until_signal) could not listen for
    /// Ctrl-C or SIGTERM (outside a Tokio runtime with its signal driver, for one).
    #[error(
        "could not listen for Ctrl-C and SIGTERM: {0}; run inside a Tokio runtime built with `enable_all()`"
    )]
    Signal(#[source] std::io::Error),

    /// No PostgreSQL server binaries (`initdb`, `postgres`) were found for the throwaway server.
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) found; searched: {}. \
         Install them (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`) \
         or set DATABASE_URL to use a running server",
        display_paths(searched)
    )]
    PostgresNotFound {
        /// The directories that were looked at, in order.
        searched: Vec<PathBuf>,
    },

    /// The throwaway PostgreSQL server could not be set up, started or stopped.
    #[error("throwaway PostgreSQL: could not {action}: {detail}")]
    Embedded {
        /// What was being done (`run initdb`, `start the server`, …).
        action: &'static str,
        /// Why it failed, including the server's own log when there is one.
        detail: String,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing (no PATH, no pg_config, no /usr/lib/postgresql)".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Result` with qron's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

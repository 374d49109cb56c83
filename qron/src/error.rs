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

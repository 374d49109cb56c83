//! Enqueue and manage jobs: [`Client`]. Its operations live by kind: [`create`] (one job, many,
//! through a transaction), [`manage`] (get, search, update, stop, restart, delete); what they
//! check on the way in in [`checks`] and [`scope`].

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::clock::{DbClock, HostClock};
use crate::error::{Error, Result};
use crate::job::JobRef;
use crate::{ExprError, Schedule};

mod batches;
pub(crate) mod checks;
mod create;
mod dependencies;
mod manage;
mod operate;
mod owners;
mod partitions;
mod remote;
pub use operate::ExecutorInfo;
pub use owners::MAX_OWNER_WEIGHT;
pub use remote::{
    MAX_LEASE_BYTES, MAX_REMOTE_BATCH, RemoteJob, RemoteOutcome, RemoteResult, Reported,
};
mod scope;
mod workflows;

pub(crate) use create::in_batch;
pub(crate) use partitions::Partitions;
pub(crate) use scope::*;

/// The largest payload or meta, serialized as JSON, unless the client says otherwise.
pub const DEFAULT_MAX_JSON_BYTES: usize = 1024 * 1024;
/// The owner of jobs created without one.
pub const DEFAULT_OWNER: &str = "default";
/// Rows per statement in bulk creates.
const INSERT_CHUNK: usize = 10_000;

#[derive(Debug)]
struct Config {
    max_json_bytes: usize,
    priority_aging: std::time::Duration,
    /// The database's time: a job's start, and so its first run, count from it.
    clock: DbClock,
    partitions: Partitions,
}

/// The handle to qron's jobs: create, find, change and delete them. Cheap to clone; every clone
/// shares the pool.
///
/// Every operation is scoped to one owner (tenant): [`Client::owner`] gives a handle for another
/// one, and the plain client acts for owner `"default"`. An owner never sees, changes or deletes
/// another owner's jobs, whatever id or name it asks for.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// use serde_json::json;
/// let client = qron::Client::connect("postgres://localhost/app").await?;
/// client.migrate().await?;
/// let job = client
///     .create(qron::NewJob::new("email", "@after 1 hour").payload(json!({ "user_id": 7 })))
///     .await?;
/// let acme = client.owner("acme");
/// assert!(acme.get(job.id).await.is_err()); // another owner's job
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pool: PgPool,
    owner: Arc<str>,
    config: Arc<Config>,
}

/// Options of a [`Client`].
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) {
/// let client = qron::Client::builder(pool).max_json_bytes(64 * 1024).build();
/// # }
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    pool: PgPool,
    owner: String,
    max_json_bytes: usize,
    priority_aging: std::time::Duration,
    host_clock: HostClock,
}

impl ClientBuilder {
    /// The largest payload or meta accepted, serialized as JSON (default 1 MiB).
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).max_json_bytes(16 * 1024).build();
    /// # }
    /// ```
    pub fn max_json_bytes(mut self, bytes: usize) -> Self {
        self.max_json_bytes = bytes;
        self
    }

    /// How long a due job of the lowest priority can be passed over by jobs of higher
    /// priorities due after it (default [`DEFAULT_PRIORITY_AGING`](crate::DEFAULT_PRIORITY_AGING),
    /// 10 minutes; from 1 s to 30 days, else each enqueue is refused naming `priority_aging`).
    /// A job of priority `p` goes before a job of priority `q > p` due up to `(q - p) / 9` of
    /// it later, not after: once a job has waited that long, nothing due later goes first.
    /// Applies to the jobs this client enqueues.
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool)
    ///     .priority_aging(std::time::Duration::from_secs(60))
    ///     .build();
    /// # }
    /// ```
    pub fn priority_aging(mut self, aging: std::time::Duration) -> Self {
        self.priority_aging = aging;
        self
    }

    /// The owner the client acts for (default `"default"`).
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).owner("acme").build();
    /// # }
    /// ```
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The host's clock the client reads (default [`Utc::now`]). Jobs created without a start
    /// count from the database server's time, not the host's: the client corrects this clock
    /// to the server's (measured when it first needs it, then every 30 s). For tests that make
    /// a host whose clock is wrong.
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// fn two_minutes_fast() -> chrono::DateTime<chrono::Utc> {
    ///     chrono::Utc::now() + chrono::Duration::minutes(2)
    /// }
    /// let client = qron::Client::builder(pool).host_clock(two_minutes_fast).build();
    /// # }
    /// ```
    pub fn host_clock(mut self, clock: HostClock) -> Self {
        self.host_clock = clock;
        self
    }

    /// The client.
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).build();
    /// # }
    /// ```
    pub fn build(self) -> Client {
        Client {
            pool: self.pool,
            owner: self.owner.into(),
            config: Arc::new(Config {
                max_json_bytes: self.max_json_bytes,
                priority_aging: self.priority_aging,
                clock: DbClock::new(self.host_clock),
                partitions: Partitions::default(),
            }),
        }
    }
}

/// An expression checked by [`validate`]: its canonical text, description and next runs.
///
/// ```
/// let v: qron::Validation = qron::validate("@daily", chrono::Utc::now(), 2)?;
/// assert!(v.recurring);
/// # Ok::<(), qron::ExprError>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Validation {
    /// The canonical text (what is stored).
    pub canonical: String,
    /// The schedule in words.
    pub description: String,
    /// Whether it repeats.
    pub recurring: bool,
    /// The first runs from the given instant (one for a one-off schedule).
    pub next_runs: Vec<DateTime<Utc>>,
}

/// Checks an expression without touching the database: its canonical form, its description and
/// its next `count` runs after `from`.
///
/// # Errors
/// The parser's [`ExprError`].
///
/// ```
/// let v = qron::validate("@every 90 minutes", chrono::Utc::now(), 3)?;
/// assert_eq!(v.canonical, "@every 1 hour 30 minutes");
/// assert_eq!(v.next_runs.len(), 3);
/// # Ok::<(), qron::ExprError>(())
/// ```
pub fn validate(
    expr: &str,
    from: DateTime<Utc>,
    count: usize,
) -> std::result::Result<Validation, ExprError> {
    let s = Schedule::parse(expr)?;
    let mut next_runs = Vec::new();
    let mut at = s.first_run(from);
    while let Some(t) = at {
        if next_runs.len() >= count {
            break;
        }
        next_runs.push(t);
        at = s.next_run(from, t, t);
    }
    Ok(Validation {
        canonical: s.to_string(),
        description: s.describe(),
        recurring: s.is_recurring(),
        next_runs,
    })
}

static DEFAULT_CLIENT: OnceLock<Client> = OnceLock::new();

/// Installs the process-wide default client, used by typed enqueue (`Email::schedule(...)`) and
/// `Worker::run_all()`. The first call wins; later calls return `false` and change nothing.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// let client = qron::Client::connect("postgres://localhost/app").await?;
/// qron::init(client);
/// # Ok(()) }
/// ```
pub fn init(client: Client) -> bool {
    DEFAULT_CLIENT.set(client).is_ok()
}

/// The default client installed by [`init`].
///
/// # Errors
/// [`Error::NotInitialized`] before [`init`].
///
/// ```
/// // Before qron::init, there is none:
/// assert!(matches!(qron::client(), Err(qron::Error::NotInitialized)));
/// ```
pub fn client() -> Result<Client> {
    DEFAULT_CLIENT.get().cloned().ok_or(Error::NotInitialized)
}

/// How long [`Client::connect`] waits for the server's answer.
///
/// ```
/// assert_eq!(qron::CONNECT_TIMEOUT.as_secs(), 5);
/// ```
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Client {
    /// A client over `pool`, acting for owner `"default"`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sqlx::Error> {
    /// let pool = sqlx::PgPool::connect("postgres://localhost/app").await?;
    /// let client = qron::Client::new(pool);
    /// # Ok(()) }
    /// ```
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool).build()
    }

    /// A [`ClientBuilder`] over `pool`.
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// let client = qron::Client::builder(pool).build();
    /// # }
    /// ```
    pub fn builder(pool: PgPool) -> ClientBuilder {
        ClientBuilder {
            pool,
            owner: DEFAULT_OWNER.to_owned(),
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            priority_aging: crate::DEFAULT_PRIORITY_AGING,
            host_clock: Utc::now,
        }
    }

    /// Connects a pool to `url` and wraps it. A server that cannot be reached is reported
    /// within [`CONNECT_TIMEOUT`] with the cause, not after the pool's 30 s wait.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (`url`) for a URL that does not parse; [`Error::Connect`]
    /// naming the server and the cause when it cannot be reached or refuses the login.
    ///
    /// ```no_run
    /// # async fn demo() -> qron::Result<()> {
    /// let client = qron::Client::connect("postgres://localhost/app").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        use sqlx::ConnectOptions as _;
        let options: sqlx::postgres::PgConnectOptions =
            url.parse()
                .map_err(|e: sqlx::Error| Error::InvalidArgument {
                    field: "url",
                    reason: e.to_string(),
                })?;
        let target = if options.get_host().starts_with('/') {
            format!("the socket in {}", options.get_host())
        } else {
            format!("{}:{}", options.get_host(), options.get_port())
        };
        let connect_error = |reason: String| Error::Connect {
            target: target.clone(),
            reason,
        };
        // One connection first, to report its own error at once: the pool would retry until
        // its acquire timeout and then say only "pool timed out".
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = sqlx::Connection::close(probe).await;
        Ok(Self::new(PgPool::connect_with(options).await?))
    }

    /// Applies qron's migrations (see [`crate::migrate`]).
    ///
    /// # Errors
    /// As [`crate::migrate`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// client.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<()> {
        crate::migrate(&self.pool).await
    }

    /// The same client acting for another owner.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let acme = client.owner("acme");
    /// let page = acme.search(&qron::Search::new()).await?; // only acme's jobs
    /// # Ok(()) }
    /// ```
    pub fn owner(&self, owner: impl Into<String>) -> Client {
        let owner: String = owner.into();
        Client {
            pool: self.pool.clone(),
            owner: owner.into(),
            config: self.config.clone(),
        }
    }

    /// This client, with its owner and settings, on another pool (the API's bounded one).
    #[cfg(feature = "http")]
    pub(crate) fn with_pool(&self, pool: PgPool) -> Client {
        Client {
            pool,
            owner: self.owner.clone(),
            config: self.config.clone(),
        }
    }

    /// The owner this client acts for.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// assert_eq!(client.owner_name(), "default");
    /// # }
    /// ```
    pub fn owner_name(&self) -> &str {
        &self.owner
    }

    /// The pool the client uses.
    ///
    /// ```no_run
    /// # fn demo(client: qron::Client) {
    /// let pool: &sqlx::PgPool = client.pool();
    /// # }
    /// ```
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database server's time now (see [`DbClock`]).
    pub(crate) async fn now(&self) -> DateTime<Utc> {
        self.config.clock.now_synced(&self.pool).await
    }

    /// The owner and limits that every operation applies.
    pub(crate) fn scope(&self) -> Scope<'_> {
        Scope {
            owner: &self.owner,
            max_json_bytes: self.config.max_json_bytes,
            priority_aging: self.config.priority_aging,
            partitions: Some(&self.config.partitions),
        }
    }

    fn not_found(&self, target: &JobRef) -> Error {
        self.scope().not_found(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn client_is_send_sync_and_clone() {
        assert_send_sync::<Client>();
    }
}

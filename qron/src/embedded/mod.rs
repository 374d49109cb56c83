//! A throwaway PostgreSQL server started from the machine's own server binaries.
//!
//! The examples, the test suite and the benchmarks use it when `DATABASE_URL` is unset, so that
//! trying qron needs nothing but Rust and the PostgreSQL server package. The server runs in a
//! fresh temporary directory, listens only on a Unix socket inside that directory (no TCP port to
//! collide with), and is stopped and deleted when the [`EmbeddedPostgres`] is dropped.
//!
//! It is tuned for tests, not for keeping data: `fsync`, `synchronous_commit` and
//! `full_page_writes` are off.
//!
//! ```no_run
//! # fn main() -> qron::Result<()> {
//! let pg = qron::embedded::EmbeddedPostgres::start()?;
//! println!("connect with {}", pg.url());
//! drop(pg); // stops the server and deletes its directory
//! # Ok(()) }
//! ```
//!
//! When the process runs as root (as CI does), the server processes run as the unprivileged
//! `postgres` system user, since PostgreSQL refuses to run as root.

use std::fs;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid};
use sqlx::postgres::PgConnectOptions;

use crate::error::{Error, Result};

mod builder;
mod process;

pub use builder::Builder;
use process::{as_user, embedded_err, lock, spawn_kept};

/// The port number names the socket file (`.s.PGSQL.<port>`); no TCP port is opened.
const SOCKET_PORT: u16 = 5432;
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Prefix of the temporary directories, used to find leftovers of killed processes.
const DIR_PREFIX: &str = "qron-pg-";
/// File in the temporary directory naming the process that owns the server.
const OWNER_FILE: &str = "qron.owner";

/// Server settings for a disposable database: fast, not durable.
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", ""),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "400"),
    ("shared_buffers", "256MB"),
];

/// The defaults that give up durability for speed; a kept cluster does without them.
const DURABILITY_SETTINGS: &[&str] = &["fsync", "synchronous_commit", "full_page_writes"];

/// How the server process is started (again, on restart).
#[derive(Debug)]
struct Server {
    bin_dir: PathBuf,
    settings: Vec<(String, String)>,
    run_as: Option<(Uid, Gid)>,
}

/// A running throwaway PostgreSQL server; dropping it stops the server and deletes its directory.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// let pg = tokio::task::spawn_blocking(qron::embedded::EmbeddedPostgres::start)
///     .await
///     .expect("start task panicked")?;
/// let pool = sqlx::PgPool::connect_with(pg.connect_options()).await?;
/// qron::migrate(&pool).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EmbeddedPostgres {
    socket_dir: PathBuf,
    data_dir: PathBuf,
    /// The cluster is the caller's ([`Builder::data_dir`]): stopped cleanly and kept.
    keep_data: bool,
    log_path: PathBuf,
    pid: AtomicU32,
    server: Server,
    child: Mutex<Option<Child>>,
    keeper: Mutex<Option<mpsc::Sender<()>>>,
    dir: Mutex<Option<tempfile::TempDir>>,
}

impl EmbeddedPostgres {
    /// A [`Builder`] with the default search and settings.
    ///
    /// ```
    /// let builder = qron::embedded::EmbeddedPostgres::builder();
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts a server with the defaults: `EmbeddedPostgres::builder().start()`.
    ///
    /// # Errors
    /// As [`Builder::start`].
    ///
    /// ```no_run
    /// let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn start() -> Result<Self> {
        Builder::default().start()
    }

    /// The process-wide server: started on first use, stopped and deleted when the process
    /// exits normally. Tests and examples share it instead of starting one each.
    ///
    /// # Errors
    /// As [`Builder::start`]; a failed start is reported to every caller.
    ///
    /// ```no_run
    /// let pg = qron::embedded::EmbeddedPostgres::shared()?;
    /// println!("{}", pg.url());
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn shared() -> Result<&'static EmbeddedPostgres> {
        static SHARED: OnceLock<std::result::Result<EmbeddedPostgres, String>> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(Ok(pg)) = SHARED.get() {
                pg.shutdown();
            }
        }
        let started = SHARED.get_or_init(|| {
            let pg = Self::start().map_err(|e| e.to_string())?;
            // SAFETY: registers a plain `extern "C"` function with no arguments, as `atexit`
            // requires; the function only reads a `OnceLock` that is never reset.
            #[allow(unsafe_code)]
            let rc = unsafe { nix::libc::atexit(stop_shared) };
            if rc != 0 {
                tracing::warn!("could not register the throwaway server's stop at exit");
            }
            Ok(pg)
        });
        match started {
            Ok(pg) => Ok(pg),
            Err(detail) => Err(Error::Embedded {
                action: "start the shared server",
                detail: detail.clone(),
            }),
        }
    }

    /// A connection URL (`postgres://postgres@localhost:5432/postgres?host=<socket dir>`).
    ///
    /// ```no_run
    /// # let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// assert!(pg.url().starts_with("postgres://"));
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A connection URL to another database of the same server.
    ///
    /// ```no_run
    /// # let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// let url = pg.url_for("app");
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost:{SOCKET_PORT}/{database}?host={}",
            self.socket_dir.display()
        )
    }

    /// Connection options for the `postgres` database, as the `postgres` superuser.
    ///
    /// ```no_run
    /// # let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// let opts = pg.connect_options().database("postgres");
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(SOCKET_PORT)
            .username("postgres")
            .database("postgres")
    }

    /// The cluster's data directory.
    ///
    /// ```no_run
    /// # let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// assert!(pg.data_dir().join("PG_VERSION").exists());
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id of the server (the postmaster).
    ///
    /// ```no_run
    /// # let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// assert!(pg.pid() > 0);
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Restarts the server on the same data (a fast shutdown, then a start), as `pg_ctl restart`
    /// does: connections drop, data stays. Blocks until it accepts connections again.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the server does not come back.
    ///
    /// ```no_run
    /// let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// pg.restart()?;
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn restart(&self) -> Result<()> {
        self.restart_after(Signal::SIGINT)
    }

    /// Restarts the server as after a crash, as `pg_ctl restart -m immediate` does: no
    /// checkpoint at the stop, and the server replays its write-ahead log at the start.
    /// Connections drop; committed data stays. Blocks until it accepts connections again.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the server does not come back.
    ///
    /// ```no_run
    /// let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// pg.restart_immediate()?;
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn restart_immediate(&self) -> Result<()> {
        self.restart_after(Signal::SIGQUIT)
    }

    /// Stops the server with `signal` (`SIGINT`: fast, `SIGQUIT`: immediate), then starts it.
    fn restart_after(&self, signal: Signal) -> Result<()> {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = kill(Pid::from_raw(self.pid() as i32), signal);
            let _ = child.wait();
        }
        lock(&self.keeper).take();
        let _ = fs::remove_file(self.data_dir.join("postmaster.pid"));
        self.spawn_server()?;
        self.wait_ready()
    }

    fn spawn_server(&self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .map_err(|e| embedded_err("open the log", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| embedded_err("open the log", e))?;
        let mut cmd = Command::new(self.server.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-k")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(SOCKET_PORT.to_string());
        for (name, value) in &self.server.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.current_dir(&self.socket_dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Keep the terminal's Ctrl-C away from the server: its owner stops it.
            .process_group(0);
        as_user(&mut cmd, self.server.run_as);
        let (child, keeper) = spawn_kept(cmd)?;
        self.pid.store(child.id(), Ordering::SeqCst);
        *lock(&self.child) = Some(child);
        *lock(&self.keeper) = Some(keeper);
        Ok(())
    }

    /// Stops the server and deletes its directory now (dropping it does the same); a
    /// [kept cluster](Builder::data_dir) stays.
    ///
    /// ```no_run
    /// let pg = qron::embedded::EmbeddedPostgres::start()?;
    /// pg.stop();
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn stop(self) {
        self.shutdown();
    }

    fn wait_ready(&self) -> Result<()> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Line 8 of postmaster.pid is the postmaster's status; "ready" once it accepts
            // connections.
            if let Ok(text) = fs::read_to_string(&pid_file)
                && text.lines().nth(7).map(str::trim) == Some("ready")
            {
                return Ok(());
            }
            let exited = match lock(&self.child).as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                return Err(Error::Embedded {
                    action: "start the server",
                    detail: format!("it exited with {status}; log:\n{}", self.log_tail()),
                });
            }
            if Instant::now() > deadline {
                self.shutdown();
                return Err(Error::Embedded {
                    action: "start the server",
                    detail: format!(
                        "not ready after {}s; log:\n{}",
                        START_TIMEOUT.as_secs(),
                        self.log_tail()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the server and deletes the temporary directory: an immediate shutdown that throws
    /// the data away, or a fast one (a checkpoint, then exit) for a kept cluster. Idempotent.
    fn shutdown(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            let pid = Pid::from_raw(self.pid() as i32);
            let signal = if self.keep_data {
                Signal::SIGINT
            } else {
                Signal::SIGQUIT
            };
            let _ = kill(pid, signal);
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        lock(&self.keeper).take();
        if let Some(dir) = lock(&self.dir).take()
            && let Err(e) = dir.close()
        {
            tracing::warn!(error = %e, "could not delete the throwaway server's directory");
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where the examples, tests and benchmarks connect: `DATABASE_URL` when it is set, otherwise the
/// [shared](EmbeddedPostgres::shared) throwaway server (started on first use; this blocks while
/// it starts).
///
/// # Errors
/// A `DATABASE_URL` that does not parse, or a throwaway server that cannot start.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// let opts = qron::embedded::connect_options_from_env()?;
/// let pool = sqlx::PgPool::connect_with(opts).await?;
/// # Ok(()) }
/// ```
pub fn connect_options_from_env() -> Result<PgConnectOptions> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(url.parse::<PgConnectOptions>()?),
        _ => Ok(EmbeddedPostgres::shared()?.connect_options()),
    }
}

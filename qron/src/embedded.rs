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

use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};
use sqlx::postgres::PgConnectOptions;

use crate::error::{Error, Result};

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

/// How the throwaway server is found and configured. Made by [`EmbeddedPostgres::builder`].
///
/// ```no_run
/// # fn main() -> qron::Result<()> {
/// let pg = qron::embedded::EmbeddedPostgres::builder()
///     .setting("max_connections", "100")
///     .start()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    search_path: Option<OsString>,
    system_dirs: Vec<PathBuf>,
    settings: Vec<(String, String)>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            search_path: None,
            system_dirs: vec![PathBuf::from("/usr/lib/postgresql")],
            settings: DEFAULT_SETTINGS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl Builder {
    /// Searches these directories (a `PATH`-style list) instead of the `PATH` environment variable
    /// for `initdb`, `postgres` and `pg_config`.
    ///
    /// ```
    /// let b = qron::embedded::EmbeddedPostgres::builder().search_path("/opt/pg/bin:/usr/bin");
    /// ```
    pub fn search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// Replaces the directories holding one `<version>/bin` per installed server
    /// (default: `/usr/lib/postgresql`, as Debian lays them out). The newest version wins.
    ///
    /// ```
    /// let b = qron::embedded::EmbeddedPostgres::builder().system_dirs(["/usr/lib/postgresql"]);
    /// ```
    pub fn system_dirs<I, P>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.system_dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Sets a server setting (`postgres -c name=value`), replacing the default if there is one.
    ///
    /// ```
    /// let b = qron::embedded::EmbeddedPostgres::builder().setting("fsync", "on");
    /// ```
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.settings.retain(|(k, _)| *k != name);
        self.settings.push((name, value.into()));
        self
    }

    /// Finds the directory holding the server binaries: the search path (or `PATH`), then
    /// `pg_config --bindir`, then the system directories.
    ///
    /// # Errors
    /// [`Error::PostgresNotFound`], listing where it looked, when no directory holds both
    /// `initdb` and `postgres`.
    ///
    /// ```no_run
    /// let bin = qron::embedded::EmbeddedPostgres::builder().find_binaries()?;
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn find_binaries(&self) -> Result<PathBuf> {
        let path = match &self.search_path {
            Some(p) => p.clone(),
            None => std::env::var_os("PATH").unwrap_or_default(),
        };
        let mut searched = Vec::new();
        let path_dirs: Vec<PathBuf> = std::env::split_paths(&path)
            .filter(|d| !d.as_os_str().is_empty())
            .collect();
        for dir in &path_dirs {
            if has_server_binaries(dir) {
                return Ok(dir.clone());
            }
            searched.push(dir.clone());
        }
        if let Some(dir) = pg_config_bindir(&path_dirs) {
            if has_server_binaries(&dir) {
                return Ok(dir);
            }
            searched.push(dir);
        }
        for root in &self.system_dirs {
            let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            for (_, dir) in versions {
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
                searched.push(dir);
            }
            searched.push(root.clone());
        }
        Err(Error::PostgresNotFound { searched })
    }

    /// Creates a cluster in a new temporary directory and starts a server on it. Blocks until
    /// the server accepts connections (a second or two); from async code, call it inside
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// [`Error::PostgresNotFound`] when there are no server binaries; [`Error::Embedded`] when
    /// `initdb` or the server fails (the message carries the server's log).
    ///
    /// ```no_run
    /// let pg = qron::embedded::EmbeddedPostgres::builder().start()?;
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn start(self) -> Result<EmbeddedPostgres> {
        let bin_dir = self.find_binaries()?;
        remove_leftovers();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| embedded_err("create a temporary directory", e))?;
        fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
            .map_err(|e| embedded_err("write the owner file", e))?;
        let run_as = server_user()?;
        if let Some((uid, gid)) = run_as {
            nix::unistd::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| embedded_err("give the temporary directory to `postgres`", e))?;
        }
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");

        let started = Instant::now();
        let mut initdb = Command::new(bin_dir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .current_dir(dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        as_user(&mut initdb, run_as);
        die_with_parent(&mut initdb, Signal::SIGKILL);
        let out = initdb.output().map_err(|e| embedded_err("run initdb", e))?;
        if !out.status.success() {
            return Err(Error::Embedded {
                action: "run initdb",
                detail: format!(
                    "{}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }

        fs::File::create(&log_path).map_err(|e| embedded_err("create the log", e))?;
        if let Some((uid, gid)) = run_as {
            nix::unistd::chown(&log_path, Some(uid), Some(gid))
                .map_err(|e| embedded_err("give the log to `postgres`", e))?;
        }
        let server = Server {
            bin_dir: bin_dir.clone(),
            settings: self.settings,
            run_as,
        };
        let pg = EmbeddedPostgres {
            socket_dir: dir.path().to_path_buf(),
            data_dir,
            log_path,
            pid: AtomicU32::new(0),
            child: Mutex::new(None),
            keeper: Mutex::new(None),
            dir: Mutex::new(Some(dir)),
            server,
        };
        pg.spawn_server()?;
        pg.wait_ready()?;
        tracing::info!(
            socket_dir = %pg.socket_dir.display(),
            bin_dir = %bin_dir.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "throwaway PostgreSQL started"
        );
        Ok(pg)
    }
}

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
        if let Some(mut child) = lock(&self.child).take() {
            let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGINT);
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

    /// Stops the server and deletes its directory now (dropping it does the same).
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

    /// Stops the server (immediate shutdown: the data is thrown away) and deletes the directory.
    /// Idempotent.
    fn shutdown(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            let pid = Pid::from_raw(self.pid() as i32);
            let _ = kill(pid, Signal::SIGQUIT);
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn embedded_err(action: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Embedded {
        action,
        detail: e.to_string(),
    }
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn pg_config_bindir(path_dirs: &[PathBuf]) -> Option<PathBuf> {
    let pg_config = path_dirs
        .iter()
        .map(|d| d.join("pg_config"))
        .find(|p| p.is_file())?;
    let out = Command::new(pg_config).arg("--bindir").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

/// The user to run the server as: none (ourselves) unless we are root, then `postgres`.
fn server_user() -> Result<Option<(Uid, Gid)>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        Ok(None) => Err(Error::Embedded {
            action: "find an unprivileged user",
            detail: "PostgreSQL refuses to run as root and there is no `postgres` system user; \
                     create one (`useradd --system postgres`) or run as another user"
                .to_owned(),
        }),
        Err(e) => Err(embedded_err("look up the `postgres` user", e)),
    }
}

fn as_user(cmd: &mut Command, run_as: Option<(Uid, Gid)>) {
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid.as_raw()).gid(gid.as_raw());
    }
}

/// Has the kernel send `signal` to the spawned process when the spawning thread ends.
fn die_with_parent(cmd: &mut Command, signal: Signal) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which is
    // async-signal-safe.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from));
    }
}

/// Spawns the server from a thread that lives as long as the server is wanted. The server gets
/// SIGQUIT (immediate shutdown) when that thread ends, which also happens when this process dies
/// without running destructors: a killed test run leaves no server behind.
fn spawn_kept(mut cmd: Command) -> Result<(Child, mpsc::Sender<()>)> {
    let (child_tx, child_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("qron-embedded-pg".to_owned())
        .spawn(move || {
            die_with_parent(&mut cmd, Signal::SIGQUIT);
            let spawned = cmd.spawn();
            let ok = spawned.is_ok();
            let _ = child_tx.send(spawned);
            if ok {
                // Returns when the owner drops the sender, after it stopped the server.
                let _ = stop_rx.recv();
            }
        })
        .map_err(|e| embedded_err("start the keeper thread", e))?;
    let child = child_rx
        .recv()
        .map_err(|e| embedded_err("start the server", e))?
        .map_err(|e| embedded_err("start the server", e))?;
    Ok((child, stop_tx))
}

/// Deletes the directories of throwaway servers whose owning process is gone (killed before it
/// could clean up). Their servers already stopped when the owner died (see [`spawn_kept`]).
fn remove_leftovers() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(DIR_PREFIX)) {
            continue;
        }
        let Ok(owner) = fs::read_to_string(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        let Ok(pid) = owner.trim().parse::<i32>() else {
            continue;
        };
        let alive = kill(Pid::from_raw(pid), None::<Signal>).is_ok();
        let server_alive = fs::read_to_string(entry.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
            .is_some_and(|p| kill(Pid::from_raw(p), None::<Signal>).is_ok());
        if !alive && !server_alive {
            tracing::debug!(dir = %entry.path().display(), "removing a leftover throwaway server");
            let _ = fs::remove_dir_all(entry.path());
        }
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

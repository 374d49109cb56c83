//! [`Builder`]: where the server binaries are looked for, and the server's settings.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

use super::process::{
    as_user, die_with_parent, embedded_err, has_server_binaries, pg_config_bindir,
    remove_leftovers, server_user,
};
use super::{
    DEFAULT_SETTINGS, DIR_PREFIX, DURABILITY_SETTINGS, EmbeddedPostgres, OWNER_FILE, Server,
};

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
    data_dir: Option<PathBuf>,
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
            data_dir: None,
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

    /// Keeps the cluster in `dir` instead of a temporary directory: created there (with
    /// `initdb`) when `dir` holds none, reused when it does, and left in place when the server
    /// stops, so that data outlives the process. Such a server is durable: the defaults that
    /// trade safety for speed (`fsync`, `synchronous_commit`, `full_page_writes` off) are not
    /// applied. Its socket and log still live in a temporary directory, deleted at the stop.
    ///
    /// ```no_run
    /// let pg = qron::embedded::EmbeddedPostgres::builder().data_dir("./qron-data").start()?;
    /// # Ok::<(), qron::Error>(())
    /// ```
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self.settings
            .retain(|(k, _)| !DURABILITY_SETTINGS.contains(&k.as_str()));
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

    /// Creates a cluster in a new temporary directory (or uses the [kept one](Self::data_dir))
    /// and starts a server on it. Blocks until
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
        let log_path = dir.path().join("server.log");
        let started = Instant::now();
        let (data_dir, keep_data) = match &self.data_dir {
            Some(kept) => (absolute(kept)?, true),
            None => (dir.path().join("data"), false),
        };
        if keep_data && data_dir.join("PG_VERSION").is_file() {
            tracing::info!(data_dir = %data_dir.display(), "reusing the kept cluster");
        } else {
            if keep_data {
                fs::create_dir_all(&data_dir)
                    .map_err(|e| embedded_err("create the data directory", e))?;
                if let Some((uid, gid)) = run_as {
                    nix::unistd::chown(&data_dir, Some(uid), Some(gid))
                        .map_err(|e| embedded_err("give the data directory to `postgres`", e))?;
                }
            }
            init_cluster(&bin_dir, &data_dir, dir.path(), run_as, keep_data)?;
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
            keep_data,
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

/// `dir` made absolute (the server runs in another directory).
fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| embedded_err("resolve the data directory", e))
}

/// Runs `initdb` for a new cluster in `data_dir`; a `kept` one is synced to disk.
fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    cwd: &Path,
    run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    kept: bool,
) -> Result<()> {
    let mut initdb = Command::new(bin_dir.join("initdb"));
    if !kept {
        // A throwaway cluster need not reach the disk.
        initdb.arg("--no-sync");
    }
    initdb
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ])
        .current_dir(cwd)
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

    Ok(())
}

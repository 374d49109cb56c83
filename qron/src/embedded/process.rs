//! The processes around the server: finding binaries, running as the `postgres` user, dying
//! with the parent, and removing what killed processes left.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, mpsc};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::error::{Error, Result};

use super::{DIR_PREFIX, OWNER_FILE};

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn embedded_err(action: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Embedded {
        action,
        detail: e.to_string(),
    }
}

pub(super) fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

pub(super) fn pg_config_bindir(path_dirs: &[PathBuf]) -> Option<PathBuf> {
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
pub(super) fn server_user() -> Result<Option<(Uid, Gid)>> {
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

pub(super) fn as_user(cmd: &mut Command, run_as: Option<(Uid, Gid)>) {
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid.as_raw()).gid(gid.as_raw());
    }
}

/// Has the kernel send `signal` to the spawned process when the spawning thread ends.
pub(super) fn die_with_parent(cmd: &mut Command, signal: Signal) {
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
pub(super) fn spawn_kept(mut cmd: Command) -> Result<(Child, mpsc::Sender<()>)> {
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
pub(super) fn remove_leftovers() {
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

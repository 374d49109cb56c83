use std::path::{Path, PathBuf};

use qron::embedded::EmbeddedPostgres;
use sqlx::Connection as _;

/// Processes whose command line mentions `needle` (the server and its children name their data
/// directory, or run from it).
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(cmdline);
        }
    }
    found
}

#[tokio::test]
async fn throwaway_server_starts_serves_and_leaves_nothing_behind() {
    let pg = tokio::task::spawn_blocking(EmbeddedPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let data_dir: PathBuf = pg.data_dir().to_path_buf();
    let root = data_dir.parent().unwrap().to_path_buf();
    let pid = pg.pid();
    assert!(data_dir.join("PG_VERSION").exists());
    assert!(!processes_mentioning(&data_dir).is_empty());

    // It serves queries, through the options and through the URL.
    let mut conn = sqlx::PgConnection::connect_with(&pg.connect_options())
        .await
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(version >= 130000, "{version}");
    conn.close().await.unwrap();

    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
    assert!(!root.exists(), "{} was not deleted", root.display());
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    assert!(
        nix::sys::signal::kill(pid, None).is_err(),
        "the postmaster is still running"
    );
    assert_eq!(processes_mentioning(&data_dir), Vec::<String>::new());
}

#[test]
fn missing_binaries_say_how_to_install_them() {
    let err = EmbeddedPostgres::builder()
        .search_path("")
        .system_dirs(Vec::<PathBuf>::new())
        .start()
        .unwrap_err();
    assert!(
        matches!(err, qron::Error::PostgresNotFound { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("apt-get install postgresql"), "{msg}");
    assert!(msg.contains("DATABASE_URL"), "{msg}");

    // A search path without the binaries is listed in the message.
    let err = EmbeddedPostgres::builder()
        .search_path("/nonexistent/bin")
        .system_dirs(["/nonexistent/lib/postgresql"])
        .find_binaries()
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/bin"), "{err}");
}

#[test]
fn binaries_are_found_on_the_search_path_and_under_system_dirs() {
    let bin = EmbeddedPostgres::builder().find_binaries().unwrap();
    assert!(bin.join("initdb").is_file() && bin.join("postgres").is_file());
    // The same binaries through the search path alone...
    let found = EmbeddedPostgres::builder()
        .search_path(bin.as_os_str())
        .system_dirs(Vec::<PathBuf>::new())
        .find_binaries()
        .unwrap();
    assert_eq!(found, bin);
}

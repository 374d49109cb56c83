//! The built `qron` binary, run as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Output;

/// Runs `qron args…` with `DATABASE_URL` set to `url` (or unset).
async fn qron(args: &[&str], url: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_qron"));
    cmd.args(args).env_remove("DATABASE_URL");
    if let Some(u) = url {
        cmd.env("DATABASE_URL", u);
    }
    cmd.output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn expr_shows_the_canonical_form_the_description_and_the_next_runs() {
    let out = qron(
        &[
            "expr",
            "0 9 * * MON-FRI",
            "-n",
            "3",
            "--from",
            "2026-11-27T10:00:00Z",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("valid:       0 9 * * 1-5"), "{stdout}");
    assert!(
        stdout.contains("2026-11-30T09:00:00Z\n  2026-12-01T09:00:00Z\n  2026-12-02T09:00:00Z"),
        "{stdout}"
    );

    let out = qron(
        &[
            "expr",
            "@every 90 minutes",
            "--json",
            "-n",
            "2",
            "--tz",
            "Europe/Paris",
            "--from",
            "2026-11-27T10:00:00Z",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["canonical"], "@every 1 hour 30 minutes");
    assert_eq!(
        v["next_runs"],
        serde_json::json!(["2026-11-27T12:30:00+01:00", "2026-11-27T14:00:00+01:00"])
    );
}

#[tokio::test]
async fn an_invalid_expression_exits_1_with_the_error_and_its_position() {
    let out = qron(&["expr", "0 61 * * *"], None).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "0 61 * * *\n  ^\n");
    assert!(
        text(&out.stderr).contains("hour field: 61 is out of range 0-23"),
        "{}",
        text(&out.stderr)
    );
    let out = qron(&["expr", "@definitely", "--json"], None).await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["valid"].as_bool(), v["position"].as_u64()),
        (Some(false), Some(0))
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    for args in [
        &["nope"][..],
        &["expr"][..],
        &["expr", "@daily", "-n", "x"][..],
    ] {
        let out = qron(args, None).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let help = qron(&["migrate", "--help"], None).await;
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("--status"));
}

#[tokio::test]
async fn migrate_applies_the_schema_and_status_says_what_is_applied() {
    let out = qron(&["migrate", "--status"], None).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("set DATABASE_URL"),
        "{}",
        text(&out.stderr)
    );

    let db = qron::testing::TestDb::empty().await.unwrap();
    let url = db.url().unwrap();
    let all = qron::migrator().iter().count();
    let status = qron(&["migrate", "--status"], Some(&url)).await;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    assert_eq!(
        text(&status.stdout).matches("pending").count(),
        all,
        "{}",
        text(&status.stdout)
    );
    let applied = qron(&["migrate"], Some(&url)).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let status = qron(&["migrate", "--status", "--database-url", &url], None).await;
    let stdout = text(&status.stdout);
    assert_eq!(stdout.matches("applied").count(), all, "{stdout}");
    assert!(!stdout.contains("pending"));
}

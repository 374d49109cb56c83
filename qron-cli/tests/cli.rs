//! The built `qron` binary, run as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Output;

use serde_json::{Value, json};

/// Runs `qron args…` with `DATABASE_URL` set to `url` (or unset), in UTC.
async fn qron(args: &[&str], url: Option<&str>) -> Output {
    qron_in(args, url, "UTC").await
}

/// Runs `qron args…` with `DATABASE_URL` set to `url` (or unset), in the zone `tz`.
async fn qron_in(args: &[&str], url: Option<&str>, tz: &str) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_qron"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("QRON_OWNER")
        .env("TZ", tz);
    if let Some(u) = url {
        cmd.env("DATABASE_URL", u);
    }
    cmd.output().await.unwrap()
}

/// Runs `qron args…` against `url`, expecting exit 0, and returns its standard output.
async fn ok(args: &[&str], url: &str) -> String {
    let out = qron(args, Some(url)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "qron {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `qron args… --json` against `url`, expecting exit 0, and returns each line's object.
async fn ok_json(args: &[&str], url: &str) -> Vec<Value> {
    let mut args = args.to_vec();
    args.push("--json");
    ok(&args, url)
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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

/// A job that always fails, to have a failed job to retry.
#[derive(serde::Serialize, serde::Deserialize)]
struct Nothing {}

#[qron::job(executor = "cli-fails", max_attempts = 1)]
async fn cli_fails(_msg: Nothing) -> Result<(), qron::JobError> {
    Err(qron::JobError::fail("it broke"))
}

#[tokio::test]
async fn jobs_are_created_listed_shown_stopped_restarted_and_deleted() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();

    let welcome = &ok_json(
        &[
            "jobs",
            "create",
            "email",
            "@after 1 hour",
            "--payload",
            r#"{"user_id": 7}"#,
            "--name",
            "welcome-7",
            "--max-attempts",
            "3",
            "--timeout",
            "90s",
        ],
        &url,
    )
    .await[0];
    assert_eq!(
        (
            &welcome["status"],
            &welcome["payload"],
            &welcome["max_attempts"],
            &welcome["timeout_seconds"]
        ),
        (
            &json!("ready"),
            &json!({"user_id": 7}),
            &json!(3),
            &json!(90.0)
        )
    );
    let welcome_id = welcome["id"].as_i64().unwrap();
    let created = ok(
        &["jobs", "create", "backup", "0 3 * * *", "--name", "nightly"],
        &url,
    )
    .await;
    assert!(created.contains(" created\nID "), "{created}");
    let sync = [
        "jobs",
        "create",
        "sync",
        "@after 1 hour",
        "--payload",
        r#"{"customer_id": 7}"#,
        "--unique",
        "keys",
        "--unique-keys",
        "customer_id",
        "--unique-period",
        "1d",
    ];
    let first = ok(&sync, &url).await;
    assert!(first.contains(" created\nID "), "{first}");
    let again = ok(&sync, &url).await;
    assert!(again.contains(" exists\nID "), "{again}");
    assert_eq!(
        first.lines().next(),
        Some(
            again
                .lines()
                .next()
                .unwrap()
                .replace("exists", "created")
                .as_str()
        )
    );
    // (out of the listings below)
    let sync_id: i64 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
    db.client().delete(sync_id).await.unwrap();
    let backup_id = db
        .client()
        .get(qron::JobRef::named("backup", "nightly"))
        .await
        .unwrap()
        .id;

    // A table for people: a header, a row per job, a footer with the total.
    let table = ok(&["jobs", "list"], &url).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        words(lines[0]),
        [
            "ID", "EXECUTOR", "NAME", "STATUS", "EXPR", "RUN", "AT", "ATTEMPT", "LAST", "ERROR"
        ]
    );
    assert_eq!(
        words(lines[1])[..7],
        [
            welcome_id.to_string().as_str(),
            "email",
            "welcome-7",
            "ready",
            "@after",
            "1",
            "hour"
        ]
    );
    assert_eq!(
        words(lines[2])[..7],
        [
            backup_id.to_string().as_str(),
            "backup",
            "nightly",
            "ready",
            "0",
            "3",
            "*"
        ]
    );
    // Aligned: each column starts where its header does.
    for (header, cell) in [
        ("EXECUTOR", "email"),
        ("STATUS", "ready"),
        ("EXPR", "@after"),
        ("ATTEMPT", "0/3"),
    ] {
        assert_eq!(
            lines[0].find(header),
            lines[1].find(cell),
            "{header} in {table}"
        );
    }
    assert!(lines[2].contains(" 03:00:00+00:00"), "{table}");
    assert_eq!(lines[3], "jobs 1–2 of 2");
    // The search's filters, and JSON lines for scripts.
    let backups = ok_json(&["jobs", "list", "--executor", "backup"], &url).await;
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["id"].as_i64(), Some(backup_id));
    assert_eq!(
        ok_json(&["jobs", "list", "--recurring", "--status", "ready"], &url)
            .await
            .len(),
        1
    );
    assert_eq!(
        ok_json(&["jobs", "list", "--status", "failed"], &url)
            .await
            .len(),
        0
    );
    assert_eq!(
        ok_json(
            &[
                "jobs",
                "list",
                "--name-contains",
                "welcome",
                "--order",
                "run-at-desc",
                "--limit",
                "1"
            ],
            &url
        )
        .await[0]["id"]
            .as_i64(),
        Some(welcome_id)
    );
    // Times in the local zone unless --utc.
    let tokyo = qron_in(
        &["jobs", "list", "--executor", "backup"],
        Some(&url),
        "Asia/Tokyo",
    )
    .await;
    assert!(
        text(&tokyo.stdout).contains(" 12:00:00+09:00"),
        "{}",
        text(&tokyo.stdout)
    );
    let utc = qron_in(
        &["jobs", "list", "--executor", "backup", "--utc"],
        Some(&url),
        "Asia/Tokyo",
    )
    .await;
    assert!(
        text(&utc.stdout).contains(" 03:00:00Z"),
        "{}",
        text(&utc.stdout)
    );

    // One job in full, by name.
    let shown = ok(
        &["jobs", "show", "--executor", "backup", "--name", "nightly"],
        &url,
    )
    .await;
    for part in [
        "status       ready",
        "expr         0 3 * * *",
        "next runs    ",
        "payload\n  null",
        "timeout      5m",
    ] {
        assert!(shown.contains(part), "{part:?} in {shown}");
    }
    let shown = ok_json(&["jobs", "show", &welcome_id.to_string()], &url).await;
    assert_eq!(shown[0]["name"], "welcome-7");

    // Stop and restart, then change and delete.
    let stopped = &ok_json(&["jobs", "stop", &backup_id.to_string()], &url).await[0];
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(
        db.client().get(backup_id).await.unwrap().status,
        qron::JobStatus::Stopped
    );
    let restarted = &ok_json(
        &[
            "jobs",
            "restart",
            "--executor",
            "backup",
            "--name",
            "nightly",
        ],
        &url,
    )
    .await[0];
    assert_eq!(restarted["status"], "ready");
    let updated = &ok_json(
        &[
            "jobs",
            "update",
            &backup_id.to_string(),
            "--expr",
            "@every 2 hours",
            "--meta",
            r#"{"team": "ops"}"#,
        ],
        &url,
    )
    .await[0];
    assert_eq!(
        (&updated["expr"], &updated["meta"]),
        (&json!("@every 2 hours"), &json!({"team": "ops"}))
    );
    assert_eq!(
        ok_json(&["jobs", "list", "--meta", r#"{"team": "ops"}"#], &url)
            .await
            .len(),
        1
    );
    let deleted = ok(&["jobs", "delete", &backup_id.to_string()], &url).await;
    assert!(
        deleted.starts_with(&format!("job {backup_id} deleted\n")),
        "{deleted}"
    );
    assert!(matches!(
        db.client().get(backup_id).await,
        Err(qron::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_job_not_found_exits_3_and_bad_input_exits_1_or_2_changing_nothing() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();
    let job = db
        .client()
        .create(qron::NewJob::new("email", "@after 1 hour"))
        .await
        .unwrap();
    let id = job.id.to_string();

    for args in [
        &["jobs", "show", "999999"][..],
        &["jobs", "stop", "--executor", "email", "--name", "nobody"][..],
        &["jobs", "delete", "999999"][..],
        // Another owner's job is not found either.
        &["jobs", "show", &id, "--owner", "other"][..],
        &["jobs", "delete", &id, "--owner", "other"][..],
    ] {
        let out = qron(args, Some(&url)).await;
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("not found"),
            "{}",
            text(&out.stderr)
        );
    }
    // Input the client refuses: exit 1 with its message.
    for (args, says) in [
        (
            &["jobs", "create", "email", "61 * * * *"][..],
            "minute field",
        ),
        (
            &["jobs", "create", "email", "@daily", "--meta", "[1]"][..],
            "invalid meta",
        ),
        (
            &["jobs", "create", "email", "@daily", "--max-attempts", "0"][..],
            "max_attempts",
        ),
        (&["jobs", "list", "--limit", "5000"][..], "invalid limit"),
        (
            &["jobs", "update", &id, "--expr", "@every 0 seconds"][..],
            "invalid schedule",
        ),
    ] {
        let out = qron(args, Some(&url)).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Arguments that do not parse: exit 2.
    for args in [
        &[
            "jobs",
            "create",
            "email",
            "@daily",
            "--payload",
            "{not json",
        ][..],
        &[
            "jobs",
            "create",
            "email",
            "@daily",
            "--timeout",
            "5 fortnights",
        ][..],
        &["jobs", "list", "--status", "sleeping"][..],
        &["jobs", "show"][..],
        &["jobs", "show", "--name", "x"][..],
        &["jobs", "list", "--created-after", "yesterday"][..],
    ] {
        let out = qron(args, Some(&url)).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let all = db.client().search(&qron::Search::new()).await.unwrap();
    assert_eq!(all.total, 1, "nothing was written");
    assert_eq!(
        db.client().get(job.id).await.unwrap(),
        job,
        "nothing changed"
    );
}

#[tokio::test]
async fn failed_jobs_are_retried_and_waiting_ones_run_now_or_are_cancelled() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();
    let failed = &ok_json(
        &[
            "jobs",
            "create",
            "cli-fails",
            "@after 0 seconds",
            "--payload",
            "{}",
        ],
        &url,
    )
    .await[0];
    let id = failed["id"].as_i64().unwrap().to_string();
    let ran = qron::testing::run_due::<CliFails>(&db.client())
        .await
        .unwrap();
    assert_eq!(ran.failed(), 1);
    let failed = &ok_json(&["jobs", "list", "--status", "failed"], &url).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["last_error"], "it broke");
    let shown = ok(&["jobs", "show", &id], &url).await;
    assert!(shown.contains("errors\n  attempt 1 at "), "{shown}");
    assert!(shown.ends_with(": it broke\n"), "{shown}");

    let retried = &ok_json(
        &["jobs", "retry", &id, "--payload", r#"{"again": true}"#],
        &url,
    )
    .await[0];
    assert_eq!(
        (&retried["status"], &retried["payload"]),
        (&json!("ready"), &json!({"again": true}))
    );
    assert_eq!(
        db.client()
            .get(id.parse::<i64>().unwrap())
            .await
            .unwrap()
            .status,
        qron::JobStatus::Ready
    );

    let later = db
        .client()
        .create(qron::NewJob::new("email", "@after 1 day"))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let due = &ok_json(&["jobs", "run-now", &later.id.to_string()], &url).await[0];
    let run_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(due["run_at"].clone()).unwrap();
    assert!((run_at - now).num_seconds().abs() < 60, "{run_at} vs {now}");
    let cancelled = ok(&["jobs", "cancel", &later.id.to_string()], &url).await;
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    assert_eq!(
        db.client().get(later.id).await.unwrap().status,
        qron::JobStatus::Cancelled
    );
}

#[tokio::test]
async fn executors_are_listed_paused_and_resumed_for_the_owner() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();
    db.client()
        .create(qron::NewJob::new("email", "@after 1 hour"))
        .await
        .unwrap();
    db.client()
        .create(qron::NewJob::new("email", "@after 2 hours"))
        .await
        .unwrap();

    let table = ok(&["executors"], &url).await;
    assert!(table.starts_with("EXECUTOR  READY  RUNNING  STOPPED  PAUSED  LATENESS  WORKERS  LIMITS  CAP\nemail     2      0        0        no      -         0        -       -\n"), "{table}");
    assert_eq!(
        ok(&["executors", "pause", "email"], &url).await,
        "executor email paused for owner default\n"
    );
    let listed = ok_json(&["executors", "list"], &url).await;
    assert_eq!((listed.len(), listed[0]["ready"].as_i64()), (1, Some(2)));
    assert!(listed[0]["paused_at"].is_string(), "{listed:?}");
    // Another owner sees none of it, and its pause is its own.
    assert_eq!(
        ok_json(&["executors", "--owner", "other"], &url)
            .await
            .len(),
        0
    );
    assert!(db.client().executors().await.unwrap()[0].is_paused());
    ok(&["executors", "resume", "email"], &url).await;
    assert!(!db.client().executors().await.unwrap()[0].is_paused());

    // Limits across every worker: set, listed, refused out of range, removed.
    assert_eq!(
        ok(
            &[
                "executors",
                "limit",
                "email",
                "--concurrency",
                "20",
                "--per-field",
                "customer_id",
                "--per-key",
                "2"
            ],
            &url
        )
        .await,
        "executor email limited to 20 at once, 2 per customer_id across every worker\n"
    );
    let table = ok(&["executors"], &url).await;
    assert!(
        table.contains("20 at once, 2 per customer_id (0 in use)"),
        "{table}"
    );
    let zero = qron(
        &["executors", "limit", "email", "--concurrency", "0"],
        Some(&url),
    )
    .await;
    assert_eq!(zero.status.code(), Some(1));
    assert!(
        text(&zero.stderr).contains("concurrency"),
        "{}",
        text(&zero.stderr)
    );
    assert_eq!(
        db.client().executor_limits("email").await.unwrap(),
        Some(
            qron::ExecutorLimits::new()
                .concurrency(20)
                .per_field("customer_id", 2)
        )
    );
    // A rate limit per owner; a period under a second is refused, naming it.
    assert_eq!(
        ok(
            &[
                "executors",
                "limit",
                "email",
                "--rate",
                "100",
                "--rate-period",
                "1m",
                "--rate-per-owner"
            ],
            &url
        )
        .await,
        "executor email limited to 100 per minute per owner across every worker\n"
    );
    let short = qron(
        &[
            "executors",
            "limit",
            "email",
            "--rate",
            "5",
            "--rate-period",
            "500ms",
        ],
        Some(&url),
    )
    .await;
    assert_eq!(short.status.code(), Some(1));
    assert!(
        text(&short.stderr).contains("rate_period"),
        "{}",
        text(&short.stderr)
    );
    assert_eq!(
        ok(&["executors", "unlimit", "email"], &url).await,
        "executor email unlimited\n"
    );
    // The owner's own cap; the operator's weights.
    assert_eq!(
        ok(&["executors", "cap", "email", "3"], &url).await,
        "executor email capped at 3 at once for owner default\n"
    );
    assert_eq!(
        db.client().owner_caps().await.unwrap(),
        [("email".to_owned(), 3, 0)]
    );
    let table = ok(&["executors"], &url).await;
    assert!(
        table.contains("CAP") && table.contains("3 (0 in use)"),
        "{table}"
    );
    assert_eq!(
        ok(&["executors", "uncap", "email"], &url).await,
        "executor email uncapped for owner default\n"
    );
    assert_eq!(
        ok(&["owners", "weight", "acme", "4"], &url).await,
        "owner acme weighs 4\n"
    );
    let weights = ok(&["owners"], &url).await;
    assert!(
        weights.contains("acme") && weights.contains('4'),
        "{weights}"
    );
    let heavy = qron(&["owners", "weight", "acme", "1001"], Some(&url)).await;
    assert_eq!(heavy.status.code(), Some(1));
    assert!(
        text(&heavy.stderr).contains("weight"),
        "{}",
        text(&heavy.stderr)
    );
    ok(&["owners", "unweight", "acme"], &url).await;
    assert!(db.client().owner_weights().await.unwrap().is_empty());
    assert_eq!(db.client().executor_limits("email").await.unwrap(), None);
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = qron(&["completions", shell], None).await;
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("run-now") && script.contains("executors"),
            "{shell}: {script}"
        );
    }
    // A reader that has gone (`| head -1`) ends it quietly, as it ends other tools.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_qron"))
        .args(["completions", "bash"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(13)
    );
}

/// A running `qron dev`: its process, the API's URL, the database server's pid (when it
/// started one) and its banner.
struct Dev {
    child: tokio::process::Child,
    api: String,
    server_pid: Option<i32>,
    banner: String,
}

/// A temporary directory the database server can reach into (it runs as `postgres` under root).
fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

impl Dev {
    /// Starts `qron dev --port 0 extra…` with `tmp` as its temporary directory, and reads its
    /// banner.
    async fn start(tmp: &std::path::Path, extra: &[&str]) -> Dev {
        Dev::start_on(tmp, extra, None).await
    }

    /// As [`Dev::start`], on the database at `database_url` when given.
    async fn start_on(tmp: &std::path::Path, extra: &[&str], database_url: Option<&str>) -> Dev {
        use tokio::io::AsyncBufReadExt as _;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_qron"));
        command.env_remove("DATABASE_URL");
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let mut child = command
            .args(["dev", "--port", "0"])
            .args(extra)
            .env("TMPDIR", tmp)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut api, mut server_pid) = (None, None);
        let mut banner = String::new();
        let mut promised = false;
        while api.is_none() || (server_pid.is_none() && database_url.is_none()) || !promised {
            let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
                .await
                .expect("qron dev printed its banner within 60 s")
                .unwrap()
                .unwrap_or_else(|| panic!("qron dev ended early: {banner}"));
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.trim().strip_prefix("api") {
                api = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.trim().strip_prefix("(pid ") {
                server_pid = rest.split(',').next().and_then(|p| p.parse::<i32>().ok());
            }
            promised |= line.starts_with("Ctrl-C stops it all");
        }
        // Keep reading, so that the banner's last lines never block the process.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let api = api.unwrap();
        assert!(api.starts_with("http://127.0.0.1:"), "{banner}");
        Dev {
            child,
            api,
            server_pid,
            banner,
        }
    }

    /// A GraphQL query's answer.
    async fn query(&self, query: &str) -> Value {
        reqwest::Client::new()
            .post(&self.api)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Ctrl-C, then its exit status; the database server has stopped by then.
    async fn interrupt(mut self) -> std::process::ExitStatus {
        send(self.child.id().unwrap(), nix::sys::signal::Signal::SIGINT);
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait())
            .await
            .expect("qron dev stopped within 30 s of Ctrl-C")
            .unwrap();
        if let Some(pid) = self.server_pid {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None);
            assert!(alive.is_err(), "the database server {pid} has stopped");
        }
        status
    }
}

/// Sends `signal` to process `pid`.
fn send(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

#[tokio::test]
async fn dev_serves_the_api_on_its_printed_port_and_leaves_nothing_behind_on_ctrl_c() {
    // A temporary directory of its own, to see what `qron dev` leaves there.
    let tmp = open_tempdir();
    let dev = Dev::start(tmp.path(), &[]).await;

    // The API answers, with the database behind it.
    let created = dev
        .query(r#"mutation { createJob(job: {executor: "http", expr: "@after 1 hour"}) { id status } }"#)
        .await;
    assert_eq!(created["data"]["createJob"]["status"], "READY", "{created}");
    let found = dev.query("{ jobs { total } }").await;
    assert_eq!(found["data"]["jobs"]["total"], 1, "{found}");
    let temp_entries = || std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(temp_entries(), 1, "the server's directory, while it runs");

    // Ctrl-C: everything stops, and nothing is left.
    let api = dev.api.clone();
    assert_eq!(dev.interrupt().await.code(), Some(0));
    assert_eq!(temp_entries(), 0, "no temporary directory is left");
    assert!(
        reqwest::Client::new().post(&api).send().await.is_err(),
        "the API has stopped"
    );
}

#[tokio::test]
async fn dev_stops_cleanly_on_a_ctrl_c_as_soon_as_it_says_so() {
    // Its banner ends with "Ctrl-C stops it all": from that line on, Ctrl-C is a clean stop
    // (exit 0, the server stopped, nothing left), never the default action's abrupt end.
    for _ in 0..3 {
        let tmp = open_tempdir();
        let dev = Dev::start(tmp.path(), &[]).await;
        assert_eq!(dev.interrupt().await.code(), Some(0));
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "no temporary directory is left"
        );
    }
}

#[tokio::test]
async fn dev_answers_loopback_hosts_only_and_stops_within_2_s_with_a_dashboard_stream_open() {
    let tmp = open_tempdir();
    let dev = Dev::start(tmp.path(), &[]).await;
    let root = dev.api.trim_end_matches("/api/graphql").to_owned();
    let port = root.rsplit(':').next().unwrap().to_owned();
    let http = reqwest::Client::new();
    // A page on another site that rebinds its name to 127.0.0.1 sends its own Host.
    for host in [
        "attacker.example",
        "attacker.example:80",
        "127.0.0.1.nip.io",
        "",
    ] {
        let resp = http
            .post(&dev.api)
            .header("host", host)
            .json(&json!({ "query": "{ jobs { total } }" }))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error(),
            "Host `{host}`: {}",
            resp.status()
        );
        let page = http.get(&root).header("host", host).send().await.unwrap();
        assert!(
            page.status().is_client_error(),
            "Host `{host}`: {}",
            page.status()
        );
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
    ] {
        let resp = http
            .post(&dev.api)
            .header("host", &host)
            .json(&json!({ "query": "{ jobs { total } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "Host `{host}`");
    }
    // A dashboard tab's live stream stays open until the server stops.
    let stream = http.get(format!("{root}/events")).send().await.unwrap();
    assert_eq!(stream.status(), reqwest::StatusCode::OK);
    let started = std::time::Instant::now();
    assert_eq!(dev.interrupt().await.code(), Some(0));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "stopped in {:?}",
        started.elapsed()
    );
    drop(stream);
}

#[tokio::test]
async fn dev_on_a_database_url_prints_no_password_and_runs_no_http_worker_unless_asked() {
    let db = qron::testing::TestDb::new().await.unwrap();
    // The throwaway server trusts local connections: the password is there to be hidden.
    let url = db
        .url()
        .unwrap()
        .replacen("://postgres@", "://postgres:hunter2@", 1);
    assert!(url.contains("hunter2"), "{url}");
    let tmp = open_tempdir();
    let dev = Dev::start_on(tmp.path(), &[], Some(&url)).await;
    assert!(!dev.banner.contains("hunter2"), "{}", dev.banner);
    assert!(
        dev.banner.contains("--http-worker"),
        "the banner says how to run the HTTP worker: {}",
        dev.banner
    );
    let executors = dev.query("{ jobs { total } }").await;
    assert_eq!(executors["data"]["jobs"]["total"], 0, "{executors}");
    assert_eq!(dev.interrupt().await.code(), Some(0));

    let with_worker = Dev::start_on(tmp.path(), &["--http-worker"], Some(&url)).await;
    assert!(
        with_worker.banner.contains("executor `http`"),
        "{}",
        with_worker.banner
    );
    assert_eq!(with_worker.interrupt().await.code(), Some(0));
}

#[tokio::test]
async fn dev_with_a_data_dir_keeps_the_jobs_for_the_next_run() {
    let tmp = open_tempdir();
    let data = tmp.path().join("kept");
    let data_arg = data.to_str().unwrap();
    let dev = Dev::start(tmp.path(), &["--data-dir", data_arg]).await;
    let created = dev
        .query(r#"mutation { createJob(job: {executor: "http", expr: "@after 1 hour", name: "kept"}) { id } }"#)
        .await;
    assert!(created["data"]["createJob"]["id"].is_number(), "{created}");
    assert_eq!(dev.interrupt().await.code(), Some(0));
    assert!(data.join("PG_VERSION").is_file(), "the cluster is kept");

    let again = Dev::start(tmp.path(), &["--data-dir", data_arg]).await;
    let found = again.query(r#"{ jobs { total jobs { name } } }"#).await;
    assert_eq!(found["data"]["jobs"]["total"], 1, "{found}");
    assert_eq!(found["data"]["jobs"]["jobs"][0]["name"], "kept");
    assert_eq!(again.interrupt().await.code(), Some(0));
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["kept"], "only the kept data is left");
}

#[tokio::test]
async fn the_http_worker_sends_due_jobs_to_their_url_and_stops_on_sigterm() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();
    // An endpoint that reports each job it receives.
    let (tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(job): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(job);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let job = &ok_json(
        &[
            "jobs",
            "create",
            "http",
            "@after 0 seconds",
            "--payload",
            r#"{"n": 1}"#,
            "--meta",
            &json!({ "url": hook }).to_string(),
        ],
        &url,
    )
    .await[0];

    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_qron"))
        .args(["worker", "--executor", "http", "--concurrency", "2"])
        // The endpoint is on loopback: the operator allows it.
        .args(["--allow-host", "127.0.0.1"])
        .env("DATABASE_URL", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), received.recv())
        .await
        .expect("the job reached its URL within 30 s")
        .unwrap();
    assert_eq!(
        (&got["id"], &got["payload"]),
        (&job["id"], &json!({"n": 1}))
    );
    // Its success is written (the worker flushes it at the latest when it stops).
    send(worker.id().unwrap(), nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker stopped within 30 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let id = job["id"].as_i64().unwrap();
    assert_eq!(
        db.client().get(id).await.unwrap().status,
        qron::JobStatus::Succeeded
    );

    // An executor it does not carry is a usage error.
    let out = qron(&["worker", "--executor", "email"], Some(&url)).await;
    assert_eq!(out.status.code(), Some(2));
}

/// A transcript line with what changes from run to run made alike: the temporary directory's
/// path, then every number (pids, ports).
fn normalized(line: &str) -> String {
    let mut line = line.trim_end().to_owned();
    while let Some(at) = line.find("qron-pg-") {
        let start = line[..at].rfind([' ', '=', '(', '\'']).map_or(0, |i| i + 1);
        let end = line[at..]
            .find([' ', ')', '\'', ',', ';'])
            .map_or(line.len(), |i| at + i);
        line.replace_range(start..end, "DIR");
    }
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

#[tokio::test]
async fn the_readme_shows_the_banner_qron_dev_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let shown: Vec<String> = readme
        .split("$ qron dev\n")
        .nth(1)
        .and_then(|rest| rest.split("Ctrl-C stops it all.").next())
        .map(|block| block.lines().map(normalized).collect())
        .expect("the README shows a `qron dev` transcript");
    let tmp = open_tempdir();
    let dev = Dev::start(tmp.path(), &[]).await;
    let printed: Vec<String> = dev
        .banner
        .split("Ctrl-C stops it all.")
        .next()
        .unwrap()
        .lines()
        .map(normalized)
        .collect();
    assert_eq!(shown, printed, "README vs the real banner:\n{}", dev.banner);
    assert_eq!(dev.interrupt().await.code(), Some(0));
}

#[tokio::test]
async fn errors_and_empty_lists_speak_in_the_commands_own_terms() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();
    ok(
        &["jobs", "create", "email", "@daily", "--name", "digest"],
        &url,
    )
    .await;
    let again = qron(
        &["jobs", "create", "email", "@daily", "--name", "digest"],
        Some(&url),
    )
    .await;
    assert_eq!(again.status.code(), Some(1));
    let why = text(&again.stderr);
    assert!(why.contains("--on-conflict keep"), "{why}");
    assert!(!why.contains("OnConflict::"), "{why}");
    let none = ok(&["jobs", "list", "--executor", "nobody"], &url).await;
    assert!(none.contains("no job matches"), "{none}");
    let past = ok(&["jobs", "list", "--offset", "5"], &url).await;
    assert!(past.contains("1 match in all"), "{past}");
}

#[tokio::test]
async fn dev_closes_a_connection_that_sends_half_a_request_head() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tmp = open_tempdir();
    let dev = Dev::start(tmp.path(), &[]).await;
    let addr = dev
        .api
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    // Closed by the server (end of stream, or a reset, maybe after a 408) within a bound.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert_eq!(dev.interrupt().await.code(), Some(0));
}

/// The README's terminal sessions after `qron dev`'s: each a list of (command, what it prints).
fn readme_sessions() -> Vec<Vec<(String, Vec<String>)>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut sessions = Vec::new();
    for block in readme.split("```console\n").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        if block.starts_with("$ qron dev\n") {
            continue; // its own test: the_readme_shows_the_banner_qron_dev_prints
        }
        let mut steps: Vec<(String, Vec<String>)> = Vec::new();
        for line in block.lines() {
            match line.strip_prefix("$ ") {
                Some(command) => steps.push((command.to_owned(), Vec::new())),
                None => {
                    if let Some(step) = steps.last_mut() {
                        step.1.push(line.to_owned());
                    }
                }
            }
        }
        sessions.push(steps);
    }
    sessions
}

#[tokio::test]
async fn the_readmes_terminal_sessions_print_what_the_commands_print() {
    let sessions = readme_sessions();
    assert!(
        sessions.len() >= 2,
        "the README shows qron's commands at work"
    );
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_qron"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for steps in sessions {
        // Each session on a database of its own, as on a fresh `qron dev`.
        let db = qron::testing::TestDb::new().await.unwrap();
        let url = db.url().unwrap();
        for (command, shown) in steps {
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{{ {command}; }} 2>&1"))
                .env("PATH", &path)
                .env("DATABASE_URL", &url)
                .env("TZ", "UTC")
                .env_remove("QRON_OWNER")
                .output()
                .await
                .unwrap();
            let printed: Vec<String> = text(&out.stdout).lines().map(normalized).collect();
            // `…` in the README stands for the rest of the output.
            let cut = shown.iter().position(|l| l.trim() == "…");
            let shown: Vec<String> = shown[..cut.unwrap_or(shown.len())]
                .iter()
                .map(|l| normalized(l))
                .collect();
            let printed = match cut {
                Some(_) => printed.into_iter().take(shown.len()).collect(),
                None => printed,
            };
            assert_eq!(printed, shown, "`{command}`: the README shows other output");
        }
    }
}

#[tokio::test]
async fn a_job_waiting_for_its_retry_is_listed_and_shown_as_retrying() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();
    let client = db.client();
    let flaky = client
        .create(qron::NewJob::new("email", "@after 1 hour"))
        .await
        .unwrap();
    client
        .create(qron::NewJob::new("email", "@after 1 hour"))
        .await
        .unwrap();
    // As a failed first attempt leaves it: ready, its attempt counted, the error kept.
    sqlx::query("UPDATE qron.jobs SET attempt = 1, last_error = 'smtp: busy' WHERE id = $1")
        .bind(flaky.id)
        .execute(db.pool())
        .await
        .unwrap();
    let listed = ok(&["jobs", "list", "--status", "retrying"], &url).await;
    let rows: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("jobs "))
        .collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert!(
        rows[0].contains("retrying") && rows[0].contains("1/5"),
        "{listed}"
    );
    let shown = ok(&["jobs", "show", &flaky.id.to_string()], &url).await;
    assert!(
        shown.contains("retrying (attempt 1 of 5 failed)"),
        "{shown}"
    );
}

#[tokio::test]
async fn workflows_show_step_by_step_cancel_what_is_left_and_retry() {
    let db = qron::testing::TestDb::new().await.unwrap();
    let url = db.url().unwrap();
    let mut wf = qron::Workflow::new("nightly");
    wf.add_job("fetch", qron::NewJob::new("fetch", "@after 1 hour"));
    wf.add_job("merge", qron::NewJob::new("merge", "@after 0s"))
        .after(["fetch"]);
    let created = wf.create(&db.client()).await.unwrap();
    let id = created.id.to_string();
    let shown = ok(&["workflows", "show", &id], &url).await;
    assert!(
        shown.starts_with(&format!(
            "workflow {id} nightly: running, 0 of 2 jobs ended"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("merge") && shown.contains("waiting") && shown.contains("fetch"),
        "{shown}"
    );
    let json = ok_json(&["workflows", "show", &id], &url).await;
    assert_eq!(json[0]["steps"][1]["after"], json!(["fetch"]), "{json:?}");
    let listed = ok(&["workflows", "list"], &url).await;
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&id) && l.contains("nightly") && l.contains("running")),
        "{listed}"
    );
    assert_eq!(
        ok(&["workflows", "cancel", &id], &url).await,
        format!("workflow {id}: 2 jobs cancelled\n")
    );
    assert_eq!(
        ok(&["workflows", "retry", &id], &url).await,
        format!("workflow {id}: 2 jobs retried\n")
    );
    assert!(
        ok(&["workflows", "show", &id], &url)
            .await
            .contains(": running, 0 of 2 jobs ended")
    );
    let mut batch = qron::Batch::new();
    batch.add_job(qron::NewJob::new("row", "@after 1 hour"));
    batch.add_job(qron::NewJob::new("row", "@after 1 hour"));
    batch.on_finish_job(qron::NewJob::new("done", "@after 0s"));
    let b = batch.create(&db.client()).await.unwrap();
    let shown = ok(&["batch", &b.callback.to_string()], &url).await;
    assert!(
        shown.starts_with(&format!(
            "batch {}: callback waiting, 0 of 2 jobs ended",
            b.callback
        )),
        "{shown}"
    );
    assert!(
        shown.contains("live") && shown.contains(&b.jobs[1].to_string()),
        "{shown}"
    );
    let other = qron(&["workflows", "show", &id, "--owner", "acme"], Some(&url)).await;
    assert_ne!(other.status.code(), Some(0));
    assert!(
        text(&other.stderr).contains("not found"),
        "{}",
        text(&other.stderr)
    );
}

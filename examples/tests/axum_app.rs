//! The axum example, built and driven over HTTP as a user would: sign-up enqueues the welcome
//! mail in its transaction, the mail job uses the application's state, the recurring job runs,
//! and SIGTERM stops the server and the worker, the long export saving its progress.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Stdio;
use std::time::Duration;

use qron::JobStatus;
use qron::testing::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Polls `check` every 20 ms until it gives a value; panics, naming `what`, after 20 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_app_enqueues_with_its_transaction_runs_its_jobs_and_stops_gracefully() {
    let db = TestDb::new().await.unwrap();
    let mut app = tokio::process::Command::new(env!("CARGO_BIN_EXE_axum_app"))
        .arg("127.0.0.1:0")
        .env("DATABASE_URL", db.url().unwrap())
        .env("ADMIN_PASSWORD", "s3cret")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(app.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the app starts within a minute")
        .unwrap()
        .unwrap();
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // Sign-up: the user and the welcome mail, in one transaction.
    let signed = http
        .post(format!("{base}/signup"))
        .json(&json!({ "email": "ada@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), reqwest::StatusCode::CREATED);
    let id = signed.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    // The mail job ran with the application's pool and mailer.
    eventually("the welcome mail", || async {
        (get(format!("/users/{id}")).await["welcomed"] == json!(true)).then_some(())
    })
    .await;
    assert_eq!(
        get("/outbox".to_owned()).await,
        json!(["ada@example.com: welcome!"])
    );
    // The recurring job counted the user.
    eventually("the stats", || async {
        (get("/stats".to_owned()).await["users"] == json!(1)).then_some(())
    })
    .await;

    // A long export, interrupted by the shutdown.
    let started = http
        .post(format!("{base}/exports"))
        .json(&json!({ "steps": 1_000_000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), reqwest::StatusCode::ACCEPTED);
    let export = started.json::<Value>().await.unwrap()["job"]
        .as_i64()
        .unwrap();
    let client = db.client();
    eventually("the export to make progress", || async {
        (get("/exports/progress".to_owned()).await["done"].as_u64() > Some(0)).then_some(())
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(app.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), app.wait())
        .await
        .expect("the app stops within the grace period")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert_eq!(rest, ["stopped"]);

    // The export saved its progress and waits to resume, its attempt not spent.
    let job = client.get(export).await.unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Ready, 0));
    let done = job.payload["done"].as_u64().unwrap();
    assert!(done > 0 && done < 1_000_000, "done: {done}");
}

/// Starts the example on `db` with `env`; the process, its base URL and the rest of its output.
async fn start(
    db: &TestDb,
    env: &[(&str, &str)],
) -> (
    tokio::process::Child,
    String,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_axum_app"));
    command
        .arg("127.0.0.1:0")
        .env("DATABASE_URL", db.url().unwrap())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut app = command.spawn().unwrap();
    let mut lines = BufReader::new(app.stdout.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the app starts within a minute")
            .unwrap()
            .expect("the app prints where it listens");
        if let Some(base) = line.strip_prefix("listening on ") {
            return (app, base.to_owned(), lines);
        }
    }
}

#[tokio::test]
async fn the_admin_area_sends_a_browser_to_sign_in_then_shows_the_dashboard_and_the_api() {
    let db = TestDb::new().await.unwrap();
    let (_app, base, _lines) = start(&db, &[("ADMIN_PASSWORD", "s3cret")]).await;
    // A browser: no redirects followed, so each answer is seen.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/admin", "/admin/", "/admin/jobs", "/admin/api"] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER, "{path}");
        assert_eq!(resp.headers()["location"], "/login", "{path}");
    }
    let wrong = http
        .post(format!("{base}/login"))
        .form(&[("password", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let signed = http
        .post(format!("{base}/login"))
        .form(&[("password", "s3cret")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), reqwest::StatusCode::SEE_OTHER);
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for (path, expected) in [
        ("/admin", "Overview"),
        ("/admin/", "Overview"),
        ("/admin/jobs", "Jobs"),
        ("/admin/api", "GraphiQL"),
    ] {
        let resp = http
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "{path}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(expected), "{path}: {html}");
    }
    let answer: Value = http
        .post(format!("{base}/admin/api/graphql"))
        .header("cookie", &cookie)
        .json(&json!({ "query": "{ executors { executor } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["data"]["executors"].is_array(), "{answer}");
}

#[tokio::test]
async fn the_admin_area_can_ask_for_http_basic_instead() {
    let db = TestDb::new().await.unwrap();
    // base64("admin:s3cret")
    let expected = "Basic YWRtaW46czNjcmV0";
    let (_app, base, _lines) = start(
        &db,
        &[
            ("ADMIN_PASSWORD", "s3cret"),
            ("ADMIN_AUTH", "basic"),
            ("ADMIN_BASIC", expected),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let challenge = http.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(challenge.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.headers()["www-authenticate"],
        "Basic realm=\"qron\""
    );
    let page = http
        .get(format!("{base}/admin"))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
}

//! The dashboard (issue 20) in a real headless Chromium, driven over WebDriver: the overview's
//! counts and their live updates, the job list's filters and pages, a job's page, actions from
//! the browser, cross-site posts, read-only mode, the playground and the narrow screen; retries
//! and counts per state; GraphiQL; and the API docs' way to the dashboard guide.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::StatusCode;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use qron::{Client, JobStatus, NewJob};
use qron_tests::TestDb;
use qron_tests::jobs::{Act, Mode, Script, key};
use serde_json::json;

/// How long the browser may take to show what a step expects.
const WAIT: Duration = Duration::from_secs(10);

/// The process's chromedriver: its port. Started once, stopped when the tests end.
fn chromedriver() -> u16 {
    static DRIVER: OnceLock<(u16, std::sync::Mutex<Child>)> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // Spawned from a thread that lives as long as the process: the driver gets SIGTERM
            // when that thread ends, that is when this test process does (the signal follows
            // the spawning thread, not the process).
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut command = Command::new("chromedriver");
                command
                    .arg(format!("--port={port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                // SAFETY: runs in the forked child before exec and only calls prctl(2), which
                // is async-signal-safe.
                #[allow(unsafe_code)]
                unsafe {
                    use std::os::unix::process::CommandExt as _;
                    command.pre_exec(|| {
                        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                            .map_err(std::io::Error::from)
                    });
                }
                let _ = tx.send(command.spawn());
                loop {
                    std::thread::park();
                }
            });
            let child = rx.recv().unwrap().unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start ({e}): install Debian's chromium and \
                     chromium-driver packages (`apt-get install chromium chromium-driver`)"
                )
            });
            // Bounded wait for it to listen.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "chromedriver listens within 20 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            (port, std::sync::Mutex::new(child))
        })
        .0
}

/// A fresh headless Chromium, `width` pixels wide.
async fn browser(width: u32) -> Browser {
    let port = chromedriver();
    let mut caps = serde_json::Map::new();
    let mut options = json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", format!("--window-size={width},900"),
            ],
    });
    // A headless window is at least 500 px wide: a narrower screen is a phone's, emulated.
    if width < 500 {
        options["mobileEmulation"] =
            json!({ "deviceMetrics": { "width": width, "height": 800, "pixelRatio": 1.0 } });
    }
    caps.insert("goog:chromeOptions".to_owned(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session (is Debian's chromium installed?)")
}

/// Serves `dashboard` under `/ops` on a loopback port; its base URL.
async fn serve(dashboard: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().nest("/ops", dashboard))
            .await
            .unwrap();
    });
    format!("http://{addr}/ops")
}

/// The text of the element `css` finds, once it shows `want` (bounded wait).
async fn wait_text(b: &Browser, css: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = match b.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(want) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{css}` shows {want:?} within {WAIT:?}; it shows {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of each element `css` finds.
async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// A client of the test database acting as `owner`.
fn owner(db: &TestDb, owner: &str) -> Client {
    Client::builder(db.pool.clone()).owner(owner).build()
}

/// The overview of `client`'s dashboard (refreshed every 250 ms, open to anyone) in a fresh
/// browser; and the dashboard's base URL.
async fn overview(client: &Client) -> (Browser, String) {
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .refresh(Duration::from_millis(250))
            .dashboard(),
    )
    .await;
    let b = browser(1200).await;
    b.goto(&base).await.unwrap();
    (b, base)
}

#[tokio::test]
async fn the_overview_shows_the_counts_and_updates_within_two_seconds_when_jobs_finish() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let k = key("overview");
    for i in 0..3 {
        client
            .create(NewJob::new("mail", format!("@after {} hours", i + 1)))
            .await
            .unwrap();
    }
    let work: Vec<NewJob> = (0..2)
        .map(|_| {
            NewJob::new("act", "@after 0 seconds")
                .payload(serde_json::to_value(Script::new(&k, Mode::Ok)).unwrap())
        })
        .collect();
    client.create_many(work).await.unwrap();
    // Another owner's jobs are not counted.
    owner(&db, "other")
        .create(NewJob::new("mail", "@after 1 hour"))
        .await
        .unwrap();
    let (b, _) = overview(&client).await;
    let row = |executor: &str, count: &str| {
        format!("tr[data-executor={executor}] td[data-count={count}]")
    };
    assert_eq!(wait_text(&b, &row("mail", "ready"), "3").await, "3");
    assert_eq!(wait_text(&b, &row("act", "ready"), "2").await, "2");
    assert_eq!(wait_text(&b, &row("act", "ran"), "0").await, "0");
    // Times show in the browser's zone, with UTC on hover.
    let stamp = b.find(Locator::Css("#overview-at time")).await.unwrap();
    assert!(stamp.attr("title").await.unwrap().unwrap().ends_with("UTC"));

    // A keyboard user is on the `act` row's button while the rows refresh.
    // (Focused by a script: a found element can be replaced before a WebDriver call reaches it.)
    b.execute(
        "document.querySelector('tr[data-executor=act] button').focus();",
        vec![],
    )
    .await
    .unwrap();

    // The jobs finish; the page, left open, follows within 2 s.
    let ran = qron::testing::run_due::<Act>(&client).await.unwrap();
    assert_eq!(ran.succeeded(), 2);
    let started = std::time::Instant::now();
    wait_text(&b, &row("act", "ran"), "2").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "updated in {:?}",
        started.elapsed()
    );
    assert_eq!(wait_text(&b, &row("act", "ready"), "0").await, "0");
    // The focus stayed on that executor's button through the refreshes.
    let focused = b
        .execute(
            "const e = document.activeElement; \
             return e.tagName + ' ' + (e.closest('tr') ? e.closest('tr').dataset.executor : '');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focused, json!("BUTTON act"));
    b.close().await.unwrap();
}

#[tokio::test]
async fn retries_counts_per_state_and_an_unserved_executor_show_in_the_browser() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let k = key("states");
    let job = |mode| {
        NewJob::new("act", "@after 0 seconds")
            .payload(serde_json::to_value(Script::new(&k, mode)).unwrap())
            .max_attempts(3)
    };
    let retrying = client.create(job(Mode::RetryAfter(3600))).await.unwrap();
    client.create(job(Mode::Ok)).await.unwrap();
    client.create(job(Mode::Fail)).await.unwrap();
    // Due, and no worker serves `mail`.
    let waiting = client
        .create(NewJob::new("mail", "@after 0 seconds"))
        .await
        .unwrap();
    let ran = qron::testing::run_due::<Act>(&client).await.unwrap();
    assert_eq!((ran.succeeded(), ran.failed(), ran.retried()), (1, 1, 1));
    let (b, base) = overview(&client).await;
    let cell = |executor: &str, count: &str| {
        format!("tr[data-executor={executor}] td[data-count={count}]")
    };
    // Three jobs ran within the hour; two of them failed (the retrying one, on its first
    // attempt, and the failed one): "failed" is a part of "ran", as the page says.
    // (Read with `wait_text`: the rows are replaced at each live update.)
    for (count, want) in [
        ("ran", "3"),
        ("failed", "2"),
        ("ready", "1"),
        ("retrying", "1"),
    ] {
        assert_eq!(
            wait_text(&b, &cell("act", count), want).await,
            want,
            "{count}"
        );
    }
    let definitions = texts(&b, "main dfn").await;
    assert_eq!(definitions, ["ran", "failed"]);
    // The executor nobody serves stands out, and says why its jobs wait.
    let unserved = "tr.unserved[data-executor=mail] [data-unserved]";
    assert_eq!(
        wait_text(&b, unserved, "due jobs wait").await,
        "none: due jobs wait"
    );
    assert!(
        b.find(Locator::Css("tr.unserved[data-executor=act]"))
            .await
            .is_err()
    );

    // The retrying count opens the list of retrying jobs: that one job, labelled so.
    let link = format!("{} a", cell("act", "retrying"));
    click_through(&b, Locator::Css(&link), false).await;
    wait_text(&b, "#counts [aria-current=page]", "Retrying").await;
    assert_eq!(ids(&b).await, [retrying.id]);
    let label = b
        .find(Locator::Css(&format!(
            "tr[data-id='{}'] .status",
            retrying.id
        )))
        .await
        .unwrap();
    assert_eq!(label.text().await.unwrap(), "retrying");
    // The list counts its executor's jobs by state, each count a link to its list.
    let strip = |status: &str| format!("#counts li[data-count={status}] strong");
    assert_eq!(texts(&b, &strip("ready")).await, ["1"]);
    assert_eq!(texts(&b, &strip("retrying")).await, ["1"]);
    assert_eq!(texts(&b, &strip("running")).await, ["0"]);
    assert_eq!(texts(&b, &strip("ran")).await, ["3"]);
    assert_eq!(texts(&b, &strip("failed")).await, ["2"]);
    click_through(&b, Locator::Css("#counts li[data-count=ready] a"), false).await;
    wait_text(&b, "#counts [aria-current=page]", "Ready").await;
    assert!(
        b.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/jobs?executor=act&status=ready")
    );
    assert_eq!(ids(&b).await, [retrying.id]);
    // With no executor chosen, every executor counts: `mail`'s waiting job too.
    b.goto(&format!("{base}/jobs")).await.unwrap();
    wait_text(&b, "#counts [aria-current=page]", "All").await;
    assert_eq!(texts(&b, &strip("ready")).await, ["2"]);
    assert!(ids(&b).await.contains(&waiting.id));
    b.close().await.unwrap();
}

#[tokio::test]
async fn the_job_list_filters_and_pages_and_a_job_page_shows_the_job() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let many: Vec<NewJob> = (0..120)
        .map(|i| NewJob::new("mail", "@after 1 hour").payload(json!({ "n": i })))
        .collect();
    client.create_many(many).await.unwrap();
    let weekly = client
        .create(
            NewJob::new("report", "0 9 * * MON-FRI")
                .name("weekday-report")
                .payload(json!({ "to": "team@example.com" }))
                .meta(json!({ "team": "growth" })),
        )
        .await
        .unwrap();
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .dashboard(),
    )
    .await;
    let b = browser(1200).await;

    // Filtered by executor, then by meta.
    b.goto(&format!("{base}/jobs")).await.unwrap();
    b.find(Locator::Css("#f-executor"))
        .await
        .unwrap()
        .send_keys("report")
        .await
        .unwrap();
    click_through(&b, Locator::Css("form.filters button"), false).await;
    wait_text(&b, "#jobs tbody", "weekday-report").await;
    assert_eq!(texts(&b, "#jobs tbody tr").await.len(), 1);
    b.goto(&format!("{base}/jobs?meta=%7B%22team%22%3A%22nobody%22%7D"))
        .await
        .unwrap();
    wait_text(&b, "#jobs tbody", "No job matches").await;
    // By schedule, and by when they are due.
    b.goto(&format!("{base}/jobs?recurring=yes")).await.unwrap();
    wait_text(&b, "#jobs tbody", "weekday-report").await;
    assert_eq!(texts(&b, "#jobs tbody tr").await.len(), 1);
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M");
    b.goto(&format!("{base}/jobs?recurring=no&due_from={later}"))
        .await
        .unwrap();
    wait_text(&b, "#jobs tbody", "No job matches").await;

    // Pages of 50, newest first, by keyset.
    b.goto(&format!("{base}/jobs?executor=mail")).await.unwrap();
    let first: Vec<i64> = ids(&b).await;
    assert_eq!(first.len(), 50);
    assert!(first.windows(2).all(|w| w[0] > w[1]), "newest first");
    click_through(&b, Locator::LinkText("Older jobs"), false).await;
    wait_text(&b, "nav.pager", "Newest").await;
    let second = ids(&b).await;
    assert_eq!(second.len(), 50);
    assert!(
        second[0] < first[49],
        "the next page goes on where the first ended"
    );
    click_through(&b, Locator::LinkText("Older jobs"), false).await;
    wait_text(&b, "nav.pager", "Newest").await;
    let third = ids(&b).await;
    assert_eq!(third.len(), 20);
    assert!(
        b.find(Locator::LinkText("Older jobs")).await.is_err(),
        "the last page"
    );

    // A job's page.
    b.goto(&format!("{base}/jobs/{}", weekly.id)).await.unwrap();
    wait_text(&b, "h1", &format!("Job {}", weekly.id)).await;
    wait_text(&b, "#payload", "team@example.com").await;
    wait_text(&b, "#meta", "growth").await;
    wait_text(&b, "dl.facts", "0 9 * * 1-5").await;
    assert_eq!(texts(&b, "#next-runs li").await.len(), 10);
    wait_text(&b, "main", "Recent runs").await;
    // Another owner's job is not found.
    let theirs = owner(&db, "other")
        .create(NewJob::new("mail", "@after 1 hour"))
        .await
        .unwrap();
    let resp = reqwest::get(format!("{base}/jobs/{}", theirs.id))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    b.close().await.unwrap();
}

/// The ids of the job list's rows.
async fn ids(b: &Browser) -> Vec<i64> {
    let mut out = Vec::new();
    for row in b.find_all(Locator::Css("#jobs tbody tr")).await.unwrap() {
        if let Some(id) = row.attr("data-id").await.unwrap() {
            out.push(id.parse().unwrap());
        }
    }
    out
}

#[tokio::test]
async fn retry_cancel_and_pause_from_the_browser_change_the_rows() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let k = key("actions");
    let failed = client
        .create(
            NewJob::new("act", "@after 0 seconds")
                .max_attempts(1)
                .payload(serde_json::to_value(Script::new(&k, Mode::Fail)).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        qron::testing::run_due::<Act>(&client)
            .await
            .unwrap()
            .failed(),
        1
    );
    let waiting = client
        .create(NewJob::new("mail", "@after 1 hour"))
        .await
        .unwrap();
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .dashboard(),
    )
    .await;
    let b = browser(1200).await;

    // Retry the failed job from its page.
    b.goto(&format!("{base}/jobs/{}", failed.id)).await.unwrap();
    click_button(&b, "Retry", false).await;
    wait_text(&b, "dl.facts", "ready").await;
    assert_eq!(
        client.get(failed.id).await.unwrap().status,
        JobStatus::Ready
    );

    // Cancel the waiting one (the page asks first).
    b.goto(&format!("{base}/jobs/{}", waiting.id))
        .await
        .unwrap();
    click_button(&b, "Cancel", true).await;
    wait_text(&b, "dl.facts", "cancelled").await;
    assert_eq!(
        client.get(waiting.id).await.unwrap().status,
        JobStatus::Cancelled
    );

    // Pause an executor from the overview, then resume it.
    b.goto(&base).await.unwrap();
    wait_text(&b, "tr[data-executor=act]", "Pause").await;
    click_through(&b, Locator::Css("tr[data-executor=act] button"), false).await;
    wait_text(&b, "tr[data-executor=act]", "Resume").await;
    let info = client.executors().await.unwrap();
    assert!(info.iter().any(|e| e.executor == "act" && e.is_paused()));
    click_through(&b, Locator::Css("tr[data-executor=act] button"), false).await;
    wait_text(&b, "tr[data-executor=act]", "Pause").await;
    assert!(
        !client
            .executors()
            .await
            .unwrap()
            .iter()
            .any(|e| e.is_paused())
    );

    // A selection: stop two jobs at once.
    let a = client
        .create(NewJob::new("mail", "@after 2 hours"))
        .await
        .unwrap();
    let c = client
        .create(NewJob::new("mail", "@after 3 hours"))
        .await
        .unwrap();
    b.goto(&format!("{base}/jobs?executor=mail")).await.unwrap();
    for id in [a.id, c.id] {
        b.wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!("input[name=ids][value='{id}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    b.find(Locator::Css("#bulk-action option[value=stop]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click_button(&b, "Apply", true).await;
    wait_text(&b, "p[role=status]", "2 of 2 jobs").await;
    for id in [a.id, c.id] {
        assert_eq!(client.get(id).await.unwrap().status, JobStatus::Stopped);
    }
    b.close().await.unwrap();
}

#[tokio::test]
async fn an_admin_limits_an_executor_from_the_overview_and_a_tenant_may_not() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    client
        .create(NewJob::new("sync", "@after 1 hour"))
        .await
        .unwrap();
    // `allow_anonymous` acts as the client's owner with every scope: the admin's.
    let (b, _base) = overview(&client).await;
    wait_text(&b, "tr[data-executor=sync] td[data-limits]", "none").await;
    type_into(&b, "tr[data-executor=sync] input[name=concurrency]", "3").await;
    click_button(&b, "Limit", false).await;
    wait_text(
        &b,
        "tr[data-executor=sync] td[data-limits]",
        "3 at once: 0 in use",
    )
    .await;
    assert_eq!(
        client.executor_limits("sync").await.unwrap(),
        Some(qron::ExecutorLimits::new().concurrency(3))
    );
    // A rate limit per key set elsewhere shows with its buckets, and survives a new limit on
    // all at once from the form (which changes that limit only).
    let rate = qron::RateLimit::per_minute(100)
        .per_field("customer_id")
        .burst(5);
    client
        .set_executor_limits(
            "sync",
            qron::ExecutorLimits::new()
                .concurrency(3)
                .rate(rate.clone()),
        )
        .await
        .unwrap();
    wait_text(
        &b,
        "tr[data-executor=sync] td[data-limits]",
        "3 at once, 100 per minute per customer_id: 0 in use, 0 out of starts",
    )
    .await;
    type_into(&b, "tr[data-executor=sync] input[name=concurrency]", "4").await;
    click_button(&b, "Limit", false).await;
    wait_text(
        &b,
        "tr[data-executor=sync] td[data-limits]",
        "4 at once, 100 per minute per customer_id",
    )
    .await;
    assert_eq!(
        client.executor_limits("sync").await.unwrap(),
        Some(qron::ExecutorLimits::new().concurrency(4).rate(rate))
    );
    click_button(&b, "Unlimit", false).await;
    wait_text(&b, "tr[data-executor=sync] td[data-limits]", "none").await;
    assert_eq!(client.executor_limits("sync").await.unwrap(), None);
    b.close().await.unwrap();

    // A tenant that may operate its own jobs sees the limits, and its own cap; has no form,
    // and is refused.
    client
        .set_executor_limits("sync", qron::ExecutorLimits::new().concurrency(3))
        .await
        .unwrap();
    client.set_owner_cap("sync", 2).await.unwrap();
    let tenant = serve(
        qron::http::Api::new(client.clone())
            .refresh(Duration::from_millis(250))
            .dashboard()
            .layer(axum::Extension(qron::http::Owner::operate("default"))),
    )
    .await;
    // The figures are counted once a viewer asks: the first page may come before them.
    let deadline = std::time::Instant::now() + WAIT;
    let page = loop {
        let page = reqwest::get(&tenant).await.unwrap().text().await.unwrap();
        if page.contains("3 at once") || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(page.contains("3 at once"), "{page}");
    assert!(page.contains("owner's cap 2: 0 in use"), "{page}");
    assert!(!page.contains(r#"name="concurrency""#), "{page}");
    let (cookie, token) = page_token(&tenant).await;
    let refused = reqwest::Client::new()
        .post(format!("{tenant}/executors/unlimit"))
        .header("cookie", cookie)
        .header("origin", format!("http://{}", host_of(&tenant)))
        .form(&[("token", token.as_str()), ("executor", "sync")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(client.executor_limits("sync").await.unwrap().is_some());
}

/// Types `text` into the field `css` finds on the overview, whose live rows are replaced at each
/// count: an element found there may be gone, or not yet painted, by the keystrokes, and is
/// found again (bounded wait). The page keeps what was typed across replacements.
async fn type_into(b: &Browser, css: &str, text: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        // A try cut short may have typed part of it.
        let _ = b
            .execute(
                "const f = document.querySelector(arguments[0]); if (f) { f.value = ''; }",
                vec![json!(css)],
            )
            .await;
        let typed = match b.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(field) => field.send_keys(text).await,
            Err(e) => Err(e),
        };
        let value = b
            .execute(
                "const f = document.querySelector(arguments[0]); return f ? f.value : null;",
                vec![json!(css)],
            )
            .await
            .ok();
        if typed.is_ok() && value == Some(json!(text)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "typing into `{css}`: {typed:?}, the field holds {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the button labelled `label` and waits for the page it leads to (see [`click_through`]).
async fn click_button(b: &Browser, label: &str, confirm: bool) {
    let xpath = format!("//button[normalize-space()='{label}']");
    click_through(b, Locator::XPath(&xpath), confirm).await;
}

/// Clicks what `target` finds on a painted page, accepts the confirmation it asks for when
/// `confirm`, and waits (bounded) until the page it leads to has replaced the current one and
/// loaded.
///
/// Without the waits, a step could act on a page not yet ready for input (Chromium drops input
/// that comes before a page's first frame), or read the old page while the form's post is on
/// its way and find there what it expects, or not. The overview's live rows are replaced at
/// each count, so an element found there may be gone by the click: it is found again.
async fn click_through(b: &Browser, target: Locator<'_>, confirm: bool) {
    let deadline = std::time::Instant::now() + WAIT;
    b.execute("window.qronLeaving = true;", vec![])
        .await
        .unwrap();
    b.execute_async(
        "const done = arguments[arguments.length - 1]; \
         requestAnimationFrame(() => requestAnimationFrame(() => done()));",
        vec![],
    )
    .await
    .unwrap();
    loop {
        let element = b.wait().at_most(WAIT).for_element(target).await.unwrap();
        match element.click().await {
            Ok(()) => break,
            Err(e) if e.is_stale_element_reference() && std::time::Instant::now() < deadline => {}
            Err(e) => panic!("clicking {target:?}: {e}"),
        }
    }
    if confirm {
        b.accept_alert().await.unwrap();
    }
    loop {
        // While the new page loads, the script may fail: not there yet.
        let arrived = b
            .execute(
                "return window.qronLeaving === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await;
        if matches!(arrived, Ok(serde_json::Value::Bool(true))) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "clicking {target:?} led to a new page within {WAIT:?} (still on {:?})",
            b.current_url().await.map(|u| u.to_string())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A test database with one job waiting an hour, and the dashboard serving it: the database
/// (kept alive), a client, the job and the dashboard's base URL.
async fn one_waiting_job() -> (TestDb, Client, qron::JobRow, String) {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let job = client
        .create(NewJob::new("mail", "@after 1 hour"))
        .await
        .unwrap();
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .dashboard(),
    )
    .await;
    (db, client, job, base)
}

/// The `host:port` of a base URL.
fn host_of(base: &str) -> String {
    base.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// The dashboard's token cookie and a page's token, as a browser on the page would have them.
async fn page_token(base: &str) -> (String, String) {
    let resp = reqwest::get(format!("{base}/jobs")).await.unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = resp.text().await.unwrap();
    let at = html.find(r#"name="token" value=""#).unwrap() + r#"name="token" value=""#.len();
    (cookie, html[at..at + 32].to_owned())
}

#[tokio::test]
async fn a_cross_site_post_is_refused_and_read_only_mode_hides_and_refuses_actions() {
    let (_db, client, job, base) = one_waiting_job().await;
    let host = host_of(&base);
    let (cookie, token) = page_token(&base).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |origin: &str, fetch_site: &str, form_token: &str| {
        http.post(format!("{base}/jobs/{}/stop", job.id))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("sec-fetch-site", fetch_site)
            .form(&[("token", form_token)])
            .send()
    };
    // From another site, with or without the token: refused, and nothing changes.
    for (origin, site, t) in [
        ("http://evil.example", "cross-site", token.as_str()),
        ("http://evil.example", "cross-site", ""),
        (
            &format!("http://{host}") as &str,
            "same-origin",
            "0123456789abcdef0123456789abcdef",
        ),
        ("null", "cross-site", token.as_str()),
    ] {
        let resp = post(origin, site, t).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{origin} {site} {t}");
    }
    assert_eq!(client.get(job.id).await.unwrap().status, JobStatus::Ready);
    // The same post from the dashboard's own page works.
    let resp = post(&format!("http://{host}"), "same-origin", &token)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(client.get(job.id).await.unwrap().status, JobStatus::Stopped);

    // Read-only: no buttons, and a post is refused.
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .read_only(true)
            .dashboard(),
    )
    .await;
    let b = browser(1200).await;
    b.goto(&format!("{base}/jobs/{}", job.id)).await.unwrap();
    wait_text(&b, "header", "read-only").await;
    assert!(
        b.find_all(Locator::Css("main button"))
            .await
            .unwrap()
            .is_empty()
    );
    b.goto(&base).await.unwrap();
    wait_text(&b, "#overview-rows", "mail").await;
    assert!(
        b.find_all(Locator::Css("main button"))
            .await
            .unwrap()
            .is_empty()
    );
    let host = host_of(&base);
    let (cookie, token) = page_token(&base).await;
    let resp = http
        .post(format!("{base}/jobs/{}/restart", job.id))
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(client.get(job.id).await.unwrap().status, JobStatus::Stopped);
    // A workflow's page likewise: no buttons, and its cancel is refused.
    let mut wf = qron::Workflow::new("nightly");
    wf.add_job("fetch", NewJob::new("fetch", "@after 1 hour"));
    let created = wf.create(&client).await.unwrap();
    b.goto(&format!("{base}/workflows/{}", created.id))
        .await
        .unwrap();
    wait_text(&b, "#workflow-status", "running").await;
    assert!(
        b.find_all(Locator::Css("main button"))
            .await
            .unwrap()
            .is_empty()
    );
    let resp = http
        .post(format!("{base}/workflows/{}/cancel", created.id))
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        client.workflow(created.id).await.unwrap().status,
        qron::WorkflowStatus::Running
    );
    b.close().await.unwrap();
}

#[tokio::test]
async fn the_playground_shows_the_error_or_the_next_runs_as_you_type() {
    let db = TestDb::new().await;
    let base = serve(
        qron::http::Api::new(Client::new(db.pool.clone()))
            .allow_anonymous()
            .dashboard(),
    )
    .await;
    let b = browser(1200).await;
    b.goto(&format!("{base}/playground")).await.unwrap();
    let input = b.find(Locator::Css("#expr")).await.unwrap();
    input.send_keys("61 * * * *").await.unwrap();
    let verdict = wait_text(&b, "#verdict", "Invalid").await;
    assert!(
        verdict.contains("minute field: 61 is out of range"),
        "{verdict}"
    );
    wait_text(&b, "#result pre", "^").await;

    input.clear().await.unwrap();
    input.send_keys("0 9 * * MON-FRI").await.unwrap();
    wait_text(&b, "#verdict", "Valid").await;
    wait_text(&b, "#description", "Monday through Friday").await;
    let runs = texts(&b, "#runs li").await;
    assert_eq!(runs.len(), 10);
    assert!(runs.iter().all(|r| r.contains("09:00:00")), "{runs:?}");
    // In another zone.
    let tz = b.find(Locator::Css("#tz")).await.unwrap();
    tz.clear().await.unwrap();
    tz.send_keys("Asia/Tokyo").await.unwrap();
    wait_text(&b, "#result h2", "Asia/Tokyo").await;
    let runs = texts(&b, "#runs li").await;
    assert!(runs.iter().all(|r| r.contains("18:00:00 JST")), "{runs:?}");
    b.close().await.unwrap();
}

#[tokio::test]
async fn pages_fit_a_375_pixel_screen_and_label_every_field() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    client
        .create(NewJob::new("a-rather-long-executor-name", "0 0 * * *").name("midnight"))
        .await
        .unwrap();
    let mut wf = qron::Workflow::new("a-workflow-wider-than-a-phone");
    wf.add_job("first", NewJob::new("fetch", "@after 1 hour"));
    for i in 0..5 {
        wf.add_job(format!("step-{i}"), NewJob::new("fetch", "@after 0s"))
            .after([if i == 0 {
                "first".to_owned()
            } else {
                format!("step-{}", i - 1)
            }]);
    }
    let created = wf.create(&client).await.unwrap();
    let base = serve(qron::http::Api::new(client).allow_anonymous().dashboard()).await;
    let b = browser(375).await;
    let workflow = format!("/workflows/{}", created.id);
    for page in [
        "",
        "/jobs",
        "/jobs/1",
        "/workflows",
        &workflow,
        "/upcoming?range=day",
        "/playground",
    ] {
        b.goto(&format!("{base}{page}")).await.unwrap();
        wait_text(&b, "h1", "").await;
        let width = b
            .execute(
                "return [window.innerWidth, document.documentElement.scrollWidth];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(width, json!([375, 375]), "{page}: [screen, page] px wide");
        let unlabelled = b
            .execute(
                "return [...document.querySelectorAll('input:not([type=hidden]), select')]
                   .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
                   .map(e => e.outerHTML);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(unlabelled, json!([]), "{page}");
    }
    b.close().await.unwrap();
}

#[tokio::test]
async fn the_upcoming_timeline_shows_the_density_of_runs_and_screenshots_are_taken() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    // Everything at one hour, and a steady trickle beside it. The hour is two to three hours
    // ahead whenever the test runs: a fixed one (midnight, as first written) fell out of "the
    // next day" when the test ran just after it, with its run a moment past and the next a day
    // and a moment ahead.
    let hour = chrono::Timelike::hour(&(chrono::Utc::now() + chrono::Duration::hours(3)));
    let midnight: Vec<NewJob> = (0..40)
        .map(|i| NewJob::new("backup", format!("0 {hour} * * *")).name(format!("db-{i}")))
        .collect();
    client.create_many(midnight).await.unwrap();
    client
        .create(NewJob::new("digest", "@every 10 minutes").name("digest"))
        .await
        .unwrap();
    let job = client
        .create(
            NewJob::new("report", "0 9 * * MON-FRI")
                .name("weekday-report")
                .payload(json!({ "to": "team@example.com", "format": "pdf" }))
                .meta(json!({ "team": "growth" })),
        )
        .await
        .unwrap();
    // For the overview's picture: jobs that ran and failed this hour, late ones, a pause.
    let k = key("screens");
    let ran: Vec<NewJob> = (0..33)
        .map(|i| {
            let mode = if i % 11 == 0 { Mode::Fail } else { Mode::Ok };
            NewJob::new("act", "@after 0 seconds")
                .max_attempts(1)
                .payload(serde_json::to_value(Script::new(&k, mode)).unwrap())
        })
        .collect();
    client.create_many(ran).await.unwrap();
    assert_eq!(
        qron::testing::run_due::<Act>(&client)
            .await
            .unwrap()
            .failed(),
        3
    );
    let late: Vec<NewJob> = (0..5)
        .map(|_| {
            NewJob::new("email", "@after 1 minute")
                .start_at(chrono::Utc::now() - chrono::Duration::minutes(12))
        })
        .collect();
    client.create_many(late).await.unwrap();
    client.pause_executor("report").await.unwrap();
    let base = serve(qron::http::Api::new(client).allow_anonymous().dashboard()).await;
    let b = browser(1200).await;
    b.goto(&format!("{base}/upcoming?range=day")).await.unwrap();
    wait_text(&b, "section[data-executor=backup] h2", "40 runs").await;
    wait_text(&b, "section[data-executor=backup] .busiest", "with 40 runs").await;
    // Every 10 minutes from its creation: 143 or 144 runs in the day from the current minute.
    let digest = wait_text(&b, "section[data-executor=digest] h2", " runs").await;
    assert!(
        digest == "digest: 143 runs" || digest == "digest: 144 runs",
        "{digest}"
    );
    // The spike stands out; the trickle does not.
    assert_eq!(
        b.find_all(Locator::Css("section[data-executor=backup] rect.peak"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        b.find_all(Locator::Css("section[data-executor=digest] rect.peak"))
            .await
            .unwrap()
            .is_empty()
    );

    // Screenshots for the docs (saved when QRON_SCREENSHOTS names a directory).
    let shots = [
        ("upcoming.png", format!("{base}/upcoming?range=day")),
        ("overview.png", base.clone()),
        ("job.png", format!("{base}/jobs/{}", job.id)),
    ];
    for (file, url) in shots {
        b.goto(&url).await.unwrap();
        wait_text(&b, "h1", "").await;
        let png = b.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{file} is a PNG");
        if let Ok(dir) = std::env::var("QRON_SCREENSHOTS") {
            std::fs::write(std::path::Path::new(&dir).join(file), &png).unwrap();
        }
    }
    b.close().await.unwrap();
}

#[tokio::test]
async fn bad_input_in_any_field_is_said_on_the_page_and_changes_nothing() {
    let (_db, client, job, base) = one_waiting_job().await;
    for (query, says) in [
        ("before=abc", "before"),
        ("executor=a%00b", "executor"),
        ("name=%00", "name_contains"),
        ("meta=%5B1%5D", "meta"),
        ("meta=%7B%22a%22%3A%22%5Cu0000%22%7D", "meta"),
        ("from=yesterday", "from"),
        ("due_to=noon", "due_to"),
        ("recurring=maybe", "recurring"),
        ("status=sleeping", "status"),
        (
            "executor=%27%3B%20DROP%20TABLE%20qron.jobs%3B--",
            "No job matches",
        ),
    ] {
        let resp = reqwest::get(format!("{base}/jobs?{query}")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{query}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(says), "{query}: {html}");
    }
    for path in ["/jobs/abc", "/jobs/99999999999999999999", "/nowhere"] {
        let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
    }
    let long = "1".repeat(5000);
    let html = reqwest::get(format!("{base}/playground/check?expr={long}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Longer than"), "{html}");
    let html = reqwest::get(format!(
        "{base}/playground/check?expr=%40daily&tz=Mars%2FOlympus"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(html.contains("Unknown zone"), "{html}");
    assert_eq!(client.get(job.id).await.unwrap(), job, "nothing changed");
    assert_eq!(client.search(&qron::Search::new()).await.unwrap().total, 1);
}

#[tokio::test]
async fn graphiql_opens_with_its_docs_pane_listing_the_schema() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .router(),
    )
    .await;
    let b = browser(1200).await;
    b.goto(&base).await.unwrap();
    // GraphiQL asks for the schema with its own introspection query (13 levels deep); its docs
    // pane lists the root types once that answered.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let opened = b
            .execute(
                "const b = document.querySelector('[aria-label=\"Show Documentation Explorer\"]'); \
                 if (b) { b.click(); } \
                 const d = document.querySelector('.graphiql-doc-explorer'); \
                 return d ? d.innerText : '';",
                vec![],
            )
            .await
            .unwrap();
        if opened.as_str().is_some_and(|t| t.contains("query: Query")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GraphiQL's docs pane lists `Query` within {WAIT:?}: {opened}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = b
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap();
    let body = body.as_str().unwrap_or_default();
    assert!(!body.contains("nested too deep"), "{body}");
    b.close().await.unwrap();
}

#[tokio::test]
async fn the_api_docs_lead_to_the_dashboard_guide_from_the_crate_root_and_qron_http() {
    // The API docs as CI builds them (the same command: nothing to do when CI just did).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    let built =
        tokio::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&root)
            .env("RUSTDOCFLAGS", "-D warnings")
            .args([
                "doc",
                "-p",
                "qron",
                "-p",
                "qron-macros",
                "--no-deps",
                "--all-features",
                "--locked",
            ])
            .status()
            .await
            .unwrap();
    assert!(built.success(), "cargo doc failed");
    let docs = target.join("doc").canonicalize().unwrap();

    let b = browser(1200).await;
    for page in ["qron/index.html", "qron/http/index.html"] {
        b.goto(&format!("file://{}/{page}", docs.display()))
            .await
            .unwrap();
        let link = Locator::Css("main a[href$='guide/dashboard/index.html']");
        b.wait()
            .at_most(WAIT)
            .for_element(link)
            .await
            .unwrap_or_else(|e| panic!("{page} links the dashboard guide ({e})"))
            .click()
            .await
            .unwrap();
        let title = wait_text(&b, "main h1", "dashboard").await;
        assert!(title.contains("Module dashboard"), "{page}: {title}");
        for section in ["What it shows", "How to mount it", "How to protect it"] {
            wait_text(&b, "main", section).await;
        }
    }
    b.close().await.unwrap();
}

#[tokio::test]
async fn the_overview_charts_an_executors_runs_failures_and_lateness_over_time() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let k = key("charts");
    let jobs: Vec<NewJob> = (0..12)
        .map(|i| {
            let mode = if i < 3 { Mode::Fail } else { Mode::Ok };
            NewJob::new("act", "@after 0 seconds")
                .payload(serde_json::to_value(Script::new(&k, mode)).unwrap())
        })
        .collect();
    client.create_many(jobs).await.unwrap();
    // Another owner's runs are not charted for this one.
    owner(&db, "other")
        .create(NewJob::new("act", "@after 0 seconds"))
        .await
        .unwrap();
    // A worker runs them; its tallies are written at the latest when it stops.
    let worker = qron::Worker::builder(client.clone())
        .executors(["act"])
        .build()
        .unwrap();
    let running = qron_tests::Running::start(worker);
    qron_tests::wait_for_history(&db.pool, 13, WAIT).await;
    running.stop().await;

    let (b, _) = overview(&client).await;
    let runs = "figure[data-executor=act] svg[data-chart=runs]";
    let svg = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(runs))
        .await
        .unwrap();
    assert_eq!(svg.attr("data-total").await.unwrap().as_deref(), Some("12"));
    assert_eq!(svg.attr("data-failed").await.unwrap().as_deref(), Some("3"));
    // Drawn: the chart has its size on the page, and its bars (a failed one among them).
    let drawn = b
        .execute(
            "const s = document.querySelector(arguments[0]); const r = s.getBoundingClientRect(); \
             return [r.width, r.height, s.querySelectorAll('rect.bar').length, \
                     s.querySelectorAll('rect.failed').length];",
            vec![json!(runs)],
        )
        .await
        .unwrap();
    let drawn: Vec<f64> = serde_json::from_value(drawn).unwrap();
    assert!(drawn[0] >= 200.0 && drawn[1] >= 30.0, "{drawn:?}");
    assert!(drawn[2] >= 1.0 && drawn[3] >= 1.0, "{drawn:?}");
    for kind in ["lateness", "waiting"] {
        b.find(Locator::Css(&format!(
            "figure[data-executor=act] svg[data-chart={kind}]"
        )))
        .await
        .unwrap();
    }
    // The last day, a link away, counts the same runs.
    click_through(&b, Locator::LinkText("last day"), false).await;
    wait_text(&b, "#charts-title", "last day").await;
    let day = b.find(Locator::Css(runs)).await.unwrap();
    assert_eq!(day.attr("data-total").await.unwrap().as_deref(), Some("12"));
    assert!(
        b.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("?range=day")
    );
    b.close().await.unwrap();
    // The other owner's run is its own (not in the 12 above).
    let rows: i64 = sqlx::query_scalar(
        "SELECT sum(runs)::bigint FROM qron.executor_stats WHERE owner = 'other'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_workflow_is_drawn_as_a_graph_retried_from_the_browser_and_screenshots_are_taken() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let k = key("graph");
    let act = |mode: Mode| {
        NewJob::new("act", "@after 0 seconds")
            .max_attempts(1)
            .payload(serde_json::to_value(Script::new(&k, mode)).unwrap())
    };
    // Three fetches succeed, the fourth fails: the merge is cancelled, the notification runs
    // anyway, and the archive after it is due in an hour.
    let mut wf = qron::Workflow::new("nightly-etl");
    let mut fetches = Vec::new();
    for i in 1..=4 {
        let mode = if i == 4 { Mode::Fail } else { Mode::Ok };
        wf.add_job(format!("fetch-{i}"), act(mode));
        fetches.push(format!("fetch-{i}"));
    }
    wf.add_job("merge", act(Mode::Ok)).after(fetches);
    wf.add_job("notify", act(Mode::Ok))
        .after(["merge"])
        .on_dependency_failure(qron::OnDependencyFailure::Run);
    wf.add_job(
        "archive",
        NewJob::new("act", "@after 1 hour")
            .payload(serde_json::to_value(Script::new(&k, Mode::Ok)).unwrap()),
    )
    .after(["notify"]);
    let created = wf.create(&client).await.unwrap();
    for _ in 0..10 {
        if qron::testing::run_due::<Act>(&client)
            .await
            .unwrap()
            .jobs
            .is_empty()
        {
            break;
        }
    }
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .dashboard(),
    )
    .await;
    let b = browser(1200).await;

    // The list, and through it the workflow's page.
    b.goto(&format!("{base}/workflows")).await.unwrap();
    wait_text(&b, "#workflows tbody", "nightly-etl").await;
    assert_eq!(
        texts(&b, &format!("#workflows tr[data-id='{}'] td", created.id)).await[2],
        "running"
    );
    click_through(&b, Locator::LinkText("nightly-etl"), false).await;
    wait_text(&b, "h1", &format!("Workflow {}", created.id)).await;
    wait_text(&b, "#progress", "6 of 7 jobs ended").await;
    // A node a step, coloured by status; an arrow a dependency.
    let mut drawn = std::collections::BTreeMap::new();
    for node in b
        .find_all(Locator::Css("#workflow-graph a.node"))
        .await
        .unwrap()
    {
        drawn.insert(
            node.attr("data-step").await.unwrap().unwrap(),
            node.attr("data-status").await.unwrap().unwrap(),
        );
    }
    let want: std::collections::BTreeMap<String, String> = [
        ("fetch-1", "succeeded"),
        ("fetch-2", "succeeded"),
        ("fetch-3", "succeeded"),
        ("fetch-4", "failed"),
        ("merge", "cancelled"),
        ("notify", "succeeded"),
        ("archive", "ready"),
    ]
    .into_iter()
    .map(|(s, t)| (s.to_owned(), t.to_owned()))
    .collect();
    assert_eq!(drawn, want);
    assert_eq!(
        b.find_all(Locator::Css("#workflow-graph path.edge"))
            .await
            .unwrap()
            .len(),
        6
    );
    // The failed step's fill differs from a succeeded one's (the stylesheet applies).
    let fill = |step: &'static str| {
        let b = b.clone();
        async move {
            b.execute(
                &format!(
                    "return getComputedStyle(document.querySelector(\
                     '#workflow-graph a.node[data-step=\"{step}\"] rect')).fill;"
                ),
                vec![],
            )
            .await
            .unwrap()
        }
    };
    assert_ne!(fill("fetch-4").await, fill("fetch-1").await);
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    if let Ok(dir) = std::env::var("QRON_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&dir).join("workflow.png"), &png).unwrap();
    }
    // The merge's page says how the jobs it waited for ended, and links the one that failed.
    b.goto(&format!("{base}/jobs/{}", created.job("merge").unwrap()))
        .await
        .unwrap();
    wait_text(&b, "#batch", "4 of 4 ended · 3 succeeded · 1 failed").await;
    wait_text(
        &b,
        "#batch",
        &format!("Did not succeed: {}", created.job("fetch-4").unwrap()),
    )
    .await;
    b.back().await.unwrap();
    wait_text(&b, "h1", &format!("Workflow {}", created.id)).await;
    // A node leads to its job, whose page names the workflow.
    click_through(
        &b,
        Locator::Css("#workflow-graph a.node[data-step='fetch-4']"),
        false,
    )
    .await;
    wait_text(
        &b,
        "h1",
        &format!("Job {}", created.job("fetch-4").unwrap()),
    )
    .await;
    wait_text(&b, "#workflow", "Step fetch-4 of workflow nightly-etl").await;
    click_through(&b, Locator::Css("#workflow a"), false).await;
    // Retried from the page: the failed fetch is due again, the merge waits for it.
    click_button(&b, "Retry failed steps", true).await;
    wait_text(&b, "#progress", "4 of 7 jobs ended").await;
    let status = |step: &'static str| {
        let b = b.clone();
        async move {
            b.find(Locator::Css(&format!(
                "#workflow-graph a.node[data-step='{step}']"
            )))
            .await
            .unwrap()
            .attr("data-status")
            .await
            .unwrap()
            .unwrap()
        }
    };
    assert_eq!(status("fetch-4").await, "ready");
    assert_eq!(status("merge").await, "waiting");
    // Cancelled from the page: nothing is left waiting.
    click_button(&b, "Cancel what is left", true).await;
    wait_text(&b, "#workflow-status", "cancelled").await;
    assert_eq!(
        client.workflow(created.id).await.unwrap().status,
        qron::WorkflowStatus::Cancelled
    );
    b.close().await.unwrap();
}

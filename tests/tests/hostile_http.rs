//! The network surface tried from outside, as an attacker would (issue 28): the real API and
//! dashboard on a loopback port, a worker running jobs beside them, and every hostile request
//! the issue names. Each gets a clear 4xx or GraphQL error within 2 s and writes nothing, and
//! the worker loses no lease and runs no job twice.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use qron::http::{Api, Owner};
use qron::{Client, HttpExecutor, JobStatus, NewJob, Worker};
use qron_tests::TestDb;
use qron_tests::http::serve;
use qron_tests::jobs::{Mode, key, probe, script_job};
use serde_json::{Value, json};

/// The application's policy: a bearer token per tenant, each an operator of its own jobs.
fn policy(req: &axum::http::request::Parts) -> Result<Owner, StatusCode> {
    match req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        Some("Bearer mallory") => Ok(Owner::operate("mallory")),
        Some("Bearer alice") => Ok(Owner::operate("default")),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

/// The rows of owner `mallory`, the attacker, and of every job's history: what a refused
/// request must leave unchanged.
async fn mallorys_rows(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM qron.jobs WHERE owner = 'mallory')
              + (SELECT count(*) FROM qron.jobs_history WHERE owner = 'mallory')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// The answer to one hostile request: its status, its JSON (or text) and how long it took.
struct Answer {
    status: StatusCode,
    body: Value,
    took: Duration,
}

impl Answer {
    /// Whether it is a refusal: a 4xx, a GraphQL answer with an error and no data, or a report
    /// of outcomes none of which was applied.
    fn refused(&self) -> bool {
        let none_applied = self.body["reported"]
            .as_array()
            .is_some_and(|r| r.iter().all(|o| o["applied"] == false));
        none_applied
            || self.status.is_client_error()
            || (self.status == StatusCode::OK
                && self.body.get("errors").is_some_and(Value::is_array)
                && self.body["data"]
                    .as_object()
                    .is_none_or(|d| d.values().all(Value::is_null)))
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    let resp = request.send().await;
    let took = started.elapsed();
    match resp {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Answer { status, body, took }
        }
        // The server closed the connection on a request it refused to read (a header over
        // its limit): a refusal too.
        Err(_) => Answer {
            status: StatusCode::BAD_REQUEST,
            body: Value::Null,
            took,
        },
    }
}

#[tokio::test]
async fn hostile_requests_are_refused_quickly_write_nothing_and_disturb_no_worker() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());

    // A worker beside it, with jobs arriving through the whole run: a 1 s lease each, renewed
    // by its heartbeat on the pool the API must not take.
    let k = key("hostile");
    let arrivals: Vec<NewJob> = (0..150)
        .map(|i| {
            script_job(
                "act_lease",
                &format!("@after {} milliseconds", i * 40),
                &k,
                Mode::Sleep(30),
            )
        })
        .collect();
    client.create_many(arrivals).await.unwrap();
    let worker = Worker::builder(client.clone())
        .executors(["act_lease"])
        .build()
        .unwrap();
    let metrics = worker.metrics();
    let stopper = worker.stopper();
    let running = tokio::spawn(worker.run());

    let api = Api::new(client.clone()).owner(policy);
    let base = serve(
        axum::Router::new()
            .nest("/api", api.clone().router())
            .nest_service("/ops", api.dashboard()),
    )
    .await;
    let gql = format!("{base}/api/graphql");
    let http = reqwest::Client::new();
    let as_mallory = |r: reqwest::RequestBuilder| r.header("authorization", "Bearer mallory");
    let query = |q: String| as_mallory(http.post(&gql)).json(&json!({ "query": q }));

    let aliases: String = (0..1600)
        .map(|i| format!("a{i}: jobs(limit: 1000) {{ jobs {{ payload }} }} "))
        .collect();
    let deep = format!(
        "{{ {}id{} }}",
        "jobs { jobs { ".repeat(100),
        " } }".repeat(100)
    );
    let big_body = "x".repeat(50 << 20);
    let big_header = "x".repeat(1 << 20);
    let ten_mb = "y".repeat(10 << 20);
    let deep_json = format!("{}\"leaf\"{}", "{\"k\":".repeat(1000), "}".repeat(1000));
    let mut requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("no credential", http.post(&gql).json(&json!({ "query": "{ jobs { total } }" }))),
        ("1,600 aliases", query(format!("{{ {aliases} }}"))),
        ("depth 200", query(deep)),
        (
            "a 50 MB body",
            as_mallory(http.post(&gql))
                .header("content-type", "application/json")
                .body(format!(r#"{{"query":"{{ jobs {{ total }} }}","pad":"{big_body}"}}"#)),
        ),
        ("a 1 MB header", query("{ jobs { total } }".to_owned()).header("x-pad", big_header)),
        ("limit 10^9", query("{ jobs(limit: 1000000000) { jobs { id } } }".to_owned())),
        ("offset 10^9", query("{ jobs(offset: 1000000000) { jobs { id } } }".to_owned())),
        // "Simple" cross-origin requests a page elsewhere can send without asking.
        (
            "text/plain GraphQL",
            as_mallory(http.post(&gql))
                .header("content-type", "text/plain")
                .header("origin", "https://attacker.example")
                .body(r#"{"query":"mutation { createJob(job: { executor: \"x\", expr: \"@daily\" }) { id } }"}"#),
        ),
        (
            "form-encoded GraphQL",
            as_mallory(http.post(&gql))
                .header("origin", "https://attacker.example")
                .form(&[("query", r#"mutation { createJob(job: { executor: "x", expr: "@daily" }) { id } }"#)]),
        ),
        (
            "GET GraphQL",
            as_mallory(http.get(format!(
                "{gql}?query=mutation%20%7B%20createJob(job%3A%20%7B%20executor%3A%20%22x%22%2C%20expr%3A%20%22%40daily%22%20%7D)%20%7B%20id%20%7D%20%7D"
            ))),
        ),
        (
            "cross-site dashboard form",
            as_mallory(http.post(format!("{base}/ops/executors/pause")))
                .header("origin", "https://attacker.example")
                .header("sec-fetch-site", "cross-site")
                .form(&[("executor", "act_lease"), ("token", "0123456789abcdef0123456789abcdef")]),
        ),
        (
            "forged lease token",
            as_mallory(http.post(format!("{base}/api/workers/complete"))).json(&json!({
                "outcomes": [{ "id": 1, "token": "00000000000000000000000000000000", "result": "fail" }]
            })),
        ),
        (
            "forged numeric token",
            as_mallory(http.post(format!("{base}/api/workers/heartbeat")))
                .json(&json!({ "leases": [{ "id": 1, "token": 1 }] })),
        ),
    ];
    // NUL, 10 MB strings and 1,000-deep JSON in every mutation argument: (what, the value as
    // JSON text where a string is taken, the value as JSON text where JSON is taken).
    let nul = json!("a\u{0}b").to_string();
    let big = json!(ten_mb).to_string();
    let bad_values = [
        ("NUL", nul.clone(), nul),
        ("10 MB", big.clone(), big),
        ("1,000 deep", deep_json.clone(), deep_json.clone()),
    ];
    for (what, text, value) in &bad_values {
        let variables = [
            (
                "createJob executor",
                r#"mutation($v: String!) { createJob(job: { executor: $v, expr: "@daily" }) { id } }"#,
                text,
            ),
            (
                "createJob expr",
                r#"mutation($v: String!) { createJob(job: { executor: "e", expr: $v }) { id } }"#,
                text,
            ),
            (
                "createJob name",
                r#"mutation($v: String!) { createJob(job: { executor: "e", expr: "@daily", name: $v }) { id } }"#,
                text,
            ),
            (
                "createJob payload",
                r#"mutation($v: JSON!) { createJob(job: { executor: "e", expr: "@daily", payload: $v }) { id } }"#,
                value,
            ),
            (
                "createJob meta",
                r#"mutation($v: JSON!) { createJob(job: { executor: "e", expr: "@daily", meta: { k: $v } }) { id } }"#,
                value,
            ),
            (
                "updateJob payload",
                r#"mutation($v: JSON!) { updateJob(target: { id: 1 }, changes: { payload: $v }) { id } }"#,
                value,
            ),
            (
                "pauseExecutor",
                r#"mutation($v: String!) { pauseExecutor(executor: $v) }"#,
                text,
            ),
            (
                "lease executor",
                r#"mutation($v: String!) { lease(executor: $v) { id } }"#,
                text,
            ),
            (
                "lease worker",
                r#"mutation($v: String!) { lease(executor: "e", worker: $v) { id } }"#,
                text,
            ),
            (
                "validate",
                r#"query($v: String!) { validate(expr: $v) { valid } }"#,
                text,
            ),
        ];
        for (field, q, v) in variables {
            let name: &'static str = Box::leak(format!("{what} in {field}").into_boxed_str());
            // The body as text: the variable may be deeper than a JSON value can be built.
            let body = format!(r#"{{"query":{},"variables":{{"v":{v}}}}}"#, json!(q));
            requests.push((
                name,
                as_mallory(http.post(&gql))
                    .header("content-type", "application/json")
                    .body(body),
            ));
        }
    }
    // `validate` answers `valid: false` rather than an error: a refusal of its own kind.
    let validate_ok = |a: &Answer| a.body["data"]["validate"]["valid"] == false;

    let before = mallorys_rows(&db).await;
    let mut wrong = Vec::new();
    for (what, request) in requests {
        let a = send(request).await;
        let refused = a.refused() || (what.ends_with("validate") && validate_ok(&a));
        if !refused || a.took > Duration::from_secs(2) {
            let shown: String = a.body.to_string().chars().take(300).collect();
            wrong.push(format!("{what}: {} in {:?}: {shown}", a.status, a.took));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        mallorys_rows(&db).await,
        before,
        "the refused requests wrote nothing"
    );

    // Host `attacker.example` reaches only what the application routed: no other owner, no
    // anonymous access.
    let rebound = send(
        http.post(&gql)
            .header("host", "attacker.example")
            .json(&json!({ "query": "{ jobs { total } }" })),
    )
    .await;
    assert_eq!(rebound.status, StatusCode::UNAUTHORIZED);

    // HTTP jobs aimed inside: refused by the executor, nothing sent (only the refusal is
    // tested: a refused destination is never connected to).
    for url in [
        "http://127.0.0.1:9/",
        "http://[::1]:9/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
    ] {
        client
            .owner("mallory")
            .create(NewJob::new("http", "@after 0s").meta(json!({ "url": url })))
            .await
            .unwrap();
    }
    let started = Instant::now();
    Worker::builder(client.clone())
        .executors(["http"])
        .http_executor(HttpExecutor::new())
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let sent: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT status, last_error FROM qron.jobs_all WHERE executor = 'http' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (status, error) in &sent {
        assert_eq!(status, "failed", "{error:?}");
        assert!(
            error.as_deref().unwrap_or("").contains("refused"),
            "{error:?}"
        );
    }

    // The worker beside it: every job ran exactly once, and no lease ran out.
    qron_tests::wait_for_history(&db.pool, 150 + 5, Duration::from_secs(30)).await;
    stopper.soft();
    running.await.unwrap().unwrap();
    let starts = probe(&k).starts.lock().unwrap().clone();
    let mut ids: Vec<i64> = starts.iter().map(|s| s.0).collect();
    ids.sort_unstable();
    let runs = ids.len();
    ids.dedup();
    assert_eq!((runs, ids.len()), (150, 150), "each job ran once");
    assert_eq!(metrics.rescued(), 0, "no lease ran out");
    let succeeded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM qron.jobs_history WHERE executor = 'act_lease' AND status = 'succeeded'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(succeeded, 150);
    let _ = JobStatus::Succeeded;
}

#[tokio::test]
async fn every_input_shown_on_a_page_is_escaped() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let xss = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "javascript:alert(1)",
        "'><svg onload=alert(1)>",
    ];
    let mut ids = Vec::new();
    for (i, s) in xss.iter().enumerate() {
        let job = client
            .create(
                NewJob::new(format!("ex{i}"), "@after 1 hour")
                    .name(*s)
                    .payload(json!({ "v": s }))
                    .meta(json!({ "v": s, "url": s })),
            )
            .await
            .unwrap();
        ids.push(job.id);
    }
    // An error text, as a failed attempt records it.
    sqlx::query("UPDATE qron.jobs SET last_error = $1, errors = jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now(), 'error', $1::text))")
        .bind(xss[1])
        .execute(&db.pool)
        .await
        .unwrap();
    let api = Api::new(client.clone()).allow_anonymous();
    let base = serve(axum::Router::new().nest_service("/ops", api.dashboard())).await;
    let mut pages = vec![
        format!("{base}/ops"),
        format!("{base}/ops/jobs"),
        format!("{base}/ops/upcoming"),
        format!("{base}/ops/jobs?name=%3Cscript%3Ealert(1)%3C%2Fscript%3E&executor=%22%3E%3Cimg"),
        format!("{base}/ops/playground?expr=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        format!("{base}/ops/playground/check?expr=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
    ];
    pages.extend(ids.iter().map(|id| format!("{base}/ops/jobs/{id}")));
    for page in pages {
        let html = reqwest::get(&page).await.unwrap().text().await.unwrap();
        for raw in [
            "<script>alert",
            "<img src=x",
            "<svg onload",
            "href=\"javascript:",
        ] {
            assert!(!html.contains(raw), "{page} has `{raw}` unescaped");
        }
    }
}

//! Safe on a network by default (issue 28): the API and the dashboard refuse until the
//! application chose who may do what, each scope allows its own calls only, and the HTTP
//! executor reaches only what the operator allowed; against real servers on loopback ports.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use qron::{Client, HttpExecutor, JobStatus, NewJob};
use qron_tests::TestDb;
use qron_tests::http::{post_worker, run_http_worker, serve};
use serde_json::{Value, json};

/// Every job of the test's database, as `(status, last_error)` by id.
async fn jobs(client: &Client) -> Vec<(i64, JobStatus, Option<String>, i32)> {
    client
        .search(&qron::Search::default())
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| (j.id, j.status, j.last_error, j.attempt))
        .collect()
}

#[tokio::test]
async fn a_router_and_a_dashboard_without_a_policy_refuse_every_request() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    client
        .create(NewJob::new("email", "@after 1 hour").payload(json!({ "secret": 1 })))
        .await
        .unwrap();
    let api = serve(qron::http::router(client.clone())).await;
    let dash = serve(qron::http::dashboard(client.clone())).await;
    let http = reqwest::Client::new();
    let requests = [
        http.get(format!("{api}/")),
        http.get(format!("{api}/graphql/schema")),
        http.post(format!("{api}/graphql"))
            .json(&json!({ "query": "{ jobs { jobs { payload } } }" })),
        http.post(format!("{api}/graphql"))
            .json(&json!({ "query": "{ __schema { queryType { name } } }" })),
        http.post(format!("{api}/workers/lease"))
            .json(&json!({ "executor": "email" })),
        http.get(format!("{dash}/")),
        http.get(format!("{dash}/jobs")),
    ];
    for request in requests {
        let resp = request.send().await.unwrap();
        let url = resp.url().clone();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{url}");
        let text = resp.text().await.unwrap();
        assert!(
            text.contains("allow_anonymous") && text.contains("Api::owner"),
            "{url}: the refusal names the fix: {text}"
        );
        assert!(!text.contains("secret"), "{url}: {text}");
    }
    // Nothing was leased.
    assert_eq!(jobs(&client).await[0].1, JobStatus::Ready);
}

/// A loopback endpoint that counts the requests it gets, at `/hit` and under every status path
/// `/status/{code}` (with `Retry-After: 120` on 429 and 503).
async fn counting_endpoint() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let hits = counted.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let code: u16 = uri
                .path()
                .strip_prefix("/status/")
                .and_then(|c| c.parse().ok())
                .unwrap_or(200);
            let status = StatusCode::from_u16(code).unwrap();
            let mut response = axum::response::Response::new(axum::body::Body::from(
                "internal: the metadata server's credentials",
            ));
            *response.status_mut() = status;
            if matches!(code, 429 | 503) {
                response
                    .headers_mut()
                    .insert("retry-after", "120".parse().unwrap());
            }
            response
        }
    });
    (serve(app).await, hits)
}

fn http_job(url: &str) -> NewJob {
    NewJob::new("http", "@after 0s")
        .max_attempts(5)
        .meta(json!({ "url": url }))
}

#[tokio::test]
async fn http_jobs_aimed_at_loopback_link_local_and_private_addresses_are_refused() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let (base, hits) = counting_endpoint().await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    // Only the refusal is tested: a refused destination is never connected to, so nothing
    // leaves loopback.
    let targets = [
        format!("{base}/hit"),
        format!("http://localhost:{port}/hit"),
        format!("http://[::1]:{port}/hit"),
        format!("http://127.1:{port}/hit"),
        format!("http://[::ffff:127.0.0.1]:{port}/hit"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
    ];
    for url in &targets {
        client.create(http_job(url)).await.unwrap();
    }
    let started = std::time::Instant::now();
    run_http_worker(&client, HttpExecutor::new()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no connection was tried"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no request reached loopback"
    );
    for (id, status, error, attempt) in jobs(&client).await {
        let error = error.unwrap_or_default();
        assert_eq!(status, JobStatus::Failed, "job {id}: {error}");
        assert_eq!(attempt, 1, "job {id} failed at once: {error}");
        assert!(error.contains("refused"), "job {id}: {error}");
        assert!(!error.contains("credentials"), "job {id}: {error}");
    }

    // The operator's opt-in: loopback allowed by address, the others still refused.
    let allowed = client
        .create(http_job(&format!("{base}/hit")))
        .await
        .unwrap();
    run_http_worker(&client, HttpExecutor::new().allow_hosts(["127.0.0.1"])).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        client.get(allowed.id).await.unwrap().status,
        JobStatus::Succeeded
    );
}

#[tokio::test]
async fn client_errors_fail_at_once_and_retry_after_is_honoured() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let (base, _) = counting_endpoint().await;
    let mut made = Vec::new();
    for code in [400, 401, 403, 404, 410, 422, 408, 429, 500, 503] {
        let job = client
            .create(http_job(&format!("{base}/status/{code}")))
            .await
            .unwrap();
        made.push((code, job.id));
    }
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    run_http_worker(&client, HttpExecutor::new().allow_private(true)).await;
    for (code, id) in made {
        let job = client.get(id).await.unwrap();
        let error = job.last_error.clone().unwrap_or_default();
        assert!(error.contains(&code.to_string()), "{code}: {error}");
        if code < 408 || code == 410 || code == 422 {
            assert_eq!(job.status, JobStatus::Failed, "{code} fails at once");
            assert_eq!(job.attempt, 1, "{code}");
        } else {
            assert_eq!(job.status, JobStatus::Ready, "{code} is retried");
            let wait = job.run_at - before;
            if matches!(code, 429 | 503) {
                assert!(
                    wait >= chrono::Duration::seconds(115)
                        && wait <= chrono::Duration::seconds(140),
                    "{code}: Retry-After 120 s honoured, not {wait}"
                );
            }
        }
        // The text kept in an error is bounded.
        assert!(error.len() <= 400, "{code}: {}", error.len());
    }
}

/// The value of `v` at a JSON pointer, as a string.
#[allow(dead_code)]
fn at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The credentials of the scope test: a bearer token per scope.
fn bearer_policy(req: &axum::http::request::Parts) -> Result<qron::http::Owner, StatusCode> {
    use qron::http::Owner;
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some("op") => Ok(Owner::operate("acme")),
        Some("ro") => Ok(Owner::read("acme")),
        Some("wk") => Ok(Owner::worker("acme")),
        Some("wk-sms") => Ok(Owner::worker("acme").executors(["sms"])),
        Some(_) => Err(StatusCode::FORBIDDEN),
        None => Err(StatusCode::UNAUTHORIZED),
    }
}

/// One call of the scope test: whether the API let it through (`true`), refused it by scope
/// (`false`); any other answer fails the test.
async fn allowed(base: &str, token: &str, call: &str) -> bool {
    let http = reqwest::Client::new();
    let auth = format!("Bearer {token}");
    let gql = |query: &str| {
        http.post(format!("{base}/api/graphql"))
            .header("authorization", &auth)
            .json(&json!({ "query": query }))
    };
    let rest = |path: &str, body: Value| {
        http.post(format!("{base}/api/workers/{path}"))
            .header("authorization", &auth)
            .json(&body)
    };
    let request = match call {
        "graphiql" => http
            .get(format!("{base}/api"))
            .header("authorization", &auth),
        "sdl" => http
            .get(format!("{base}/api/graphql/schema"))
            .header("authorization", &auth),
        "query" => gql("{ jobs { total } }"),
        "introspection" => gql("{ __schema { queryType { name } } }"),
        "create" => {
            gql(r#"mutation { createJob(job: { executor: "email", expr: "@daily" }) { id } }"#)
        }
        "pause" => gql(r#"mutation { pauseExecutor(executor: "email") }"#),
        "gql lease email" => gql(r#"mutation { lease(executor: "email", limit: 0) { id } }"#),
        "gql lease sms" => gql(r#"mutation { lease(executor: "sms", limit: 0) { id } }"#),
        "lease email" => rest("lease", json!({ "executor": "email", "limit": 0 })),
        "lease sms" => rest("lease", json!({ "executor": "sms", "limit": 0 })),
        "heartbeat" => rest(
            "heartbeat",
            json!({ "leases": [{ "id": 1, "token": "1" }] }),
        ),
        "complete" => rest(
            "complete",
            json!({ "outcomes": [{ "id": 1, "token": "1", "result": "commit" }] }),
        ),
        "dashboard" => http.get(format!("{base}/")).header("authorization", &auth),
        other => panic!("no call {other}"),
    };
    let resp = request.send().await.unwrap();
    let status = resp.status();
    let body: Value = resp
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
        .unwrap();
    let forbidden_in_graphql = body["errors"][0]["extensions"]["code"] == "FORBIDDEN";
    match status {
        StatusCode::OK if forbidden_in_graphql => false,
        // `limit: 0` is refused as an argument: the scope let the call through.
        StatusCode::OK | StatusCode::BAD_REQUEST => {
            assert!(
                body.get("errors").is_none() || call.contains("lease") || call == "complete",
                "{token} {call}: {body}"
            );
            true
        }
        StatusCode::FORBIDDEN => false,
        other => panic!("{token} {call}: {other} {body}"),
    }
}

#[tokio::test]
async fn each_scope_may_make_its_own_calls_only() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let api = qron::http::Api::new(client.clone()).owner(bearer_policy);
    let base = serve(
        axum::Router::new()
            .nest("/api", api.clone().router())
            .merge(api.dashboard()),
    )
    .await;
    // (call, worker, worker limited to `sms`, read, operate)
    let table = [
        ("graphiql", false, false, true, true),
        ("sdl", false, false, true, true),
        ("query", false, false, true, true),
        ("introspection", true, true, true, true),
        ("create", false, false, false, true),
        ("pause", false, false, false, true),
        ("gql lease email", true, false, false, true),
        ("gql lease sms", true, true, false, true),
        ("lease email", true, false, false, true),
        ("lease sms", true, true, false, true),
        ("heartbeat", true, true, false, true),
        ("complete", true, true, false, true),
        ("dashboard", false, false, true, true),
    ];
    let mut wrong = Vec::new();
    for (call, wk, wk_sms, ro, op) in table {
        for (token, expected) in [("wk", wk), ("wk-sms", wk_sms), ("ro", ro), ("op", op)] {
            if allowed(&base, token, call).await != expected {
                wrong.push(format!("{token} {call}: expected allowed={expected}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Only the operator's createJob wrote anything.
    assert_eq!(
        qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs").await,
        1
    );
    // Without a credential: the policy's own answer.
    let none = reqwest::get(format!("{base}/api")).await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
}

/// The API over `client` for anyone (the tests of limits are about what a caller who got in
/// can do).
fn open_api(client: &Client) -> axum::Router {
    qron::http::Api::new(client.clone())
        .allow_anonymous()
        .router()
}

/// Posts a GraphQL query to the API at `base`; its status, its answer's size and its JSON, and
/// how long it took.
async fn post_query(base: &str, query: &str) -> (StatusCode, usize, Value, Duration) {
    let started = std::time::Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, bytes.len(), value, started.elapsed())
}

fn error_code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn one_request_cannot_cost_thousands_of_queries_or_an_unbounded_answer() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    // 1,000 jobs of 20 KB each: 20 MB of payloads.
    let big = "x".repeat(20_000);
    client
        .create_many(
            (0..1000).map(|i| {
                NewJob::new("email", "@after 1 hour").payload(json!({ "n": i, "pad": big }))
            }),
        )
        .await
        .unwrap();
    let base = serve(open_api(&client)).await;

    // 1,600 aliases of a full page each: refused before any of them runs.
    let aliases: String = (0..1600)
        .map(|i| format!("a{i}: jobs(limit: 1000) {{ jobs {{ payload }} }} "))
        .collect();
    let (status, size, answer, took) = post_query(&base, &format!("{{ {aliases} }}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&answer), "TOO_COMPLEX", "{answer}");
    assert!(
        size < 10_000 && took < Duration::from_secs(2),
        "{size} B in {took:?}"
    );

    // Twenty full pages of 20 KB payloads: the answer would be 400 MB; refused within its
    // budget.
    let twenty: String = (0..20)
        .map(|i| format!("a{i}: jobs(limit: 1000) {{ jobs {{ payload }} }} "))
        .collect();
    let (_, size, answer, took) = post_query(&base, &format!("{{ {twenty} }}")).await;
    assert_eq!(
        error_code(&answer),
        "TOO_LARGE",
        "{}",
        &answer.to_string()[..200]
    );
    assert!(
        size < 17 << 20 && took < Duration::from_secs(5),
        "{size} B in {took:?}"
    );

    // A page's fields count once per job its limit asks for.
    let fields: String = (0..60).map(|i| format!("f{i}: id ")).collect();
    let (_, _, answer, _) = post_query(
        &base,
        &format!("{{ jobs(limit: 1000) {{ jobs {{ {fields} }} }} }}"),
    )
    .await;
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("complex"),
        "{answer}"
    );

    // Offsets and limits at their type's limits: typed errors, at once.
    for query in [
        "{ jobs(offset: 1000000000) { jobs { id } } }",
        "{ jobs(limit: 1000000000) { jobs { id } } }",
    ] {
        let (_, _, answer, took) = post_query(&base, query).await;
        assert_eq!(error_code(&answer), "INVALID_ARGUMENT", "{query}: {answer}");
        assert!(took < Duration::from_secs(2), "{query}: {took:?}");
    }

    // A page that fits is answered, with its total only when asked.
    let (_, _, answer, _) = post_query(&base, "{ jobs(limit: 5) { total jobs { id } } }").await;
    assert_eq!(answer["data"]["jobs"]["total"], 1000, "{answer}");
}

#[tokio::test]
async fn an_http_jobs_header_values_are_redacted_over_the_api_and_on_the_dashboard() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let job = client
        .create(NewJob::new("http", "@after 1 hour").meta(json!({
            "url": "https://hooks.example/x",
            "headers": { "authorization": "Bearer sk_live_s3cret" },
        })))
        .await
        .unwrap();
    let api = qron::http::Api::new(client.clone()).allow_anonymous();
    let base = serve(
        axum::Router::new()
            .nest("/api", api.clone().router())
            .merge(api.dashboard()),
    )
    .await;
    let answer = reqwest::Client::new()
        .post(format!("{base}/api/graphql"))
        .json(&json!({ "query": format!("{{ job(id: {}) {{ meta }} }}", job.id) }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(answer.contains("hooks.example"), "{answer}");
    assert!(!answer.contains("s3cret"), "{answer}");
    let page = reqwest::get(format!("{base}/jobs/{}", job.id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("hooks.example"), "{page}");
    assert!(!page.contains("s3cret"), "the dashboard shows no secret");
    // The worker still has it.
    assert_eq!(
        client.get(job.id).await.unwrap().meta["headers"]["authorization"],
        "Bearer sk_live_s3cret"
    );
}

/// Reports job `id` committed with `token`: applied, and the job succeeded.
async fn commits(base: &str, client: &Client, id: i64, token: &Value) {
    let (_, done) = post_worker(
        base,
        "complete",
        json!({ "outcomes": [{ "id": id, "token": token, "result": "commit" }] }),
    )
    .await;
    assert_eq!(done["reported"][0]["applied"], true, "{done}");
    assert_eq!(client.get(id).await.unwrap().status, JobStatus::Succeeded);
}

#[tokio::test]
async fn a_forged_lease_token_completes_and_renews_nothing() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let job = client
        .create(NewJob::new("remote", "@after 0s"))
        .await
        .unwrap();
    let base = serve(open_api(&client)).await;
    let (_, leased) = post_worker(&base, "lease", json!({ "executor": "remote" })).await;
    let token = leased["jobs"][0]["token"].clone();
    assert!(!token.is_null(), "{leased}");
    // Another caller guesses: small numbers, as a counter would give.
    for guess in 0..5 {
        let (status, answer) = post_worker(
            &base,
            "complete",
            json!({ "outcomes": [{ "id": job.id, "token": guess, "result": "fail", "error": "forged" }] }),
        )
        .await;
        assert!(
            status.is_client_error() || answer["reported"][0]["applied"] == false,
            "{guess}: {status} {answer}"
        );
        let (_, renewed) = post_worker(
            &base,
            "heartbeat",
            json!({ "leases": [{ "id": job.id, "token": guess }] }),
        )
        .await;
        assert_ne!(renewed["renewed"], json!([job.id]), "{guess}: {renewed}");
    }
    assert_eq!(client.get(job.id).await.unwrap().status, JobStatus::Running);
    // The worker's own token: unguessable, and it works.
    if let Some(t) = token.as_str() {
        assert!(t.len() >= 32, "128 random bits at least: {t}");
    }
    commits(&base, &client, job.id, &token).await;
}

#[tokio::test]
async fn a_lease_is_bounded_in_bytes_and_hands_the_rest_back_unstarted() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let big = "x".repeat(1_000_000);
    let ids = client
        .create_many((0..20).map(|_| NewJob::new("remote", "@after 0s").payload(json!(big))))
        .await
        .unwrap();
    let base = serve(open_api(&client)).await;
    let started = std::time::Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{base}/workers/lease"))
        .json(&json!({ "executor": "remote", "limit": 20 }))
        .send()
        .await
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(body.len() <= 9 << 20, "{} bytes", body.len());
    let leased: Value = serde_json::from_slice(&body).unwrap();
    let n = leased["jobs"].as_array().unwrap().len();
    assert!((1..20).contains(&n), "{n} jobs leased");
    // The others are ready again, with nothing counted.
    let mut ready = 0;
    for id in ids {
        let j = client.get(id).await.unwrap();
        if j.status == JobStatus::Ready {
            assert_eq!((j.attempt, j.executions), (0, 0), "{id}");
            ready += 1;
        }
    }
    assert_eq!(ready, 20 - n);
}

#[tokio::test]
async fn a_report_the_database_cannot_take_in_time_answers_503_and_applies_nothing() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let job = client
        .create(NewJob::new("remote", "@after 0s"))
        .await
        .unwrap();
    let api = qron::http::Api::new(client.clone())
        .allow_anonymous()
        .connections(2, Duration::from_millis(500));
    let base = serve(api.router()).await;
    let (_, leased) = post_worker(&base, "lease", json!({ "executor": "remote" })).await;
    let token = leased["jobs"][0]["token"].clone();
    // Something holds the row (a long transaction, a failover in progress).
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM qron.jobs WHERE id = $1 FOR UPDATE")
        .bind(job.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, answer) = post_worker(
        &base,
        "complete",
        json!({ "outcomes": [{ "id": job.id, "token": token, "result": "commit" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["code"], "UNAVAILABLE", "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    blocker.rollback().await.unwrap();
    assert_eq!(client.get(job.id).await.unwrap().status, JobStatus::Running);
    // Reported again once the database answers: applied, and said so.
    commits(&base, &client, job.id, &token).await;
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_a_proxied_dashboard_accepts_its_own_forms() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    client
        .create(NewJob::new("mail", "@after 1 hour"))
        .await
        .unwrap();
    let api = qron::http::Api::new(client.clone())
        .allow_anonymous()
        .public_origin("https://admin.example.com");
    let base = serve(
        axum::Router::new()
            .nest("/api", api.clone().router())
            .nest_service("/ops", api.dashboard()),
    )
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A page, an error page, GraphiQL, and a page of a refused request.
    for (path, status) in [
        ("/ops", 200),
        ("/ops/jobs/999999", 404),
        ("/api", 200),
        ("/ops/jobs?limit=x", 200),
    ] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    }
    // Behind a proxy that rewrites Host: the browser's Origin is the public one.
    let page = http.get(format!("{base}/ops")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "under https: {cookie}");
    let token = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap();
    let action = http
        .post(format!("{base}/ops/executors/pause"))
        .header("host", "qron-internal:8080")
        .header("origin", "https://admin.example.com")
        .header("sec-fetch-site", "same-origin")
        .header("cookie", format!("qron_token={token}"))
        .form(&[("executor", "mail"), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        action.status(),
        StatusCode::SEE_OTHER,
        "the action is accepted"
    );
    // Another site's page is still refused.
    let forged = http
        .post(format!("{base}/ops/executors/resume"))
        .header("origin", "https://attacker.example")
        .header("cookie", format!("qron_token={token}"))
        .form(&[("executor", "mail"), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let base = serve(
        qron::http::Api::new(client)
            .allow_anonymous()
            .introspection(false)
            .router(),
    )
    .await;
    let (_, _, answer, _) = post_query(
        &base,
        r#"{ __schema { queryType { name } } __type(name: "Job") { name } }"#,
    )
    .await;
    assert!(answer["data"]["__schema"].is_null(), "{answer}");
    assert!(answer["data"]["__type"].is_null(), "{answer}");
    let sdl = reqwest::get(format!("{base}/graphql/schema"))
        .await
        .unwrap();
    assert_eq!(sdl.status(), StatusCode::NOT_FOUND);
    // Queries still answer.
    let (_, _, jobs, _) = post_query(&base, "{ jobs { total } }").await;
    assert_eq!(jobs["data"]["jobs"]["total"], 0, "{jobs}");
}

#[tokio::test]
async fn a_jobs_meta_may_not_set_the_requests_framing_or_qrons_own_headers() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let (base, hits) = counting_endpoint().await;
    for name in [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "x-qron-owner",
    ] {
        client
            .create(NewJob::new("http", "@after 0s").meta(json!({
                "url": format!("{base}/hit"),
                "headers": { name: "internal.example" },
            })))
            .await
            .unwrap();
    }
    run_http_worker(&client, HttpExecutor::new().allow_hosts(["127.0.0.1"])).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent");
    for (id, status, error, _) in jobs(&client).await {
        let error = error.unwrap_or_default();
        assert_eq!(status, JobStatus::Failed, "{id}: {error}");
        assert!(error.contains("may not be set"), "{id}: {error}");
    }
}

#[tokio::test]
async fn a_tenant_sees_neither_the_fleets_host_names_nor_the_databases_own_words() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    client
        .owner("acme")
        .create(NewJob::new("mail", "@after 1 hour"))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO qron.workers (id, executors, started_at, seen_at, ttl)
         VALUES ('db-host-7.internal-4242', '{mail}', now(), now(), '1 hour')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let policy = |req: &axum::http::request::Parts| {
        let tenant = req
            .headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("default");
        Ok::<_, StatusCode>(qron::http::Owner::read(tenant))
    };
    let base = serve(
        qron::http::Api::new(client.clone())
            .owner(policy)
            .dashboard(),
    )
    .await;
    let page = |tenant: &'static str| {
        let url = format!("{base}/");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-tenant", tenant)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(
        !page("acme").await.contains("db-host-7"),
        "a tenant sees a count only"
    );
    assert!(
        page("default").await.contains("db-host-7"),
        "the operator sees the names"
    );

    // A count the database stops (the table locked past the API's statement timeout): the
    // page says so in its own words.
    let slow = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .connections(1, Duration::from_millis(200))
            .dashboard(),
    )
    .await;
    let mut lock = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE qron.jobs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut shown = String::new();
    for _ in 0..50 {
        shown = reqwest::get(format!("{slow}/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if shown.contains("The last count failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lock.rollback().await.unwrap();
    assert!(shown.contains("The last count failed"), "{shown}");
    assert!(
        !shown.contains("statement timeout") && !shown.contains("canceling"),
        "{shown}"
    );
}

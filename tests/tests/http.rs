//! The management API over HTTP (issue 18): GraphiQL served with its own assets, every client
//! operation over GraphQL, owners from the application, read-only mode and the limits; against
//! a real server on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::http::StatusCode;
use qron::Client;
use qron_tests::TestDb;
use qron_tests::http::post_worker;
use serde_json::{Value, json};

/// Serves `app` under `/qron` on a loopback port; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().nest("/qron", app))
            .await
            .unwrap();
    });
    format!("http://{addr}/qron")
}

/// Posts a GraphQL request; the response's JSON.
async fn gql(base: &str, headers: &[(&str, &str)], query: &str, variables: Value) -> Value {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The `code` of the first error.
/// The API for owners named by the request's `x-tenant` header (the application trusts a header
/// here, as its proxy sets it: its choice, not qron's), with the `operate` scope.
fn tenant_api(client: &Client) -> qron::http::Api {
    qron::http::Api::new(client.clone()).owner(|req| {
        req.headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(qron::http::Owner::operate)
            .ok_or(StatusCode::UNAUTHORIZED)
    })
}

fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn graphiql_is_served_with_its_assets_from_the_router() {
    let db = TestDb::new().await;
    let base = serve(
        qron::http::Api::new(Client::new(db.pool.clone()))
            .allow_anonymous()
            .router(),
    )
    .await;
    // The page, at the mount point: its links resolve under it.
    for url in [base.clone()] {
        let page = reqwest::get(&url).await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{url}");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<base href="/qron/">"#), "{html}");
    }
    let html = reqwest::get(&base).await.unwrap().text().await.unwrap();
    assert!(!html.contains("http"), "no asset from elsewhere: {html}");
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        assert!(html.contains(&format!("assets/{asset}")), "{asset}");
        let resp = reqwest::get(format!("{base}/assets/{asset}"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let body = resp.bytes().await.unwrap();
        assert_eq!(&body[..2], b"\x1f\x8b", "{asset} is gzip");
        assert!(body.len() > 1000, "{asset}");
    }
    let start = reqwest::get(format!("{base}/assets/start.js"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(start.contains("createFetcher"));
    let missing = reqwest::get(format!("{base}/assets/nope.js"))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let sdl = reqwest::get(format!("{base}/graphql/schema"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sdl.contains("type Job"), "{sdl}");
}

#[tokio::test]
async fn every_client_operation_works_over_graphql() {
    let db = TestDb::new().await;
    let base = serve(
        qron::http::Api::new(Client::new(db.pool.clone()))
            .allow_anonymous()
            .router(),
    )
    .await;
    let job_fields = "id executor owner name expr recurring status runAt payload meta attempt \
                      executions maxAttempts timeoutSeconds revision lastError finishedAt \
                      runs { slot at worker outcome error }";
    let created = gql(
        &base,
        &[],
        &format!("mutation($job: NewJobInput!) {{ createJob(job: $job) {{ {job_fields} }} }}"),
        json!({ "job": {
            "executor": "email", "expr": "@after 1 hour", "name": "welcome-7",
            "payload": { "user_id": 7 }, "meta": { "source": "api" },
            "timeoutSeconds": 30, "maxAttempts": 3
        }}),
    )
    .await;
    let job = &created["data"]["createJob"];
    assert_eq!(job["runs"], json!([]), "no run yet: {created}");
    assert_eq!(job["owner"], "default", "{created}");
    assert_eq!(
        (&job["expr"], &job["status"], &job["payload"]["user_id"]),
        (&json!("@after 1 hour"), &json!("READY"), &json!(7))
    );
    assert_eq!(
        (job["timeoutSeconds"].as_f64(), job["maxAttempts"].as_i64()),
        (Some(30.0), Some(3))
    );
    let id = job["id"].as_i64().unwrap();

    // Get by id and by name.
    let by_id = gql(
        &base,
        &[],
        "query($id: Int) { job(id: $id) { id name } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(by_id["data"]["job"]["name"], "welcome-7");
    let by_name = gql(
        &base,
        &[],
        r#"{ job(executor: "email", name: "welcome-7") { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(by_name["data"]["job"]["id"], id);
    // A name taken, and a bad expression, say so with a code and the field.
    let taken = gql(
        &base,
        &[],
        r#"mutation { createJob(job: { executor: "email", expr: "@daily", name: "welcome-7" }) { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(code(&taken), "ALREADY_EXISTS", "{taken}");
    let bad = gql(
        &base,
        &[],
        r#"mutation { createJob(job: { executor: "email", expr: "61 * * * *" }) { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(code(&bad), "INVALID_ARGUMENT", "{bad}");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "expr");

    // A unique job: the second enqueue returns the first job, flagged.
    let unique = r#"mutation($c: Int!) { createJob(job: { executor: "sync", expr: "@after 1 hour",
        payload: { customer_id: $c }, unique: { by: KEYS, keys: ["customer_id"], periodSeconds: 3600 } })
        { id duplicate } }"#;
    let first = gql(&base, &[], unique, json!({ "c": 7 })).await;
    let again = gql(&base, &[], unique, json!({ "c": 7 })).await;
    assert_eq!(first["data"]["createJob"]["duplicate"], false, "{first}");
    assert_eq!(again["data"]["createJob"]["duplicate"], true, "{again}");
    assert_eq!(
        again["data"]["createJob"]["id"], first["data"]["createJob"]["id"],
        "{again}"
    );
    let no_field = gql(
        &base,
        &[],
        r#"mutation { createJob(job: { executor: "sync", expr: "@daily", payload: { a: 1 },
            unique: { by: KEYS, keys: ["b"] } }) { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(code(&no_field), "INVALID_ARGUMENT", "{no_field}");
    assert_eq!(no_field["errors"][0]["extensions"]["field"], "unique.keys");

    // Many at once, and a search with a total.
    let many = gql(
        &base,
        &[],
        "mutation($jobs: [NewJobInput!]!) { createJobs(jobs: $jobs) }",
        json!({ "jobs": (0..12).map(|i| json!({ "executor": "report", "expr": "@after 1 day", "name": format!("search-{i}") })).collect::<Vec<_>>() }),
    )
    .await;
    assert_eq!(
        many["data"]["createJobs"].as_array().unwrap().len(),
        12,
        "{many}"
    );
    let page = gql(
        &base,
        &[],
        r#"{ jobs(filter: { nameContains: "sear", status: [READY] }, limit: 5, offset: 10) { total jobs { name } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(page["data"]["jobs"]["total"], 12, "{page}");
    let names: Vec<&str> = page["data"]["jobs"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["search-10", "search-11"]);

    // Update, stop, restart, run now, cancel, retry, delete.
    let updated = gql(
        &base,
        &[],
        r#"mutation($id: Int) { updateJob(target: { id: $id }, changes: { expr: "@every 1 hour", payload: { user_id: 8 } }) { expr recurring payload name } }"#,
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        updated["data"]["updateJob"],
        json!({ "expr": "@every 1 hour", "recurring": true, "payload": { "user_id": 8 }, "name": "welcome-7" })
    );
    for (mutation, status) in [
        ("stopJob", "STOPPED"),
        ("restartJob", "READY"),
        ("runJobNow", "READY"),
        ("cancelJob", "CANCELLED"),
        ("retryJob", "READY"),
    ] {
        let r = gql(
            &base,
            &[],
            &format!(r#"mutation {{ {mutation}(target: {{ executor: "email", name: "welcome-7" }}) {{ status }} }}"#),
            json!({}),
        )
        .await;
        assert_eq!(r["data"][mutation]["status"], status, "{mutation}: {r}");
    }
    let deleted = gql(
        &base,
        &[],
        "mutation($id: Int) { deleteJob(target: { id: $id }) { id } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(deleted["data"]["deleteJob"]["id"], id);
    let gone = gql(
        &base,
        &[],
        "query($id: Int) { job(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(code(&gone), "NOT_FOUND", "{gone}");
    let neither = gql(&base, &[], "{ job { id } }", json!({})).await;
    assert_eq!(code(&neither), "INVALID_ARGUMENT");

    // Expressions.
    let valid = gql(
        &base,
        &[],
        r#"{ validate(expr: "0 9 * * MON-FRI", count: 3, from: "2026-11-27T10:00:00Z") { valid canonical description nextRuns } }"#,
        json!({}),
    )
    .await;
    let v = &valid["data"]["validate"];
    assert_eq!(
        (&v["valid"], &v["canonical"]),
        (&json!(true), &json!("0 9 * * 1-5"))
    );
    assert_eq!(
        v["nextRuns"],
        json!([
            "2026-11-30T09:00:00+00:00",
            "2026-12-01T09:00:00+00:00",
            "2026-12-02T09:00:00+00:00"
        ])
    );
    let invalid = gql(
        &base,
        &[],
        r#"{ validate(expr: "61 * * * *") { valid error position } }"#,
        json!({}),
    )
    .await;
    assert_eq!(invalid["data"]["validate"]["valid"], false);
    assert_eq!(invalid["data"]["validate"]["position"], 0);

    // Executors: pause, list, resume.
    let paused = gql(
        &base,
        &[],
        r#"mutation { pauseExecutor(executor: "report") }"#,
        json!({}),
    )
    .await;
    assert_eq!(paused["data"]["pauseExecutor"], true);
    let list = gql(
        &base,
        &[],
        "{ executors { executor ready pausedAt } }",
        json!({}),
    )
    .await;
    let report = list["data"]["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["executor"] == "report")
        .unwrap()
        .clone();
    assert_eq!(report["ready"], 12);
    assert!(report["pausedAt"].is_string());
    let resumed = gql(
        &base,
        &[],
        r#"mutation { resumeExecutor(executor: "report") }"#,
        json!({}),
    )
    .await;
    assert_eq!(resumed["data"]["resumeExecutor"], true);
}

#[tokio::test]
async fn owners_come_from_the_application_and_mutations_can_be_refused() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let theirs = client
        .owner("acme")
        .create(qron::NewJob::new("email", "@after 1 hour").name("x"))
        .await
        .unwrap();
    let api = tenant_api(&client);
    let base = serve(api.router()).await;
    let none = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": "{ executors { executor } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let mine = gql(
        &base,
        &[("x-tenant", "acme")],
        "query($id: Int) { job(id: $id) { owner } }",
        json!({ "id": theirs.id }),
    )
    .await;
    assert_eq!(mine["data"]["job"]["owner"], "acme", "{mine}");
    // Another owner's job is not found, by id or by name, for reads and changes alike.
    for query in [
        format!("{{ job(id: {}) {{ id }} }}", theirs.id),
        r#"{ job(executor: "email", name: "x") { id } }"#.to_owned(),
        format!(
            "mutation {{ deleteJob(target: {{ id: {} }}) {{ id }} }}",
            theirs.id
        ),
        r#"mutation { cancelJob(target: { executor: "email", name: "x" }) { id } }"#.to_owned(),
    ] {
        let other = gql(&base, &[("x-tenant", "globex")], &query, json!({})).await;
        assert_eq!(code(&other), "NOT_FOUND", "{query}: {other}");
    }
    // Created for the request's owner.
    let made = gql(
        &base,
        &[("x-tenant", "globex")],
        r#"mutation { createJob(job: { executor: "email", expr: "@daily" }) { owner } }"#,
        json!({}),
    )
    .await;
    assert_eq!(made["data"]["createJob"]["owner"], "globex");

    // An owner extension set by the application's layer wins over the function.
    let layered = qron::http::Api::new(client.clone())
        .owner(|_| Err(StatusCode::FORBIDDEN))
        .router()
        .layer(axum::Extension(qron::http::Owner::operate("acme")));
    let base2 = serve(layered).await;
    let via_layer = gql(
        &base2,
        &[],
        "query($id: Int) { job(id: $id) { owner } }",
        json!({ "id": theirs.id }),
    )
    .await;
    assert_eq!(via_layer["data"]["job"]["owner"], "acme", "{via_layer}");

    // Read-only: queries answer, mutations are refused and change nothing.
    let ro = serve(
        qron::http::Api::new(client.owner("acme"))
            .allow_anonymous()
            .read_only(true)
            .router(),
    )
    .await;
    let read = gql(&ro, &[], "{ jobs { total } }", json!({})).await;
    assert_eq!(read["data"]["jobs"]["total"], 1);
    let refused = gql(
        &ro,
        &[],
        &format!(
            "mutation {{ deleteJob(target: {{ id: {} }}) {{ id }} }}",
            theirs.id
        ),
        json!({}),
    )
    .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert!(client.owner("acme").get(theirs.id).await.is_ok());
}

/// An API where the `x-tenant` header names the tenant (with the `operate` scope), and "ops" is
/// the operator (`admin`).
fn tenants_and_ops(client: &Client) -> qron::http::Api {
    qron::http::Api::new(client.clone()).owner(|req| {
        match req.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
            Some("ops") => Ok(qron::http::Owner::admin("ops")),
            Some(t) => Ok(qron::http::Owner::operate(t)),
            None => Err(StatusCode::UNAUTHORIZED),
        }
    })
}

#[tokio::test]
async fn executor_limits_are_the_admins_and_every_owner_sees_them() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    client
        .owner("acme")
        .create(qron::NewJob::new("sync", "@after 0s"))
        .await
        .unwrap();
    // A header names the tenant; "ops" is the operator.
    let base = serve(tenants_and_ops(&client).router()).await;
    let set = r#"mutation($l: ExecutorLimitsInput!) {
        setExecutorLimits(executor: "sync", limits: $l) }"#;
    let limits = json!({ "concurrency": 4, "partitionBy": "FIELD",
                         "partitionField": "customer_id", "partitionConcurrency": 2,
                         "rate": { "limit": 100, "periodSeconds": 60, "partitionBy": "OWNER" } });
    // A tenant may not limit what every tenant shares; nothing is written.
    let tenant = gql(&base, &[("x-tenant", "acme")], set, json!({ "l": limits })).await;
    assert_eq!(code(&tenant), "FORBIDDEN", "{tenant}");
    assert_eq!(client.executor_limits("sync").await.unwrap(), None);
    // Out of range, or half a partition: refused naming the field.
    for (bad, field) in [
        (json!({ "concurrency": 0 }), "concurrency"),
        (json!({ "concurrency": 1_000_001 }), "concurrency"),
        (json!({ "partitionBy": "OWNER" }), "partition_concurrency"),
        (
            json!({ "partitionBy": "FIELD", "partitionConcurrency": 2 }),
            "partition_field",
        ),
        (json!({}), "limits"),
        (
            json!({ "rate": { "limit": 5, "periodSeconds": 0.5 } }),
            "rate_period",
        ),
        (
            json!({ "rate": { "limit": 5, "periodSeconds": -1 } }),
            "rate_period",
        ),
        (
            json!({ "rate": { "limit": 5, "periodSeconds": 1, "burst": 6 } }),
            "rate_burst",
        ),
        (
            json!({ "rate": { "limit": 5, "periodSeconds": 1, "partitionBy": "FIELD" } }),
            "rate_partition_field",
        ),
    ] {
        let refused = gql(&base, &[("x-tenant", "ops")], set, json!({ "l": bad })).await;
        assert_eq!(code(&refused), "INVALID_ARGUMENT", "{refused}");
        assert_eq!(
            refused["errors"][0]["extensions"]["field"], field,
            "{refused}"
        );
    }
    assert_eq!(client.executor_limits("sync").await.unwrap(), None);
    let ok = gql(&base, &[("x-tenant", "ops")], set, json!({ "l": limits })).await;
    assert_eq!(ok["data"]["setExecutorLimits"], true, "{ok}");
    // The tenant sees them beside its executor.
    let list = gql(
        &base,
        &[("x-tenant", "acme")],
        "{ executors { executor due limitTaken atLimit
                        limits { concurrency partitionBy partitionField partitionConcurrency
                                 text rate { limit periodSeconds burst partitionBy } } } }",
        json!({}),
    )
    .await;
    let sync = &list["data"]["executors"][0];
    assert_eq!(sync["executor"], "sync", "{list}");
    assert_eq!(sync["due"], 1);
    assert_eq!(sync["limitTaken"], 0);
    assert_eq!(sync["atLimit"], false);
    assert_eq!(
        sync["limits"],
        json!({ "concurrency": 4, "partitionBy": "field", "partitionField": "customer_id",
                "partitionConcurrency": 2,
                "text": "4 at once, 2 per customer_id, 100 per minute per owner",
                "rate": { "limit": 100, "periodSeconds": 60.0, "burst": 5,
                          "partitionBy": "owner" } })
    );
    let cleared = gql(
        &base,
        &[("x-tenant", "ops")],
        r#"mutation { clearExecutorLimits(executor: "sync") }"#,
        json!({}),
    )
    .await;
    assert_eq!(cleared["data"]["clearExecutorLimits"], true, "{cleared}");
    assert_eq!(client.executor_limits("sync").await.unwrap(), None);
}

#[tokio::test]
async fn a_tenant_caps_its_own_jobs_and_only_the_admin_weighs_tenants() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    client
        .owner("acme")
        .create(qron::NewJob::new("sync", "@after 0s"))
        .await
        .unwrap();
    let base = serve(tenants_and_ops(&client).router()).await;
    let acme = [("x-tenant", "acme")];
    // Its own cap: allowed, refused out of range naming the field, shown beside the executor.
    let cap = r#"mutation($n: Int!) { setOwnerCap(executor: "sync", concurrency: $n) }"#;
    let zero = gql(&base, &acme, cap, json!({ "n": 0 })).await;
    assert_eq!(code(&zero), "INVALID_ARGUMENT", "{zero}");
    assert_eq!(zero["errors"][0]["extensions"]["field"], "concurrency");
    let ok = gql(&base, &acme, cap, json!({ "n": 3 })).await;
    assert_eq!(ok["data"]["setOwnerCap"], true, "{ok}");
    let list = gql(
        &base,
        &acme,
        "{ executors { executor ownerCap ownerCapTaken } }",
        json!({}),
    )
    .await;
    assert_eq!(
        list["data"]["executors"][0],
        json!({ "executor": "sync", "ownerCap": 3, "ownerCapTaken": 0 }),
        "{list}"
    );
    // It binds acme's jobs only.
    assert_eq!(
        client.owner("acme").owner_caps().await.unwrap(),
        [("sync".to_owned(), 3, 0)]
    );
    assert!(client.owner("other").owner_caps().await.unwrap().is_empty());
    // Weights decide between tenants: a tenant may neither set nor read them.
    let weigh = r#"mutation { setOwnerWeight(owner: "acme", weight: 5) }"#;
    let refused = gql(&base, &acme, weigh, json!({})).await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let read = gql(&base, &acme, "{ ownerWeights { owner weight } }", json!({})).await;
    assert_eq!(code(&read), "FORBIDDEN", "{read}");
    assert!(client.owner_weights().await.unwrap().is_empty());
    let ops = [("x-tenant", "ops")];
    let over = gql(
        &base,
        &ops,
        r#"mutation { setOwnerWeight(owner: "acme", weight: 1001) }"#,
        json!({}),
    )
    .await;
    assert_eq!(over["errors"][0]["extensions"]["field"], "weight", "{over}");
    let set = gql(&base, &ops, weigh, json!({})).await;
    assert_eq!(set["data"]["setOwnerWeight"], true, "{set}");
    let read = gql(&base, &ops, "{ ownerWeights { owner weight } }", json!({})).await;
    assert_eq!(
        read["data"]["ownerWeights"],
        json!([{ "owner": "acme", "weight": 5 }])
    );
    let cleared = gql(
        &base,
        &acme,
        r#"mutation { clearOwnerCap(executor: "sync") }"#,
        json!({}),
    )
    .await;
    assert_eq!(cleared["data"]["clearOwnerCap"], true, "{cleared}");
}

#[tokio::test]
async fn cross_site_forms_oversized_bodies_and_deep_queries_are_refused() {
    let db = TestDb::new().await;
    let base = serve(
        qron::http::Api::new(Client::new(db.pool.clone()))
            .allow_anonymous()
            .max_body(64 * 1024)
            .router(),
    )
    .await;
    let http = reqwest::Client::new();
    // A form post, as a page on another site can send without asking: refused, nothing made.
    let form = http
        .post(format!("{base}/graphql"))
        .header("content-type", "text/plain")
        .body(r#"{"query":"mutation { createJob(job: { executor: \"x\", expr: \"@daily\" }) { id } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs").await,
        0
    );
    let big = http
        .post(format!("{base}/graphql"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"query":"{{ jobs {{ total }} }}","pad":"{}"}}"#,
            "x".repeat(100 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let deep = gql(
        &base,
        &[],
        &format!(
            "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
            "ofType {".repeat(qron::http::MAX_DEPTH),
            "}".repeat(qron::http::MAX_DEPTH)
        ),
        json!({}),
    )
    .await;
    assert!(
        deep["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nested too deep"),
        "{deep}"
    );
    let page = gql(&base, &[], "{ jobs(limit: 100000) { total } }", json!({})).await;
    assert_eq!(code(&page), "INVALID_ARGUMENT", "{page}");
}

#[tokio::test]
async fn remote_workers_lease_complete_and_renew_with_the_lease_guard() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            client
                .create(qron::NewJob::new("remote", "@after 0s").payload(json!({ "n": i })))
                .await
                .unwrap()
                .id,
        );
    }
    // Another owner's due job of the same executor is never leased by this owner's worker.
    let theirs = client
        .owner("acme")
        .create(qron::NewJob::new("remote", "@after 0s"))
        .await
        .unwrap();
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .router(),
    )
    .await;

    let (status, leased) = post_worker(
        &base,
        "lease",
        json!({ "executor": "remote", "limit": 2, "lease_seconds": 30, "worker": "py-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{leased}");
    let jobs = leased["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[0]["id"].as_i64(), jobs[0]["attempt"].as_i64()),
        (Some(ids[0]), Some(1))
    );
    assert_eq!(jobs[1]["payload"], json!({ "n": 1 }));
    let token = |j: &Value| j["token"].as_str().unwrap().to_owned();

    // A commit, a retry in an hour with a new payload, and a stale report (a lease never held).
    let (status, reported) = post_worker(
        &base,
        "complete",
        json!({ "outcomes": [
            { "id": ids[0], "token": token(&jobs[0]), "result": "commit" },
            { "id": ids[1], "token": token(&jobs[1]), "result": "retry", "error": "busy",
              "delay_seconds": 3600, "payload": { "n": 10 } },
            { "id": ids[2], "token": "999", "result": "commit" },
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reported}");
    assert_eq!(
        reported["reported"],
        json!([{ "id": ids[0], "applied": true }, { "id": ids[1], "applied": true }, { "id": ids[2], "applied": false }])
    );
    assert_eq!(
        client.get(ids[0]).await.unwrap().status,
        qron::JobStatus::Succeeded
    );
    let retried = client.get(ids[1]).await.unwrap();
    assert_eq!(
        (
            retried.status,
            retried.attempt,
            retried.last_error.as_deref()
        ),
        (qron::JobStatus::Ready, 1, Some("busy"))
    );
    assert_eq!(retried.payload, json!({ "n": 10 }));
    let wait = retried.run_at - chrono::Utc::now();
    assert!(wait > chrono::Duration::minutes(59), "{wait}");
    assert_eq!(
        client.get(ids[2]).await.unwrap().executions,
        0,
        "the stale report changed nothing"
    );
    // Reporting the same lease again is stale too.
    let (_, again) = post_worker(
        &base,
        "complete",
        json!({ "outcomes": [{ "id": ids[0], "token": token(&jobs[0]), "result": "fail" }] }),
    )
    .await;
    assert_eq!(again["reported"][0]["applied"], false);

    // Over GraphQL: lease the last one, renew it over JSON, fail it.
    let leased = gql(
        &base,
        &[],
        r#"mutation { lease(executor: "remote", limit: 10, leaseSeconds: 5) { id token attempt } }"#,
        json!({}),
    )
    .await;
    let jobs = leased["data"]["lease"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "only this owner's due job is left: {leased}");
    assert_eq!(jobs[0]["id"], ids[2]);
    let before = sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
        "SELECT lease_expires_at FROM qron.jobs WHERE id = $1",
    )
    .bind(ids[2])
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let (_, renewed) = post_worker(
        &base,
        "heartbeat",
        json!({ "leases": [{ "id": ids[2], "token": token(&jobs[0]) }, { "id": ids[0], "token": "1" }], "lease_seconds": 120 }),
    )
    .await;
    assert_eq!(renewed["renewed"], json!([ids[2]]));
    let after = sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
        "SELECT lease_expires_at FROM qron.jobs WHERE id = $1",
    )
    .bind(ids[2])
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        after - before > chrono::Duration::seconds(100),
        "{before} → {after}"
    );
    let failed = gql(
        &base,
        &[],
        &format!(
            r#"mutation {{ complete(outcomes: [{{ id: {}, token: "{}", result: FAIL, error: "bad input" }}]) {{ id applied }} }}"#,
            ids[2],
            token(&jobs[0])
        ),
        json!({}),
    )
    .await;
    assert_eq!(failed["data"]["complete"][0]["applied"], true, "{failed}");
    let j = client.get(ids[2]).await.unwrap();
    assert_eq!(
        (j.status, j.last_error.as_deref()),
        (qron::JobStatus::Failed, Some("bad input"))
    );
    assert_eq!(j.errors[0].worker.as_deref(), Some("remote"));
    assert_eq!(
        client
            .owner("acme")
            .get(theirs.id)
            .await
            .unwrap()
            .executions,
        0
    );

    // Bad input is refused with the field named, and nothing is written.
    for (path, body) in [
        ("lease", json!({ "executor": "remote", "limit": 0 })),
        ("lease", json!({ "executor": "a\u{0}b" })),
        (
            "lease",
            json!({ "executor": "remote", "lease_seconds": -1 }),
        ),
        ("complete", json!({ "outcomes": [] })),
        (
            "complete",
            json!({ "outcomes": [
            { "id": ids[1], "token": "1", "result": "commit" },
            { "id": ids[1], "token": "1", "result": "commit" }] }),
        ),
        (
            "complete",
            json!({ "outcomes": [{ "id": ids[1], "token": "1", "result": "retry", "delay_seconds": 1e300 }] }),
        ),
        (
            "complete",
            json!({ "outcomes": [{ "id": ids[1], "token": "1", "result": "fail", "error": "a\u{0}b" }] }),
        ),
    ] {
        let (status, answer) = post_worker(&base, path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_eq!(answer["code"], "INVALID_ARGUMENT", "{answer}");
    }
    let (status, _) = post_worker(
        &base,
        "complete",
        json!({ "outcomes": [{ "id": 1, "result": "maybe" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Read-only: no lease.
    let ro = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .read_only(true)
            .router(),
    )
    .await;
    let (status, _) = post_worker(&ro, "lease", json!({ "executor": "remote" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_python_example_worker_runs_jobs_over_http() {
    let Ok(python) = which_python() else {
        eprintln!("python3 is not on this machine: the Python worker is not run");
        return;
    };
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let greet = client
        .create(qron::NewJob::new("greet", "@after 0s").payload(json!({ "name": "Ada" })))
        .await
        .unwrap();
    let nameless = client
        .create(qron::NewJob::new("greet", "@after 0s"))
        .await
        .unwrap();
    let base = serve(
        qron::http::Api::new(client.clone())
            .allow_anonymous()
            .router(),
    )
    .await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/worker.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([base.as_str(), "greet", "--once"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = client.get(greet.id).await.unwrap();
    assert_eq!(done.status, qron::JobStatus::Succeeded);
    assert_eq!(done.payload["greeting"], "Hello, Ada!");
    let failed = client.get(nameless.id).await.unwrap();
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (qron::JobStatus::Failed, Some("no name to greet"))
    );
}

/// `python3` on the PATH.
fn which_python() -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
        .ok_or(())
}

#[tokio::test]
async fn every_operation_keeps_to_its_owner_and_bad_input_changes_nothing() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let acme = client.owner("acme");
    let live = acme
        .create(qron::NewJob::new("email", "@after 1 hour").name("live"))
        .await
        .unwrap();
    let finished = acme
        .create(qron::NewJob::new("email", "@after 1 hour").name("done"))
        .await
        .unwrap();
    acme.cancel(finished.id).await.unwrap();
    let api = tenant_api(&client);
    let base = serve(api.router()).await;
    let other = [("x-tenant", "globex")];
    let snapshot = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT string_agg(t::text, '|' ORDER BY id) FROM (
                 SELECT id, owner, executor, name, status, revision, run_at, attempt FROM qron.jobs
                 UNION ALL
                 SELECT id, owner, executor, name, status, revision, run_at, attempt FROM qron.jobs_history) t",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let before = snapshot().await;
    // Every operation on another owner's job, by id and by name: not found, nothing changed.
    for (id, name) in [(live.id, "live"), (finished.id, "done")] {
        for target in [
            format!("{{ id: {id} }}"),
            format!(r#"{{ executor: "email", name: "{name}" }}"#),
        ] {
            for op in [
                format!(
                    "mutation {{ updateJob(target: {target}, changes: {{ expr: \"@daily\" }}) {{ id }} }}"
                ),
                format!("mutation {{ deleteJob(target: {target}) {{ id }} }}"),
                format!("mutation {{ stopJob(target: {target}) {{ id }} }}"),
                format!("mutation {{ restartJob(target: {target}) {{ id }} }}"),
                format!("mutation {{ retryJob(target: {target}) {{ id }} }}"),
                format!("mutation {{ cancelJob(target: {target}) {{ id }} }}"),
                format!("mutation {{ runJobNow(target: {target}) {{ id }} }}"),
            ] {
                let r = gql(&base, &other, &op, json!({})).await;
                assert_eq!(code(&r), "NOT_FOUND", "{op}: {r}");
            }
        }
    }
    let listed = gql(
        &base,
        &other,
        "{ jobs { total } executors { executor } }",
        json!({}),
    )
    .await;
    assert_eq!(listed["data"]["jobs"]["total"], 0, "{listed}");
    assert_eq!(listed["data"]["executors"], json!([]));
    let (status, leased) = {
        let resp = reqwest::Client::new()
            .post(format!("{base}/workers/lease"))
            .header("x-tenant", "globex")
            .json(&json!({ "executor": "email" }))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!((status, &leased["jobs"]), (StatusCode::OK, &json!([])));
    let (_, reported) = post_worker(
        &base,
        "complete",
        json!({ "outcomes": [{ "id": live.id, "token": "0", "result": "commit" }] }),
    )
    .await;
    assert_eq!(
        reported,
        Value::Null,
        "no owner header: refused before anything"
    );

    // Bad input in every string argument: NUL bytes and over-long values are refused with the
    // field named (SQL metacharacters are plain text: see the end).
    let nasty = ["a\u{0}b", &"x".repeat(300)];
    for text in nasty {
        for (query, vars) in [
            (
                "mutation($t: String!) { createJob(job: { executor: $t, expr: \"@daily\" }) { id } }",
                json!({ "t": text }),
            ),
            (
                "mutation($t: String!) { createJob(job: { executor: \"email\", expr: $t }) { id } }",
                json!({ "t": text }),
            ),
            (
                "mutation($t: String!) { createJob(job: { executor: \"email\", expr: \"@daily\", name: $t }) { id } }",
                json!({ "t": text }),
            ),
            (
                "mutation($t: String!) { pauseExecutor(executor: $t) }",
                json!({ "t": text }),
            ),
            (
                "mutation($t: String!) { resumeExecutor(executor: $t) }",
                json!({ "t": text }),
            ),
            (
                "mutation($t: String!) { updateJob(target: { executor: $t, name: $t }, changes: { expr: \"@daily\" }) { id } }",
                json!({ "t": text }),
            ),
            (
                "query($t: String!) { job(executor: $t, name: $t) { id } }",
                json!({ "t": text }),
            ),
            (
                "query($t: String!) { jobs(filter: { executor: $t, nameContains: $t }) { total } }",
                json!({ "t": text }),
            ),
            (
                "query($t: String!) { validate(expr: $t) { valid } }",
                json!({ "t": text }),
            ),
        ] {
            let r = gql(&base, &other, query, vars).await;
            let ok = r["errors"].is_array()
                || r["data"]["jobs"]["total"] == 0
                || r["data"]["validate"]["valid"] == false;
            assert!(ok, "{query} with {text:?}: {r}");
            assert_ne!(code(&r), "INTERNAL", "{query} with {text:?}: {r}");
        }
    }
    let nul = gql(
        &base,
        &other,
        r#"mutation { createJob(job: { executor: "email", expr: "@daily", payload: { text: "a\u0000b" } }) { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(nul["errors"][0]["extensions"]["field"], "payload", "{nul}");
    // Malformed GraphQL, and an unknown id.
    let malformed = gql(&base, &other, "{ jobs { total ", json!({})).await;
    assert!(malformed["errors"][0]["message"].is_string(), "{malformed}");
    let unknown = gql(&base, &other, "{ job(id: 987654321) { id } }", json!({})).await;
    assert_eq!(code(&unknown), "NOT_FOUND");
    assert_eq!(snapshot().await, before, "nothing changed");
    assert_eq!(
        qron_tests::count(&db.pool, "SELECT count(*) FROM qron.executor_pauses").await,
        0
    );

    // SQL metacharacters are text like any other: stored and found as written.
    let sql = "'; DROP TABLE qron.jobs; --";
    let made = gql(
        &base,
        &other,
        "mutation($t: String!) { createJob(job: { executor: $t, expr: \"@daily\", name: $t, meta: { note: $t } }) { id executor name meta } }",
        json!({ "t": sql }),
    )
    .await;
    let job = &made["data"]["createJob"];
    assert_eq!(
        (&job["executor"], &job["name"], &job["meta"]["note"]),
        (&json!(sql), &json!(sql), &json!(sql)),
        "{made}"
    );
    let found = gql(&base, &other, "query($t: String!) { job(executor: $t, name: $t) { id } jobs(filter: { nameContains: $t }) { total } }", json!({ "t": sql })).await;
    assert_eq!(
        (&found["data"]["job"]["id"], &found["data"]["jobs"]["total"]),
        (&job["id"], &json!(1)),
        "{found}"
    );
    assert_eq!(
        qron_tests::count(&db.pool, "SELECT count(*) FROM qron.jobs").await,
        2,
        "the table is there"
    );
}

#[tokio::test]
async fn a_workflow_is_read_cancelled_and_retried_and_a_batch_read_over_graphql_by_its_owner_only()
{
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let mut wf = qron::Workflow::new("etl");
    wf.add_job("fetch", qron::NewJob::new("fetch", "@after 1 hour"));
    wf.add_job("merge", qron::NewJob::new("merge", "@after 0s"))
        .after(["fetch"]);
    let created = wf.create(&client.owner("acme")).await.unwrap();
    let api = qron::http::Api::new(client.clone()).owner(|req| {
        req.headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(qron::http::Owner::operate)
            .ok_or(StatusCode::UNAUTHORIZED)
    });
    let base = serve(api.router()).await;
    let read =
        "query($id: Int!) { workflow(id: $id) { name status steps { step job status after } } }";
    let mine = gql(
        &base,
        &[("x-tenant", "acme")],
        read,
        json!({ "id": created.id }),
    )
    .await;
    let w = &mine["data"]["workflow"];
    assert_eq!(w["name"], "etl", "{mine}");
    assert_eq!(w["status"], "RUNNING", "{mine}");
    assert_eq!(w["steps"][1]["step"], "merge", "{mine}");
    assert_eq!(w["steps"][1]["status"], "WAITING", "{mine}");
    assert_eq!(w["steps"][1]["after"], json!(["fetch"]), "{mine}");
    // Another owner finds no such workflow, and cannot cancel it.
    let cancel = "mutation($id: Int!) { cancelWorkflow(id: $id) }";
    for query in [read, cancel] {
        let other = gql(
            &base,
            &[("x-tenant", "globex")],
            query,
            json!({ "id": created.id }),
        )
        .await;
        assert_eq!(code(&other), "NOT_FOUND", "{query}: {other}");
    }
    let cancelled = gql(
        &base,
        &[("x-tenant", "acme")],
        cancel,
        json!({ "id": created.id }),
    )
    .await;
    assert_eq!(cancelled["data"]["cancelWorkflow"], 2, "{cancelled}");
    let after = gql(
        &base,
        &[("x-tenant", "acme")],
        read,
        json!({ "id": created.id }),
    )
    .await;
    assert_eq!(after["data"]["workflow"]["status"], "CANCELLED", "{after}");
    // Retried: both steps come back; another owner cannot.
    let retry = "mutation($id: Int!) { retryWorkflow(id: $id) }";
    let other = gql(
        &base,
        &[("x-tenant", "globex")],
        retry,
        json!({ "id": created.id }),
    )
    .await;
    assert_eq!(code(&other), "NOT_FOUND", "{other}");
    let retried = gql(
        &base,
        &[("x-tenant", "acme")],
        retry,
        json!({ "id": created.id }),
    )
    .await;
    assert_eq!(
        retried["data"]["retryWorkflow"],
        json!([created.job("fetch").unwrap(), created.job("merge").unwrap()]),
        "{retried}"
    );
    let again = gql(
        &base,
        &[("x-tenant", "acme")],
        read,
        json!({ "id": created.id }),
    )
    .await;
    assert_eq!(again["data"]["workflow"]["status"], "RUNNING", "{again}");
    // Listed, newest first, for its owner only; a limit out of range is refused by name.
    let list = "query($limit: Int!) { workflows(limit: $limit) { id name status } }";
    let listed = gql(&base, &[("x-tenant", "acme")], list, json!({ "limit": 10 })).await;
    assert_eq!(
        listed["data"]["workflows"],
        json!([{ "id": created.id, "name": "etl", "status": "RUNNING" }]),
        "{listed}"
    );
    let theirs = gql(
        &base,
        &[("x-tenant", "globex")],
        list,
        json!({ "limit": 10 }),
    )
    .await;
    assert_eq!(theirs["data"]["workflows"], json!([]), "{theirs}");
    // A batch, by its callback's id, for its owner only.
    let mut batch = qron::Batch::new();
    batch.add_job(qron::NewJob::new("row", "@after 1 hour"));
    batch.add_job(qron::NewJob::new("row", "@after 1 hour"));
    batch.on_finish_job(qron::NewJob::new("done", "@after 0s"));
    let b = batch.create(&client.owner("acme")).await.unwrap();
    let read_batch =
        "query($id: Int!) { batch(id: $id) { callback callbackStatus jobs { live succeeded } } }";
    let mine = gql(
        &base,
        &[("x-tenant", "acme")],
        read_batch,
        json!({ "id": b.callback }),
    )
    .await;
    assert_eq!(
        mine["data"]["batch"],
        json!({ "callback": b.callback, "callbackStatus": "WAITING",
                "jobs": { "live": b.jobs, "succeeded": [] } }),
        "{mine}"
    );
    let theirs = gql(
        &base,
        &[("x-tenant", "globex")],
        read_batch,
        json!({ "id": b.callback }),
    )
    .await;
    assert_eq!(code(&theirs), "NOT_FOUND", "{theirs}");
    let bad = gql(&base, &[("x-tenant", "acme")], list, json!({ "limit": 0 })).await;
    assert_eq!(code(&bad), "INVALID_ARGUMENT", "{bad}");
    assert!(bad.to_string().contains("limit"), "{bad}");
}

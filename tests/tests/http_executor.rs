//! The HTTP executor (issue 18): jobs of executor `http` sent to a loopback endpoint, and what
//! its replies do to them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use hmac::Mac as _;
use qron::{Client, HttpExecutor, JobStatus, NewJob};
use qron_tests::TestDb;
use qron_tests::http::run_http_worker;
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    in_flight: AtomicI64,
    max_in_flight: AtomicI64,
    bodies: std::sync::Mutex<Vec<(Value, Option<String>)>>,
}

/// The endpoint: `/ok`, `/change`, `/fail`, `/500`, `/slow`, `/busy` (20 ms, counting requests
/// in flight), `/away` (a redirect to another host name) and `/here` (one to the same host).
async fn endpoint(seen: Arc<Seen>) -> (String, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = |seen: &Seen, headers: &HeaderMap, body: Value| {
        let sig = headers
            .get("x-qron-signature")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.bodies.lock().unwrap().push((body, sig));
    };
    let app = axum::Router::new()
        .route(
            "/ok",
            post(
                move |State(s): State<Arc<Seen>>, h: HeaderMap, body: String| async move {
                    record(&s, &h, serde_json::from_str(&body).unwrap());
                    // The raw body, for the signature check.
                    s.bodies.lock().unwrap().push((Value::String(body), None));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/change",
            post(|| async { Json(json!({ "payload": { "n": 2 }, "expr": "@after 1 hour" })) }),
        )
        .route(
            "/fail",
            post(|| async { Json(json!({ "outcome": "fail", "error": "nope" })) }),
        )
        .route(
            "/500",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down") }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK
            }),
        )
        .route(
            "/busy",
            post(|State(s): State<Arc<Seen>>| async move {
                let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                s.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                s.in_flight.fetch_sub(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        )
        .route(
            "/away",
            post(move || async move {
                Redirect::temporary(&format!("http://localhost:{port}/ok")).into_response()
            }),
        )
        .route(
            "/here",
            post(|| async { Redirect::temporary("/ok").into_response() as Response }),
        )
        .with_state(seen);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), port)
}

fn http_job(url: &str) -> NewJob {
    NewJob::new("http", "@after 0s")
        .payload(json!({ "n": 1 }))
        .meta(json!({ "url": url, "headers": { "x-app": "test" } }))
}

#[tokio::test]
async fn replies_decide_the_outcome() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let seen = Arc::new(Seen::default());
    let (base, _) = endpoint(seen.clone()).await;
    let ok = client
        .create(http_job(&format!("{base}/ok")))
        .await
        .unwrap();
    let change = client
        .create(http_job(&format!("{base}/change")))
        .await
        .unwrap();
    let fail = client
        .create(http_job(&format!("{base}/fail")))
        .await
        .unwrap();
    let here = client
        .create(http_job(&format!("{base}/here")))
        .await
        .unwrap();
    let away = client
        .create(http_job(&format!("{base}/away")))
        .await
        .unwrap();
    let down = client
        .create(http_job(&format!("{base}/500")).max_attempts(3))
        .await
        .unwrap();
    let slow = client
        .create(
            http_job(&format!("{base}/slow"))
                .timeout(Duration::from_millis(500))
                .max_attempts(3),
        )
        .await
        .unwrap();
    let no_url = client
        .create(NewJob::new("http", "@after 0s"))
        .await
        .unwrap();
    // The endpoint is on loopback: the operator allows it.
    run_http_worker(
        &client,
        HttpExecutor::new()
            .allow_hosts(["127.0.0.1"])
            .secret_for(|owner| (owner == "default").then_some("s3cret")),
    )
    .await;

    assert_eq!(
        client.get(ok.id).await.unwrap().status,
        JobStatus::Succeeded
    );
    assert_eq!(
        client.get(here.id).await.unwrap().status,
        JobStatus::Succeeded,
        "same host: followed"
    );
    // The request: the job as JSON, the meta's headers, and a signature of the body.
    let bodies = seen.bodies.lock().unwrap().clone();
    let (sent, signature) = bodies
        .iter()
        .find(|(b, _)| b["id"] == ok.id)
        .cloned()
        .unwrap();
    assert_eq!(
        (&sent["payload"], &sent["attempt"], &sent["executor"]),
        (&json!({ "n": 1 }), &json!(1), &json!("http"))
    );
    let signature = signature.unwrap();
    let (t, v2) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v2="))
        .unwrap();
    assert!(
        sent["meta"].get("headers").is_none(),
        "the meta's headers are not echoed into the body: {sent}"
    );
    let raw = bodies
        .iter()
        .find_map(|(b, _)| {
            b.as_str()
                .filter(|r| r.contains(&format!("\"id\":{}", ok.id)))
        })
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    // Over the timestamp, the method, the URL, the owner and the body.
    mac.update(format!("{t}\nPOST\n{base}/ok\ndefault\n{raw}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v2, expected, "the receiver can verify the request");

    let changed = client.get(change.id).await.unwrap();
    assert_eq!(
        (changed.status, &changed.payload, changed.expr.as_str()),
        (JobStatus::Ready, &json!({ "n": 2 }), "@after 1 hour"),
        "the reply's payload and schedule"
    );
    let failed = client.get(fail.id).await.unwrap();
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (JobStatus::Failed, Some("nope"))
    );
    let away = client.get(away.id).await.unwrap();
    assert_eq!(away.status, JobStatus::Failed, "{away:?}");
    let why = away.last_error.unwrap();
    assert!(why.contains("another scheme, host or port"), "{why}");
    assert!(
        seen.bodies.lock().unwrap().len() <= 4,
        "the other host was never called"
    );
    // Retried with back-off: a 500 and a timeout (how many attempts fit in the run depends on
    // how long the other jobs kept the worker busy).
    for (job, why) in [(down, "500"), (slow, "timed out")] {
        let j = client.get(job.id).await.unwrap();
        assert!(!j.errors.is_empty(), "{j:?}");
        assert!(j.errors.iter().all(|e| e.error.contains(why)), "{j:?}");
        assert_eq!(
            j.errors.len(),
            j.attempt as usize,
            "each attempt counted: {j:?}"
        );
        if j.status == JobStatus::Ready {
            assert!(
                j.run_at > j.last_error_at.unwrap(),
                "after a back-off: {j:?}"
            );
        } else {
            assert_eq!((j.status, j.attempt), (JobStatus::Failed, 3), "{j:?}");
        }
        for pair in j.errors.windows(2) {
            assert!(
                pair[1].at - pair[0].at >= chrono::Duration::milliseconds(400),
                "{j:?}"
            );
        }
    }
    let no_url = client.get(no_url.id).await.unwrap();
    assert_eq!(no_url.status, JobStatus::Failed);
    assert!(no_url.last_error.unwrap().contains("url"));
}

#[tokio::test]
async fn two_hundred_jobs_never_exceed_the_bound_of_ten() {
    let db = TestDb::new().await;
    let client = Client::new(db.pool.clone());
    let seen = Arc::new(Seen::default());
    let (base, _) = endpoint(seen.clone()).await;
    client
        .create_many((0..200).map(|_| http_job(&format!("{base}/busy"))))
        .await
        .unwrap();
    run_http_worker(
        &client,
        HttpExecutor::new().concurrency(10).allow_private(true),
    )
    .await;
    let done: i64 = qron_tests::count(
        &db.pool,
        "SELECT count(*) FROM qron.jobs_history WHERE status = 'succeeded'",
    )
    .await;
    assert_eq!(done, 200);
    let max = seen.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=10).contains(&max),
        "at most 10 at once, and more than one: {max}"
    );
}

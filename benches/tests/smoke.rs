//! Each benchmark scenario runs at a tiny size: this checks that they work, not how fast.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn run(args: &[&str]) -> Vec<serde_json::Value> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => qron::embedded::EmbeddedPostgres::shared().unwrap().url(),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_qron-bench"))
        .args(args)
        .arg("--json")
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!figures.is_empty(), "{args:?} printed nothing");
    for f in &figures {
        assert!(f["name"].is_string() && f["unit"].is_string(), "{f}");
        assert!(
            f["value"].as_f64().is_some_and(f64::is_finite),
            "{args:?}: {f}"
        );
    }
    figures
}

#[test]
fn every_scenario_runs_at_a_tiny_size() {
    run(&["expr", "--iterations", "10", "--batches", "1"]);
    let floor = run(&[
        "floor", "--jobs", "200", "--tasks", "2", "--batch", "10,100",
    ]);
    assert_eq!(floor.len(), 4);
    run(&[
        "enqueue",
        "--jobs",
        "200",
        "--callers",
        "2",
        "--rounds",
        "2",
    ]);
    let t = run(&[
        "throughput",
        "--jobs",
        "200",
        "--workers",
        "1,2",
        "--rounds",
        "2",
        "--concurrency",
        "10",
    ]);
    assert!(
        t.iter()
            .any(|f| f["name"].as_str().unwrap().contains("2 worker processes"))
    );
    for history in ["all", "failed"] {
        let label = format!("concurrency 10, history {history}) / floor");
        assert!(
            t.iter()
                .any(|f| f["name"].as_str().unwrap().ends_with(&label)),
            "{label}: {t:?}"
        );
    }
    let w = run(&[
        "workflow", "--steps", "20", "--fan-in", "50", "--rounds", "1",
    ]);
    assert!(
        w.iter()
            .any(|f| f["name"].as_str().unwrap().ends_with("hand-off p50")),
        "{w:?}"
    );
    run(&["latency", "--rate", "50", "--seconds", "1"]);
    run(&["recurring", "--jobs", "10", "--seconds", "2"]);
    run(&["bloat", "--jobs", "200", "--rounds", "1"]);
    let m = run(&["memory", "--jobs", "200", "--concurrency", "10"]);
    assert!(m[0]["value"].as_f64().unwrap() > 1.0, "{m:?}");
    let d = run(&[
        "dashboard",
        "--jobs",
        "300",
        "--viewers",
        "3",
        "--seconds",
        "3",
    ]);
    let per_refresh = d
        .iter()
        .find(|f| f["name"] == "overview count queries per refresh interval")
        .and_then(|f| f["value"].as_f64())
        .unwrap();
    assert!(
        per_refresh <= 1.5,
        "one count per refresh, whatever the viewers: {d:?}"
    );
}

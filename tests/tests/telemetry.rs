//! Telemetry (issue 17): the metrics an execution reports, through an in-memory recorder, and
//! the trace carried from an enqueue to the execution's span, through an in-memory span
//! exporter. One test in a binary of its own: both the recorder and the subscriber are global.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use qron::{Client, Worker};
use qron_tests::TestDb;
use qron_tests::jobs::{Mode, key, script_job};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn executions_report_metrics_and_link_their_span_to_the_enqueuing_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("qron-tests")));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let db = TestDb::new().await;
    let c = Client::new(db.pool.clone());
    let k = key("telemetry");
    // Enqueued in a request's span: its trace goes with the job.
    let traced = c
        .create(script_job("act", "@after 0s", &k, Mode::Ok))
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
    let traceparent = traced.meta["traceparent"].as_str().unwrap().to_owned();
    c.create(script_job("act", "@after 0s", &k, Mode::Fail))
        .await
        .unwrap();
    c.create(script_job("act", "@after 0s", &k, Mode::Retry).max_attempts(2))
        .await
        .unwrap();
    // A meta that carries its own trace keeps it.
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let kept = c
        .create(
            script_job("act", "@after 1 hour", &k, Mode::Ok)
                .meta(serde_json::json!({ "traceparent": own })),
        )
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
    assert_eq!(kept.meta["traceparent"], own);
    Worker::builder(c.clone())
        .executors(["act"])
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();

    // The span link: the execution's span points at the enqueue's span, in the request's trace.
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let request = spans.iter().find(|s| s.name == "request").unwrap();
    let enqueue = spans
        .iter()
        .find(|s| {
            s.name == "qron.enqueue" && s.span_context.trace_id() == request.span_context.trace_id()
        })
        .unwrap();
    assert_eq!(enqueue.parent_span_id, request.span_context.span_id());
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            enqueue.span_context.trace_id(),
            enqueue.span_context.span_id()
        )
    );
    let linked: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.name == "qron.job"
                && s.links.links.iter().any(|l| {
                    l.span_context.trace_id() == enqueue.span_context.trace_id()
                        && l.span_context.span_id() == enqueue.span_context.span_id()
                })
        })
        .collect();
    assert_eq!(linked.len(), 1, "the traced job's one execution");
    let attribute = |name: &str| {
        linked[0]
            .attributes
            .iter()
            .find(|a| a.key.as_str() == name)
            .map(|a| a.value.to_string())
    };
    assert_eq!(attribute("messaging.system").as_deref(), Some("qron"));
    assert_eq!(
        attribute("messaging.destination.name").as_deref(),
        Some("act")
    );

    // The metrics: 1 success, 1 failure, and a retry then a failure.
    let metrics = snapshotter.snapshot().into_vec();
    let value = |name: &str, labels: &[(&str, &str)]| value_of(&metrics, name, labels);
    let counter = |name: &str, labels: &[(&str, &str)]| match value(name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    };
    let executor = [("executor", "act")];
    assert_eq!(
        counter(
            "qron_jobs_executed_total",
            &[("executor", "act"), ("outcome", "succeeded")]
        ),
        1
    );
    assert_eq!(counter("qron_jobs_failed_total", &executor), 2);
    assert_eq!(counter("qron_jobs_retried_total", &executor), 1);
    for histogram in ["qron_job_duration_seconds", "qron_job_lateness_seconds"] {
        match value(histogram, &executor) {
            Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 4, "{histogram}"),
            other => panic!("{histogram}: {other:?}"),
        }
    }
    assert!(
        matches!(
            value("qron_queue_depth", &executor),
            Some(DebugValue::Gauge(_))
        ),
        "the queue gauge is reported"
    );
}

type Metric = (
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
);

/// The value of metric `name` with `labels` (among others).
fn value_of<'m>(
    metrics: &'m [Metric],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'m DebugValue> {
    metrics
        .iter()
        .find(|(k, ..)| {
            let key = k.key();
            key.name() == name
                && labels.iter().all(|(l, v)| {
                    key.labels()
                        .any(|label| label.key() == *l && label.value() == *v)
                })
        })
        .map(|(_, _, _, v)| v)
}

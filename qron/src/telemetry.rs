//! Telemetry: the metrics qron reports through the [`metrics`](https://docs.rs/metrics) facade,
//! and the trace carried from an enqueue to the job's executions (feature `opentelemetry`).
//!
//! # Metrics
//!
//! Reported to whatever recorder the application installs (Prometheus, StatsD, OpenTelemetry…;
//! with none, they cost next to nothing), each labelled with `executor`:
//!
//! | name | kind | what |
//! |---|---|---|
//! | `qron_jobs_executed_total` | counter | executions that ended (any outcome; label `outcome`: `succeeded`, `retry`, `failed`, `snoozed`, …) |
//! | `qron_jobs_failed_total` | counter | executions that ended the job as failed |
//! | `qron_jobs_retried_total` | counter | executions that will be retried |
//! | `qron_job_duration_seconds` | histogram | how long handlers ran |
//! | `qron_job_lateness_seconds` | histogram | how late handlers started, after their run time |
//! | `qron_queue_depth` | gauge | due jobs waiting to be leased |
//! | `qron_queue_oldest_due_seconds` | gauge | how long the oldest of them has waited |
//!
//! The two gauges come from one query per worker every [`DEFAULT_QUEUE_REFRESH`] (the
//! executors it serves), never from a count per scrape.
//!
//! # Traces
//!
//! Creating a job runs in a `qron.enqueue` span, and each execution in a `qron.job` span, with
//! OpenTelemetry's messaging attributes (`messaging.system = "qron"`,
//! `messaging.destination.name` = the executor, `messaging.operation.type` = `send` or
//! `process`). With the `opentelemetry` feature and a `tracing-opentelemetry` layer installed,
//! the enqueuing span's W3C `traceparent` is stored in the job's meta (unless the meta has one
//! already), and every execution's span is linked to it: the trace shows the request that
//! enqueued a job beside the job's runs, however long after.

use std::time::Duration;

/// How often a worker refreshes the queue gauges of its executors.
pub const DEFAULT_QUEUE_REFRESH: Duration = Duration::from_secs(10);

/// The meta key the W3C trace context is stored under.
pub(crate) const TRACEPARENT: &str = "traceparent";

/// Records an execution's end.
pub(crate) fn executed(
    executor: &'static str,
    outcome: &'static str,
    duration: Duration,
    lateness: Option<Duration>,
) {
    metrics::counter!("qron_jobs_executed_total", "executor" => executor, "outcome" => outcome)
        .increment(1);
    match outcome {
        "failed" => {
            metrics::counter!("qron_jobs_failed_total", "executor" => executor).increment(1)
        }
        "retry" => {
            metrics::counter!("qron_jobs_retried_total", "executor" => executor).increment(1)
        }
        _ => {}
    }
    metrics::histogram!("qron_job_duration_seconds", "executor" => executor)
        .record(duration.as_secs_f64());
    if let Some(late) = lateness {
        metrics::histogram!("qron_job_lateness_seconds", "executor" => executor)
            .record(late.as_secs_f64());
    }
}

/// Records an executor's queue: due jobs waiting, and how long the oldest has waited.
pub(crate) fn queue(executor: &'static str, depth: i64, oldest_due: Duration) {
    metrics::gauge!("qron_queue_depth", "executor" => executor).set(depth as f64);
    metrics::gauge!("qron_queue_oldest_due_seconds", "executor" => executor)
        .set(oldest_due.as_secs_f64());
}

/// `meta` with the current span's `traceparent` added, when there is a trace to carry and the
/// meta has none; `None` when it is to stay as it is.
pub(crate) fn with_traceparent(meta: &serde_json::Value) -> Option<serde_json::Value> {
    let parent = current_traceparent()?;
    let object = meta.as_object()?;
    if object.contains_key(TRACEPARENT) {
        return None;
    }
    let mut object = object.clone();
    object.insert(TRACEPARENT.to_owned(), serde_json::Value::String(parent));
    Some(serde_json::Value::Object(object))
}

/// The current span's W3C `traceparent`, when it belongs to a valid OpenTelemetry trace.
#[cfg(feature = "opentelemetry")]
fn current_traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

#[cfg(not(feature = "opentelemetry"))]
fn current_traceparent() -> Option<String> {
    None
}

/// Links `span` to the trace of a job's `traceparent` (from its meta), when it holds a valid
/// one.
#[cfg(feature = "opentelemetry")]
pub(crate) fn link(span: &tracing::Span, meta: &serde_json::Value) {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let Some(parent) = meta.get(TRACEPARENT).and_then(|v| v.as_str()) else {
        return;
    };
    let mut parts = parent.split('-');
    let (Some("00"), Some(trace), Some(span_id), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return;
    };
    let (Ok(trace), Ok(span_id), Ok(flags)) = (
        TraceId::from_hex(trace),
        SpanId::from_hex(span_id),
        u8::from_str_radix(flags, 16),
    ) else {
        return;
    };
    span.add_link(SpanContext::new(
        trace,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ));
}

#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn link(_span: &tracing::Span, _meta: &serde_json::Value) {}

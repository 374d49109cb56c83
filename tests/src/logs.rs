//! What the code under test logs, per test: one global subscriber, installed once (a scoped
//! one misses events when tests run in parallel), hands each event to the test running on the
//! event's thread. Tests that look at logs run on a current-thread runtime (`#[tokio::test]`'s
//! default), so the tasks they start log on their thread.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) {
//! let (_, events) = qron_tests::logs::capture(async { /* run a worker */ }).await;
//! assert!(events.iter().all(|e| e.level != tracing::Level::ERROR));
//! # }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// One log event: its level, target and fields (the message as `message`).
#[derive(Debug, Clone)]
pub struct Event {
    /// Its level.
    pub level: tracing::Level,
    /// Its target (module path).
    pub target: String,
    /// Its fields, formatted.
    pub fields: BTreeMap<String, String>,
}

impl Event {
    /// The field `name`, if the event has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

thread_local! {
    static STATEMENTS: RefCell<Option<Arc<AtomicUsize>>> = const { RefCell::new(None) };
    static EVENTS: RefCell<Option<Arc<Mutex<Vec<Event>>>>> = const { RefCell::new(None) };
}

/// Counts sqlx's `sqlx::query` events (one per statement) for the thread that asked.
struct Statements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Statements {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        STATEMENTS.with(|c| {
            if let Some(n) = &*c.borrow() {
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Keeps qron's events for the thread that asked.
struct Events;

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        EVENTS.with(|sink| {
            if let Some(sink) = &*sink.borrow() {
                let mut fields = BTreeMap::new();
                event.record(&mut Fields(&mut fields));
                sink.lock().unwrap().push(Event {
                    level: *event.metadata().level(),
                    target: event.metadata().target().to_owned(),
                    fields,
                });
            }
        });
    }
}

fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        use tracing_subscriber::filter::Targets;
        let subscriber = tracing_subscriber::registry()
            .with(
                Statements
                    .with_filter(Targets::new().with_target("sqlx::query", tracing::Level::TRACE)),
            )
            .with(Events.with_filter(Targets::new().with_target("qron", tracing::Level::DEBUG)));
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Runs `f` on this thread and returns how many statements it ran.
pub async fn count_statements<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    install();
    let n = Arc::new(AtomicUsize::new(0));
    STATEMENTS.with(|c| *c.borrow_mut() = Some(n.clone()));
    let out = f.await;
    STATEMENTS.with(|c| *c.borrow_mut() = None);
    (out, n.load(Ordering::Relaxed))
}

/// Runs `f` on this thread and returns what qron logged meanwhile (at `debug` and above).
pub async fn capture<T>(f: impl std::future::Future<Output = T>) -> (T, Vec<Event>) {
    install();
    let sink = Arc::new(Mutex::new(Vec::new()));
    EVENTS.with(|c| *c.borrow_mut() = Some(sink.clone()));
    let out = f.await;
    EVENTS.with(|c| *c.borrow_mut() = None);
    let events = std::mem::take(&mut *sink.lock().unwrap());
    (out, events)
}

/// What qron logs on this thread from [`start`] until the value is dropped.
pub struct Capture {
    sink: Arc<Mutex<Vec<Event>>>,
}

/// Starts capturing what qron logs on this thread (at `debug` and above), for a test that polls
/// for an event while the code under test runs.
pub fn start() -> Capture {
    install();
    let sink = Arc::new(Mutex::new(Vec::new()));
    EVENTS.with(|c| *c.borrow_mut() = Some(sink.clone()));
    Capture { sink }
}

impl Capture {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.sink.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        EVENTS.with(|c| *c.borrow_mut() = None);
    }
}

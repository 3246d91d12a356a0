//! A test subscriber: the global default of the test process, collecting every event, so that
//! each test finds its children's events by pid or by a token of its own.
#![allow(dead_code)]

use std::fmt;
use std::sync::{Condvar, Mutex, Once};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One event as the parent's subscriber saw it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Got {
    pub target: String,
    pub level: Option<Level>,
    pub message: String,
    /// The child's name (`mp.child`): empty for this process's own events.
    pub process_name: String,
    pub pid: u64,
    /// The other fields, `name=value`, space-separated.
    pub fields: String,
    pub spans: String,
}

static GOT: Mutex<Vec<Got>> = Mutex::new(Vec::new());
static CHANGED: Condvar = Condvar::new();
/// The messages that passed each filtered layer: (its filter, the message).
static FILTERED: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

/// The filters of the filtered layers.
pub(crate) const FILTERS: [&str; 2] = ["filter_myapp=info", "filter_myapp=warn"];

impl Visit for Got {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            mp_log::CHILD_FIELD => self.process_name = value.to_owned(),
            mp_log::SPANS_FIELD => self.spans = value.to_owned(),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == mp_log::PID_FIELD {
            self.pid = value;
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            other => {
                if !self.fields.is_empty() {
                    self.fields.push(' ');
                }
                self.fields.push_str(&format!("{other}={text}"));
            }
        }
    }
}

/// Keeps every event.
struct Collector;

impl<S: Subscriber> Layer<S> for Collector {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut got = Got {
            target: event.metadata().target().to_owned(),
            level: Some(*event.metadata().level()),
            ..Got::default()
        };
        event.record(&mut got);
        GOT.lock().unwrap().push(got);
        CHANGED.notify_all();
    }
}

/// Keeps the message of each event that its filter (a per-layer `EnvFilter`) passes.
struct Tap(&'static str);

impl<S: Subscriber> Layer<S> for Tap {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut got = Got::default();
        event.record(&mut got);
        FILTERED.lock().unwrap().push((self.0, got.message));
    }
}

/// Installs the collector (and the filtered taps) as the global subscriber and forwards
/// children's events here.
pub(crate) fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry()
            .with(Collector)
            .with(Tap(FILTERS[0]).with_filter(EnvFilter::new(FILTERS[0])))
            .with(Tap(FILTERS[1]).with_filter(EnvFilter::new(FILTERS[1])));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        mp_log::forward_children().unwrap();
    });
}

/// The messages containing `token` that the layer filtered by `filter` saw.
pub(crate) fn filtered(filter: &str, token: &str) -> Vec<String> {
    FILTERED
        .lock()
        .unwrap()
        .iter()
        .filter(|(f, m)| *f == filter && m.contains(token))
        .map(|(_, m)| m.clone())
        .collect()
}

fn of_children(g: &Got, token: &str) -> bool {
    !g.process_name.is_empty() && g.message.contains(token)
}

/// The children's events (re-emitted ones) whose message contains `token`.
pub(crate) fn with_token(token: &str) -> Vec<Got> {
    GOT.lock()
        .unwrap()
        .iter()
        .filter(|g| of_children(g, token))
        .cloned()
        .collect()
}

/// This process's own events whose message contains `token`.
pub(crate) fn own_with_token(token: &str) -> Vec<Got> {
    GOT.lock()
        .unwrap()
        .iter()
        .filter(|g| g.process_name.is_empty() && g.message.contains(token))
        .cloned()
        .collect()
}

/// Waits until `n` children's events contain `token` (a hang guard of 60 s panics).
pub(crate) fn wait_for(token: &str, n: usize) -> Vec<Got> {
    let deadline = mp_sys::deadline::after(Duration::from_secs(60));
    let mut g = GOT.lock().unwrap();
    loop {
        let found: Vec<Got> = g
            .iter()
            .filter(|g| of_children(g, token))
            .cloned()
            .collect();
        if found.len() >= n {
            return found;
        }
        let left = deadline
            .and_then(|d| d.checked_duration_since(std::time::Instant::now()))
            .filter(|d| !d.is_zero());
        let Some(left) = left else {
            // Unlocked first, so that this failure does not poison the other tests.
            drop(g);
            panic!("only {} events with {token:?} after 60 s", found.len());
        };
        g = CHANGED.wait_timeout(g, left).unwrap().0;
    }
}

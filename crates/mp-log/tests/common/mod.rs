//! A test subscriber: the global default of the test process, collecting every event, so that
//! each test finds its children's events by pid or by a token of its own.
#![allow(dead_code)]

use std::fmt;
use std::sync::{Condvar, Mutex, Once};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event as the parent's subscriber saw it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Got {
    pub target: String,
    pub level: Option<Level>,
    pub message: String,
    pub process_name: String,
    pub pid: u64,
    pub child_target: String,
    pub fields: String,
    pub spans: String,
}

static GOT: Mutex<Vec<Got>> = Mutex::new(Vec::new());
static CHANGED: Condvar = Condvar::new();

struct Collector;

impl Visit for Got {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "pid" {
            self.pid = value;
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "process_name" => self.process_name = text,
            "child_target" => self.child_target = text,
            "fields" => self.fields = text,
            "spans" => self.spans = text,
            other => self.fields.push_str(&format!("{other}={text}")),
        }
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut got = Got {
            target: event.metadata().target().to_owned(),
            level: Some(*event.metadata().level()),
            ..Got::default()
        };
        event.record(&mut got);
        GOT.lock().unwrap().push(got);
        CHANGED.notify_all();
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Installs the collector as the global subscriber and forwards children's events here.
pub(crate) fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(Collector).unwrap();
        mp_log::forward_children().unwrap();
    });
}

/// The children's events (re-emitted ones) whose message contains `token`.
pub(crate) fn with_token(token: &str) -> Vec<Got> {
    GOT.lock()
        .unwrap()
        .iter()
        .filter(|g| g.target == mp_log::CHILD_TARGET && g.message.contains(token))
        .cloned()
        .collect()
}

/// This process's own events whose message contains `token`.
pub(crate) fn own_with_token(token: &str) -> Vec<Got> {
    GOT.lock()
        .unwrap()
        .iter()
        .filter(|g| g.target != mp_log::CHILD_TARGET && g.message.contains(token))
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
            .filter(|g| g.target == mp_log::CHILD_TARGET && g.message.contains(token))
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

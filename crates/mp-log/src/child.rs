//! The child's side: a `tracing` subscriber that sends every event to the listening ancestor,
//! installed by mp-spawn's child-start hook before the target runs.

use std::fmt::{self, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::wire::{
    Capped, Frame, MAX_FIELD_COUNT, MAX_FIELD_NAME, MAX_FIELDS, MAX_MESSAGE, MAX_NAME, MAX_SPANS,
    WireCallsite, WireEvent, WireValue, capped,
};

/// Sends this process's events up the forwarding socket.
#[derive(Debug)]
pub(crate) struct Forwarder {
    sock: BorrowedFd<'static>,
    max: LevelFilter,
    name: String,
    pid: u32,
    /// The listener is gone (the socket says so): events are dropped from now on.
    dead: AtomicBool,
}

impl Forwarder {
    pub(crate) fn new(
        sock: BorrowedFd<'static>,
        max: LevelFilter,
        me: mp_spawn::CurrentProcess,
    ) -> Forwarder {
        Forwarder {
            sock,
            max,
            name: capped(&me.name, MAX_NAME),
            pid: me.pid,
            dead: AtomicBool::new(false),
        }
    }

    /// Sends `event`, whole or not at all (one `SOCK_SEQPACKET` message). Blocks while the
    /// socket's buffer is full, that is while the listener is behind; a listener that is gone
    /// makes the send fail at once, and the event is dropped.
    /// `spans`: the names of the spans the event is in, outermost first, `:`-separated.
    pub(crate) fn send(&self, event: &Event<'_>, spans: &str) {
        if self.dead.load(Ordering::Relaxed) {
            return;
        }
        let frame = Frame::Event(WireEvent {
            pid: self.pid,
            name: self.name.clone(),
            callsite: shape(event.metadata()),
            values: values(event),
            spans: capped(spans, MAX_SPANS),
        });
        let Ok(bytes) = postcard::to_stdvec(&frame) else {
            return;
        };
        if mp_sys::socket::send_all(self.sock, &bytes).is_err() {
            self.dead.store(true, Ordering::Relaxed);
        }
    }
}

/// What the parent needs to make a callsite like `meta`'s, capped.
fn shape(meta: &Metadata<'_>) -> WireCallsite {
    let name = |s: &str| capped(s, MAX_NAME);
    WireCallsite {
        level: crate::wire::level_to_u8(*meta.level()),
        target: name(meta.target()),
        name: name(meta.name()),
        module_path: meta.module_path().map(name),
        file: meta.file().map(name),
        line: meta.line(),
        fields: meta
            .fields()
            .iter()
            .take(MAX_FIELD_COUNT)
            .map(|f| capped(f.name(), MAX_FIELD_NAME))
            .collect(),
    }
}

/// The values `event` records, of the kinds it records them as, capped: the message at
/// [`MAX_MESSAGE`], the others at [`MAX_FIELDS`] together.
pub(crate) fn values(event: &Event<'_>) -> Vec<(u8, WireValue)> {
    let mut values = Values {
        values: Vec::new(),
        fields_left: MAX_FIELDS,
    };
    event.record(&mut values);
    values.values
}

struct Values {
    values: Vec<(u8, WireValue)>,
    /// What the values other than the message may still take.
    fields_left: usize,
}

impl Values {
    /// The field's index, if it travels.
    fn index(field: &Field) -> Option<u8> {
        u8::try_from(field.index())
            .ok()
            .filter(|i| usize::from(*i) < MAX_FIELD_COUNT)
    }

    /// `value` written into at most what `field` may still take.
    fn text(&mut self, field: &Field, value: impl fmt::Display) -> String {
        let message = field.name() == "message";
        let mut text = Capped::new(if message {
            MAX_MESSAGE
        } else {
            self.fields_left
        });
        let _ = write!(text, "{value}");
        let text = text.finish();
        if !message {
            self.fields_left = self.fields_left.saturating_sub(text.len());
        }
        text
    }

    fn push(&mut self, field: &Field, value: WireValue) {
        if let Some(i) = Values::index(field) {
            self.values.push((i, value));
        }
    }
}

impl Visit for Values {
    fn record_str(&mut self, field: &Field, value: &str) {
        if Values::index(field).is_some() {
            let text = self.text(field, value);
            self.push(field, WireValue::Str(text));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if Values::index(field).is_some() {
            let text = self.text(field, format_args!("{value:?}"));
            self.push(field, WireValue::Debug(text));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, WireValue::I64(value))
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, WireValue::U64(value))
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, WireValue::I128(value))
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, WireValue::U128(value))
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, WireValue::F64(value))
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, WireValue::Bool(value))
    }
}

/// The layer of a forwarding child, over a `Registry` (which keeps the spans, so that each
/// event carries the names of the spans it is in).
#[derive(Debug)]
struct ForwardLayer(Arc<Forwarder>);

impl<S> Layer<S> for ForwardLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.level() <= &self.0.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0.max)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.0.send(event, &span_names(event, &ctx))
    }
}

/// The names of the spans `event` is in, outermost first, `:`-separated.
pub(crate) fn span_names<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> String
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(scope) = ctx.event_scope(event) else {
        return String::new();
    };
    let mut names = Capped::new(MAX_SPANS);
    for (i, span) in scope.from_root().enumerate() {
        if i > 0 {
            let _ = names.write_str(":");
        }
        let _ = names.write_str(span.name());
    }
    names.finish()
}

/// Makes `forwarder` this process's subscriber: the global default where none was set (a
/// spawn or forkserver child), and in any case the default of the calling thread, the one
/// that runs the target (a fork child inherits its parent's global subscriber, which cannot
/// be replaced: its other threads log there, see the crate docs).
pub(crate) fn install(forwarder: Arc<Forwarder>) {
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(ForwardLayer(forwarder)));
    let _ = tracing::dispatcher::set_global_default(dispatch.clone());
    // For the rest of the process: the guard would restore the previous default.
    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
}

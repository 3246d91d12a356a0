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

use crate::wire::{Capped, Frame, MAX_FIELDS, MAX_MESSAGE, MAX_NAME, MAX_SPANS, WireEvent, capped};

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
        let meta = event.metadata();
        let mut fields = Fields {
            message: Capped::new(MAX_MESSAGE),
            rest: Capped::new(MAX_FIELDS),
        };
        event.record(&mut fields);
        let frame = Frame::Event(WireEvent {
            pid: self.pid,
            name: self.name.clone(),
            level: crate::wire::level_to_u8(*meta.level()),
            target: capped(meta.target(), MAX_NAME),
            message: fields.message.finish(),
            fields: fields.rest.finish(),
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

/// An event's `message` field, and the others as `name=value` separated by spaces.
pub(crate) struct Fields {
    pub(crate) message: Capped,
    pub(crate) rest: Capped,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = self.message.write_str(value);
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.rest.text.is_empty() {
                let _ = self.rest.write_str(" ");
            }
            let _ = write!(self.rest, "{}={value:?}", field.name());
        }
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

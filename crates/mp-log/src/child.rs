//! The child's side: a `tracing` subscriber that sends every event to the listening ancestor,
//! installed by mp-spawn's child-start hook before the target runs.

use std::fmt::{self, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Metadata, Subscriber};

use crate::wire::{Capped, Frame, MAX_FIELDS, MAX_MESSAGE, MAX_NAME, WireEvent, capped};

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
    pub(crate) fn send(&self, event: &Event<'_>) {
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

/// The subscriber of a forwarding child: events only (spans are not forwarded).
#[derive(Debug)]
struct ForwardSubscriber(Arc<Forwarder>);

impl Subscriber for ForwardSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= &self.0.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0.max)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        self.0.send(event)
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Makes `forwarder` this process's subscriber: the global default where none was set (a
/// spawn or forkserver child), and in any case the default of the calling thread, the one
/// that runs the target (a fork child inherits its parent's global subscriber, which cannot
/// be replaced: its other threads log there, see the crate docs).
pub(crate) fn install(forwarder: Arc<Forwarder>) {
    let dispatch = Dispatch::new(ForwardSubscriber(forwarder));
    let _ = tracing::dispatcher::set_global_default(dispatch.clone());
    // For the rest of the process: the guard would restore the previous default.
    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
}

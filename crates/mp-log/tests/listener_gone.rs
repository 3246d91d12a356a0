//! A child that logs after the parent stopped listening (`stop_forwarding`) neither hangs nor
//! panics: its events are dropped; and the parent's own events still reach its subscriber.
//! One test, the three start methods in turn: forwarding is per process.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

static PARENT_EVENTS: AtomicUsize = AtomicUsize::new(0);
static CHILD_EVENTS: AtomicUsize = AtomicUsize::new(0);

struct Counter;

impl Subscriber for Counter {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        // A child's event, re-emitted, has mp's field with the child's name.
        if event
            .metadata()
            .fields()
            .field(mp_log::CHILD_FIELD)
            .is_some()
        {
            CHILD_EVENTS.fetch_add(1, Ordering::SeqCst);
        } else {
            PARENT_EVENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Logs once, says so, waits for the go, then logs 5 MB: far more than the socket holds.
fn log_after_go(ready: mp_spawn::reduction::Fd, go: mp_spawn::reduction::Fd) -> u32 {
    tracing::info!("before");
    mp_sys::fd::write_all(ready.as_fd(), b"!").unwrap();
    let mut byte = [0u8; 1];
    let _ = mp_sys::fd::read(go.as_fd(), &mut byte);
    let filler = "x".repeat(1000);
    for i in 0..5000 {
        tracing::info!(i, "{filler}");
    }
    7
}

#[test]
fn a_child_logging_after_the_listener_stopped_does_not_hang() {
    tracing::subscriber::set_global_default(Counter).unwrap();
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        mp_log::forward_children().unwrap();
        let (ready_r, ready_w) = mp_sys::fd::pipe().unwrap();
        let (go_r, go_w) = mp_sys::fd::pipe().unwrap();
        let before = CHILD_EVENTS.load(Ordering::SeqCst);
        let mut p = ctx(m).process(log_after_go, (ready_w.into(), go_r.into()));
        p.start().unwrap();
        let hang_guard = Some(Duration::from_secs(60));
        assert!(mp_sys::poll::readable(&[ready_r.as_fd()], hang_guard).unwrap()[0]);
        // Queued events are re-emitted before the listener ends.
        mp_log::stop_forwarding();
        assert_eq!(CHILD_EVENTS.load(Ordering::SeqCst), before + 1, "{m:?}");
        mp_sys::fd::write_all(go_w.as_fd(), b"!").unwrap();
        let code = p.join_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(code, Some(7), "{m:?}: the child hung or failed");
        assert_eq!(CHILD_EVENTS.load(Ordering::SeqCst), before + 1, "{m:?}");
        let parent = PARENT_EVENTS.load(Ordering::SeqCst);
        tracing::info!("the parent's own event");
        assert_eq!(PARENT_EVENTS.load(Ordering::SeqCst), parent + 1);
    }
}

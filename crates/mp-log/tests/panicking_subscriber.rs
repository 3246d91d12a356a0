//! A parent's subscriber that panics on one child's event loses that event only: the
//! listener goes on, later events arrive, and `flush` returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

static FINE: AtomicUsize = AtomicUsize::new(0);

struct Touchy;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Touchy {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0 == "boom" {
            panic!("this subscriber does not like booms");
        }
        if message.0 == "fine" {
            FINE.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn boom_then_fine() {
    tracing::info!("boom");
    tracing::info!("fine");
}

#[test]
fn a_panicking_subscriber_loses_one_event_not_the_listener() {
    tracing::subscriber::set_global_default(Touchy).unwrap();
    mp_log::forward_children().unwrap();
    for (i, m) in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = ctx(m).process(boom_then_fine, ());
        p.start().unwrap();
        p.join().unwrap();
        // A hang guard around `flush`: it waited for ever once the listener had died.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            mp_log::flush();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("flush hung: the listener died");
        assert_eq!(FINE.load(Ordering::SeqCst), i + 1, "{m:?}");
    }
}

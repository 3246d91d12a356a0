use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use super::*;
use crate::format::{PythonFormat, record};

/// One event as a subscriber of the listening process sees it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    target: String,
    level: Level,
    module_path: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    /// Each recorded field: its name and its value, with the kind it was recorded as.
    fields: Vec<(String, String)>,
    /// The line `PythonFormat` prints for it.
    line_printed: String,
}

impl Visit for Seen {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.fields.push((f.name().into(), format!("str:{v}")));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.fields.push((f.name().into(), format!("u64:{v}")));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.fields.push((f.name().into(), format!("i64:{v}")));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.fields.push((f.name().into(), format!("bool:{v}")));
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.fields.push((f.name().into(), format!("f64:{v}")));
    }
    fn record_u128(&mut self, f: &Field, v: u128) {
        self.fields.push((f.name().into(), format!("u128:{v}")));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.fields.push((f.name().into(), format!("debug:{v:?}")));
    }
}

/// A layer that keeps what it sees.
#[derive(Clone, Default)]
struct Keep(Arc<Mutex<Vec<Seen>>>);

impl Keep {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

impl<S: Subscriber> Layer<S> for Keep {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut seen = Seen {
            target: meta.target().into(),
            level: *meta.level(),
            module_path: meta.module_path().map(Into::into),
            file: meta.file().map(Into::into),
            line: meta.line(),
            fields: Vec::new(),
            line_printed: PythonFormat::new(
                "[%(levelname)s/%(processName)s] %(process)d %(name)s: %(message)s",
            )
            .format(&record(event), UNIX_EPOCH),
        };
        event.record(&mut seen);
        self.0.lock().unwrap().push(seen);
    }
}

/// A child's event of `target` at `level` (0 trace ... 4 error), with a message and the
/// fields `n` (u64), `text` (str), `ok` (bool), `ratio` (f64), `big` (u128), `shown` (Debug).
fn event(target: &str, level: u8, message: &str) -> WireEvent {
    let names = ["message", "n", "text", "ok", "ratio", "big", "shown"];
    WireEvent {
        pid: 4242,
        name: "Process-7".into(),
        callsite: WireCallsite {
            level,
            target: target.into(),
            name: "event src/child.rs:12".into(),
            module_path: Some("child::db".into()),
            file: Some("src/child.rs".into()),
            line: Some(12),
            fields: names.map(String::from).into(),
        },
        values: vec![
            (0, WireValue::Debug(message.into())),
            (1, WireValue::U64(7)),
            (2, WireValue::Str("x y".into())),
            (3, WireValue::Bool(true)),
            (4, WireValue::F64(0.5)),
            (5, WireValue::U128(u128::MAX)),
            (6, WireValue::Debug("Point { x: 1 }".into())),
        ],
        spans: "request:query".into(),
    }
}

/// Re-emits `events` into a subscriber filtered by the `EnvFilter` `filter`, through
/// `interner`, and returns what the subscriber saw.
fn through(filter: &str, interner: &mut Interner, events: &[WireEvent]) -> Vec<Seen> {
    let keep = Keep::default();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new(filter))
        .with(keep.clone());
    tracing::subscriber::with_default(subscriber, || {
        for e in events {
            emit(e, interner.intern(&e.callsite));
        }
    });
    keep.seen()
}

/// The child's target, level, metadata and fields (with their kinds) are the event's own in
/// the parent, with mp's fields after them; `PythonFormat` prints the child's name and pid.
#[test]
fn a_reemitted_event_is_the_childs_own() {
    let mut interner = Interner::new(10);
    let seen = through(
        "trace",
        &mut interner,
        &[event("myapp::db", 3, "slow query")],
    );
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let seen = &seen[0];
    assert_eq!(seen.target, "myapp::db");
    assert_eq!(seen.level, Level::WARN);
    assert_eq!(seen.module_path.as_deref(), Some("child::db"));
    assert_eq!(seen.file.as_deref(), Some("src/child.rs"));
    assert_eq!(seen.line, Some(12));
    let fields: Vec<(&str, &str)> = seen
        .fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("message", "debug:slow query"),
            ("n", "u64:7"),
            ("text", "str:x y"),
            ("ok", "bool:true"),
            ("ratio", "f64:0.5"),
            ("big", &format!("u128:{}", u128::MAX)),
            ("shown", "debug:Point { x: 1 }"),
            (CHILD_FIELD, "str:Process-7"),
            (PID_FIELD, "u64:4242"),
            (SPANS_FIELD, "str:request:query"),
        ]
    );
    assert_eq!(
        seen.line_printed,
        format!(
            "[WARNING/Process-7] 4242 myapp::db: slow query n=7 text=\"x y\" ok=true \
             ratio=0.5 big={} shown=Point {{ x: 1 }}",
            u128::MAX
        )
    );
}

/// A parent filter `myapp=info` passes the child's `myapp` events at INFO and above and drops
/// its DEBUG ones and its events of other targets; `myapp=warn` drops its INFO ones.
#[test]
fn parent_filters_see_the_childs_target_and_level() {
    let mut interner = Interner::new(10);
    let events = [
        event("myapp", 2, "info of myapp"),
        event("myapp", 1, "debug of myapp"),
        event("myapp", 3, "warn of myapp"),
        event("other", 2, "info of other"),
        event("myapp::db", 2, "info of myapp::db"),
    ];
    let messages = |seen: Vec<Seen>| -> Vec<String> {
        seen.into_iter()
            .map(|s| s.fields[0].1.trim_start_matches("debug:").to_owned())
            .collect()
    };
    assert_eq!(
        messages(through("myapp=info", &mut interner, &events)),
        ["info of myapp", "warn of myapp", "info of myapp::db"]
    );
    assert_eq!(
        messages(through("myapp=warn", &mut interner, &events)),
        ["warn of myapp"]
    );
    assert_eq!(
        messages(through("other=trace", &mut interner, &events)),
        ["info of other"]
    );
    // One callsite per shape (target and level here), made once.
    assert_eq!(interner.len(), 5);
}

/// Shapes past the bound are re-emitted the old way, as `mp::child` with the child's target
/// and fields as fields; shapes already made keep their callsite.
#[test]
fn the_interner_is_bounded() {
    let mut interner = Interner::new(2);
    let a = event("a", 2, "m");
    let b = event("b", 2, "m");
    let first = interner.intern(&a.callsite).unwrap();
    assert!(std::ptr::eq(first, interner.intern(&a.callsite).unwrap()));
    let second = interner.intern(&b.callsite).unwrap();
    assert!(!std::ptr::eq(first, second));
    let c = event("c", 2, "over the bound");
    assert!(interner.intern(&c.callsite).is_none());
    assert_eq!(interner.len(), 2);
    // Known shapes still have theirs.
    assert!(std::ptr::eq(first, interner.intern(&a.callsite).unwrap()));
    // A corrupt level gets none, and its event is dropped.
    let mut bad = event("d", 9, "never");
    assert!(Interner::new(2).intern(&bad.callsite).is_none());

    let keep = Keep::default();
    let subscriber = tracing_subscriber::registry().with(keep.clone());
    tracing::subscriber::with_default(subscriber, || {
        emit(&c, interner.intern(&c.callsite));
        bad.values.clear();
        emit(&bad, None);
    });
    let seen = keep.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].target, CHILD_TARGET);
    assert_eq!(seen[0].level, Level::INFO);
    let field = |name: &str| {
        seen[0]
            .fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field(TARGET_FIELD).as_deref(), Some("str:c"));
    assert_eq!(field(CHILD_FIELD).as_deref(), Some("str:Process-7"));
    assert_eq!(field(PID_FIELD).as_deref(), Some("u64:4242"));
    assert_eq!(
        field(FIELDS_FIELD).unwrap(),
        format!(
            "debug:n=7 text=\"x y\" ok=true ratio=0.5 big={} shown=Point {{ x: 1 }}",
            u128::MAX
        )
    );
    // PythonFormat prints it as the interned ones.
    assert_eq!(
        seen[0].line_printed,
        format!(
            "[INFO/Process-7] 4242 c: over the bound n=7 text=\"x y\" ok=true ratio=0.5 \
             big={} shown=Point {{ x: 1 }}",
            u128::MAX
        )
    );
}

/// Values with an index past the callsite's fields (a corrupt frame) are dropped, not put in
/// mp's fields.
#[test]
fn stray_values_are_dropped() {
    let mut e = event("stray", 2, "m");
    e.values.push((7, WireValue::U64(1)));
    e.values.push((200, WireValue::U64(1)));
    let seen = through("trace", &mut Interner::new(1), &[e]);
    assert_eq!(seen[0].fields.len(), 10, "{seen:#?}");
    assert_eq!(
        seen[0].fields[7],
        (CHILD_FIELD.into(), "str:Process-7".into())
    );
}

//! A child's event re-emitted in the listening process as if it had been emitted there: its
//! target, level, fields (names, kinds and values), module path, file and line, through a
//! callsite of its own made once per distinct shape (interned), plus the fields
//! [`CHILD_FIELD`], [`PID_FIELD`] and [`SPANS_FIELD`].
//!
//! Why a callsite per shape: `tracing`'s subscribers and filters (`EnvFilter`, `Targets`,
//! per-layer filters) decide from an event's `&'static Metadata` and cache their answer per
//! callsite (`Interest`); re-emitting every child's event from one fixed callsite (target
//! [`CHILD_TARGET`], as mp-log did) made a filter such as `myapp=info` drop every child's
//! `myapp` event. The callsites are leaked (tracing needs them `'static`), so their number is
//! bounded ([`MAX_CHILD_CALLSITES`]); past it, events of new shapes take the old way.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use tracing::field::{DisplayValue, Value, display};
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::{Event, Level, Metadata};
use tracing_core::callsite::{Callsite, DefaultCallsite};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;

use crate::wire::{WireCallsite, WireEvent, WireValue, level_from_u8};

/// The target of a child's event re-emitted in the listening process when no callsite of its
/// shape could be made (more than [`MAX_CHILD_CALLSITES`] shapes): its target is then the
/// field `mp.target` and its fields other than the message the field `mp.fields`
/// (`name=value`, space-separated), beside [`CHILD_FIELD`], [`PID_FIELD`] and [`SPANS_FIELD`].
///
/// ```
/// use tracing::Event;
///
/// /// Whether `event` is a child's whose shape got no callsite of its own.
/// fn overflowed(event: &Event<'_>) -> bool {
///     event.metadata().target() == mp_log::CHILD_TARGET
/// }
/// ```
pub const CHILD_TARGET: &str = "mp::child";

/// The field, on every child's event re-emitted in the listening process, that holds the
/// child's process name (`Process-1`, `PoolWorker-3`, `Process-2:1`...): what tells a child's
/// event from this process's own. [`PythonFormat`](crate::PythonFormat) prints it as
/// `%(processName)s`; other subscribers show it as a field.
///
/// ```
/// use tracing::field::{Field, Visit};
///
/// /// The name of the child an event came from, if it came from one.
/// #[derive(Default)]
/// struct Origin(Option<String>);
///
/// impl Visit for Origin {
///     fn record_str(&mut self, field: &Field, value: &str) {
///         if field.name() == mp_log::CHILD_FIELD {
///             self.0 = Some(value.to_owned());
///         }
///     }
///     fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
/// }
/// ```
pub const CHILD_FIELD: &str = "mp.child";

/// The field, on every child's event re-emitted in the listening process, that holds the
/// child's pid (a `u64`).
///
/// ```
/// assert_eq!(mp_log::PID_FIELD, "mp.pid");
/// ```
pub const PID_FIELD: &str = "mp.pid";

/// The field, on a child's event re-emitted in the listening process, that holds the names of
/// the spans the event was in in the child, outermost first, `:`-separated (`outer:inner`);
/// absent (not recorded) if it was in none.
///
/// ```
/// assert_eq!(mp_log::SPANS_FIELD, "mp.spans");
/// ```
pub const SPANS_FIELD: &str = "mp.spans";

/// mp's fields, after the child's on every interned callsite.
const OURS: [&str; 3] = [CHILD_FIELD, PID_FIELD, SPANS_FIELD];

/// The fallback's field holding the child's target (see [`CHILD_TARGET`]).
pub(crate) const TARGET_FIELD: &str = "mp.target";
/// The fallback's field holding the other fields, `name=value` (see [`CHILD_TARGET`]).
pub(crate) const FIELDS_FIELD: &str = "mp.fields";

/// How many distinct shapes of children's events (target, level, field names, module path,
/// file, line: in practice, the event macros of the children's code) get a callsite of their
/// own in the listening process. Each costs a few hundred bytes, kept for the life of the
/// process; events of further shapes are re-emitted with the target [`CHILD_TARGET`].
///
/// ```
/// assert!(mp_log::MAX_CHILD_CALLSITES >= 1000);
/// ```
pub const MAX_CHILD_CALLSITES: usize = 4096;

/// The callsites made so far, by shape.
#[derive(Debug)]
pub(crate) struct Interner {
    made: BTreeMap<WireCallsite, &'static DefaultCallsite>,
    max: usize,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::new(MAX_CHILD_CALLSITES)
    }
}

impl Interner {
    /// At most `max` callsites.
    pub(crate) const fn new(max: usize) -> Interner {
        Interner {
            made: BTreeMap::new(),
            max,
        }
    }

    /// The callsite of `shape`, made and registered with `tracing` the first time; `None`
    /// once `max` are made, or for a level that is none (a corrupt frame).
    pub(crate) fn intern(&mut self, shape: &WireCallsite) -> Option<&'static DefaultCallsite> {
        if let Some(callsite) = self.made.get(shape) {
            return Some(callsite);
        }
        if self.made.len() >= self.max {
            return None;
        }
        let callsite = make(shape, level_from_u8(shape.level)?);
        self.made.insert(shape.clone(), callsite);
        Some(callsite)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.made.len()
    }
}

/// What the interned callsite's `Metadata` names as its callsite: `Metadata` refers to its
/// callsite and the callsite to its `Metadata`, so one of them is made before the other is
/// known. tracing's registry holds the `DefaultCallsite` (lock-free registration, unlike
/// `callsite::register`'s list, see `forward::handle`); this only identifies it.
struct Identity(OnceLock<&'static DefaultCallsite>);

impl Callsite for Identity {
    fn set_interest(&self, interest: Interest) {
        if let Some(callsite) = self.0.get() {
            callsite.set_interest(interest)
        }
    }

    fn metadata(&self) -> &Metadata<'_> {
        self.0
            .get()
            .expect("set before the identity is handed out")
            .metadata()
    }
}

/// A new callsite of `shape`, leaked, with the extra fields, registered.
fn make(shape: &WireCallsite, level: Level) -> &'static DefaultCallsite {
    fn leak(s: &str) -> &'static str {
        Box::leak(s.into())
    }
    let identity: &'static Identity = Box::leak(Box::new(Identity(OnceLock::new())));
    let mut names: Vec<&'static str> = shape.fields.iter().map(|n| leak(n)).collect();
    names.extend(OURS);
    let fields = FieldSet::new(
        Box::leak(names.into_boxed_slice()),
        tracing_core::identify_callsite!(identity),
    );
    let meta: &'static Metadata<'static> = Box::leak(Box::new(Metadata::new(
        leak(&shape.name),
        leak(&shape.target),
        level,
        shape.file.as_deref().map(leak),
        shape.line,
        shape.module_path.as_deref().map(leak),
        fields,
        Kind::EVENT,
    )));
    let callsite: &'static DefaultCallsite = Box::leak(Box::new(DefaultCallsite::new(meta)));
    let _ = identity.0.set(callsite);
    callsite.register();
    callsite
}

/// Re-emits `e` into the current default subscriber through `callsite`, the interned one of
/// its shape, as tracing's macros emit (the level filters, the cached interest, `enabled`);
/// without one, with the target [`CHILD_TARGET`]. An event with a level that is none (a
/// corrupt frame) is dropped.
pub(crate) fn emit(e: &WireEvent, callsite: Option<&'static DefaultCallsite>) {
    let Some(level) = level_from_u8(e.callsite.level) else {
        return;
    };
    let Some(callsite) = callsite else {
        return emit_fallback(e, level);
    };
    if level > STATIC_MAX_LEVEL || level > LevelFilter::current() {
        return;
    }
    let meta: &'static Metadata<'static> = callsite.metadata();
    let interest = callsite.interest();
    if interest.is_never()
        || !interest.is_always() && !tracing::dispatcher::get_default(|d| d.enabled(meta))
    {
        return;
    }
    // `record_debug`'s values travelled formatted: shown as they are (`Display`), a visitor
    // sees what the child's saw.
    let shown: Vec<Option<DisplayValue<&str>>> = e
        .values
        .iter()
        .map(|(_, v)| match v {
            WireValue::Debug(text) => Some(display(text.as_str())),
            _ => None,
        })
        .collect();
    let own = meta.fields().len() - OURS.len();
    let mut slots: Vec<Option<&dyn Value>> = vec![None; meta.fields().len()];
    for ((i, value), shown) in e.values.iter().zip(&shown) {
        let Some(slot) = slots[..own].get_mut(usize::from(*i)) else {
            continue;
        };
        *slot = Some(match value {
            WireValue::Debug(_) => match shown {
                Some(shown) => shown,
                None => continue,
            },
            WireValue::Str(text) => text,
            WireValue::I64(n) => n,
            WireValue::U64(n) => n,
            WireValue::I128(n) => n,
            WireValue::U128(n) => n,
            WireValue::F64(n) => n,
            WireValue::Bool(b) => b,
        });
    }
    let pid = u64::from(e.pid);
    slots[own] = Some(&e.name);
    slots[own + 1] = Some(&pid);
    if !e.spans.is_empty() {
        slots[own + 2] = Some(&e.spans);
    }
    Event::dispatch(meta, &meta.fields().value_set_all(&slots));
}

/// mp-log's old way, for shapes past the bound: one callsite per level, target
/// [`CHILD_TARGET`], the child's target and other fields as fields.
fn emit_fallback(e: &WireEvent, level: Level) {
    let mut message = String::new();
    let mut fields = String::new();
    for (i, value) in &e.values {
        let name = e.callsite.fields.get(usize::from(*i)).map_or("?", |n| n);
        let text = if name == "message" {
            &mut message
        } else {
            if !fields.is_empty() {
                fields.push(' ');
            }
            fields.push_str(name);
            fields.push('=');
            &mut fields
        };
        // As a visitor prints them: `Debug` of each kind, formatted values as they are.
        let _ = match value {
            WireValue::Debug(s) => write!(text, "{s}"),
            WireValue::Str(s) => write!(text, "{s:?}"),
            WireValue::I64(n) => write!(text, "{n:?}"),
            WireValue::U64(n) => write!(text, "{n:?}"),
            WireValue::I128(n) => write!(text, "{n:?}"),
            WireValue::U128(n) => write!(text, "{n:?}"),
            WireValue::F64(n) => write!(text, "{n:?}"),
            WireValue::Bool(b) => write!(text, "{b:?}"),
        };
    }
    let spans = (!e.spans.is_empty()).then_some(e.spans.as_str());
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(
                target: CHILD_TARGET,
                $level,
                mp.child = e.name.as_str(),
                mp.pid = u64::from(e.pid),
                mp.spans = spans,
                mp.target = e.callsite.target.as_str(),
                mp.fields = (!fields.is_empty()).then(|| display(&fields)),
                "{message}"
            )
        };
    }
    match level {
        Level::ERROR => at!(Level::ERROR),
        Level::WARN => at!(Level::WARN),
        Level::INFO => at!(Level::INFO),
        Level::DEBUG => at!(Level::DEBUG),
        Level::TRACE => at!(Level::TRACE),
    }
}

#[cfg(test)]
mod test;

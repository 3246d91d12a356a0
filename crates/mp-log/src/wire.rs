//! One forwarded event on the wire: a postcard frame, one `SOCK_SEQPACKET` message, capped:
//! the child's callsite (target, level, field names...) and the values it recorded.

use std::fmt::{self, Write};

use serde::{Deserialize, Serialize};
use tracing::Level;

/// Most bytes of an event's message that travel; the rest is cut (see [`Capped`]).
pub(crate) const MAX_MESSAGE: usize = 8 * 1024;
/// Most bytes of an event's other fields' values, all together.
pub(crate) const MAX_FIELDS: usize = 4 * 1024;
/// Most bytes of a target, a process name, a callsite's name, module path or file.
pub(crate) const MAX_NAME: usize = 256;
/// Most bytes of a field's name.
pub(crate) const MAX_FIELD_NAME: usize = 128;
/// Most fields of an event that travel (tracing's macros allowed 32 until 0.1.44): the first
/// ones, names and values.
pub(crate) const MAX_FIELD_COUNT: usize = 64;
/// Most bytes of the names of the spans an event is in (`outer:inner`).
pub(crate) const MAX_SPANS: usize = 1024;
/// Larger than any encoded event (the caps above plus postcard's few bytes per string), and
/// far below a socket's send buffer, so one `send` carries an event whole.
pub(crate) const MAX_FRAME: usize = 32 * 1024;

/// What a child sends for one event.
// One frame at a time, decoded and dropped: boxing the event would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) enum Frame {
    Event(WireEvent),
    /// Sent by the listening process itself: everything queued before it has been re-emitted
    /// once the listener reaches it (see `flush`).
    Flush(u64),
}

/// An event as the parent re-emits it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct WireEvent {
    pub(crate) pid: u32,
    /// The child's process name.
    pub(crate) name: String,
    pub(crate) callsite: WireCallsite,
    /// The values recorded, by their field's index in `callsite.fields`.
    pub(crate) values: Vec<(u8, WireValue)>,
    pub(crate) spans: String,
}

/// The shape of the child's callsite, all that its `Metadata` says: the parent interns one
/// callsite per distinct shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WireCallsite {
    pub(crate) level: u8,
    pub(crate) target: String,
    /// `Metadata::name` (`event src/main.rs:12`).
    pub(crate) name: String,
    pub(crate) module_path: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
    /// The callsite's field names, in order (`message` among them).
    pub(crate) fields: Vec<String>,
}

/// A field's value, of the kind the child's `Visit` was given, so that the parent's visitors
/// get the same calls (`record_u64` for a `u64`, `record_str` for a `&str`...).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) enum WireValue {
    /// `record_debug`'s value, formatted (`?x`, `%x`, a message's `format_args!`).
    Debug(String),
    Str(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
}

pub(crate) fn level_to_u8(level: Level) -> u8 {
    match level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        Level::ERROR => 4,
    }
}

/// A level from the wire; an unknown byte (a corrupt frame) is `None`.
pub(crate) fn level_from_u8(byte: u8) -> Option<Level> {
    Some(match byte {
        0 => Level::TRACE,
        1 => Level::DEBUG,
        2 => Level::INFO,
        3 => Level::WARN,
        4 => Level::ERROR,
        _ => return None,
    })
}

/// A `String` that keeps at most `max` bytes of what is written into it (cut at a character
/// boundary) and counts the rest, so that a huge `Debug` value is never built in full.
#[derive(Debug)]
pub(crate) struct Capped {
    pub(crate) text: String,
    max: usize,
    cut: usize,
}

impl Capped {
    pub(crate) fn new(max: usize) -> Capped {
        Capped {
            text: String::new(),
            max,
            cut: 0,
        }
    }

    /// The text, ending with `… [N bytes cut]` if anything was cut.
    pub(crate) fn finish(mut self) -> String {
        if self.cut > 0 {
            let _ = write!(self.text, "… [{} bytes cut]", self.cut);
        }
        self.text
    }
}

impl Write for Capped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max.saturating_sub(self.text.len());
        if s.len() <= room && self.cut == 0 {
            self.text.push_str(s);
        } else {
            let mut end = room.min(s.len());
            if self.cut > 0 {
                end = 0;
            }
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.cut += s.len() - end;
        }
        Ok(())
    }
}

/// `s` cut to `max` bytes as [`Capped`] does.
pub(crate) fn capped(s: &str, max: usize) -> String {
    let mut c = Capped::new(max);
    let _ = c.write_str(s);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_cuts_at_a_char_boundary_and_says_how_much() {
        assert_eq!(capped("hello", 10), "hello");
        assert_eq!(capped("héllo", 2), "h… [5 bytes cut]");
        let mut c = Capped::new(4);
        c.write_str("ab").unwrap();
        c.write_str("cdef").unwrap();
        write!(c, "x").unwrap();
        assert_eq!(c.finish(), "abcd… [3 bytes cut]");
    }

    #[test]
    fn the_largest_event_fits_a_frame() {
        let big = |n| "é".repeat(n);
        let event = Frame::Event(WireEvent {
            pid: u32::MAX,
            name: capped(&big(1000), MAX_NAME),
            callsite: WireCallsite {
                level: 4,
                target: capped(&big(1000), MAX_NAME),
                name: capped(&big(1000), MAX_NAME),
                module_path: Some(capped(&big(1000), MAX_NAME)),
                file: Some(capped(&big(1000), MAX_NAME)),
                line: Some(u32::MAX),
                fields: vec![capped(&big(1000), MAX_FIELD_NAME); MAX_FIELD_COUNT],
            },
            values: (0..MAX_FIELD_COUNT as u8)
                .map(|i| match i {
                    0 => (i, WireValue::Debug(capped(&big(100_000), MAX_MESSAGE))),
                    1 => (i, WireValue::Str(capped(&big(100_000), MAX_FIELDS))),
                    _ => (i, WireValue::U128(u128::MAX)),
                })
                .collect(),
            spans: capped(&big(100_000), MAX_SPANS),
        });
        let bytes = postcard::to_stdvec(&event).unwrap();
        assert!(bytes.len() <= MAX_FRAME, "{}", bytes.len());
        assert_eq!(postcard::from_bytes::<Frame>(&bytes).unwrap(), event);
    }
}

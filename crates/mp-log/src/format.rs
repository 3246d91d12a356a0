//! Python's logging format (`%(asctime)s`, `[%(levelname)s/%(processName)s] %(message)s`) as a
//! `tracing-subscriber` layer writing to stderr, and the level of mp's logger.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::child::Fields;
use crate::forward::{self, CHILD_TARGET};
use crate::wire::{Capped, MAX_FIELDS, MAX_MESSAGE};

/// Python's `multiprocessing.util.DEFAULT_LOGGING_FORMAT`.
pub const DEFAULT_FORMAT: &str = "[%(levelname)s/%(processName)s] %(message)s";

/// The level of mp's logger ([`Logger`](crate::Logger)): 0 off, 1 error ... 5 trace. Python's
/// `multiprocessing` logger starts at `NOTSET`, that is the root's `WARNING`.
static LEVEL: AtomicU8 = AtomicU8::new(2);

pub(crate) fn level() -> LevelFilter {
    match LEVEL.load(Ordering::Relaxed) {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

pub(crate) fn set_level(level: LevelFilter) {
    let n = match level.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(Level::TRACE) => 5,
    };
    LEVEL.store(n, Ordering::Relaxed);
    // Callsites cached their interest under the old level.
    tracing::callsite::rebuild_interest_cache();
}

/// Python's name of a level (`SUBDEBUG` is multiprocessing's level 5, below `DEBUG`).
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "SUBDEBUG",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    AscTime,
    Message,
    LevelName,
    ProcessName,
    Process,
    Name,
}

/// A `tracing-subscriber` layer that writes each event to stderr in a Python logging format,
/// with the event's process: a child's event re-emitted by [`forward_children`] carries the
/// child's name and pid. Fields other than the message follow it as `name=value`. Events
/// above the level of [`get_logger`] are off.
///
/// The format knows `%(asctime)s`, `%(message)s`, `%(levelname)s`, `%(processName)s`,
/// `%(process)d`, `%(name)s` (the event's target) and `%%`; `datefmt` knows `%Y %m %d %H %M
/// %S %%`, in UTC (Python uses local time). Without a `datefmt`, `asctime` is Python's
/// `2026-11-28 12:00:00,123`.
///
/// ```
/// use mp_log::PythonFormat;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let layer = PythonFormat::new("%(asctime)s: %(message)s").datefmt("%H:%M:%S");
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::warn!("to stderr"));
/// ```
///
/// [`forward_children`]: crate::forward_children
/// [`get_logger`]: crate::get_logger
#[derive(Debug, Clone)]
pub struct PythonFormat {
    pieces: Vec<Piece>,
    datefmt: Option<String>,
}

impl Default for PythonFormat {
    fn default() -> Self {
        PythonFormat::new(DEFAULT_FORMAT)
    }
}

/// One event, as the format sees it.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) level: Option<Level>,
    pub(crate) process_name: String,
    pub(crate) pid: u32,
    pub(crate) name: String,
    pub(crate) message: String,
    pub(crate) fields: String,
}

impl PythonFormat {
    /// A layer writing `format` (Python's `%`-style logging format; see the type's docs).
    pub fn new(format: &str) -> PythonFormat {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            rest = &rest[at..];
            const NAMES: [(&str, Piece); 7] = [
                ("%(asctime)s", Piece::AscTime),
                ("%(message)s", Piece::Message),
                ("%(levelname)s", Piece::LevelName),
                ("%(processName)s", Piece::ProcessName),
                ("%(process)d", Piece::Process),
                ("%(name)s", Piece::Name),
                ("%%", Piece::Text(String::new())),
            ];
            match NAMES.iter().find(|(name, _)| rest.starts_with(name)) {
                Some((name, piece)) => {
                    if *name == "%%" {
                        text.push('%');
                    } else {
                        if !text.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut text)));
                        }
                        pieces.push(piece.clone());
                    }
                    rest = &rest[name.len()..];
                }
                None => {
                    // Not a field this layer knows: kept as written.
                    text.push('%');
                    rest = &rest[1..];
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        PythonFormat {
            pieces,
            datefmt: None,
        }
    }

    /// The format of `%(asctime)s`, as `logging.Formatter`'s `datefmt`.
    pub fn datefmt(mut self, datefmt: &str) -> PythonFormat {
        self.datefmt = Some(datefmt.to_owned());
        self
    }

    pub(crate) fn format(&self, record: &Record, now: SystemTime) -> String {
        let mut line = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => line.push_str(text),
                Piece::AscTime => line.push_str(&asctime(now, self.datefmt.as_deref())),
                Piece::Message => {
                    line.push_str(&record.message);
                    if !record.fields.is_empty() {
                        line.push(' ');
                        line.push_str(&record.fields);
                    }
                }
                Piece::LevelName => line.push_str(record.level.map_or("NOTSET", level_name)),
                Piece::ProcessName => line.push_str(&record.process_name),
                Piece::Process => {
                    let _ = write!(line, "{}", record.pid);
                }
                Piece::Name => line.push_str(&record.name),
            }
        }
        line
    }
}

/// What the layer needs of an event: for a child's re-emitted event, the child's name, pid
/// and target from its fields.
pub(crate) fn record(event: &Event<'_>) -> Record {
    let meta = event.metadata();
    if meta.target() == CHILD_TARGET {
        let mut visit = ChildVisit(Record {
            level: Some(*meta.level()),
            ..Record::default()
        });
        event.record(&mut visit);
        return visit.0;
    }
    let mut fields = Fields {
        message: Capped::new(MAX_MESSAGE),
        rest: Capped::new(MAX_FIELDS),
    };
    event.record(&mut fields);
    let me = mp_spawn::current_process();
    Record {
        level: Some(*meta.level()),
        process_name: me.name,
        pid: me.pid,
        name: meta.target().to_owned(),
        message: fields.message.finish(),
        fields: fields.rest.finish(),
    }
}

struct ChildVisit(Record);

impl Visit for ChildVisit {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "pid" {
            self.0.pid = u32::try_from(value).unwrap_or(0);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "process_name" => self.0.process_name = text,
            "child_target" => self.0.name = text,
            "fields" => self.0.fields = text,
            "message" => self.0.message = text,
            _ => {}
        }
    }
}

impl<S> Layer<S> for PythonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.level() <= &level()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(level())
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A thread of a forked child that inherited this layer: its events go up too.
        if let Some(forwarder) = forward::forwarder() {
            forwarder.send(event, &crate::child::span_names(event, &ctx));
            return;
        }
        let mut line = self.format(&record(event), SystemTime::now());
        line.push('\n');
        // One write per line, so that lines of several threads do not mix.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// `%(asctime)s`: `datefmt` in UTC, or Python's default `%Y-%m-%d %H:%M:%S,mmm`.
fn asctime(now: SystemTime, datefmt: Option<&str>) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    let (h, mi, s) = (t / 3600, t / 60 % 60, t % 60);
    let Some(fmt) = datefmt else {
        return format!(
            "{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02},{:03}",
            since.subsec_millis()
        );
    };
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{y}"),
            Some('m') => write!(out, "{mo:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('H') => write!(out, "{h:02}"),
            Some('M') => write!(out, "{mi:02}"),
            Some('S') => write!(out, "{s:02}"),
            Some('%') => write!(out, "%"),
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record() -> Record {
        Record {
            level: Some(Level::INFO),
            process_name: "Process-1".into(),
            pid: 42,
            name: "app".into(),
            message: "hello".into(),
            fields: String::new(),
        }
    }

    #[test]
    fn pythons_default_format() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            PythonFormat::default().format(&record(), at),
            "[INFO/Process-1] hello"
        );
        let mut r = record();
        r.level = Some(Level::WARN);
        r.fields = "n=3".into();
        assert_eq!(
            PythonFormat::new("%(levelname)s %(process)d %(name)s 100%% %(message)s %(bad)s")
                .format(&r, at),
            "WARNING 42 app 100% hello n=3 %(bad)s"
        );
        // 2023-11-14 22:13:20.123 UTC
        assert_eq!(
            PythonFormat::new("%(asctime)s: %(message)s").format(&record(), at),
            "2023-11-14 22:13:20,123: hello"
        );
        assert_eq!(
            PythonFormat::new("%(asctime)s: %(message)s")
                .datefmt("%H:%M:%S")
                .format(&record(), at),
            "22:13:20: hello"
        );
    }
}

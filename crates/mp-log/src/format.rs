//! Python's logging format (`%(asctime)s`, `[%(levelname)s/%(processName)s] %(message)s`) as a
//! `tracing-subscriber` layer writing to stderr, and the level of mp's logger.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use jiff::Timestamp;
use jiff::fmt::strtime::{BrokenDownTime, Config, PosixCustom};
use jiff::tz::TimeZone;

use crate::forward;
use crate::reemit::{CHILD_FIELD, FIELDS_FIELD, PID_FIELD, SPANS_FIELD, TARGET_FIELD};
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
/// `%(process)d`, `%(name)s` (the event's target) and `%%`. `asctime` is in local time, as
/// Python's: `2026-11-28 12:00:00,123` without a `datefmt`, else `strftime` of the `datefmt`
/// (jiff's, in the POSIX locale: `%Y %m %d %H %M %S %z %Z %a %b %j`...; a directive it does
/// not know is written as it is).
///
/// # Local time
/// The zone is read once, when a format with `%(asctime)s` is made, as Python reads it once
/// (at `time.tzset()`): `TZ` if set (a zone name such as `Europe/Paris`, a POSIX rule such as
/// `UTC-3` or `CET-1CEST,M3.5.0,M10.5.0/3`, or a path), else `/etc/localtime`; UTC if neither
/// can be read. [`time_zone`](PythonFormat::time_zone) and [`utc`](PythonFormat::utc) choose
/// another. It is read by [jiff](https://docs.rs/jiff), not by libc's `localtime_r`: glibc
/// converts under a lock of its own, which a fork child may have inherited held by another
/// thread of its parent (mp's rule: mp's code in a fork child takes no lock that another
/// thread may hold), whereas turning a time into the zone's time with the zone already read
/// takes no lock at all, so a fork child formats with its parent's zone safely.
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
    /// The zone of `%(asctime)s` (UTC if the format has none).
    zone: TimeZone,
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
        // Read only where it is used: a fork child never needs to (see "Local time").
        let zone = if pieces.contains(&Piece::AscTime) {
            TimeZone::system()
        } else {
            TimeZone::UTC
        };
        PythonFormat {
            pieces,
            datefmt: None,
            zone,
        }
    }

    /// The format of `%(asctime)s`, as `logging.Formatter`'s `datefmt` (`strftime`).
    ///
    /// ```
    /// let format = mp_log::PythonFormat::new("%(asctime)s %(message)s").datefmt("%H:%M:%S %z");
    /// ```
    pub fn datefmt(mut self, datefmt: &str) -> PythonFormat {
        self.datefmt = Some(datefmt.to_owned());
        self
    }

    /// `%(asctime)s` in the zone `tz`, read as the `TZ` variable is: a zone name
    /// (`Europe/Paris`, from the system's zone files), a POSIX rule (`UTC-3` is three hours
    /// east of UTC, `EST5EDT,M3.2.0,M11.1.0`), or a zone file's path; UTC if it is none of
    /// these (as glibc does with a `TZ` it cannot read).
    ///
    /// ```
    /// use mp_log::PythonFormat;
    ///
    /// let format = PythonFormat::new("%(asctime)s %(message)s").time_zone("UTC-3");
    /// ```
    pub fn time_zone(mut self, tz: &str) -> PythonFormat {
        self.zone = zone_of(tz);
        self
    }

    /// `%(asctime)s` in UTC: Python's `Formatter.converter = time.gmtime`.
    ///
    /// ```
    /// let format = mp_log::PythonFormat::new("%(asctime)s %(message)s").utc();
    /// ```
    pub fn utc(mut self) -> PythonFormat {
        self.zone = TimeZone::UTC;
        self
    }

    pub(crate) fn format(&self, record: &Record, now: SystemTime) -> String {
        let mut line = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => line.push_str(text),
                Piece::AscTime => self.asctime(now, &mut line),
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

/// What the layer needs of an event: for a child's re-emitted event, the child's name and
/// pid from its fields ([`CHILD_FIELD`], [`PID_FIELD`]), which are not printed.
pub(crate) fn record(event: &Event<'_>) -> Record {
    let meta = event.metadata();
    let mut visit = RecordVisit {
        message: Capped::new(MAX_MESSAGE),
        rest: Capped::new(MAX_FIELDS),
        child: None,
        pid: 0,
        target: None,
    };
    event.record(&mut visit);
    let (process_name, pid) = match visit.child {
        Some(name) => (name, visit.pid),
        None => {
            let me = mp_spawn::current_process();
            (me.name, me.pid)
        }
    };
    Record {
        level: Some(*meta.level()),
        process_name,
        pid,
        name: visit.target.unwrap_or_else(|| meta.target().to_owned()),
        message: visit.message.finish(),
        fields: visit.rest.finish(),
    }
}

/// An event's message, its other fields as `name=value` separated by spaces, and mp's fields
/// of a child's event.
struct RecordVisit {
    message: Capped,
    rest: Capped,
    child: Option<String>,
    pid: u32,
    /// The child's target, when the event has [`CHILD_TARGET`](crate::CHILD_TARGET).
    target: Option<String>,
}

impl Visit for RecordVisit {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            CHILD_FIELD => self.child = Some(value.to_owned()),
            TARGET_FIELD => self.target = Some(value.to_owned()),
            "message" => {
                let _ = self.message.write_str(value);
            }
            _ => self.record_debug(field, &value),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == PID_FIELD {
            self.pid = u32::try_from(value).unwrap_or(0);
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        match name {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            SPANS_FIELD => {}
            CHILD_FIELD => self.child = Some(format!("{value:?}")),
            TARGET_FIELD => self.target = Some(format!("{value:?}")),
            _ => {
                if !self.rest.text.is_empty() {
                    let _ = self.rest.write_str(" ");
                }
                if name != FIELDS_FIELD {
                    let _ = write!(self.rest, "{name}=");
                }
                let _ = write!(self.rest, "{value:?}");
            }
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

/// The zone `tz` names, read as `TZ` is (see [`PythonFormat::time_zone`]).
fn zone_of(tz: &str) -> TimeZone {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.is_empty() {
        return TimeZone::UTC;
    }
    let in_db = name
        .rfind("zoneinfo/")
        .map_or(name, |at| &name[at + "zoneinfo/".len()..]);
    TimeZone::get(in_db)
        .or_else(|_| TimeZone::posix(name))
        .ok()
        .or_else(|| {
            let data = std::fs::read(name).ok()?;
            TimeZone::tzif(name, &data).ok()
        })
        .unwrap_or(TimeZone::UTC)
}

impl PythonFormat {
    /// Writes `%(asctime)s` of `now`: Python's `%Y-%m-%d %H:%M:%S,mmm`, or `strftime` of the
    /// `datefmt`, in the format's zone. Takes no lock (see "Local time" in the type's docs).
    fn asctime(&self, now: SystemTime, out: &mut String) {
        let at = Timestamp::try_from(now).unwrap_or(Timestamp::UNIX_EPOCH);
        let Some(datefmt) = &self.datefmt else {
            let t = self.zone.to_datetime(at);
            let _ = write!(
                out,
                "{}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            );
            return;
        };
        let config = Config::new().custom(PosixCustom::new()).lenient(true);
        let zoned = at.to_zoned_datetime(self.zone.clone());
        let _ = BrokenDownTime::from(&zoned).format_with_config(&config, datefmt, out);
    }
}

#[cfg(test)]
mod test;

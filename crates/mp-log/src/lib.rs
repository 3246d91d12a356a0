//! Logging across processes for [mp](https://docs.rs/mp-rs), Python's `multiprocessing` for
//! Rust, on [`tracing`].
//!
//! - [`log_to_stderr`] and [`get_logger`]: Python's, with its format
//!   `[LEVEL/ProcessName] message`.
//! - [`forward_children`]: one call in the parent, and every child it starts from then on
//!   (fork, spawn and forkserver children, pool workers, children of children) sends its
//!   `tracing` events to this process, where they are re-emitted into this process's
//!   subscriber as if they had been emitted here: same target, level, fields (names, values
//!   and their kinds), module path, file and line, so that the parent's filters (`EnvFilter`
//!   `myapp=info`, `Targets`, per-layer filters) treat them as its own; plus the fields
//!   [`CHILD_FIELD`] (`mp.child`, the child's process name), [`PID_FIELD`] (`mp.pid`) and
//!   [`SPANS_FIELD`] (`mp.spans`, the names of the spans the event was in, `outer:inner`).
//!   [`log_to_stderr`] implies it.
//!
//! ```
//! use mp_log::tracing::{self, Level};
//!
//! let logger = mp_log::log_to_stderr(Level::INFO);
//! logger.info("ready"); // stderr: [INFO/MainProcess] ready
//! tracing::warn!(n = 3, "any tracing event"); // [WARNING/MainProcess] any tracing event n=3
//! ```
//!
//! With a child (mp-spawn's `Process`; a `Pool`'s workers alike):
//!
//! ```
//! use tracing::Level;
//!
//! fn work(n: u32) -> u32 {
//!     tracing::info!(n, "working");
//!     n * 2
//! }
//!
//! mp_log::log_to_stderr(Level::INFO); // and children's events come here
//! let mut p = mp_spawn::Process::new(work, (21,));
//! p.start()?;
//! assert_eq!(p.join()?, 42);
//! mp_log::flush(); // stderr: [INFO/Process-1] working n=21
//! # Ok::<(), mp_spawn::ProcessError>(())
//! ```
//!
//! # How
//! The listening process makes a `SOCK_SEQPACKET` socket pair and reads it in a thread
//! (`mp-log-listener`); the sending end reaches children as an `mp_spawn::resources` shared
//! descriptor (inherited under fork), and mp-spawn's child-start hook installs a subscriber
//! that sends each event as one message before the target runs. A message is whole or absent,
//! so a child killed mid-event loses at most that event, and other children's events are
//! unaffected. An event is capped: its message at 8 KiB and its other fields' values at 4 KiB
//! together (cut at a character boundary, ending `… [N bytes cut]`), targets and names at 256
//! bytes, field names at 128.
//!
//! Each distinct shape of a child's event (target, level, field names, module path, file,
//! line: in practice each event macro of the children's code) gets a `tracing` callsite of its
//! own in the listening process, made when the first such event arrives and kept for the
//! life of the process (tracing needs callsites `'static`), registered with tracing so that
//! subscribers' `register_callsite`, `Interest` caching and `max_level_hint` work as for the
//! process's own callsites. At most [`MAX_CHILD_CALLSITES`] are made; events of further
//! shapes are re-emitted with the target [`CHILD_TARGET`] and their target and fields as the
//! fields `mp.target` and `mp.fields`.
//!
//! # Limits
//! - Children started before the call do not forward, nor do the workers of a fork-method
//!   pool made before it (they are forked from a snapshot taken when the pool was made).
//! - Spans are not forwarded as spans: each event carries the names of the spans it was in
//!   (their fields stay in the child), so a filter on spans (`EnvFilter`'s `[span]=level`)
//!   does not see them.
//! - An event's fields travel as the kinds `tracing`'s `Visit` gave them (`u64`, `str`,
//!   `bool`...); `Debug` and `Display` values travel formatted, and are re-emitted as such.
//!   Only the first 64 fields travel. The names `mp.child`, `mp.pid`, `mp.spans`, `mp.target`
//!   and `mp.fields` are mp's.
//! - A child forwards at the level the listening process's subscribers want when the child
//!   starts (`LevelFilter::current()`), or none if that is `OFF`.
//! - A fork child keeps its parent's global subscriber (tracing's global default is set once
//!   per process): the forwarder is the default of the thread that runs the target, and other
//!   threads the target starts log into the inherited subscriber, which forwards too if it
//!   is [`PythonFormat`] ([`log_to_stderr`]), and otherwise logs in the child as it would.
//! - A child that logs faster than the listener re-emits blocks in its logging call while the
//!   socket's buffer (about 200 KiB) is full. Once the listener is gone ([`stop_forwarding`],
//!   or the listening process exited), events are dropped at once, never blocked on.
//! - Events still in the socket when the listening process exits are lost: call [`flush`]
//!   after joining the children whose events matter.
//! - The listener is a thread: a later fork from this process prints mp's fork warning
//!   (mp-spawn's `set_fork_warning`).
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod child;
mod format;
mod forward;
mod reemit;
mod wire;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// The `tracing` crate, so that a program needs no dependency of its own for its macros.
pub use tracing;

pub use format::{DEFAULT_FORMAT, PythonFormat, level_name};
pub use reemit::{CHILD_FIELD, CHILD_TARGET, MAX_CHILD_CALLSITES, PID_FIELD, SPANS_FIELD};

/// The target of [`Logger`]'s events: Python's logger name.
pub const TARGET: &str = "multiprocessing";

/// Python's `multiprocessing` logger, shaped for Rust: its level (the threshold of the
/// [`PythonFormat`] layer that [`log_to_stderr`] installs) and its log calls, events with the
/// target [`TARGET`]. Any `tracing` event works as well; this is for ports of Python code.
///
/// ```
/// use tracing::level_filters::LevelFilter;
///
/// let logger = mp_log::get_logger();
/// logger.set_level(LevelFilter::DEBUG);
/// assert_eq!(logger.level(), LevelFilter::DEBUG);
/// logger.info("starting"); // `tracing::info!(target: "multiprocessing", "starting")`
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Logger;

impl Logger {
    /// Python's `logger.setLevel`: events above `level` are off in [`PythonFormat`].
    pub fn set_level(&self, level: impl Into<LevelFilter>) {
        format::set_level(level.into())
    }

    /// The current level (Python's default: `WARN`).
    pub fn level(&self) -> LevelFilter {
        format::level()
    }

    /// `logger.debug(message)`.
    pub fn debug(&self, message: &str) {
        tracing::debug!(target: TARGET, "{message}")
    }

    /// `logger.info(message)`.
    pub fn info(&self, message: &str) {
        tracing::info!(target: TARGET, "{message}")
    }

    /// `logger.warning(message)`.
    pub fn warning(&self, message: &str) {
        tracing::warn!(target: TARGET, "{message}")
    }

    /// `logger.error(message)`.
    pub fn error(&self, message: &str) {
        tracing::error!(target: TARGET, "{message}")
    }

    /// multiprocessing's `sub_debug` (level 5): `TRACE`.
    pub fn sub_debug(&self, message: &str) {
        tracing::trace!(target: TARGET, "{message}")
    }
}

/// Python's `multiprocessing.get_logger()`: see [`Logger`].
///
/// ```
/// mp_log::get_logger().warning("careful");
/// ```
pub fn get_logger() -> Logger {
    Logger
}

/// Python's `multiprocessing.log_to_stderr(level)`: sets the logger's level, installs a
/// [`PythonFormat`] layer with Python's format `[%(levelname)s/%(processName)s] %(message)s`
/// as the global subscriber (unless one is set already: then only the level and the
/// forwarding change), and forwards children's events here ([`forward_children`]).
///
/// ```
/// let logger = mp_log::log_to_stderr(tracing::Level::INFO);
/// logger.info("to stderr"); // [INFO/MainProcess] to stderr
/// ```
pub fn log_to_stderr(level: impl Into<LevelFilter>) -> Logger {
    basic_config(PythonFormat::default(), level)
}

/// As [`log_to_stderr`] with a format of your own: Python's
/// `logging.basicConfig(format=..., datefmt=..., level=...)`. `%(asctime)s` is in local
/// time, as Python's (see [`PythonFormat`]).
///
/// ```
/// use mp_log::PythonFormat;
///
/// let format = PythonFormat::new("%(asctime)s: %(message)s").datefmt("%H:%M:%S");
/// mp_log::basic_config(format, tracing::Level::INFO);
/// tracing::info!("Main-Process: before creating process"); // 12:00:00: Main-Process: ...
/// ```
pub fn basic_config(format: PythonFormat, level: impl Into<LevelFilter>) -> Logger {
    format::set_level(level.into());
    let subscriber = tracing_subscriber::registry().with(format);
    let _ = tracing::subscriber::set_global_default(subscriber);
    // Without forwarding, children's events are still theirs: they may have a subscriber.
    let _ = forward_children();
    Logger
}

/// Makes every child started from now on (and their children) send its `tracing` events to
/// this process, re-emitted into the subscriber that is the default of the calling thread now
/// (or the global one at each event if that thread has none). Calling it again does nothing;
/// in a child whose events already go up, neither. See the crate docs for the mechanism and
/// its limits. An error means the socket or the listener thread could not be made.
///
/// ```
/// mp_log::forward_children()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn forward_children() -> std::io::Result<()> {
    forward::start()
}

/// Stops listening: events already queued are re-emitted, and from then on children's
/// events are dropped (their logging calls return at once), and new children do not forward.
/// [`forward_children`] may start again (new children only).
///
/// ```
/// mp_log::forward_children()?;
/// mp_log::stop_forwarding();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stop_forwarding() {
    forward::stop()
}

/// Waits until every event that reached the socket before this call has been re-emitted:
/// after joining a child, all of its events. Does nothing where this process does not listen.
///
/// ```
/// mp_log::flush();
/// ```
pub fn flush() {
    forward::flush()
}

//! The listening side and the state that every process of a forwarding tree keeps: the
//! sending end of the socket (shared with children through `mp_spawn::resources`), the level
//! children forward at, and, in the listening process, the listener thread.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use mp_spawn::resources::{CHILD_START, SHARED, Shared};
use mp_sys::fork::{Hold, Rank};
use tracing::Dispatch;
use tracing::level_filters::LevelFilter;

use crate::child::{self, Forwarder};
use crate::reemit::{self, Interner};
use crate::wire::{Frame, MAX_FRAME};

/// The key of the socket's sending end among mp-spawn's shared descriptors.
const EVENTS_KEY: &str = "mp-log/events";

#[derive(Default)]
struct State {
    /// The sending end, lent to this process's children: leaked, so that a child started
    /// while forwarding stops still gets an open descriptor.
    sender: Option<BorrowedFd<'static>>,
    /// In a forwarding child: the level it forwards at, and its forwarder.
    child: Option<(LevelFilter, Arc<Forwarder>)>,
    /// In the listening process.
    listener: Option<Listener>,
    /// The callsites of children's events (the listener's), kept across `stop` and `start`.
    interner: Interner,
}

struct Listener {
    /// The reader's number, owned by the listener thread, while that thread may use it (see
    /// `child_started`).
    reader: Option<RawFd>,
    stop: Arc<OwnedFd>,
    thread: JoinHandle<()>,
    flushed: Arc<Flushed>,
    next_flush: u64,
}

/// How far the listener has got: the last flush marker it reached, and whether it ended.
#[derive(Default)]
struct Flushed {
    state: Mutex<(u64, bool)>,
    changed: Condvar,
}

static STATE: Mutex<State> = Mutex::new(State {
    sender: None,
    child: None,
    listener: None,
    interner: Interner::new(reemit::MAX_CHILD_CALLSITES),
});

/// Whether this process forwards its events (a fast check for the stderr layer).
static FORWARDING_CHILD: AtomicBool = AtomicBool::new(false);

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held across mp's forks: a forked child finds the state unlocked.
static HOLD_STATE: Hold = Hold::new(Rank::LOG_STATE, || Box::new(state()));

/// Starts forwarding: see [`forward_children`](crate::forward_children).
pub(crate) fn start() -> std::io::Result<()> {
    // Keep the link-time entries in the program (the linker drops unreferenced objects).
    std::hint::black_box((
        &EVENTS,
        &LEVEL_ERROR,
        &LEVEL_WARN,
        &LEVEL_INFO,
        &LEVEL_DEBUG,
    ));
    std::hint::black_box((&LEVEL_TRACE, &HOOK));
    HOLD_STATE.register();
    let mut st = state();
    if st.listener.is_some() || st.child.is_some() {
        // Already listening, or a child whose events already go up.
        return Ok(());
    }
    let (reader, sender) = mp_sys::socket::socketpair(mp_sys::socket::Kind::SeqPacket)?;
    let stop = Arc::new(mp_sys::eventfd::new()?);
    let flushed = Arc::new(Flushed::default());
    // Re-emit into the subscriber of the thread that asked (a test's scoped one, say), or
    // into the global one at each event if that thread has none.
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    let dispatch = (!dispatch.is::<tracing::subscriber::NoSubscriber>()).then_some(dispatch);
    let raw = reader.as_raw_fd();
    let thread = {
        let (stop, flushed) = (stop.clone(), flushed.clone());
        std::thread::Builder::new()
            .name("mp-log-listener".into())
            .spawn(move || listen(reader, &stop, dispatch, &flushed))?
    };
    let sender: &'static OwnedFd = Box::leak(Box::new(sender));
    st.sender = Some(sender.as_fd());
    st.listener = Some(Listener {
        reader: Some(raw),
        stop,
        thread,
        flushed,
        next_flush: 0,
    });
    Ok(())
}

/// Stops listening: see [`stop_forwarding`](crate::stop_forwarding).
pub(crate) fn stop() {
    let listener = {
        let mut st = state();
        // In a child (which does not listen) nothing changes.
        let listener = st.listener.take();
        if listener.is_some() {
            st.sender = None;
        }
        listener
    };
    if let Some(listener) = listener {
        mp_sys::eventfd::ring(listener.stop.as_fd());
        let _ = listener.thread.join();
    }
}

/// Waits until every event sent before this call has been re-emitted: see
/// [`flush`](crate::flush).
pub(crate) fn flush() {
    let (seq, sender, flushed) = {
        let mut st = state();
        let Some(sender) = st.sender else { return };
        let Some(listener) = st.listener.as_mut() else {
            return;
        };
        listener.next_flush += 1;
        (listener.next_flush, sender, listener.flushed.clone())
    };
    let Ok(bytes) = postcard::to_stdvec(&Frame::Flush(seq)) else {
        return;
    };
    if mp_sys::socket::send_all(sender, &bytes).is_err() {
        return;
    }
    let mut g = flushed.state.lock().unwrap_or_else(|e| e.into_inner());
    while g.0 < seq && !g.1 {
        g = flushed.changed.wait(g).unwrap_or_else(|e| e.into_inner());
    }
}

/// The listener thread: reads one event per message and re-emits it, until `stop` rings.
fn listen(reader: OwnedFd, stop: &Arc<OwnedFd>, dispatch: Option<Dispatch>, flushed: &Flushed) {
    // However the thread ends, `flush` must stop waiting for it.
    let _ended = Ended(flushed);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_loop(reader.as_fd(), stop.as_fd(), dispatch.as_ref(), flushed)
    }));
    // The reader closes when this returns: first make sure no forked child will take its
    // number for the reader (see `child_started`).
    let mut st = state();
    if let Some(listener) = st.listener.as_mut().filter(|l| Arc::ptr_eq(&l.stop, stop)) {
        listener.reader = None;
    }
}

fn read_loop(
    reader: BorrowedFd<'_>,
    stop: BorrowedFd<'_>,
    dispatch: Option<&Dispatch>,
    flushed: &Flushed,
) {
    let mut buf = vec![0u8; MAX_FRAME + 1];
    // A subscriber that panics on one event loses that event, not the listener (the panic
    // hook has printed it).
    let on_message = |bytes: &[u8]| {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle(bytes, dispatch, flushed)
        }));
    };
    let fds = [reader, stop];
    let readable_now =
        || mp_sys::poll::readable(&fds[..1], Some(std::time::Duration::ZERO)).is_ok_and(|r| r[0]);
    while let Ok(ready) = mp_sys::poll::readable(&fds, None) {
        if ready[1] {
            // From now on every sender's `send` fails (EPIPE) instead of filling the buffer,
            // whoever else holds a copy of this end; then what was queued is re-emitted.
            let _ = mp_sys::socket::shutdown(reader, mp_sys::socket::Shutdown::Read);
            while readable_now() {
                match mp_sys::fd::read(reader, &mut buf) {
                    Ok(n @ 1..) => on_message(&buf[..n]),
                    _ => break,
                }
            }
            break;
        }
        match mp_sys::fd::read(reader, &mut buf) {
            Ok(n @ 1..) => on_message(&buf[..n]),
            // An empty message (end-of-file cannot come: this process keeps a sending end for
            // its life).
            Ok(0) => {}
            Err(_) => break,
        }
    }
}

/// Marks the listener as ended when dropped.
struct Ended<'a>(&'a Flushed);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut g = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        g.1 = true;
        self.0.changed.notify_all();
    }
}

/// One message: an event to re-emit or a flush marker. A message longer than any event (cut
/// by the buffer) or that does not decode is dropped; the next one is read as usual, since
/// each message is whole.
fn handle(bytes: &[u8], dispatch: Option<&Dispatch>, flushed: &Flushed) {
    if bytes.len() > MAX_FRAME {
        return;
    }
    match postcard::from_bytes::<Frame>(bytes) {
        Ok(Frame::Event(event)) => {
            // Made and registered under the state's lock, which every mp fork holds: tracing
            // registers a callsite under its dispatchers' lock, which a forked child's
            // `child::install` takes, so no fork may copy it held by this thread.
            let callsite = state().interner.intern(&event.callsite);
            match dispatch {
                Some(d) => tracing::dispatcher::with_default(d, || reemit::emit(&event, callsite)),
                None => reemit::emit(&event, callsite),
            }
        }
        Ok(Frame::Flush(seq)) => {
            let mut g = flushed.state.lock().unwrap_or_else(|e| e.into_inner());
            g.0 = g.0.max(seq);
            flushed.changed.notify_all();
        }
        Err(_) => {}
    }
}

/// This process's forwarder, if it is a forwarding child.
pub(crate) fn forwarder() -> Option<Arc<Forwarder>> {
    if !FORWARDING_CHILD.load(Ordering::Relaxed) {
        return None;
    }
    state().child.as_ref().map(|(_, f)| f.clone())
}

/// The level a new child forwards at: the listening process's `LevelFilter::current()` (what
/// its subscribers may want at all), or what this child itself got.
fn child_level(st: &State) -> Option<LevelFilter> {
    if let Some((level, _)) = &st.child {
        return Some(*level);
    }
    st.listener.as_ref().map(|_| LevelFilter::current())
}

#[linkme::distributed_slice(SHARED)]
static EVENTS: Shared = Shared {
    key: EVENTS_KEY,
    provide: || state().sender,
};

/// The level travels as the key of a second shared descriptor (`/dev/null`): mp-spawn's
/// bootstrap carries keys and descriptors, not values.
const LEVEL_KEYS: [(&str, LevelFilter); 5] = [
    ("mp-log/level/error", LevelFilter::ERROR),
    ("mp-log/level/warn", LevelFilter::WARN),
    ("mp-log/level/info", LevelFilter::INFO),
    ("mp-log/level/debug", LevelFilter::DEBUG),
    ("mp-log/level/trace", LevelFilter::TRACE),
];

fn provide_level<const I: usize>() -> Option<BorrowedFd<'static>> {
    let st = state();
    st.sender?;
    (child_level(&st) == Some(LEVEL_KEYS[I].1))
        .then(|| mp_sys::fd::dev_null().ok())
        .flatten()
}

macro_rules! level_keys {
    ($($name:ident = $i:literal),*) => {$(
        #[linkme::distributed_slice(SHARED)]
        static $name: Shared = Shared {
            key: LEVEL_KEYS[$i].0,
            provide: provide_level::<$i>,
        };
    )*};
}
level_keys!(
    LEVEL_ERROR = 0,
    LEVEL_WARN = 1,
    LEVEL_INFO = 2,
    LEVEL_DEBUG = 3,
    LEVEL_TRACE = 4
);

#[linkme::distributed_slice(CHILD_START)]
static HOOK: fn() = child_started;

/// In every new child, before its target: if the parent forwards (a spawn or forkserver child
/// received the socket; a fork child has its parent's state), install the forwarder.
fn child_started() {
    // Before mp-log's lock: a fork takes mp-spawn's state first, then this one.
    let me = mp_spawn::current_process();
    let mut st = state();
    let was_listener = if let Some(listener) = st.listener.take() {
        // A fork of the listening process: its listener thread is not here. Close this copy of
        // the reader, so that once the listener is gone this process does not keep the socket
        // open (its sends would then block on a full buffer instead of failing).
        if let Some(reader) = listener.reader {
            // SAFETY: the number is that of the reader the listener thread owns; that thread
            // does not exist in a forked child, so nothing here will use or close it, and it
            // was still open at the fork: the thread closes it only after `stop` removed the
            // listener from the state, or after it cleared the number itself, both under the
            // state's lock, which every fork holds (`HOLD_STATE`).
            drop(unsafe { mp_sys::fd::adopt(reader) });
        }
        // The thread's handle and the shared parts belong to a thread that is not here.
        std::mem::forget(listener);
        true
    } else {
        false
    };
    let inherited = mp_spawn::resources::inherited(EVENTS_KEY);
    let Some(sender) = inherited.or(st.sender) else {
        return;
    };
    let level = if inherited.is_some() {
        LEVEL_KEYS
            .iter()
            .find(|(key, _)| mp_spawn::resources::inherited(key).is_some())
            .map(|(_, level)| *level)
    } else if was_listener {
        Some(LevelFilter::current())
    } else {
        st.child.as_ref().map(|(level, _)| *level)
    };
    let Some(level) = level.filter(|l| *l != LevelFilter::OFF) else {
        st.sender = None;
        return;
    };
    let forwarder = Arc::new(Forwarder::new(sender, level, me));
    st.sender = Some(sender);
    st.child = Some((level, forwarder.clone()));
    drop(st);
    // This child's own forks must find the state unlocked too.
    HOLD_STATE.register();
    FORWARDING_CHILD.store(true, Ordering::Relaxed);
    child::install(forwarder);
}

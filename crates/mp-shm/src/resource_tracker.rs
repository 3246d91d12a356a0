//! The resource tracker: a small process that unlinks the named segments this process tree
//! created and did not unlink, once every process of the tree is gone, however they ended
//! (normal exit, panic, SIGKILL). Python's `resource_tracker` plays the same part.
//!
//! It is started on the first tracked [`SharedMemory`](crate::SharedMemory) create, or the
//! first spawn or forkserver child (as Python's), as a fresh copy of the executable whose
//! `.init_array` entry (below) runs the tracker before `main`. Its stdin is one end of a socket
//! pair; the starting process keeps the other end, forked children inherit it, and spawn and
//! forkserver children receive it (`mp_spawn::resources`), so the tracker sees end-of-file
//! exactly when the last process of the tree has exited, and a segment a child made outlives
//! that child. The
//! messages are `R <name>\n` (register) and `U <name>\n` (unregister), each a single write of
//! at most 260 bytes, so writers from several processes never interleave.
//!
//! Attaching never registers: only a creator's segments are tracked, so an attacher's exit
//! never unlinks a segment that others use (Python before 3.13 did: gh-82300).

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char, c_int};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

const MARK: &CStr = c"--mp-resource-tracker";

/// The key under which the tracker's connection is shared with spawned children.
const KEY: &str = "mp-shm/resource-tracker";

/// The connection to this tree's tracker, -1 until first use. An atomic set by compare-and-swap,
/// not a `OnceLock`: a fork while another thread was initialising a `OnceLock` would leave the
/// child's copy initialising forever, and its first tracked create would hang.
static TRACKER: AtomicI32 = AtomicI32::new(-1);

/// This tree's tracker: the one a parent shared, or a new one (started at most once: a
/// thread that loses the race closes its own, whose tracker then exits with nothing to do).
fn tracker() -> Result<BorrowedFd<'static>, String> {
    let mut fd = TRACKER.load(Ordering::Acquire);
    if fd < 0 {
        let new = match mp_spawn::resources::inherited(KEY) {
            Some(fd) => fd.try_clone_to_owned().map_err(|e| e.to_string())?,
            None => start()?,
        };
        fd = match TRACKER.compare_exchange(
            -1,
            new.as_raw_fd(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // The connection lives as long as this process: leaked into the static.
            Ok(_) => new.into_raw_fd(),
            Err(winner) => winner,
        };
    }
    // SAFETY: `fd` was leaked into TRACKER from an OwnedFd and is never closed.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Shares the tracker with spawn and forkserver children (started at the first such child,
/// as Python does), so that what they create lives as long as the tree, not as the child.
fn provide() -> Option<BorrowedFd<'static>> {
    tracker().ok()
}

/// Keeps this module's `.init_array` entries in every program that uses mp-shm (the linker
/// drops unreferenced objects, and their entries with them).
pub(crate) fn ensure_linked() {
    std::hint::black_box((&TRACKER_ENTRY, &SHARE_TRACKER));
}

fn start() -> Result<OwnedFd, String> {
    let (ours, theirs) =
        mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).map_err(|e| e.to_string())?;
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("mp-resource-tracker")
        .arg(MARK.to_str().unwrap_or_default())
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // The child is never waited for: it outlives us by design and init reaps it.
    command
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the resource tracker: {e}"))?;
    Ok(ours)
}

/// Records that this process tree owns `name`, starting the tracker if needed.
pub(crate) fn register(name: &str) -> io::Result<()> {
    send(&format!("R {name}\n"))
}

/// Records that `name` was unlinked (by anyone): the tracker forgets it. A failure means the
/// tracker is gone; there is then nothing to forget.
pub(crate) fn unregister(name: &str) {
    if TRACKER.load(Ordering::Acquire) >= 0 {
        let _ = send(&format!("U {name}\n"));
    }
}

fn send(line: &str) -> io::Result<()> {
    match tracker() {
        Ok(fd) => mp_sys::socket::send_all(fd, line.as_bytes()),
        Err(e) => Err(io::Error::other(e)),
    }
}

/// The tracker's life: read registrations until every writer is gone, then unlink the rest.
fn serve() -> ! {
    // Ctrl-C and a polite terminate go to the whole process group; the tracker must outlive
    // the others to clean up after them (Python's tracker ignores them too).
    mp_sys::signal::set_ignored(libc::SIGINT, true);
    mp_sys::signal::set_ignored(libc::SIGTERM, true);
    let mut live = BTreeSet::new();
    let mut input = Vec::new();
    let mut stdin = io::stdin().lock();
    let mut chunk = [0u8; 64 * 1024];
    // Read, then doze: a writer whose reader is asleep rather than waiting on the socket does
    // not have to wake it, which keeps create and unlink cheap (the socket buffer holds
    // thousands of messages meanwhile). End-of-file comes at most a doze (1 ms) late.
    loop {
        match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for line in input.split(|b| *b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        match line.split_once(' ') {
            Some(("R", name)) => {
                live.insert(name.to_owned());
            }
            Some(("U", name)) => {
                live.remove(name);
            }
            _ => {}
        }
    }
    let mut cleaned = Vec::new();
    for name in &live {
        if let Ok(posix) = CString::new(format!("/{name}")) {
            if mp_sys::shm::shm_unlink(&posix).is_ok() {
                cleaned.push(name.as_str());
            }
        }
    }
    if !cleaned.is_empty() {
        eprintln!(
            "mp resource_tracker: unlinked {} shared memory segment(s) left at shutdown: {cleaned:?}",
            cleaned.len()
        );
    }
    mp_sys::process::exit_now(0)
}

/// Called by the C runtime before `main`: returns at once unless this process is a tracker.
extern "C" fn tracker_entry(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    if argc < 2 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes main's argc and argv to .init_array functions: argv holds argc
    // valid NUL-terminated strings.
    let mark = unsafe { CStr::from_ptr(*argv.add(1)) };
    if mark == MARK {
        serve()
    }
}

/// Called by the C runtime before `main` in every program that links mp-shm.
extern "C" fn share_tracker() {
    mp_spawn::resources::share_with_children(KEY, provide);
}

#[used]
#[unsafe(link_section = ".init_array")]
static SHARE_TRACKER: extern "C" fn() = share_tracker;

#[used]
#[unsafe(link_section = ".init_array")]
static TRACKER_ENTRY: extern "C" fn(c_int, *const *const c_char, *const *const c_char) =
    tracker_entry;

//! The resource tracker: a small process that unlinks the named segments this process tree
//! created and did not unlink, once every process of the tree is gone, however they ended
//! (normal exit, panic, SIGKILL). Python's `resource_tracker` plays the same part.
//!
//! It is started on the first tracked [`SharedMemory`](crate::SharedMemory) create, or the
//! first spawn or forkserver child (as Python's), as an mp-spawn helper process (a fresh copy
//! of the executable that runs [`TRACKER`] before `main`). Its channel is one end of a socket
//! pair; the starting process keeps the other end, forked children inherit it, and spawn and
//! forkserver children receive it (`mp_spawn::resources`), so the tracker sees end-of-file
//! exactly when the last process of the tree has exited, and a segment a child made outlives
//! that child. The
//! messages are `R <name>\n` (register) and `U <name>\n` (unregister), each a single write of
//! at most 260 bytes, so writers from several processes never interleave.
//!
//! Attaching never registers: only a creator's segments are tracked, so an attacher's exit
//! never unlinks a segment that others use (Python before 3.13 did: gh-82300).
//!
//! The same tracker program also runs for one owner alone ([`ResourceTracker`]): then only
//! that owner holds the channel, and what it registered is unlinked when the owner ends,
//! however, rather than when the whole tree does. mp-managers' `SharedMemoryManager` gives
//! one to its server.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use mp_spawn::helper::{HELPERS, Helper};
use mp_spawn::resources::{SHARED, Shared};
use mp_sys::fd::StaticFd;

/// The longest name: /dev/shm entries are at most 255 bytes (NAME_MAX). (Here, below
/// `shared_memory`, because the tracker checks names too.)
pub const MAX_NAME_LEN: usize = 255;

/// The tracker process, started from this executable by mp-spawn's pre-`main` entry.
#[linkme::distributed_slice(HELPERS)]
static TRACKER: Helper = Helper {
    name: c"mp-resource-tracker",
    run: serve,
};

/// The tracker's connection goes to every spawn and forkserver child (started at the first
/// such child, as Python does), so that what they create lives as long as the tree, not as
/// the child.
#[linkme::distributed_slice(SHARED)]
static SHARE_TRACKER: Shared = Shared {
    key: "mp-shm/resource-tracker",
    provide: || tracker().ok(),
};

/// The connection to this tree's tracker (see [`StaticFd`] for why not a `OnceLock`).
static CONNECTION: StaticFd = StaticFd::new();

/// This tree's tracker: the one a parent shared, or a new one (started at most once: a
/// thread that loses the race closes its own, whose tracker then exits with nothing to do).
fn tracker() -> Result<BorrowedFd<'static>, String> {
    if let Some(fd) = CONNECTION.get() {
        return Ok(fd);
    }
    let new = match mp_spawn::resources::inherited(SHARE_TRACKER.key) {
        Some(fd) => fd.try_clone_to_owned().map_err(|e| e.to_string())?,
        // Never reaped: it outlives this process by design, and init reaps it.
        None => mp_spawn::helper::start_helper(&TRACKER)
            .map(|(channel, _pid)| channel)
            .map_err(|e| format!("cannot start the resource tracker: {e}"))?,
    };
    Ok(CONNECTION.get_or_set(new))
}

/// Keeps this module's registrations in every program that uses mp-shm (the linker drops
/// unreferenced objects, and their link-section entries with them).
pub(crate) fn ensure_linked() {
    std::hint::black_box((&TRACKER, &SHARE_TRACKER));
}

/// Records that this process tree owns `name`, starting the tracker if needed.
pub(crate) fn register(name: &str) -> io::Result<()> {
    let fd = tracker().map_err(io::Error::other)?;
    tell(fd, b'R', name)
}

/// Records that `name` was unlinked (by anyone): the tracker forgets it. A failure means the
/// tracker is gone; there is then nothing to forget.
pub(crate) fn unregister(name: &str) {
    if let Some(fd) = CONNECTION.get() {
        let _ = tell(fd, b'U', name);
    }
}

/// Whether `name` is a segment name a tracker keeps: what `SharedMemory` accepts (without
/// the leading slash), so that a message is at most 258 bytes and can only name a segment.
fn well_formed(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.contains(['/', '\0'])
}

/// Sends one message, `R <name>\n` or `U <name>\n`, in one write (so that writers from
/// several processes never interleave).
fn tell(channel: BorrowedFd<'_>, verb: u8, name: &str) -> io::Result<()> {
    if !well_formed(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a shared memory segment's name"),
        ));
    }
    let mut line = Vec::with_capacity(name.len() + 3);
    line.extend_from_slice(&[verb, b' ']);
    line.extend_from_slice(name.as_bytes());
    line.push(b'\n');
    mp_sys::socket::send_all(channel, &line)
}

/// A resource tracker of one owner's own: the tracker program (the one a process tree
/// shares), whose channel only this handle holds. It unlinks the segments registered with it
/// and not unregistered when the handle is dropped, or when its holder dies, however (even
/// by SIGKILL: the kernel closes the channel). Dropping the handle waits for that and reaps
/// the tracker, so the segments are gone when `drop` returns.
///
/// For segments that must outlive the process that made them but not their owner:
/// mp-managers' `SharedMemoryManager` gives one to its server. Make such segments with
/// [`track(false)`](crate::ShmOptions::track), or the tree's tracker also unlinks them when
/// the tree ends.
///
/// ```
/// use mp_shm::{ResourceTracker, SharedMemory};
///
/// let tracker = ResourceTracker::start()?;
/// let shm = SharedMemory::options().track(false).create(64)?;
/// tracker.register(shm.name())?;
/// let name = shm.name().to_owned();
/// drop(shm); // unmapped here; the segment stays
/// assert!(SharedMemory::attach(&name).is_ok());
/// drop(tracker); // the tracker unlinks it, and ends
/// assert!(SharedMemory::attach(&name).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ResourceTracker {
    /// `None` only while dropping.
    channel: Option<OwnedFd>,
    pid: u32,
}

impl ResourceTracker {
    /// Starts a tracker process (a fresh copy of this executable, as the tree's tracker).
    ///
    /// ```
    /// let tracker = mp_shm::ResourceTracker::start()?;
    /// assert_ne!(tracker.pid(), std::process::id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start() -> io::Result<ResourceTracker> {
        let (channel, pid) = mp_spawn::helper::start_helper(&TRACKER)?;
        Ok(ResourceTracker {
            channel: Some(channel),
            pid,
        })
    }

    /// The tracker's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Records that the owner owns segment `name` (without the leading slash): it is
    /// unlinked when the tracker ends, unless [`unregister`](Self::unregister)ed first.
    /// Register before the segment exists, and no moment leaves it to nobody. A name that
    /// no segment can have is `InvalidInput`.
    ///
    /// ```
    /// let tracker = mp_shm::ResourceTracker::start()?;
    /// tracker.register("psm_example")?; // no such segment: nothing to unlink at the end
    /// let e = tracker.register("a/b").unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register(&self, name: &str) -> io::Result<()> {
        self.tell(b'R', name)
    }

    /// Records that segment `name` is no longer the owner's (it unlinked it, or never made
    /// it): the tracker forgets it.
    ///
    /// ```
    /// let tracker = mp_shm::ResourceTracker::start()?;
    /// tracker.register("psm_example")?;
    /// tracker.unregister("psm_example")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unregister(&self, name: &str) -> io::Result<()> {
        self.tell(b'U', name)
    }

    fn tell(&self, verb: u8, name: &str) -> io::Result<()> {
        match &self.channel {
            Some(channel) => tell(channel.as_fd(), verb, name),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

impl Drop for ResourceTracker {
    fn drop(&mut self) {
        // End-of-file (unless a forked child holds a copy of the channel): the tracker
        // unlinks what is left and exits.
        drop(self.channel.take());
        mp_sys::process::reap_pid_blocking(self.pid);
    }
}

impl fmt::Debug for ResourceTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceTracker")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// The tracker's life: read registrations until every writer is gone, then unlink the rest.
/// Anyone who can run the program could write to it, and it can only unlink what they could.
fn serve(channel: OwnedFd) -> ! {
    // Ctrl-C and a polite terminate go to the whole process group; the tracker must outlive
    // the others to clean up after them (Python's tracker ignores them too).
    mp_sys::signal::set_ignored(libc::SIGINT, true);
    mp_sys::signal::set_ignored(libc::SIGTERM, true);
    let mut state = Registrations::default();
    let mut chunk = [0u8; 64 * 1024];
    // Read, then doze: a writer whose reader is asleep rather than waiting on the socket does
    // not have to wake it, which keeps create and unlink cheap (the socket buffer holds
    // thousands of messages meanwhile). End-of-file comes at most a doze (1 ms) late.
    loop {
        match mp_sys::fd::read(channel.as_fd(), &mut chunk) {
            Ok(0) => break,
            Ok(n) => state.feed(&chunk[..n]),
            Err(_) => break,
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut cleaned = Vec::new();
    for name in &state.live {
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

/// The longest line the tracker keeps while waiting for its end (a message is at most 260
/// bytes; anything longer is no message, and is skipped up to its newline).
const MAX_LINE: usize = 1024;

/// What the tracker knows: the names registered and not unlinked, and the start of a message
/// whose rest has not arrived yet. Parsed as the bytes arrive, so that its memory follows
/// what is live, not everything ever sent (a long-lived tree creates and unlinks without end).
#[derive(Debug, Default)]
struct Registrations {
    live: BTreeSet<String>,
    /// The bytes after the last newline seen.
    partial: Vec<u8>,
    /// The current line grew past [`MAX_LINE`]: drop bytes up to its newline.
    skipping: bool,
}

impl Registrations {
    /// Takes the next bytes read from the channel.
    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&bytes[..end], &bytes[end + 1..]);
            if self.skipping {
                self.skipping = false;
            } else if self.partial.is_empty() {
                self.apply(line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.apply(&whole);
                // Keep the allocation for the next split message, but no more than a line.
                whole.clear();
                whole.shrink_to(MAX_LINE);
                self.partial = whole;
            }
            bytes = rest;
        }
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.partial.clear();
            self.skipping = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// One message; anything but `R <name>` or `U <name>` with a well-formed name is ignored
    /// (anyone who can run the program could write to a tracker).
    fn apply(&mut self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        match line.split_once(' ') {
            Some(("R", name)) if well_formed(name) => {
                self.live.insert(name.to_owned());
            }
            Some(("U", name)) => {
                self.live.remove(name);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod test;

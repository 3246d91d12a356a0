//! File descriptors: pipes, plain reads and writes, renumbering and flags.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::OFlags;
use rustix::pipe::PipeFlags;

use crate::{cvt, retry};

/// A close-on-exec pipe: (read end, write end).
///
/// ```
/// let (r, w) = mp_sys::fd::pipe()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?)
}

/// One read; 0 at end of file.
///
/// ```
/// use std::os::fd::AsFd;
/// let (r, w) = mp_sys::fd::pipe()?;
/// drop(w);
/// assert_eq!(mp_sys::fd::read(r.as_fd(), &mut [0u8; 4])?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| rustix::io::read(fd, &mut *buf))
}

/// Writes all of `data` (retrying short writes and `EINTR`). Async-signal-safe: no allocation.
///
/// ```
/// use std::os::fd::AsFd;
/// let (_r, w) = mp_sys::fd::pipe()?;
/// mp_sys::fd::write_all(w.as_fd(), b"abc")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = retry(|| rustix::io::write(fd, data))?;
        data = &data[n..];
    }
    Ok(())
}

/// Appends up to `max` bytes read from `fd` to `buf`, without zero-filling them first.
/// Returns the number read; 0 means end of stream.
///
/// ```
/// use std::os::fd::AsFd;
/// let (r, w) = mp_sys::fd::pipe()?;
/// mp_sys::fd::write_all(w.as_fd(), b"abc")?;
/// let mut buf = Vec::new();
/// assert_eq!(mp_sys::fd::read_append(r.as_fd(), &mut buf, 2)?, 2);
/// assert_eq!(buf, b"ab");
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.try_reserve(max)
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    let want = max.min(spare.len());
    let n = retry(|| rustix::io::read(fd, &mut spare[..want]).map(|(init, _)| init.len()))?;
    // SAFETY: rustix reports the first `n` bytes of the spare capacity as initialised by the read.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Moves `fd` to the lowest number at or above `min`, close-on-exec; the old number is closed.
///
/// ```
/// use std::os::fd::AsRawFd;
/// let (r, _w) = mp_sys::fd::pipe()?;
/// assert!(mp_sys::fd::move_above(r, 100)?.as_raw_fd() >= 100);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn move_above(fd: OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, min)?)
}

/// Sets or clears `O_NONBLOCK` (shared by every duplicate of the descriptor).
///
/// ```
/// use std::os::fd::AsFd;
/// let (r, _w) = mp_sys::fd::pipe()?;
/// mp_sys::fd::set_nonblocking(r.as_fd(), true)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut flags = rustix::fs::fcntl_getfl(fd)?;
    flags.set(OFlags::NONBLOCK, on);
    Ok(rustix::fs::fcntl_setfl(fd, flags)?)
}

/// /dev/null, opened once per process (close-on-exec).
///
/// ```
/// let null = mp_sys::fd::dev_null()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dev_null() -> io::Result<BorrowedFd<'static>> {
    // A forked child may open it (mp-managers' child hook): a `StaticFd`, lock-free, which a
    // fork cannot leave half-set (a `OnceLock` being filled at a fork would hang the child).
    static DEV_NULL: StaticFd = StaticFd::new();
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd);
    }
    let file = std::fs::File::open("/dev/null")?;
    Ok(DEV_NULL.get_or_set(file.into()))
}

/// Points fd 0 at `fd` (a child's stdin at /dev/null, as Python does; `dev_null` opened
/// beforehand, so that a forked child makes one call).
///
/// ```no_run
/// mp_sys::fd::stdin_to(mp_sys::fd::dev_null()?)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stdin_to(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::stdio::dup2_stdin(fd)?)
}

/// Takes ownership of descriptor `fd`, named by this process's argv before `main`, if it is
/// open; made close-on-exec.
///
/// # Safety
/// Nothing else in the process may own `fd`: the caller was handed this number for this use
/// (the pre-`main` entry, with the number its parent dup2'ed into it).
///
/// ```no_run
/// // SAFETY: fd 3 was passed to this process for it to own.
/// let fd = unsafe { mp_sys::fd::adopt(3) }?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub unsafe fn adopt(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor; it fails with EBADF if `fd` is not open.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: `fd` is open (checked above) and owned by nobody else (the caller's contract).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// A descriptor owned by a static for the rest of the process: set at most once, never closed,
/// so it can be lent out as `BorrowedFd<'static>`.
///
/// An atomic word rather than a `OnceLock<OwnedFd>`: a fork while another thread is setting a
/// `OnceLock` would leave the child's copy "initialising" forever, and its first use would
/// hang. Here a child sees either no descriptor or a whole one.
///
/// ```
/// use std::os::fd::AsRawFd;
/// static CONNECTION: mp_sys::fd::StaticFd = mp_sys::fd::StaticFd::new();
/// assert!(CONNECTION.get().is_none());
/// let (r, w) = mp_sys::fd::pipe()?;
/// let (r_raw, w_raw) = (r.as_raw_fd(), w.as_raw_fd());
/// assert_eq!(CONNECTION.get_or_set(r).as_raw_fd(), r_raw);
/// // A second value loses the race and is closed; the first stays.
/// assert_eq!(CONNECTION.get_or_set(w).as_raw_fd(), r_raw);
/// assert_eq!(CONNECTION.get().map(|fd| fd.as_raw_fd()), Some(r_raw));
/// # let _ = w_raw;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct StaticFd(std::sync::atomic::AtomicI32);

impl StaticFd {
    /// No descriptor yet.
    pub const fn new() -> StaticFd {
        StaticFd(std::sync::atomic::AtomicI32::new(-1))
    }

    /// The descriptor, once one is set.
    pub fn get(&self) -> Option<BorrowedFd<'static>> {
        let fd = self.0.load(std::sync::atomic::Ordering::Acquire);
        // SAFETY: a non-negative value was stored only by `get_or_set`, from an `OwnedFd` whose
        // ownership it took and never gives back: the descriptor is open for the rest of the
        // process, and nothing else closes it.
        (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Keeps `fd` for the rest of the process unless a descriptor is already set, in which
    /// case `fd` is closed; returns the descriptor kept.
    pub fn get_or_set(&self, fd: OwnedFd) -> BorrowedFd<'static> {
        use std::os::fd::{AsRawFd, IntoRawFd};
        use std::sync::atomic::Ordering;
        let kept =
            match self
                .0
                .compare_exchange(-1, fd.as_raw_fd(), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => fd.into_raw_fd(),
                Err(winner) => winner,
            };
        // SAFETY: `kept` is either `fd`, whose ownership was just given up to the static, or the
        // winner's, stored the same way; neither is ever closed (a losing `fd` is a different
        // descriptor, closed when this function returns).
        unsafe { BorrowedFd::borrow_raw(kept) }
    }
}

impl Default for StaticFd {
    fn default() -> StaticFd {
        StaticFd::new()
    }
}

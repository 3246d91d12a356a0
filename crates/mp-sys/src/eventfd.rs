//! eventfd: a pollable doorbell (a queue's, for `wait`).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::EventfdFlags;

/// A new non-blocking, close-on-exec eventfd at 0.
///
/// ```
/// use std::os::fd::AsFd;
/// let bell = mp_sys::eventfd::new()?;
/// mp_sys::eventfd::ring(bell.as_fd());
/// assert_eq!(mp_sys::poll::readable(&[bell.as_fd()], None)?, [true]);
/// mp_sys::eventfd::drain(bell.as_fd());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn new() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?)
}

/// Makes the eventfd readable; a full counter (`EAGAIN`) is still readable.
#[inline]
pub fn ring(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets the eventfd to 0 (unreadable); one already at 0 (`EAGAIN`) is fine.
#[inline]
pub fn drain(fd: BorrowedFd<'_>) {
    let _ = rustix::io::read(fd, &mut [0u8; 8]);
}

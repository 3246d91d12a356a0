//! The thin layer over the OS: every `unsafe` call of mp-ipc lives here (sockets, poll,
//! eventfds). Shared memory, futexes and robust mutexes come from mp-shm's layer.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub(crate) use mp_shm::sys::{
    Locked, Mapping, cvt, cvt_retry, file_size, futex_wait, futex_wake, punch_hole, random_bytes,
    robust_mutex_init, robust_mutex_lock, robust_mutex_unlock, send_all, socketpair, yield_now,
};

/// An anonymous shared-memory file for a queue's ring.
pub(crate) fn memfd(len: u64) -> io::Result<OwnedFd> {
    mp_shm::sys::memfd(c"mp-queue", len)
}

/// Shuts down one or both directions of a socket (`libc::SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
pub(crate) fn shutdown(sock: BorrowedFd<'_>, how: c_int) -> io::Result<()> {
    // SAFETY: shutdown on a borrowed, open descriptor.
    cvt(unsafe { libc::shutdown(sock.as_raw_fd(), how) }).map(drop)
}

/// Sets or clears `O_NONBLOCK` (shared by every duplicate of the descriptor).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a borrowed, open descriptor.
    unsafe {
        let flags = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        cvt(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags)).map(drop)
    }
}

/// Appends up to `max` bytes read from `fd` to `buf`, without zero-filling them first.
/// Returns the number read; 0 means end of stream.
pub(crate) fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.try_reserve(max)
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    let spare = buf.spare_capacity_mut();
    let want = max.min(spare.len());
    // SAFETY: `spare` is writable memory of at least `want` bytes owned by `buf`.
    let n = cvt_retry(|| unsafe {
        libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) as c_int
    })? as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// eventfd: the pollable doorbell of a queue, for `wait`.

pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: the descriptor is new and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn eventfd_ring(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: an 8-byte write from a valid buffer; a full counter (EAGAIN) is still readable.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    // SAFETY: an 8-byte read into a valid buffer; EAGAIN (already zero) is fine.
    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
}

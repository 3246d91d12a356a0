//! The few OS calls of the pool: SIGINT's disposition, and the byte its handler sends to
//! the watcher thread.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The socket the signal handler writes to (-1: none yet).
static WAKE_SOCKET: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigint(_: libc::c_int) {
    let fd = WAKE_SOCKET.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: send(2) is async-signal-safe; `byte` lives across the call. MSG_DONTWAIT: a
        // full socket drops the byte instead of blocking the handler, which is fine, since one
        // pending byte already wakes the watcher.
        unsafe {
            libc::send(
                fd,
                (&raw const byte).cast(),
                1,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
}

/// Installs the SIGINT handler, writing to the socket `writer`, if SIGINT still has its default
/// disposition. Returns whether it did (a program that handles SIGINT itself keeps its
/// handler, and a worker that ignores it keeps ignoring it).
pub(crate) fn catch_sigint(writer: BorrowedFd<'_>) -> io::Result<bool> {
    WAKE_SOCKET.store(writer.as_raw_fd(), Ordering::Relaxed);
    // SAFETY: a zeroed sigaction is a valid value to be filled by sigaction(2).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying the disposition with a null new action only writes `old`.
    mp_shm::sys::cvt(unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) })?;
    if old.sa_sigaction != libc::SIG_DFL {
        return Ok(false);
    }
    // SAFETY: as above, a zeroed sigaction is valid; the fields are set below.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: the handler only calls write(2), which is async-signal-safe.
    mp_shm::sys::cvt(unsafe { libc::sigaction(libc::SIGINT, &new, std::ptr::null_mut()) })?;
    Ok(true)
}

/// Gives SIGINT back its default disposition.
pub(crate) fn default_sigint() {
    // SAFETY: installing SIG_DFL has no preconditions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// Sends SIGINT to this process (after `default_sigint`: it ends the process as Ctrl-C does).
pub(crate) fn raise_sigint() {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
}

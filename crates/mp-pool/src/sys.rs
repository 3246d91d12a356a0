//! The few OS calls of the pool: SIGINT's disposition and a self-pipe to leave the handler.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the self-pipe, for the signal handler (-1: none yet).
static SELF_PIPE: AtomicI32 = AtomicI32::new(-1);

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    mp_shm::sys::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks until a byte arrives; false at end of file or on an error.
pub(crate) fn read_byte(fd: BorrowedFd<'_>) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a live local.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut byte).cast(), 1) };
        if n == 1 {
            return true;
        }
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return false;
    }
}

extern "C" fn on_sigint(_: libc::c_int) {
    let fd = SELF_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; `byte` lives across the call. A full pipe
        // drops the byte, which is fine: one pending byte already wakes the watcher.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
}

/// Installs the SIGINT handler, writing to `pipe_writer`, if SIGINT still has its default
/// disposition. Returns whether it did (a program that handles SIGINT itself keeps its
/// handler, and a worker that ignores it keeps ignoring it).
pub(crate) fn catch_sigint(pipe_writer: BorrowedFd<'_>) -> io::Result<bool> {
    SELF_PIPE.store(pipe_writer.as_raw_fd(), Ordering::Relaxed);
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

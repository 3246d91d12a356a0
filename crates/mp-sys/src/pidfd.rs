//! Process descriptors: a handle on one process that cannot be confused with a later process
//! of the same pid, pollable for its end.

use std::ffi::c_int;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

use crate::retry;

/// `pidfd_open(2)` of process `pid`.
///
/// ```
/// let me = mp_sys::pidfd::open(std::process::id())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// Sends `signal` through a pidfd; a process that has already ended is not an error. A number
/// that names no signal: `InvalidInput`.
///
/// ```no_run
/// let child = mp_sys::pidfd::open(1234)?;
/// mp_sys::pidfd::send_signal(std::os::fd::AsFd::as_fd(&child), libc::SIGTERM)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn send_signal(pidfd: BorrowedFd<'_>, signal: c_int) -> io::Result<()> {
    let signal = Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    match rustix::process::pidfd_send_signal(pidfd, signal) {
        Err(rustix::io::Errno::SRCH) => Ok(()),
        other => Ok(other?),
    }
}

/// Reaps a child through its pidfd: `Some(exitcode)` once it has ended, `None` while it runs.
/// The exit code is Python's: n for `exit(n)`, -N for signal N.
///
/// ```
/// let child = std::process::Command::new("true").spawn()?;
/// let pidfd = mp_sys::pidfd::open(child.id())?;
/// let fd = std::os::fd::AsFd::as_fd(&pidfd);
/// mp_sys::poll::readable(&[fd], None)?;
/// assert_eq!(mp_sys::pidfd::reap(fd)?, Some(0));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn reap(pidfd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let status = retry(|| {
        rustix::process::waitid(
            WaitId::PidFd(pidfd),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        )
    })?;
    Ok(status.map(|s| match s.exit_status() {
        Some(code) => code,
        None => -s.terminating_signal().unwrap_or(0),
    }))
}

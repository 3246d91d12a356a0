//! A child as its parent tracks it: pid, pidfd, exit code, and (for a forkserver child) the
//! status pipe the server writes the exit code into.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use crate::limits::{Armed, ChildCgroup};
use crate::sync::lock;

/// A child as the parent tracks it; shared by the `Process` and the registry of children.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: u32,
    /// The process that started it: only that one may wait for it or signal it.
    owner: u32,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    /// Signals go through the pidfd (no pid-reuse race); for fork and spawn children it also
    /// turns readable at exit and is what `waitid` reaps.
    pidfd: OwnedFd,
    /// Forkserver children are the server's children: it writes their exit code here.
    status: Option<ServerStatus>,
    exitcode: Mutex<Option<i32>>,
    /// The child's own cgroup under a memory cap: read and removed once it is reaped.
    cgroup: Option<ChildCgroup>,
}

/// Where a server's child learns its exit code: the status pipe the server writes it into, and
/// the server's own pidfd, so that a server that died does not leave `join` waiting on a pipe
/// whose write end another process may still hold.
#[derive(Debug)]
pub(crate) struct ServerStatus {
    pub(crate) pipe: OwnedFd,
    pub(crate) server: OwnedFd,
}

impl Child {
    pub(crate) fn new(
        pid: u32,
        name: String,
        daemon: bool,
        pidfd: OwnedFd,
        status: Option<ServerStatus>,
    ) -> Self {
        Child {
            pid,
            owner: mp_sys::process::getpid(),
            name,
            daemon,
            pidfd,
            status,
            exitcode: Mutex::new(None),
            cgroup: None,
        }
    }

    /// Gives the child the cgroup it joins (see `limits`).
    pub(crate) fn with_cgroup(mut self, cgroup: Option<ChildCgroup>) -> Self {
        self.cgroup = cgroup;
        self
    }

    /// Whether the kernel OOM-killed a process in the child's cgroup (known once it is reaped).
    pub(crate) fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(ChildCgroup::oom_killed)
    }

    /// The exit code if it is known already (no reaping; for `Debug`).
    pub(crate) fn known_exitcode(&self) -> Option<i32> {
        *lock(&self.exitcode)
    }

    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    pub(crate) fn sentinel(&self) -> BorrowedFd<'_> {
        self.status
            .as_ref()
            .map_or(&self.pidfd, |s| &s.pipe)
            .as_fd()
    }

    /// The exit code, reaping the child if it has ended; `None` while it runs.
    pub(crate) fn try_reap(&self) -> std::io::Result<Option<i32>> {
        let mut code = lock(&self.exitcode);
        if code.is_none() {
            *code = match &self.status {
                None => mp_sys::pidfd::reap(self.pidfd.as_fd())?,
                Some(status) => {
                    let ready = mp_sys::poll::readable(
                        &[status.pipe.as_fd(), status.server.as_fd()],
                        Some(Duration::ZERO),
                    )?;
                    if !ready[0] && !ready[1] {
                        return Ok(None);
                    }
                    let mut buf = [0u8; 4];
                    // A server that died has written the code already, or never will.
                    if !ready[0] {
                        return Err(std::io::Error::other(
                            "the forkserver died; the exit code is lost",
                        ));
                    }
                    match mp_sys::fd::read(status.pipe.as_fd(), &mut buf)? {
                        4 => Some(i32::from_le_bytes(buf)),
                        _ => {
                            return Err(std::io::Error::other(
                                "the forkserver died; the exit code is lost",
                            ));
                        }
                    }
                }
            };
            if let (Some(_), Some(cgroup)) = (*code, &self.cgroup) {
                cgroup.finish();
            }
        }
        Ok(*code)
    }

    /// Waits up to `timeout` (`None`: forever) for the child to end.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> std::io::Result<Option<i32>> {
        if let Some(code) = self.try_reap()? {
            return Ok(Some(code));
        }
        mp_sys::poll::readable(&[self.exit_fd()], timeout)?;
        self.try_reap_ended()
    }

    /// Turns readable the moment the child ends: its pidfd, for every start method (a pidfd
    /// of a forkserver child works too; only its exit code has to come from the server).
    pub(crate) fn exit_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// As `try_reap`, once `exit_fd` was readable: waits the moment it takes the forkserver to
    /// report the exit code of a child that has ended.
    pub(crate) fn try_reap_ended(&self) -> std::io::Result<Option<i32>> {
        if let Some(status) = &self.status {
            let ended = mp_sys::poll::readable(&[self.pidfd.as_fd()], Some(Duration::ZERO))?[0];
            if ended {
                mp_sys::poll::readable(&[status.pipe.as_fd(), status.server.as_fd()], None)?;
            }
        }
        self.try_reap()
    }

    pub(crate) fn signal(&self, signal: i32) -> std::io::Result<()> {
        if lock(&self.exitcode).is_some() {
            return Ok(());
        }
        mp_sys::pidfd::send_signal(self.pidfd.as_fd(), signal)
    }

    pub(crate) fn is_ours(&self) -> bool {
        self.owner == mp_sys::process::getpid()
    }
}

/// What a start method needs to know about the child it creates.
pub(crate) struct ChildSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) identity: &'a [u32],
    pub(crate) daemon: bool,
    /// Its caps, made ready (see `limits`).
    pub(crate) limits: Option<&'a Armed>,
}

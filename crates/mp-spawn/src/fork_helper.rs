//! A fork helper: a forkserver whose server is a `fork()` of the calling process, taken once.
//!
//! The fork start method copies whichever thread calls `fork`: its stack (a spawned thread's
//! is 2 MiB by default) and the locks other threads hold at that moment. A fork-method pool
//! that forked replacement workers from its handler thread therefore made them unlike the
//! first workers. A fork helper is forked once, from the thread that creates it, and stays
//! single-threaded; every child it forks for us is a copy of that one snapshot, on that
//! thread's stack. It speaks the forkserver's protocol (`forkserver::serve_requests`): the
//! request is the bootstrap message (entry offset and arguments, valid since the helper runs
//! the same image), the answer a pid and a pidfd, and the exit code comes through a status
//! pipe, so its children are ordinary [`Process`](crate::Process) values.
//!
//! The helper lives as long as the [`ForkServer`] and every `Process` made through it; it
//! dies with its creator (it watches the creator's lifeline, as a daemon child does), and it
//! is reaped when the last of those values is dropped.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::child::{Child, ChildSpec};
use crate::error::ProcessError;
use crate::launch::Recipe;
use crate::registry::global;
use crate::sync::lock;
use crate::{forkserver, popen_fork};
use mp_sys::process::Forked;

/// How long a dropped helper may take to exit on its own before it is killed (it exits as
/// soon as it reads the end of its socket; this only guards against a stopped helper).
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A forkserver whose server is a fork of this process as it is now: every process started
/// through it is a fork of that snapshot, on the stack of the thread that called
/// [`start`](ForkServer::start), whichever thread starts the process later.
///
/// This is what a fork-method pool uses so that the workers that replace dead ones are like
/// the first ones: a `fork()` from a helper thread would give them that thread's small stack
/// and the locks other threads held at that moment.
///
/// The helper runs until this value, its clones and every [`Process`](crate::Process) made
/// through it are dropped; then it exits and is reaped (a process still running then keeps
/// running, but its exit code is lost). It dies with its creator, as a daemon child does. A dead helper
/// cannot be replaced, since the snapshot is gone: `start` then returns an I/O error.
///
/// ```
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// let server = mp_spawn::ForkServer::start()?; // a snapshot of this thread
/// let worker = std::thread::spawn(move || {
///     // Started from another thread, forked from the snapshot all the same.
///     let mut p = server.process(double, (21,));
///     p.start()?;
///     p.join()
/// });
/// assert_eq!(worker.join().unwrap()?, 42);
/// # Ok::<(), mp_spawn::ProcessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ForkServer {
    pub(crate) helper: Arc<Helper>,
}

/// The running helper; shared by the `ForkServer` and the processes started through it.
#[derive(Debug)]
pub(crate) struct Helper {
    /// The process that forked it: only that one may use it.
    owner: u32,
    pid: u32,
    pidfd: OwnedFd,
    /// One request at a time: a request and its answer share the socket.
    sock: Mutex<OwnedFd>,
}

impl ForkServer {
    /// Forks the helper from the calling thread. Call it from the thread whose state (stack
    /// size, locks not held) the children should have, before other threads take locks that
    /// the children will need.
    pub fn start() -> Result<ForkServer, ProcessError> {
        let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
        let identity = global().identity.clone();
        let spec = ChildSpec {
            name: "ForkHelper",
            identity: &identity,
            // A daemon: it watches the creator's lifeline and dies with it.
            daemon: true,
            limits: None,
        };
        let parent_pid = mp_sys::process::getpid();
        match popen_fork::fork_child(&spec)? {
            Forked::Child => {
                drop(ours);
                forkserver::serve_requests(theirs)
            }
            Forked::Parent(pid) => {
                drop(theirs);
                // Without a pidfd the helper could not be reaped: `ours` closes on return,
                // the helper exits, and the pid stays a zombie only until we exit.
                let pidfd = mp_sys::pidfd::open(pid)?;
                Ok(ForkServer {
                    helper: Arc::new(Helper {
                        owner: parent_pid,
                        pid,
                        pidfd,
                        sock: Mutex::new(ours),
                    }),
                })
            }
        }
    }

    /// The helper's process id.
    pub fn pid(&self) -> u32 {
        self.helper.pid
    }
}

impl Helper {
    /// Starts a child through the helper.
    pub(crate) fn start(
        &self,
        spec: &ChildSpec<'_>,
        recipe: &Recipe,
    ) -> Result<(Child, OwnedFd), ProcessError> {
        if self.owner != mp_sys::process::getpid() {
            return Err(ProcessError::NotOurChild);
        }
        forkserver::start_with(spec, recipe, |boot, fds| {
            let sock = lock(&self.sock);
            let (pid, pidfd) = forkserver::request(sock.as_fd(), boot, fds).map_err(|e| {
                if forkserver::is_disconnect(&e) {
                    // A snapshot cannot be taken again: the caller decides what to do.
                    std::io::Error::new(
                        e.kind(),
                        format!("the fork helper (pid {}) has died", self.pid),
                    )
                } else {
                    e
                }
            })?;
            Ok((pid, pidfd, self.pidfd.try_clone()?))
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // A forked copy of the creator holds a copy of this value: the helper is not its own.
        if self.owner != mp_sys::process::getpid() {
            return;
        }
        let sock = self.sock.get_mut().unwrap_or_else(|e| e.into_inner());
        // shutdown, not close: other children forked from the creator may hold copies of
        // this socket, and the helper must see the end of the stream all the same.
        let _ = mp_sys::socket::shutdown(sock.as_fd(), mp_sys::socket::Shutdown::Both);
        let exited = mp_sys::poll::readable(&[self.pidfd.as_fd()], Some(EXIT_GRACE))
            .map(|r| r[0])
            .unwrap_or(false);
        if !exited {
            let _ = mp_sys::pidfd::send_signal(self.pidfd.as_fd(), libc::SIGKILL);
            let _ = mp_sys::poll::readable(&[self.pidfd.as_fd()], None);
        }
        let _ = mp_sys::pidfd::reap(self.pidfd.as_fd());
    }
}

//! The fork start method: the child is a copy of the caller and runs the target in place.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::ProcessError;
use crate::forkserver;
use crate::process::{Child, ChildSpec, ParentLink, global};
use crate::sys::{self, Forked};
use crate::{bootstrap, resources};

/// Forks a child that runs `body` (which reports on the result channel it is given) and exits.
pub(crate) fn start(
    spec: &ChildSpec<'_>,
    body: impl FnOnce(BorrowedFd<'_>) -> i32,
) -> Result<(Child, OwnedFd), ProcessError> {
    let (ours, theirs) = sys::socketpair()?;
    let dev_null = sys::dev_null()?;
    bootstrap::install_panic_hook();
    crate::stack_guard::prepare_fork();
    // A forked child inherits the shared descriptors as they are; make sure they exist (the
    // resource tracker, say), so that it shares them as a spawned child would.
    drop(resources::collect());
    // Unflushed output would be printed twice, once by each process.
    let _ = std::io::stdout().flush();
    // mp's own locks are held across the fork (forkserver first, then the global state, the
    // order used everywhere), so that the child finds them in a consistent state.
    let server = forkserver::lock_for_fork();
    let mut g = global();
    g.lifeline_reader()?;
    let parent_pid = sys::getpid();
    // SAFETY: the child touches only mp's state, whose locks this thread holds, and then runs
    // the target; a target that needs locks held by other threads of a multi-threaded parent is
    // the documented hazard of the fork start method.
    match unsafe { sys::fork() }? {
        Forked::Child => {
            drop(ours);
            forkserver::forget_in_child(server);
            let mut lifeline = g.take_parent_lifeline();
            if spec.daemon {
                lifeline = lifeline.map(bootstrap::watch_parent);
            }
            let parent = ParentLink {
                name: g.name.to_string(),
                pid: parent_pid,
                lifeline,
            };
            g.become_child(
                spec.name.to_owned(),
                spec.identity.to_vec(),
                spec.daemon,
                parent,
            );
            drop(g);
            let _ = sys::stdin_to(dev_null);
            let code = body(theirs.as_fd());
            bootstrap::finish(code)
        }
        Forked::Parent(pid) => {
            drop(g);
            drop(server);
            drop(theirs);
            let pidfd = sys::pidfd_open(pid)?;
            Ok((
                Child::new(pid, spec.name.to_owned(), spec.daemon, pidfd, None),
                ours,
            ))
        }
    }
}

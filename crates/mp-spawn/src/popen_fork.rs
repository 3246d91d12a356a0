//! The fork start method: the child is a copy of the caller and runs the target in place.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::child::{Child, ChildSpec};
use crate::context::{StartMethod, force_start_method};
use crate::error::ProcessError;
use crate::limits::Armed;
use crate::registry::{ParentLink, global};
use crate::{atfork, bootstrap, forkserver, resources};
use mp_sys::fork::{Held, Rank};
use mp_sys::process::Forked;

/// Forks a child that runs `body` (which reports on the result channel it is given) and exits.
pub(crate) fn start(
    spec: &ChildSpec<'_>,
    body: impl FnOnce(BorrowedFd<'_>) -> i32,
) -> Result<(Child, OwnedFd), ProcessError> {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    match fork_child(spec)? {
        Forked::Child => {
            drop(ours);
            // The caps first: raw system calls on values prepared before the fork.
            let code = match spec.limits.map(Armed::apply_forked) {
                Some(Err(e)) => bootstrap::report_failure(
                    theirs.as_fd(),
                    &format!("cannot apply its limits: {e}"),
                ),
                _ => body(theirs.as_fd()),
            };
            bootstrap::finish(code)
        }
        Forked::Parent(pid) => {
            drop(theirs);
            let pidfd = mp_sys::pidfd::open(pid)?;
            Ok((
                Child::new(pid, spec.name.to_owned(), spec.daemon, pidfd, None),
                ours,
            ))
        }
    }
}

/// Forks a child of this process, as `spec` describes it. Returns `Forked::Child` in the
/// child, whose mp state is then that of a child (its name, its parent, the death watch of a
/// daemon, stdin on /dev/null, start method fork), and the pid in the parent.
///
/// Every lock that mp's child path takes is held across the `fork()` call, in the order of
/// `mp_sys::fork`'s ranks, so the child never finds one held by a thread it does not have.
pub(crate) fn fork_child(spec: &ChildSpec<'_>) -> Result<Forked, ProcessError> {
    atfork::warn_if_threaded();
    let dev_null = mp_sys::fd::dev_null()?;
    bootstrap::install_panic_hook();
    // The costly part of the child's stack-overflow guard, done once here for every child.
    crate::stack_guard::prepare_fork();
    // Caches a child may use are filled here, once for every child: the executable's identity
    // (its error is the parent's to report), and the shared descriptors (the resource tracker,
    // say), which a forked child inherits as they are.
    crate::identity::file()?;
    let _ = crate::popen_spawn::refuse_foreign_exe(StartMethod::Spawn);
    drop(resources::collect());
    // mp-spawn's own locks at their ranks, between std's and the other crates' (see
    // `mp_sys::fork`): the child gets their guards, typed.
    let mut held = Held::take();
    let server = held.lock(Rank::SPAWN_FORKSERVER, forkserver::lock_for_fork);
    let mut g = held.lock(Rank::SPAWN_PROCESS_STATE, global);
    g.lifeline_reader()?;
    let shared = held.lock(Rank::SPAWN_RESOURCES, resources::lock_for_fork);
    held.take_rest();
    let parent_pid = mp_sys::process::getpid();
    // SAFETY: the child touches only state whose locks this thread holds across the fork (mp's
    // own, std's stdout and stderr, and those registered with `mp_sys::fork`); a target that needs
    // locks held by other threads of a multi-threaded parent is the documented hazard of the
    // fork start method (and the reason for `atfork::warn_if_threaded`).
    let forked = unsafe { mp_sys::process::fork() }?;
    if let Forked::Child = forked {
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
        force_start_method(StartMethod::Fork);
        bootstrap::note_forked();
        let _ = mp_sys::fd::stdin_to(dev_null);
    }
    drop(shared);
    drop(g);
    drop(held);
    if let Forked::Child = forked {
        // Once the locks are released: a hook may use mp-spawn's state.
        resources::child_started();
    }
    Ok(forked)
}

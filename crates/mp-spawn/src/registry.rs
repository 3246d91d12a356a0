//! The registry of this process: its own name, identity and parent, its lifeline, and the
//! children it started; `finish_children` and the at-exit hook that joins them.

use std::borrow::Cow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::child::Child;
use crate::sync::lock;
use mp_sys::fork::ForkOnce;

/// What this process knows about itself and its relatives.
pub(crate) struct Global {
    pub(crate) name: Cow<'static, str>,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    counter: u32,
    pub(crate) parent: Option<ParentLink>,
    /// The pipe whose write end only this process holds: children watch its read end to learn
    /// that this process has died, however it died.
    lifeline: Option<(OwnedFd, OwnedFd)>,
    pub(crate) children: Vec<Arc<Child>>,
    exit_hook: bool,
}

pub(crate) struct ParentLink {
    pub(crate) name: String,
    pub(crate) pid: u32,
    pub(crate) lifeline: Option<OwnedFd>,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    name: Cow::Borrowed("MainProcess"),
    identity: Vec::new(),
    daemon: false,
    counter: 0,
    parent: None,
    lifeline: None,
    children: Vec::new(),
    exit_hook: false,
});

pub(crate) fn global() -> MutexGuard<'static, Global> {
    lock(&GLOBAL)
}

/// This process's name if it is a child, for the panic hook; `None` in the main process, or
/// when the state is locked (never wait for a lock while panicking).
pub(crate) fn child_name_for_panic() -> Option<String> {
    let g = match GLOBAL.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    g.parent.as_ref().map(|_| g.name.to_string())
}

impl Global {
    /// The read end of this process's lifeline, created on first use.
    pub(crate) fn lifeline_reader(&mut self) -> std::io::Result<BorrowedFd<'_>> {
        if self.lifeline.is_none() {
            self.lifeline = Some(mp_sys::fd::pipe()?);
        }
        Ok(self
            .lifeline
            .as_ref()
            .map(|(r, _)| r.as_fd())
            .expect("created above"))
    }

    /// Becomes the state of a new child (called in the child, before its target runs).
    pub(crate) fn become_child(
        &mut self,
        name: String,
        identity: Vec<u32>,
        daemon: bool,
        parent: ParentLink,
    ) {
        // What `ps` and `top` show for this child (Python users get it from setproctitle).
        mp_sys::process::set_name(&name);
        self.name = Cow::Owned(name);
        self.identity = identity;
        self.daemon = daemon;
        self.counter = 0;
        self.parent = Some(parent);
        self.lifeline = None;
        self.children.clear();
    }

    /// In a forked child: the parent's lifeline becomes ours to watch; its write end is closed.
    pub(crate) fn take_parent_lifeline(&mut self) -> Option<OwnedFd> {
        self.lifeline.take().map(|(r, _w)| r)
    }

    /// The identity of the next child this process creates (its counter, counted up).
    pub(crate) fn next_child_identity(&mut self) -> Vec<u32> {
        self.counter += 1;
        let mut identity = self.identity.clone();
        identity.push(self.counter);
        identity
    }

    /// Tracks a started child, and installs the at-exit hook that joins it with the first.
    pub(crate) fn register(&mut self, child: Arc<Child>) {
        self.children.push(child);
        if !self.exit_hook {
            self.exit_hook = true;
            mp_sys::process::atexit(at_exit);
        }
    }

    pub(crate) fn reap_finished(&mut self) {
        self.children
            .retain(|c| !c.is_ours() || matches!(c.try_reap(), Ok(None)));
    }
}

/// Runs at the exit of every process that started children, as Python's `_exit_function`:
/// daemon children are terminated, the others joined.
pub(crate) fn finish_children() {
    let children = std::mem::take(&mut global().children);
    for child in children.iter().filter(|c| c.daemon && c.is_ours()) {
        let _ = child.signal(libc::SIGTERM);
    }
    for child in children.iter().filter(|c| c.is_ours()) {
        let _ = child.wait(None);
    }
    if let Some(shutdown) = SERVER_SHUTDOWN.get() {
        shutdown();
    }
}

/// How `finish_children` retires this process's forkserver: set by the forkserver when it
/// first launches one (a callback, so that the registry stays below the start methods). A
/// `ForkOnce`: a forked child that launches its own forkserver sets it.
static SERVER_SHUTDOWN: ForkOnce<fn()> = ForkOnce::new();

/// Registers the forkserver's shutdown with `finish_children` (only the first call counts;
/// there is one forkserver module).
pub(crate) fn on_finish_shutdown_server(shutdown: fn()) {
    let _ = SERVER_SHUTDOWN.set(shutdown);
}

extern "C" fn at_exit() {
    finish_children();
}

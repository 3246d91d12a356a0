//! Descriptors that a library shares with every child it starts, such as mp-shm's resource
//! tracker connection (CPython passes its tracker's fd to spawned children the same way).
//! Forked children inherit them anyway; spawn and forkserver children receive them in their
//! bootstrap message, and pass them on to their own children.
//!
//! A library declares what it shares statically, in [`SHARED`], so that the very first child
//! gets it whatever ran before `main`:
//!
//! ```
//! use std::os::fd::BorrowedFd;
//! use mp_spawn::resources::{SHARED, Shared};
//!
//! fn my_daemon_connection() -> Option<BorrowedFd<'static>> {
//!     None // e.g. start a helper process (see `mp_spawn::helper`) and return its channel
//! }
//!
//! #[linkme::distributed_slice(SHARED)]
//! static MY_DAEMON: Shared = Shared { key: "my-crate/daemon", provide: my_daemon_connection };
//!
//! // In a spawn child: the descriptor its parent provided, if any.
//! assert!(mp_spawn::resources::inherited("my-crate/daemon").is_none());
//! ```

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

/// Gives the descriptor to share, if there is one (it may start a helper process first).
pub type Provider = fn() -> Option<BorrowedFd<'static>>;

/// A descriptor to send, under `key`, to every spawn and forkserver child (see the module
/// docs). A descriptor this process received under `key` is passed on instead of calling
/// `provide`.
#[derive(Debug)]
pub struct Shared {
    /// Names the descriptor; by convention `"<crate>/<what>"`.
    pub key: &'static str,
    /// Called (outside any lock of mp-spawn) when a child is started.
    pub provide: Provider,
}

/// Every [`Shared`] descriptor of the program, declared with
/// `#[linkme::distributed_slice(SHARED)]`.
#[linkme::distributed_slice]
pub static SHARED: [Shared];

/// Runs in every new child process, before its target: in a fork child right after the
/// fork (and in a fork helper), in a spawn or forkserver child once the shared descriptors
/// ([`inherited`]) are in place; the child's name is set (`current_process()`). For a library's
/// per-child setup, such as mp-log's forwarding of the child's `tracing` events to its parent.
/// A hook must not block, and must not assume other threads of the parent exist (a forked
/// child has one thread). A process forked by a fork helper (mp-pool's fork-method workers)
/// inherits the helper's state, where the hooks ran too, and runs them again: make them
/// idempotent.
///
/// Not for a cache that is wrong in any forked child (a pid, a per-process token): a process
/// forked by other code runs no hook. That is a child action of `mp_sys::fork` (`AtFork`),
/// whose module docs say which mechanism a static needs.
///
/// ```
/// #[linkme::distributed_slice(mp_spawn::resources::CHILD_START)]
/// static SETUP: fn() = || {
///     // e.g. look at `mp_spawn::resources::inherited("my-crate/daemon")`
/// };
/// ```
#[linkme::distributed_slice]
pub static CHILD_START: [fn()];

/// Runs the [`CHILD_START`] hooks (in a new child, before its target).
pub(crate) fn child_started() {
    for hook in CHILD_START {
        hook();
    }
}

/// What this process received from its parent: open for the life of the process (leaked).
static RECEIVED: Mutex<BTreeMap<String, BorrowedFd<'static>>> = Mutex::new(BTreeMap::new());

fn received() -> std::sync::MutexGuard<'static, BTreeMap<String, BorrowedFd<'static>>> {
    RECEIVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registry's lock, held across a fork at rank `SPAWN_RESOURCES` (see `mp_sys::fork`).
pub(crate) fn lock_for_fork() -> std::sync::MutexGuard<'static, impl Sized> {
    received()
}

/// The descriptor the parent shared under `key`, if this process is a spawn or forkserver
/// child and it did. It stays open for the life of the process.
pub fn inherited(key: &str) -> Option<BorrowedFd<'static>> {
    received().get(key).copied()
}

/// The keys and descriptors to send to a new child.
pub(crate) fn collect() -> (Vec<String>, Vec<BorrowedFd<'static>>) {
    let received = received().clone();
    // Providers run without the registry locked: they may take a while.
    SHARED
        .iter()
        .filter_map(|shared| {
            let fd = match received.get(shared.key) {
                Some(fd) => *fd,
                None => (shared.provide)()?,
            };
            Some((shared.key.to_owned(), fd))
        })
        .unzip()
}

/// In a child: keeps the descriptors its parent shared, for the life of the process.
pub(crate) fn receive(keys: Vec<String>, fds: Vec<OwnedFd>) {
    let mut map = received();
    for (key, fd) in keys.into_iter().zip(fds) {
        let kept: &'static OwnedFd = Box::leak(Box::new(fd));
        map.insert(key, kept.as_fd());
    }
}

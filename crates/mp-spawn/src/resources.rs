//! Descriptors that a library shares with every child it starts, such as mp-shm's resource
//! tracker connection (CPython passes its tracker's fd to spawned children the same way).
//! Forked children inherit them anyway; spawn and forkserver children receive them in their
//! bootstrap message, and pass them on to their own children.

use std::collections::BTreeMap;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// Gives the descriptor to share, if there is one (it may start a helper process first).
pub type Provider = fn() -> Option<BorrowedFd<'static>>;

enum Entry {
    /// Received from the parent; open for the life of the process.
    Received(RawFd),
    Provider(Provider),
}

static SHARED: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());

fn shared() -> std::sync::MutexGuard<'static, BTreeMap<String, Entry>> {
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registry's lock, held across a fork (see `atfork`).
pub(crate) fn lock_for_fork() -> std::sync::MutexGuard<'static, impl Sized> {
    shared()
}

/// Asks that `provider`'s descriptor be sent, under `key`, to every spawn and forkserver child
/// started from now on. A descriptor this process received under `key` is passed on until
/// then.
pub fn share_with_children(key: &str, provider: Provider) {
    shared().insert(key.to_owned(), Entry::Provider(provider));
}

/// The descriptor the parent shared under `key`, if this process is a spawn or forkserver
/// child and it did. It stays open for the life of the process.
pub fn inherited(key: &str) -> Option<BorrowedFd<'static>> {
    match shared().get(key) {
        // SAFETY: received descriptors are never closed (see `receive`).
        Some(Entry::Received(fd)) => Some(unsafe { BorrowedFd::borrow_raw(*fd) }),
        _ => None,
    }
}

/// The keys and descriptors to send to a new child.
pub(crate) fn collect() -> (Vec<String>, Vec<BorrowedFd<'static>>) {
    let providers: Vec<(String, Option<BorrowedFd<'static>>, Option<Provider>)> = shared()
        .iter()
        .map(|(k, e)| match e {
            // SAFETY: received descriptors are never closed.
            Entry::Received(fd) => (
                k.clone(),
                Some(unsafe { BorrowedFd::borrow_raw(*fd) }),
                None,
            ),
            Entry::Provider(p) => (k.clone(), None, Some(*p)),
        })
        .collect();
    // Providers run without the registry locked: they may take a while, or register.
    providers
        .into_iter()
        .filter_map(|(k, fd, p)| Some((k, fd.or_else(|| p.and_then(|p| p()))?)))
        .unzip()
}

/// In a child: keeps the descriptors its parent shared (leaked: they live as long as we do).
pub(crate) fn receive(keys: Vec<String>, fds: Vec<OwnedFd>) {
    let mut map = shared();
    for (key, fd) in keys.into_iter().zip(fds) {
        map.insert(key, Entry::Received(fd.into_raw_fd()));
    }
}

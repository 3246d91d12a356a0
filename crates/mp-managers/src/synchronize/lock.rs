//! `Manager::lock` and `Manager::rlock`: Python's `threading.Lock` and `RLock`, held by the
//! server. A caller is one thread of one client process (its own connection), as in Python.

use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Cell;
use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::{BaseProxy, Managed, SharedProxy};
use crate::servant::{Caller, SharedServant};

/// A call on a lock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LockCall {
    Acquire {
        block: bool,
        timeout: Option<Duration>,
    },
    Release,
    Locked,
    IsOwned,
}

/// Who holds a lock, how many times.
#[derive(Default)]
pub(crate) struct Held {
    owner: Option<u64>,
    depth: u32,
}

/// The server's side of a [`Lock`] (`RECURSIVE = false`) or an [`RLock`].
#[derive(Default)]
pub(crate) struct LockServant<const RECURSIVE: bool>(Cell<Held>);

impl<const RECURSIVE: bool> SharedServant for LockServant<RECURSIVE> {
    type Args = ();
    type Call = LockCall;
    type Reply = bool;

    fn create((): ()) -> Self {
        LockServant::default()
    }

    fn call(&self, call: LockCall, caller: &Caller<'_>) -> Result<bool, RemoteError> {
        match call {
            LockCall::Acquire { block, timeout } => {
                let timeout = if block { timeout } else { Some(Duration::ZERO) };
                let got = self.0.wait_for(caller, timeout, |held| match held.owner {
                    None => {
                        *held = Held {
                            owner: Some(caller.id),
                            depth: 1,
                        };
                        Some(())
                    }
                    Some(owner) if RECURSIVE && owner == caller.id => {
                        held.depth += 1;
                        Some(())
                    }
                    Some(_) => None,
                });
                Ok(got.is_some())
            }
            LockCall::Release => {
                let mut held = self.0.lock();
                match held.owner {
                    None => return Err(RemoteError::Runtime("release unlocked lock".to_owned())),
                    // Python's RLock: only its owner releases it (a Lock: anyone).
                    Some(owner) if RECURSIVE && owner != caller.id => {
                        return Err(RemoteError::Runtime(
                            "cannot release un-acquired lock".to_owned(),
                        ));
                    }
                    Some(_) => {}
                }
                held.depth -= 1;
                if held.depth == 0 {
                    held.owner = None;
                    drop(held);
                    self.0.notify();
                }
                Ok(true)
            }
            LockCall::Locked => Ok(self.0.lock().owner.is_some()),
            LockCall::IsOwned => Ok(self.0.lock().owner == Some(caller.id)),
        }
    }

    fn caller_gone(&self, caller: u64) {
        let mut held = self.0.lock();
        if held.owner == Some(caller) {
            *held = Held::default();
            drop(held);
            self.0.notify();
        }
    }
}

/// A lock held by a manager's server (Python's `manager.Lock()`): any process that has a
/// proxy may take it. Released when its holder's process (or thread) ends, which Python's
/// is not.
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let lock = manager.lock()?;
/// {
///     let _guard = lock.lock()?;
///     assert!(lock.locked()?);
///     assert!(!lock.acquire(false, None)?);
/// }
/// assert!(!lock.locked()?);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Lock {
    proxy: SharedProxy<LockServant<false>>,
}

/// A reentrant lock held by a manager's server (Python's `manager.RLock()`): its owner (a
/// thread of a process) may take it again, and only its owner releases it.
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let rlock = manager.rlock()?;
/// let outer = rlock.lock()?;
/// let inner = rlock.lock()?;
/// assert!(rlock.is_owned()?);
/// drop((inner, outer));
/// assert!(!rlock.locked()?);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct RLock {
    proxy: SharedProxy<LockServant<true>>,
}

/// Holds a [`Lock`] or an [`RLock`] until dropped. Not `Send`, as mp-shm's guards: the lock
/// is the calling thread's (its own connection), and an `RLock` refuses a release from
/// another thread, so a guard dropped there would leave the lock held.
///
/// ```compile_fail
/// let manager = mp_managers::Manager::new().unwrap();
/// let rlock = manager.rlock().unwrap();
/// let guard = rlock.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // a guard cannot move to another thread
/// });
/// ```
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    base: &'a BaseProxy,
    release: fn(&BaseProxy),
    _not_send: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    /// A guard that calls `release` on `base` when dropped.
    pub(crate) fn new(base: &'a BaseProxy, release: fn(&BaseProxy)) -> LockGuard<'a> {
        LockGuard {
            base,
            release,
            _not_send: PhantomData,
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        (self.release)(self.base);
    }
}

fn release(base: &BaseProxy) {
    // A server that is gone holds no lock.
    let _ = base.call::<_, bool>(&LockCall::Release);
}

macro_rules! lock_methods {
    ($name:ident) => {
        impl $name {
            /// Takes the lock (Python's `acquire(block, timeout)`): `false` if `block` is
            /// false and it is taken, or if `timeout` passed first.
            pub fn acquire(
                &self,
                block: bool,
                timeout: Option<Duration>,
            ) -> Result<bool, ManagerError> {
                self.proxy.call(LockCall::Acquire { block, timeout })
            }

            /// Releases the lock (Python's `release()`). Not taken (or, for an `RLock`, not
            /// taken by this thread): [`RemoteError::Runtime`].
            pub fn release(&self) -> Result<(), ManagerError> {
                self.proxy.call(LockCall::Release).map(drop)
            }

            /// Takes the lock, waiting as long as it takes, until the guard is dropped
            /// (Python's `with lock:`).
            pub fn lock(&self) -> Result<LockGuard<'_>, ManagerError> {
                if !self.acquire(true, None)? {
                    return unexpected();
                }
                Ok(LockGuard::new(self.proxy.base(), release))
            }

            /// Whether anyone holds the lock now.
            pub fn locked(&self) -> Result<bool, ManagerError> {
                self.proxy.call(LockCall::Locked)
            }

            /// Whether this thread of this process holds the lock.
            pub fn is_owned(&self) -> Result<bool, ManagerError> {
                self.proxy.call(LockCall::IsOwned)
            }
        }
    };
}

lock_methods!(Lock);
lock_methods!(RLock);
proxy_wrapper!(Lock<> where);
proxy_wrapper!(RLock<> where);

impl Manager {
    /// A new lock held by the server (Python's `manager.Lock()`).
    pub fn lock(&self) -> Result<Lock, ManagerError> {
        Ok(Lock {
            proxy: SharedProxy::new(self.serve_shared::<LockServant<false>>(())?),
        })
    }

    /// A new reentrant lock held by the server (Python's `manager.RLock()`).
    pub fn rlock(&self) -> Result<RLock, ManagerError> {
        Ok(RLock {
            proxy: SharedProxy::new(self.serve_shared::<LockServant<true>>(())?),
        })
    }
}

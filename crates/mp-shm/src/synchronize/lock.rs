//! `Lock`: a plain robust lock.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::mutex::{MutexBlock, guard};
use crate::error::{LockResult, SyncError};

/// A process-shared lock (Python's `multiprocessing.Lock`), robust to the death of its holder.
///
/// Clones share the lock; so do copies sent to other processes (as an argument, or through a
/// `Queue` or `Connection`).
///
/// ```
/// use mp_shm::Lock;
///
/// let lock = Lock::new()?;
/// assert!(lock.acquire(true, None)?);
/// assert!(!lock.acquire(false, None)?); // held: a non-blocking acquire fails
/// lock.release()?;
/// assert!(lock.release().is_err()); // releasing an unlocked lock is an error
/// {
///     let _guard = lock.lock().unwrap(); // or as a guard
///     assert!(lock.locked());
/// }
/// assert!(!lock.locked());
/// # Ok::<(), mp_shm::SyncError>(())
/// ```
///
/// **Differences from Python.** Only the holding thread may release (a robust lock must know its
/// holder; Python lets any process release). A blocking `acquire` by the thread that already
/// holds it returns [`SyncError::Reentrant`] instead of deadlocking.
#[derive(Clone, Debug)]
pub struct Lock {
    pub(super) inner: Arc<MutexBlock>,
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> io::Result<Lock> {
        Ok(Lock {
            inner: Arc::new(MutexBlock::new(0)?),
        })
    }

    /// Python's `acquire(block, timeout)`: `Ok(true)` when taken, `Ok(false)` when `block` is
    /// false and the lock is busy, or the timeout passed. A negative timeout cannot be written
    /// (`Duration`); `Some(Duration::ZERO)` is Python's `timeout <= 0`.
    ///
    /// `Err(SyncError::OwnerDied)` means the lock **is** held now, and a previous holder died
    /// holding it (see [`Lock::clear_owner_died`]).
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.inner.acquire_once(block, timeout)
    }

    /// Releases the lock. [`SyncError::NotHeld`] if this thread does not hold it.
    #[inline]
    pub fn release(&self) -> Result<(), SyncError> {
        self.inner.release_once()
    }

    /// Takes the lock and returns a guard that releases it when dropped (Python's `with lock:`).
    #[inline]
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        guard(self.acquire(true, None), || LockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether some thread, in any process, holds the lock (Python 3.14's `locked()`).
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }

    /// Whether a holder died and the mark has not been cleared since.
    pub fn is_owner_died(&self) -> bool {
        self.inner.owner_died()
    }

    /// Clears the owner-died mark, once the guarded data is repaired.
    pub fn clear_owner_died(&self) {
        self.inner.clear_owner_died()
    }
}

impl Serialize for Lock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lock {
            inner: Arc::new(MutexBlock::deserialize_sized(d, 0)?),
        })
    }
}

/// Holds a [`Lock`] until dropped. Not `Send`: the thread that took the lock releases it.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

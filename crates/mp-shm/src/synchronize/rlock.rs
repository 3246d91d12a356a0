//! `RLock`: a re-entrant robust lock.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::mutex::{MutexBlock, guard};
use crate::error::{LockResult, SyncError};

/// A process-shared re-entrant lock (Python's `multiprocessing.RLock`): the holding thread may
/// take it again, and must release it as many times. Robust to the death of its holder.
///
/// ```
/// use mp_shm::RLock;
///
/// let lock = RLock::new()?;
/// assert!(lock.acquire(true, None)?);
/// assert!(lock.acquire(true, None)?);
/// lock.release()?;
/// assert!(lock.locked());
/// lock.release()?;
/// assert!(!lock.locked());
/// assert!(lock.release().is_err()); // not held
/// # Ok::<(), mp_shm::SyncError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RLock {
    pub(super) inner: Arc<MutexBlock>,
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    pub fn new() -> io::Result<RLock> {
        Ok(RLock {
            inner: Arc::new(MutexBlock::new(0)?),
        })
    }

    pub(crate) fn from_block(inner: Arc<MutexBlock>) -> RLock {
        RLock { inner }
    }

    /// As [`Lock::acquire`](crate::Lock::acquire); the holder's acquire succeeds at once and
    /// counts.
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.inner.acquire_counted(block, timeout)
    }

    /// Undoes one acquire. [`SyncError::NotHeld`] when this thread is not the holder (Python:
    /// `AssertionError('attempt to release recursive lock not owned by thread')`).
    pub fn release(&self) -> Result<(), SyncError> {
        self.inner.release_counted()
    }

    /// Takes the lock and returns a guard that releases it when dropped.
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        guard(self.acquire(true, None), || RLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether some thread, in any process, holds the lock.
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.inner.held_by_me()
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

impl Serialize for RLock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RLock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RLock {
            inner: Arc::new(MutexBlock::deserialize_sized(d, 0)?),
        })
    }
}

/// Holds one level of an [`RLock`] until dropped.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

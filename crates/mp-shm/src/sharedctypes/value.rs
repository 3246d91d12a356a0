//! [`Value`]: one `T` in shared memory, with its lock.

use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytemuck::Pod;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{LockResult, SyncError};
use crate::heap::{Kind, Tagged};
use crate::synchronize::RLock;

use super::{Guarded, check_align};

/// One `T` in shared memory, with a lock (Python's `multiprocessing.Value`).
///
/// A child's writes are seen by the parent, under every start method: clones, and copies sent
/// to other processes, share the memory.
///
/// ```
/// use mp_shm::Value;
///
/// let v = Value::new(0i32)?;
/// v.update(|x| *x += 1)?; // one read-modify-write under the lock
/// *v.lock().unwrap() += 1; // or through a guard
/// assert_eq!(v.value()?, 2);
/// v.set_value(7)?;
/// assert_eq!(v.value()?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `value()` and `set_value()` each take the lock once, as Python's `.value`, so
/// `v.set_value(v.value()? + 1)` races with other writers; [`Value::update`] does not.
pub struct Value<T> {
    shared: Arc<Guarded>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            shared: self.shared.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value").finish_non_exhaustive()
    }
}

impl<T: Pod> Value<T> {
    /// A shared value, initialised to `value`.
    pub fn new(value: T) -> io::Result<Value<T>> {
        check_align::<T>()?;
        let shared = Arc::new(Guarded::new(std::mem::size_of::<T>())?);
        // SAFETY: the block has room for a T at an aligned offset, and nobody else sees it yet.
        unsafe { shared.data::<T>().write_volatile(value) };
        Ok(Value {
            shared,
            _t: PhantomData,
        })
    }

    /// A copy of the value, read under the lock.
    pub fn value(&self) -> Result<T, SyncError> {
        // SAFETY: the lock is held and no guard is live, so no one writes the T meanwhile.
        self.shared
            .exclusive(|| unsafe { self.shared.data::<T>().read_volatile() })
    }

    /// Stores `value` under the lock.
    pub fn set_value(&self, value: T) -> Result<(), SyncError> {
        // SAFETY: as in `value`.
        self.shared
            .exclusive(|| unsafe { self.shared.data::<T>().write_volatile(value) })
    }

    /// Runs `f` on the value under the lock: the guarded read-modify-write.
    #[inline]
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, SyncError> {
        // SAFETY: under the lock with no guard live (checked by `exclusive`), this is the only
        // reference to the T, and it ends with the closure.
        self.shared
            .exclusive(|| f(unsafe { &mut *self.shared.data::<T>() }))
    }

    /// Takes the lock and returns a guard that derefs to the value.
    /// [`SyncError::Reentrant`] if this thread already has a guard of it.
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.shared.guard(|| ValueGuard {
            value: self,
            _not_send: PhantomData,
        })
    }

    /// The lock (Python's `get_lock()`), re-entrant: `value()` works while it is held.
    ///
    /// It cannot end a guard early: while a [`ValueGuard`] (or an `update`) holds its level,
    /// releasing that level through this lock, a clone of it, a `Condition` over it, or a copy
    /// received from elsewhere fails with [`SyncError::GuardHeld`], so the guard's `&mut`
    /// stays the only access to the value.
    ///
    /// ```
    /// use mp_shm::{SyncError, Value};
    ///
    /// let v = Value::new(1u32)?;
    /// {
    ///     let _held = v.get_lock().lock().unwrap(); // Python: `with v.get_lock():`
    ///     v.set_value(v.value()? + 1)?; // one atomic step for other processes
    /// }
    /// let mut guard = v.lock().unwrap();
    /// assert!(matches!(v.get_lock().release(), Err(SyncError::GuardHeld)));
    /// *guard += 1;
    /// drop(guard);
    /// assert_eq!(v.value()?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_lock(&self) -> &RLock {
        &self.shared.lock
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shared.block.serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        check_align::<T>().map_err(custom_error)?;
        let fd = Tagged::deserialize(d)?
            .fd(Kind::Mutex)
            .map_err(custom_error)?;
        let shared = Guarded::attach(fd, std::mem::size_of::<T>()).map_err(custom_error)?;
        Ok(Value {
            shared: Arc::new(shared),
            _t: PhantomData,
        })
    }
}

/// The lock of a [`Value`], and access to it, until dropped. Not `Send`: the thread that
/// took the lock releases it.
///
/// ```compile_fail
/// let v = mp_shm::Value::new(0u8).unwrap();
/// let guard = v.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // a guard cannot move to another thread
/// });
/// ```
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    value: &'a Value<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock is held and this is the only guard (checked in `guard`), so no one
        // else reads or writes the T while the reference lives.
        unsafe { &*self.value.shared.data::<T>() }
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the reference unique in this process too.
        unsafe { &mut *self.value.shared.data::<T>() }
    }
}

impl<T: Pod> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        self.value.shared.unguard();
    }
}

//! [`Array`]: a fixed-length array of `T` in shared memory, with its lock.

use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytemuck::Pod;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ArrayError, IndexError, LockResult, SyncError};
use crate::heap::Kind;
use crate::synchronize::RLock;

use super::{Guarded, array_parts, bytes_for, check_align};

/// A fixed-length array of `T` in shared memory, with a lock (Python's `multiprocessing.Array`).
///
/// ```
/// use mp_shm::Array;
///
/// let a = Array::from_slice(&[1i32, 2, 3])?;
/// a.set(0, 10)?;
/// assert_eq!(a.get(0)?, 10);
/// assert!(a.get(3).is_err()); // out of range: a typed error
/// a.lock().unwrap().iter_mut().for_each(|x| *x *= 2);
/// assert_eq!(a.to_vec()?, [20, 4, 6]);
/// let zeros = Array::<f64>::zeroed(4)?;
/// assert_eq!(zeros.to_vec()?, [0.0; 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T> {
    shared: Arc<Guarded>,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            shared: self.shared.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Array<T> {
    /// A zero-filled array of `len` elements (Python: `Array('i', 10)`).
    pub fn zeroed(len: usize) -> io::Result<Array<T>> {
        check_align::<T>()?;
        Ok(Array {
            shared: Arc::new(Guarded::new(bytes_for::<T>(len)?)?),
            len,
            _t: PhantomData,
        })
    }

    /// An array holding a copy of `items` (Python: `Array('i', range(50))`).
    pub fn from_slice(items: &[T]) -> io::Result<Array<T>> {
        let array = Array::zeroed(items.len())?;
        // SAFETY: the block has room for `len` Ts at an aligned offset; nobody else sees it yet.
        unsafe {
            std::ptr::copy_nonoverlapping(items.as_ptr(), array.shared.data::<T>(), items.len())
        };
        Ok(array)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of element `index`, read under the lock.
    pub fn get(&self, index: usize) -> Result<T, ArrayError> {
        IndexError::check(index, self.len)?;
        // SAFETY: in range (checked), under the lock, no guard live.
        Ok(self
            .shared
            .exclusive(|| unsafe { self.shared.data::<T>().add(index).read_volatile() })?)
    }

    /// Stores `value` at `index` under the lock.
    pub fn set(&self, index: usize, value: T) -> Result<(), ArrayError> {
        IndexError::check(index, self.len)?;
        // SAFETY: as in `get`.
        Ok(self
            .shared
            .exclusive(|| unsafe { self.shared.data::<T>().add(index).write_volatile(value) })?)
    }

    /// A copy of the whole array, taken under the lock.
    pub fn to_vec(&self) -> Result<Vec<T>, SyncError> {
        let mut out = Vec::with_capacity(self.len);
        // SAFETY: `len` elements are in the block; under the lock, no guard live; `out` has
        // room for `len` and they are initialised by the copy.
        self.shared.exclusive(|| unsafe {
            std::ptr::copy_nonoverlapping(self.shared.data::<T>(), out.as_mut_ptr(), self.len);
            out.set_len(self.len);
        })?;
        Ok(out)
    }

    /// Takes the lock and returns a guard that derefs to the elements as a slice.
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.shared.guard(|| ArrayGuard {
            array: self,
            _not_send: PhantomData,
        })
    }

    /// The lock (Python's `get_lock()`); as [`Value::get_lock`](crate::Value::get_lock), it
    /// cannot release the level an [`ArrayGuard`] holds ([`SyncError::GuardHeld`]).
    pub fn get_lock(&self) -> &RLock {
        &self.shared.lock
    }
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&*self.shared.block, self.len as u64).serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (fd, len, bytes) = array_parts::<T, D>(d, Kind::Mutex)?;
        let shared = Guarded::attach(fd, bytes).map_err(custom_error)?;
        Ok(Array {
            shared: Arc::new(shared),
            len,
            _t: PhantomData,
        })
    }
}

/// The lock of an [`Array`], and access to its elements, until dropped.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    array: &'a Array<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` elements in the block; the lock is held and this is the only guard.
        unsafe { std::slice::from_raw_parts(self.array.shared.data::<T>(), self.array.len) }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes it unique in this process too.
        unsafe { std::slice::from_raw_parts_mut(self.array.shared.data::<T>(), self.array.len) }
    }
}

impl<T: Pod> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        self.array.shared.unguard();
    }
}

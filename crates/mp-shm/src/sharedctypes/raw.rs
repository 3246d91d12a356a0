//! [`RawValue`] and [`RawArray`]: shared memory without a lock, copied through atomics.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;

use bytemuck::Pod;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::atomic_copy;
use crate::error::IndexError;
use crate::heap::{Block, Kind};

use super::{array_parts, bytes_for, check_align};

/// One `T` in shared memory without a lock (Python's `RawValue`, or `Value(..., lock=False)`).
/// A read-modify-write races with other writers (the unsynchronised counter of the tutorial).
///
/// **Racing is safe, and may tear.** `get` and `set` copy through relaxed atomics on the
/// aligned 8-byte words that hold the value, so a `get` that races with `set`s is never
/// undefined behaviour, but it may return a mix of two writes (one word from each) when `T`
/// spans more than one aligned word (a `[u8; 16]`, a struct of several fields). Values that
/// lie in one aligned word (the numbers) never tear.
///
/// ```
/// use mp_shm::RawValue;
///
/// let v = RawValue::new(1.5f64)?;
/// v.set(v.get() * 2.0);
/// assert_eq!(v.get(), 3.0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct RawValue<T> {
    block: Arc<Block>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            block: self.block.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> std::fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawValue").finish_non_exhaustive()
    }
}

impl<T: Pod> RawValue<T> {
    /// A shared value, initialised to `value`.
    pub fn new(value: T) -> io::Result<RawValue<T>> {
        check_align::<T>()?;
        let block = Block::new(Kind::Raw, std::mem::size_of::<T>().max(1))?;
        // SAFETY: the block is page-aligned with room for a T; nobody else sees it yet.
        unsafe { block.ptr().cast::<T>().write(value) };
        Ok(RawValue {
            block: Arc::new(block),
            _t: PhantomData,
        })
    }

    /// A copy of the value (possibly torn by a racing `set`; see the type's docs).
    pub fn get(&self) -> T {
        // SAFETY: an aligned T in the mapping, which this crate only ever accesses through
        // atomic copies; T is Pod, so any mix of bytes is a valid T.
        unsafe { atomic_copy::read(self.block.ptr().cast::<T>()) }
    }

    /// Stores `value` (a racing `get` may see part of it; see the type's docs).
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`.
        unsafe { atomic_copy::write(self.block.ptr().cast::<T>(), value) }
    }
}

impl<T: Pod> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        check_align::<T>().map_err(custom_error)?;
        Ok(RawValue {
            block: Arc::new(Block::deserialize_sized(
                d,
                Kind::Raw,
                std::mem::size_of::<T>(),
            )?),
            _t: PhantomData,
        })
    }
}

/// A fixed-length array of `T` in shared memory without a lock (Python's `RawArray`).
///
/// `get`, `set` and `to_vec` copy through relaxed atomics as [`RawValue`] does: racing with
/// writers is safe, and an element spanning more than one aligned word may be read torn. `to_vec` is
/// not a snapshot: elements written meanwhile may be seen old or new, each.
///
/// ```
/// use mp_shm::RawArray;
///
/// let a = RawArray::from_slice(&[1u8, 2, 3])?;
/// a.set(2, 9)?;
/// assert_eq!(a.to_vec(), [1, 2, 9]);
/// assert!(a.set(3, 0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawArray<T> {
    block: Arc<Block>,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            block: self.block.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> std::fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawArray")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> RawArray<T> {
    /// A zero-filled array of `len` elements.
    pub fn zeroed(len: usize) -> io::Result<RawArray<T>> {
        check_align::<T>()?;
        let block = Block::new(Kind::Raw, bytes_for::<T>(len)?.max(1))?;
        Ok(RawArray {
            block: Arc::new(block),
            len,
            _t: PhantomData,
        })
    }

    /// An array holding a copy of `items`.
    pub fn from_slice(items: &[T]) -> io::Result<RawArray<T>> {
        let array = RawArray::zeroed(items.len())?;
        // SAFETY: the block has room for `len` Ts; nobody else sees it yet.
        unsafe {
            std::ptr::copy_nonoverlapping(items.as_ptr(), array.as_ptr(), items.len());
        }
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

    /// The first element's address in this process.
    pub fn as_ptr(&self) -> *mut T {
        self.block.ptr().cast()
    }

    /// A copy of element `index`.
    pub fn get(&self, index: usize) -> Result<T, IndexError> {
        IndexError::check(index, self.len)?;
        // SAFETY: in range; Pod, atomic copies only (see RawValue::get).
        Ok(unsafe { atomic_copy::read(self.as_ptr().add(index)) })
    }

    /// Stores `value` at `index`.
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexError> {
        IndexError::check(index, self.len)?;
        // SAFETY: as in `get`.
        unsafe { atomic_copy::write(self.as_ptr().add(index), value) };
        Ok(())
    }

    /// A copy of the whole array.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len];
        // SAFETY: `len` elements in the mapping; Pod, atomic copies only (see RawValue::get).
        unsafe { atomic_copy::load(self.as_ptr().cast(), bytemuck::cast_slice_mut(&mut out)) };
        out
    }

    /// The elements as a slice.
    ///
    /// # Safety
    /// No process or thread may write the array while the slice lives, through any handle
    /// (`set` included): for example, the writers have been joined, or an outside lock or
    /// event orders them.
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: `len` elements in the mapping; the caller excludes concurrent writers.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The elements as a mutable slice.
    ///
    /// # Safety
    /// No other process or thread may read or write the array while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        // SAFETY: `len` elements in the mapping; the caller guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len) }
    }
}

impl<T: Pod> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&*self.block, self.len as u64).serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (fd, len, bytes) = array_parts::<T, D>(d, Kind::Raw)?;
        let block = Block::attach(Kind::Raw, fd, bytes).map_err(custom_error)?;
        Ok(RawArray {
            block: Arc::new(block),
            len,
            _t: PhantomData,
        })
    }
}

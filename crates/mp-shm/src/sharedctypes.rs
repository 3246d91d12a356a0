//! Typed shared memory, as Python's `multiprocessing.sharedctypes`: [`Value`] and [`Array`]
//! (guarded by a re-entrant lock, as Python's default), and [`RawValue`] and [`RawArray`]
//! (no lock). The element type is any [`Pod`] type: the numbers, and `#[repr(C)]` structs that
//! derive `Pod` and `Zeroable` (Python's ctypes `Structure`).

use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytemuck::Pod;
use mp_spawn::reduction::Fd;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::atomic_copy;
use crate::error::{ArrayError, IndexError, LockError, LockResult, SyncError};
use crate::heap::{Block, Kind, Tagged};
use crate::synchronize::{MutexBlock, RLock};

fn bytes_for<T>(len: usize) -> io::Result<usize> {
    len.checked_mul(std::mem::size_of::<T>())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "array too large"))
}

const _: () = assert!(crate::synchronize::DATA_OFFSET % 64 == 0);

/// An array as it travels: its block's descriptor and its length, checked against `T`.
/// Returns the descriptor, the length, and the bytes the block must have.
fn array_parts<'de, T, D: Deserializer<'de>>(
    d: D,
    kind: Kind,
) -> Result<(Fd, usize, usize), D::Error> {
    check_align::<T>().map_err(custom_error)?;
    let (tagged, len) = <(Tagged, u64)>::deserialize(d)?;
    let fd = tagged.fd(kind).map_err(custom_error)?;
    let len = usize::try_from(len).map_err(custom_error)?;
    let bytes = bytes_for::<T>(len).map_err(custom_error)?;
    Ok((fd, len, bytes))
}

fn check_align<T>() -> io::Result<()> {
    // The data sits at a 64-byte boundary of a page-aligned block.
    if std::mem::align_of::<T>() > 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "element types aligned above 64 bytes are not supported",
        ));
    }
    Ok(())
}

/// The lock and data of a `Value` or `Array`. Whether a guard of it is live is marked in the
/// lock's shared state (`MutexBlock::guarded`), so that no handle of the lock, in any process,
/// can release the level a guard holds: only the holder may have a guard, and the lock stays
/// held while it lives, so the guard's `&mut` is the only access to the data.
#[derive(Debug)]
struct Guarded {
    lock: RLock,
    block: Arc<MutexBlock>,
}

impl Guarded {
    fn new(bytes: usize) -> io::Result<Guarded> {
        let block = Arc::new(MutexBlock::new(bytes)?);
        Ok(Guarded {
            lock: RLock::from_block(block.clone()),
            block,
        })
    }

    fn attach(fd: Fd, bytes: usize) -> Result<Guarded, String> {
        let block = Arc::new(MutexBlock::attach(fd, bytes)?);
        Ok(Guarded {
            lock: RLock::from_block(block.clone()),
            block,
        })
    }

    /// Takes the lock for a short access: an owner death or a live guard is an error, and the
    /// lock is not kept then.
    fn enter(&self) -> Result<(), SyncError> {
        match self.block.acquire_counted(true, None) {
            Ok(_) if !self.block.guarded() => Ok(()),
            Ok(_) => {
                self.block.release_counted()?;
                Err(SyncError::Reentrant)
            }
            Err(SyncError::OwnerDied) => {
                self.block.release_counted()?;
                Err(SyncError::OwnerDied)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `f` under the lock, marked as guarded meanwhile (so that `f`, which may hold a
    /// `&mut` to the data, cannot take a guard or another access of it, nor release the lock).
    /// The common case (this thread does not hold the lock) takes the mutex directly, without
    /// the re-entrancy bookkeeping of `enter`.
    #[inline]
    fn exclusive<R>(&self, f: impl FnOnce() -> R) -> Result<R, SyncError> {
        /// Clears the mark and gives the level back, also when `f` panics.
        struct Release<'a> {
            block: &'a MutexBlock,
            counted: bool,
        }
        impl Drop for Release<'_> {
            #[inline]
            fn drop(&mut self) {
                self.block.mark_guarded(false);
                let _ = if self.counted {
                    self.block.release_counted()
                } else {
                    self.block.release_once()
                };
            }
        }
        let counted = self.block.held_by_me();
        if counted {
            self.enter()?;
        } else {
            match self.block.take_forever() {
                Ok(_) => {}
                Err(SyncError::OwnerDied) => {
                    self.block.release_once()?;
                    return Err(SyncError::OwnerDied);
                }
                Err(e) => return Err(e),
            }
        }
        self.block.mark_guarded(true);
        let _release = Release {
            block: &self.block,
            counted,
        };
        Ok(f())
    }

    fn leave(&self) {
        let _ = self.block.release_counted();
    }

    /// Takes the lock for a guard.
    fn guard<G>(&self, make: impl FnOnce() -> G) -> LockResult<G> {
        let died = match self.block.acquire_counted(true, None) {
            Ok(_) => false,
            Err(SyncError::OwnerDied) => true,
            Err(e) => return Err(LockError::Sync(e)),
        };
        if !self.block.set_guarded() {
            self.leave();
            return Err(LockError::Sync(SyncError::Reentrant));
        }
        if died {
            Err(LockError::OwnerDied(make()))
        } else {
            Ok(make())
        }
    }

    fn unguard(&self) {
        self.block.clear_guarded();
        self.leave();
    }

    fn data<T>(&self) -> *mut T {
        self.block.data().cast()
    }
}

// ---------------------------------------------------------------------------------------------
// Value

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

// ---------------------------------------------------------------------------------------------
// Array

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

    /// The lock (Python's `get_lock()`); as [`Value::get_lock`], it cannot release the level an
    /// [`ArrayGuard`] holds ([`SyncError::GuardHeld`]).
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

// ---------------------------------------------------------------------------------------------
// RawValue and RawArray

/// One `T` in shared memory without a lock (Python's `RawValue`, or `Value(..., lock=False)`).
/// A read-modify-write races with other writers (the unsynchronised counter of the tutorial).
///
/// **Racing is safe, and may tear.** `get` and `set` copy through relaxed atomics, each aligned
/// piece of up to 8 bytes at once, so a `get` that races with `set`s is never undefined
/// behaviour, but it may return a mix of two writes (one piece from each) when `T` is larger
/// than its alignment allows in one piece (a `[u8; 16]`, a struct of several fields). Values
/// of 8 bytes or less that are aligned to their size (the numbers) never tear.
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
/// writers is safe, and an element larger than one aligned piece may be read torn. `to_vec` is
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

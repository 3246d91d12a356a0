//! Large arrays shared by descriptor, never by copy: [`SharedArray`] (read-only, sealed),
//! [`SharedArrayMut`] (writable, unique) and its split form [`Chunks`], whose [`Chunk`]s are
//! filled by different processes at once, without locks and without two writers of one
//! element. Python's joblib hands workers big numpy arguments as read-only memory maps of
//! /dev/shm files (its "memmapping"); this is that, without the file.
//!
//! # The guide
//! - **Make** a writable array: [`SharedArrayMut::zeroed`], [`from_slice`](SharedArrayMut::from_slice),
//!   [`from_vec`](SharedArrayMut::from_vec). It derefs to `&mut [T]`, and is not `Clone`.
//! - **Share it read-only**: [`freeze`](SharedArrayMut::freeze) seals its memory (a memfd
//!   sealed with `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) and gives a
//!   [`SharedArray`]:
//!   `Clone`, `Send + Sync`, `Deref<Target = [T]>`, and serde, so it is an ordinary argument of
//!   a process, a pool task, a `Queue` or a `Connection` message. Only its descriptor travels.
//!   A process maps each array once: receiving it again (the same memfd) reuses the live
//!   mapping, so a task that takes a 1 GiB array costs what one that takes 4 KiB does.
//! - **Fill it in parallel**: [`split`](SharedArrayMut::split) into [`Chunks`] (as
//!   `chunks_mut`), send each [`Chunk`] from [`Chunks::parts`] to a task; the receiving
//!   process gets `&mut [T]` of that chunk's range only. Then [`Chunks::join`] gives the array
//!   back.
//! - **Python and numpy**: [`SharedArrayMut::named`] puts the elements in a named
//!   [`SharedMemory`] that numpy maps with
//!   `np.ndarray((n,), dtype='<f8', buffer=SharedMemory(name).buf)`; the other way,
//!   [`SharedArray::attach_named`] takes a numpy array's segment (copied once).
//! - **ndarray** (feature `ndarray`): `view`/`view_mut` of any shape, and
//!   `SharedNdArray` to share an `Array<T, D>` in one call.
//!
//! ```
//! use mp_shm::{SharedArray, SharedArrayMut, get_context};
//!
//! fn total(a: SharedArray<f64>) -> f64 {
//!     a.iter().sum()
//! }
//!
//! let mut a = SharedArrayMut::<f64>::zeroed(1000)?;
//! for (i, x) in a.iter_mut().enumerate() {
//!     *x = i as f64;
//! }
//! let a = a.freeze()?; // read-only from now on, in every process
//! let mut child = get_context("spawn")?.process(total, (a.clone(),));
//! child.start()?;
//! child.join()?;
//! assert_eq!(total(a), 499_500.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Faults
//! A chunk is claimed in shared memory when a process attaches it (a word per chunk: free,
//! or its holder's pid and start time), and released when that process drops it or dies.
//! A second attach while it is held is [`ShmError::ChunkBusy`]; `join` while one is held by a
//! live process is refused the same way; a holder killed mid-write leaves what it wrote, and
//! its chunk can be attached again or joined. A descriptor received as another element type
//! or length is [`ShmError::WrongType`] / [`ShmError::WrongLength`] (through serde: a decode
//! error with the same words). See `src/shared_array/README.md` for the protocol.
//!
//! # Fork
//! A `SharedArrayMut`, a `Chunks` and an attached `Chunk` belong to the process that made or
//! attached them: their writable mappings are not copied into forked children (so that a
//! fork-method pool's workers never keep the array writable), and a copy of such a handle
//! that a closure carries into a forked child sees private zero-filled memory there (writes to
//! it reach no one), and `freeze`, `join` and `attach` refuse with [`ShmError::ForkedCopy`].
//! Send chunks to children as arguments instead; a [`SharedArray`] works everywhere.

use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytemuck::Pod;
use mp_spawn::reduction::{Fd, custom_error};
use mp_sys::fork::{Hold, Rank};
use mp_sys::mmap::{Mapping, ReadOnly};
use mp_sys::shm as sys;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ShmError;
use crate::shared_memory::{SharedMemory, posix_name};

mod chunks;
mod holder;
mod layout;
mod local;
#[cfg(feature = "ndarray")]
mod nd;

pub use chunks::{Chunk, Chunks, JoinError};
#[cfg(feature = "ndarray")]
pub use nd::SharedNdArray;

use layout::{HEADER, Header, check_align, data_bytes, trailer_offset, type_hash};
use local::{LocalMap, Span};

/// Whether a received array is faulted in whole when mapped (`MAP_POPULATE`). Off: a task
/// that reads a little of a large array pays for what it reads (see the crate's DESIGN notes).
const POPULATE: bool = false;

/// A writable shared array, unique to its owner (not `Clone`, not serde): fill it, then
/// [`freeze`](SharedArrayMut::freeze) it to share it read-only, or
/// [`split`](SharedArrayMut::split) it to have other processes fill its chunks.
///
/// ```
/// use mp_shm::SharedArrayMut;
///
/// let mut a = SharedArrayMut::from_slice(&[1u32, 2, 3])?;
/// a[0] = 10;
/// assert_eq!(&a[..], [10, 2, 3]);
/// let frozen = a.freeze()?;
/// assert_eq!(frozen.iter().sum::<u32>(), 15);
/// # Ok::<(), mp_shm::ShmError>(())
/// ```
pub struct SharedArrayMut<T> {
    fd: Arc<Fd>,
    map: Option<LocalMap>,
    len: usize,
    named: Option<SharedMemory>,
    /// The elements, in `map`.
    span: Span<T>,
}

impl<T: Pod> std::fmt::Debug for SharedArrayMut<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedArrayMut")
            .field("len", &self.len)
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl<T: Pod> SharedArrayMut<T> {
    fn create(len: usize, named: bool) -> Result<SharedArrayMut<T>, ShmError> {
        check_align::<T>()?;
        let bytes = data_bytes::<T>(len)?;
        let trailer = trailer_offset(bytes)?;
        let total = trailer + HEADER as u64;
        let (fd, named) = if named {
            let mut shm = SharedMemory::create(total as usize)?;
            let (_, posix) = posix_name(shm.name())?;
            let fd = match sys::shm_open(&posix, false) {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = shm.unlink();
                    return Err(e.into());
                }
            };
            shm.close();
            (fd, Some(shm))
        } else {
            let fd = sys::memfd_sealable(c"mp-array", total)?;
            // A holder of the descriptor (a chunk's receiver) can then never shrink the file
            // under another's mapping (SIGBUS).
            sys::forbid_shrinking(fd.as_fd())?;
            (fd, None)
        };
        let array = SharedArrayMut {
            map: None,
            fd: Arc::new(Fd::new(fd)),
            len,
            named,
            span: Span::empty(),
        };
        Header::of::<T>(len).write(array.fd.as_fd(), trailer)?;
        let map = if bytes > 0 {
            Some(LocalMap::new(array.fd.as_fd(), 0, bytes)?)
        } else {
            None
        };
        let span = Span::new(map.as_ref().map(LocalMap::ptr), len);
        Ok(SharedArrayMut { map, span, ..array })
    }

    /// A zero-filled array of `len` elements (its pages cost nothing until written).
    ///
    /// ```
    /// let a = mp_shm::SharedArrayMut::<f64>::zeroed(4)?;
    /// assert_eq!(&a[..], [0.0; 4]);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<SharedArrayMut<T>, ShmError> {
        SharedArrayMut::create(len, false)
    }

    /// An array holding a copy of `items`.
    ///
    /// ```
    /// let a = mp_shm::SharedArrayMut::from_slice(&[1u8, 2])?;
    /// assert_eq!(a.len(), 2);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<SharedArrayMut<T>, ShmError> {
        let mut a = SharedArrayMut::zeroed(items.len())?;
        a.copy_from_slice(items);
        Ok(a)
    }

    /// An array holding the elements of `items` (copied once into shared memory: a `Vec`'s
    /// heap cannot be shared).
    ///
    /// ```
    /// let a = mp_shm::SharedArrayMut::from_vec(vec![1i64; 3])?;
    /// assert_eq!(&a[..], [1, 1, 1]);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn from_vec(items: Vec<T>) -> Result<SharedArrayMut<T>, ShmError> {
        SharedArrayMut::from_slice(&items)
    }

    /// A zero-filled array in a new named [`SharedMemory`] (`/dev/shm/psm_…`, tracked, so
    /// that the resource tracker unlinks it when this process tree is gone; call
    /// [`unlink`](SharedArrayMut::unlink) when done). numpy maps the same bytes:
    ///
    /// ```python
    /// from multiprocessing.shared_memory import SharedMemory
    /// import numpy as np
    /// shm = SharedMemory(name)                 # the name from `name()`
    /// a = np.ndarray((n,), dtype='<f8', buffer=shm.buf)   # f64; '<i4' for i32, ...
    /// ```
    ///
    /// The segment is a little larger than the elements (a header follows them at the next
    /// page), which numpy ignores.
    ///
    /// # Safety
    /// Anyone who knows the name can map the bytes. While this array (or its chunks) lives,
    /// nothing may read or write the segment through its name (a [`SharedMemory`] attached in
    /// this process, numpy in another) unless an event orders it after this array's writes
    /// and before its next ones: Rust's `&mut [T]` is exclusive.
    ///
    /// ```
    /// use mp_shm::{SharedArrayMut, SharedMemory};
    ///
    /// // SAFETY: the segment is read by name only after the writes below.
    /// let mut a = unsafe { SharedArrayMut::<f64>::named(3)? };
    /// a.copy_from_slice(&[1.0, 2.0, 3.0]);
    /// let other = SharedMemory::attach(a.name().unwrap())?; // numpy would do this
    /// let mut bytes = [0u8; 8];
    /// other.read_at(8, &mut bytes)?;
    /// assert_eq!(f64::from_le_bytes(bytes), 2.0);
    /// a.unlink()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn named(len: usize) -> Result<SharedArrayMut<T>, ShmError> {
        SharedArrayMut::create(len, true)
    }

    /// The segment's name, for a [`named`](SharedArrayMut::named) array.
    pub fn name(&self) -> Option<&str> {
        self.named.as_ref().map(SharedMemory::name)
    }

    /// Removes a named array's name (its memory stays until the last mapping is gone). An
    /// anonymous array has no name: `Ok`.
    pub fn unlink(&self) -> Result<(), ShmError> {
        match &self.named {
            Some(shm) => shm.unlink(),
            None => Ok(()),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the array read-only for good and shareable. The memfd is sealed, so no process
    /// can write it any more. A [`named`](SharedArrayMut::named) array cannot be sealed (its
    /// name lets anyone open it writable): its elements are copied into a new sealed memfd,
    /// and the named segment stays as it is.
    ///
    /// ```
    /// let a = mp_shm::SharedArrayMut::from_slice(&[1.5f32])?.freeze()?;
    /// let b = a.clone(); // cheap: the same memory
    /// assert_eq!(b[0], 1.5);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn freeze(self) -> Result<SharedArray<T>, ShmError> {
        if self.named.is_some() {
            return SharedArrayMut::from_slice(&self)?.freeze();
        }
        if self.map.as_ref().is_some_and(|m| !m.here()) {
            return Err(ShmError::ForkedCopy);
        }
        let SharedArrayMut { fd, map, len, .. } = self;
        // Our own writable mapping would keep F_SEAL_WRITE out.
        drop(map);
        sys::seal_read_only(fd.as_fd())?;
        let mapped = Mapped::map(fd, data_bytes::<T>(len)?)?;
        Ok(SharedArray::new(cache_insert(mapped), len))
    }

    /// Splits the array into chunks of `chunk_len` elements (the last may be shorter), as
    /// `chunks_mut` does, for other processes to fill at once. `chunk_len` 0 is
    /// [`ShmError::WrongLength`].
    ///
    /// ```
    /// use mp_shm::SharedArrayMut;
    ///
    /// let chunks = SharedArrayMut::<u32>::zeroed(10)?.split(4)?;
    /// let parts = chunks.parts();
    /// assert_eq!(parts.len(), 3);
    /// let mut last = parts[2].attach()?; // what a receiving process has
    /// assert_eq!(last.range(), 8..10);
    /// last.fill(7);
    /// drop(last);
    /// let a = chunks.join().map_err(|e| e.error)?;
    /// assert_eq!(&a[..], [0, 0, 0, 0, 0, 0, 0, 0, 7, 7]);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn split(self, chunk_len: usize) -> Result<Chunks<T>, ShmError> {
        Chunks::new(self, chunk_len)
    }

    fn parts(self) -> (Arc<Fd>, Option<LocalMap>, usize, Option<SharedMemory>) {
        (self.fd, self.map, self.len, self.named)
    }

    fn from_parts(
        fd: Arc<Fd>,
        map: Option<LocalMap>,
        len: usize,
        named: Option<SharedMemory>,
    ) -> SharedArrayMut<T> {
        let span = Span::new(map.as_ref().map(LocalMap::ptr), len);
        SharedArrayMut {
            fd,
            map,
            len,
            named,
            span,
        }
    }
}

impl<T: Pod> Deref for SharedArrayMut<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the span is `len` Ts in `map` (page-aligned, T's alignment checked at
        // creation), which lives as long as `self`; this handle is the only one that can reach
        // them while it is not split (not Clone, not serde, and a forked copy of it has private
        // zero pages instead; a split array is a `Chunks`, which gives no access).
        unsafe { std::slice::from_raw_parts(self.span.ptr(), self.span.len()) }
    }
}

impl<T: Pod> DerefMut for SharedArrayMut<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique in this process.
        unsafe { std::slice::from_raw_parts_mut(self.span.ptr(), self.span.len()) }
    }
}

/// A read-only shared array: cheap to clone, `Send + Sync`, and serde (a descriptor travels,
/// never the elements). Its memory is a sealed memfd, mapped read-only: no process can write
/// it, so `&[T]` is sound everywhere. Freed when the last handle in any process is gone;
/// nothing is ever in /dev/shm.
///
/// ```
/// use mp_shm::SharedArray;
///
/// let a = SharedArray::from_slice(&[1u16, 2, 3])?;
/// let msg = mp_spawn::reduction::dumps(&a)?; // a descriptor: a few bytes and one fd
/// assert!(msg.bytes.len() < 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedArray<T> {
    inner: Arc<Mapped>,
    len: usize,
    /// The elements, in `inner`'s mapping.
    span: Span<T>,
}

impl<T> Clone for SharedArray<T> {
    fn clone(&self) -> Self {
        SharedArray {
            inner: Arc::clone(&self.inner),
            len: self.len,
            span: self.span,
        }
    }
}

impl<T> SharedArray<T> {
    /// A handle of `len` elements of a mapping whose size was checked against them.
    fn new(inner: Arc<Mapped>, len: usize) -> SharedArray<T> {
        let span = Span::new(inner.map.as_ref().map(Mapping::<ReadOnly>::ptr), len);
        SharedArray { inner, len, span }
    }
}

impl<T: Pod> std::fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedArray")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> SharedArray<T> {
    /// A read-only array holding a copy of `items`.
    ///
    /// ```
    /// let a = mp_shm::SharedArray::from_slice(&[2.0f64; 8])?;
    /// assert_eq!(a.iter().sum::<f64>(), 16.0);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<SharedArray<T>, ShmError> {
        SharedArrayMut::from_slice(items)?.freeze()
    }

    /// A read-only array holding the elements of `items` (copied once into shared memory).
    ///
    /// ```
    /// let a = mp_shm::SharedArray::from_vec(vec![1u8, 2])?;
    /// assert_eq!(&a[..], [1, 2]);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn from_vec(items: Vec<T>) -> Result<SharedArray<T>, ShmError> {
        SharedArrayMut::from_vec(items)?.freeze()
    }

    /// A read-only array of the first `len` elements of the named segment `name`: numpy's
    /// array in a `SharedMemory`, say (`SharedMemory(create=True, size=a.nbytes)`, then
    /// `np.ndarray(a.shape, a.dtype, buffer=shm.buf)[:] = a`, and hand over `shm.name`). The
    /// elements are **copied** once into a sealed memfd: a named segment stays writable by
    /// anyone who knows its name, so a `&[T]` straight over it would not be sound. A segment
    /// shorter than `len` elements is [`ShmError::WrongLength`].
    ///
    /// ```
    /// use mp_shm::{SharedArray, SharedMemory};
    ///
    /// let shm = SharedMemory::create(16)?; // numpy's side
    /// shm.write_at(8, &7u64.to_le_bytes())?;
    /// let a = SharedArray::<u64>::attach_named(shm.name(), 2)?;
    /// assert_eq!(&a[..], [0, 7]);
    /// shm.unlink()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach_named(name: &str, len: usize) -> Result<SharedArray<T>, ShmError> {
        let shm = SharedMemory::attach(name)?;
        let bytes = data_bytes::<T>(len)?;
        if shm.size() < bytes {
            return Err(ShmError::WrongLength {
                expected: len,
                found: shm.size() / std::mem::size_of::<T>().max(1),
            });
        }
        let mut copy = SharedArrayMut::<T>::zeroed(len)?;
        // Atomic copies: the segment's writers may race with this read (then torn, not UB).
        shm.read_at(0, bytemuck::cast_slice_mut(&mut copy[..]))
            .map_err(|_| ShmError::Corrupt("the segment shrank"))?;
        copy.freeze()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether two handles share one memory (in this process: one mapping).
    ///
    /// ```
    /// let a = mp_shm::SharedArray::from_slice(&[1u8])?;
    /// assert!(a.same_memory(&a.clone()));
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn same_memory(&self, other: &SharedArray<T>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether the memfd's seals (`F_GET_SEALS`) forbid writes, writable mappings and resizing
    /// (`F_SEAL_WRITE`, `F_SEAL_SHRINK`, `F_SEAL_GROW`): always, for an array made or received
    /// by this crate.
    ///
    /// ```
    /// let a = mp_shm::SharedArray::from_slice(&[1u8])?;
    /// assert!(a.is_write_sealed()?);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn is_write_sealed(&self) -> Result<bool, ShmError> {
        Ok(sys::is_read_only(self.inner.fd.as_fd())?)
    }

    fn receive(wire: Wire, fd: Fd) -> Result<SharedArray<T>, ShmError> {
        check_align::<T>()?;
        if wire.kind != KIND_ARRAY {
            return Err(ShmError::Corrupt("not a SharedArray descriptor"));
        }
        check_type::<T>(wire.type_hash, wire.elem_size)?;
        let len = usize::try_from(wire.len).map_err(|_| ShmError::Corrupt("length"))?;
        let bytes = data_bytes::<T>(len)?;
        // Only a sealed file guarantees that no process writes under our `&[T]`.
        if !sys::is_read_only(fd.as_fd())? {
            return Err(ShmError::Corrupt("its memory is not sealed read-only"));
        }
        let id = sys::identity(fd.as_fd())?;
        if let Some(inner) = cache_find(id) {
            inner.header.check::<T>(len)?;
            linger(&inner);
            return Ok(SharedArray::new(inner, len));
        }
        let mapped = Mapped::map(Arc::new(fd), bytes)?;
        mapped.header.check::<T>(len)?;
        let inner = cache_insert(mapped);
        linger(&inner);
        Ok(SharedArray::new(inner, len))
    }
}

impl<T: Pod> Deref for SharedArray<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the span is `len` Ts in `inner`'s mapping, which lives as long as `self`
        // (checked against the sealed header when made or received); the file is sealed with
        // F_SEAL_WRITE, which the kernel grants only while no writable mapping of it exists
        // anywhere and which forbids new ones and write(2), and with F_SEAL_SHRINK, so the
        // bytes never change under the slice and never vanish.
        unsafe { std::slice::from_raw_parts(self.span.ptr(), self.span.len()) }
    }
}

const KIND_ARRAY: u8 = b'A';

/// A shared array as it travels (the fd follows it).
#[derive(Serialize, Deserialize)]
struct Wire {
    kind: u8,
    type_hash: u64,
    elem_size: u64,
    len: u64,
}

fn check_type<T>(hash: u64, elem_size: u64) -> Result<(), ShmError> {
    if hash != type_hash::<T>() || elem_size != std::mem::size_of::<T>() as u64 {
        return Err(ShmError::WrongType {
            expected: std::any::type_name::<T>(),
            found_size: elem_size as usize,
        });
    }
    Ok(())
}

impl<T: Pod> Serialize for SharedArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = Wire {
            kind: KIND_ARRAY,
            type_hash: type_hash::<T>(),
            elem_size: std::mem::size_of::<T>() as u64,
            len: self.len as u64,
        };
        (wire, &*self.inner.fd).serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (wire, fd) = <(Wire, Fd)>::deserialize(d)?;
        SharedArray::receive(wire, fd).map_err(custom_error)
    }
}

/// One sealed array's memory in this process: its descriptor and its read-only mapping.
struct Mapped {
    fd: Arc<Fd>,
    map: Option<Mapping<ReadOnly>>,
    id: (u64, u64),
    header: Header,
}

impl Mapped {
    fn map(fd: Arc<Fd>, bytes: usize) -> Result<Mapped, ShmError> {
        let header = Header::read(fd.as_fd(), bytes)?;
        let id = sys::identity(fd.as_fd())?;
        let map = if bytes > 0 {
            Some(Mapping::read_only(fd.as_fd(), bytes, POPULATE)?)
        } else {
            None
        };
        Ok(Mapped {
            fd,
            map,
            id,
            header,
        })
    }
}

/// The arrays mapped in this process, by file identity: a second receipt of one array reuses
/// the mapping while any handle of it lives. Weak, so the cache keeps nothing alive.
static CACHE: Mutex<Vec<Weak<Mapped>>> = Mutex::new(Vec::new());

/// A fork must not copy the cache while another thread changes it.
static HOLD_CACHE: Hold = Hold::new(Rank::SHM_ARRAY_CACHE, || Box::new(lock_cache()));

fn cache() -> MutexGuard<'static, Vec<Weak<Mapped>>> {
    HOLD_CACHE.register();
    lock_cache()
}

fn lock_cache() -> MutexGuard<'static, Vec<Weak<Mapped>>> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

fn cache_find(id: (u64, u64)) -> Option<Arc<Mapped>> {
    cache()
        .iter()
        .filter_map(Weak::upgrade)
        .find(|m| m.id == id)
}

/// Adds a mapping, unless another thread mapped the same file meanwhile (then that one).
fn cache_insert(mapped: Mapped) -> Arc<Mapped> {
    let mut cache = cache();
    cache.retain(|w| w.strong_count() > 0);
    if let Some(m) = cache
        .iter()
        .filter_map(Weak::upgrade)
        .find(|m| m.id == mapped.id)
    {
        return m;
    }
    let mapped = Arc::new(mapped);
    cache.push(Arc::downgrade(&mapped));
    mapped
}

/// Whether received arrays linger (see [`set_lingering`]).
static LINGERING: AtomicBool = AtomicBool::new(false);
/// The array received last, while arrays linger.
static LINGERER: Mutex<Option<Arc<Mapped>>> = Mutex::new(None);

static HOLD_LINGERER: Hold = Hold::new(Rank::SHM_LINGERER, || Box::new(lock_lingerer()));

fn lingerer() -> MutexGuard<'static, Option<Arc<Mapped>>> {
    HOLD_LINGERER.register();
    lock_lingerer()
}

fn lock_lingerer() -> MutexGuard<'static, Option<Arc<Mapped>>> {
    LINGERER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps `mapped` mapped after its last handle here is gone, if arrays linger.
fn linger(mapped: &Arc<Mapped>) {
    if !LINGERING.load(Ordering::Relaxed) {
        return;
    }
    let old = lingerer().replace(Arc::clone(mapped));
    // Unmapped outside the lock.
    drop(old);
}

/// For pool workers (mp-pool): from now on, the array this process received last stays
/// mapped after its last handle here is gone, until another array is received or
/// [`release_lingering`] is called. Back-to-back tasks on one array then map it once (and
/// fault its pages in once) instead of once per task. A worker releases it whenever it runs
/// out of tasks, so an idle pool holds no array's memory.
///
/// ```
/// mp_shm::set_lingering(true);
/// mp_shm::release_lingering();
/// mp_shm::set_lingering(false);
/// ```
pub fn set_lingering(on: bool) {
    LINGERING.store(on, Ordering::Relaxed);
    if !on {
        release_lingering();
    }
}

/// Lets go of the lingering array (see [`set_lingering`]).
pub fn release_lingering() {
    let old = lingerer().take();
    // Unmapped outside the lock.
    drop(old);
}

/// How many arrays this process has mapped and still uses (for tests).
#[cfg(feature = "unstable-test-hooks")]
pub fn mapped_arrays() -> usize {
    cache().iter().filter(|w| w.strong_count() > 0).count()
}

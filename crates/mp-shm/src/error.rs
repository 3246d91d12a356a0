//! The small error types of mp-shm, one per kind of failure.

use std::fmt;
use std::io;

/// A lock, semaphore, condition or barrier operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncError {
    /// A process or thread died holding the lock. Where an `acquire` returns this, the lock
    /// **is now held** by the caller: repair the data it guards, call `clear_owner_died`, and
    /// release. The mark stays until cleared, so every acquirer learns of the death
    /// (std's `Mutex` poisoning, across processes). Python has no such outcome: it deadlocks.
    OwnerDied,
    /// Released, waited on or notified without holding the lock (Python: `ValueError`,
    /// `AssertionError` or `RuntimeError`, by type).
    NotHeld,
    /// A `BoundedSemaphore` released above its initial value, or a counter at its limit
    /// (Python: `ValueError('semaphore or lock released too many times')`).
    TooManyReleases,
    /// This thread already holds the lock, and taking it again would wait forever (a `Lock`)
    /// or hand out a second mutable view of the same data (a `Value` or `Array` guard).
    Reentrant,
    /// The lock level would be released while a [`Value`](crate::Value) or
    /// [`Array`](crate::Array) guard holds it and lends out its data: drop the guard instead
    /// (releasing under it would let a second `&mut` to the data exist).
    GuardHeld,
    /// The barrier is broken: aborted, reset while others waited, or a wait timed out
    /// (Python: `BrokenBarrierError`).
    BrokenBarrier,
    /// The OS refused (creating the shared block, or an unexpected pthread error).
    Os(io::Error),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::OwnerDied => f.write_str("the previous holder of the lock died holding it"),
            SyncError::NotHeld => f.write_str("the lock is not held by this thread"),
            SyncError::TooManyReleases => f.write_str("semaphore or lock released too many times"),
            SyncError::Reentrant => f.write_str("this thread already holds the lock"),
            SyncError::GuardHeld => {
                f.write_str("a Value or Array guard holds the lock; drop the guard to release it")
            }
            SyncError::BrokenBarrier => f.write_str("the barrier is broken"),
            SyncError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SyncError {
    fn from(e: io::Error) -> Self {
        SyncError::Os(e)
    }
}

/// Taking a guard failed. Like std's `PoisonError`, [`LockError::OwnerDied`] still hands over
/// the guard, so the caller can repair what the dead holder left half-written.
pub enum LockError<G> {
    /// A process died holding the lock; here is the guard anyway.
    OwnerDied(G),
    /// Any other failure; no guard.
    Sync(SyncError),
}

/// The result of taking a guard.
pub type LockResult<G> = Result<G, LockError<G>>;

impl<G> LockError<G> {
    /// The guard, if the lock was taken (after an owner death).
    pub fn into_inner(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            LockError::Sync(_) => None,
        }
    }

    /// The failure without the guard (which is dropped, releasing the lock).
    pub fn kind(&self) -> &SyncError {
        match self {
            LockError::OwnerDied(_) => &SyncError::OwnerDied,
            LockError::Sync(e) => e,
        }
    }
}

impl<G> From<LockError<G>> for SyncError {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => SyncError::OwnerDied,
            LockError::Sync(e) => e,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Sync(e) => f.debug_tuple("Sync").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.kind(), f)
    }
}

impl<G> std::error::Error for LockError<G> {}

/// An index past the end (Python: `IndexError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexError {
    /// The index asked for.
    pub index: usize,
    /// The length.
    pub len: usize,
}

impl IndexError {
    /// `Ok` when `index < len`.
    pub fn check(index: usize, len: usize) -> Result<(), IndexError> {
        if index < len {
            Ok(())
        } else {
            Err(IndexError { index, len })
        }
    }
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "index {} out of range for length {}",
            self.index, self.len
        )
    }
}

impl std::error::Error for IndexError {}

/// An element access of a locked [`Array`](crate::Array) failed.
#[derive(Debug)]
pub enum ArrayError {
    /// The index is out of range.
    Index(IndexError),
    /// Taking the array's lock failed.
    Sync(SyncError),
}

impl fmt::Display for ArrayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrayError::Index(e) => e.fmt(f),
            ArrayError::Sync(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ArrayError {}

impl From<IndexError> for ArrayError {
    fn from(e: IndexError) -> Self {
        ArrayError::Index(e)
    }
}

impl From<SyncError> for ArrayError {
    fn from(e: SyncError) -> Self {
        ArrayError::Sync(e)
    }
}

/// A named shared-memory segment could not be made, opened or removed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShmError {
    /// `create` with a name that exists (Python: `FileExistsError`).
    Exists(String),
    /// `attach` or `unlink` of a name that does not exist (Python: `FileNotFoundError`).
    NotFound(String),
    /// `create` with size 0 (Python: `ValueError`).
    ZeroSize,
    /// The name is empty, too long, or holds a `/` or a NUL (Python: `ValueError` or `OSError`).
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A shared array was received or attached as another element type than it was made with
    /// (a `SharedArray<f64>` received as a `SharedArray<u8>`, say).
    WrongType {
        /// The element type asked for.
        expected: &'static str,
        /// The element size in bytes the array was made with.
        found_size: usize,
    },
    /// A shared array's length, or a chunk's range, does not match its memory or the shape
    /// asked for.
    WrongLength {
        /// The length (in elements) asked for or described.
        expected: usize,
        /// The length the memory holds.
        found: usize,
    },
    /// A chunk of a split [`SharedArrayMut`](crate::SharedArrayMut) is attached by a live
    /// process (this one included): a chunk is writable in one place at a time.
    ChunkBusy {
        /// The chunk's index.
        index: usize,
        /// The process that holds it.
        pid: u32,
    },
    /// The split array was joined (or frozen) by its owner: its chunks can no longer be
    /// attached.
    ChunksJoined,
    /// A `SharedArrayMut`, `Chunks` or attached `Chunk` used in a forked child that a
    /// closure carried it into: its writable mapping is not copied into forks (the copy sees
    /// private zero pages), so it cannot be frozen, joined or attached there (send chunks as
    /// process arguments instead).
    ForkedCopy,
    /// An `ndarray` shape does not fit a shared array's elements (feature `ndarray`).
    Shape(String),
    /// A received shared array's memory is not sealed read-only, or its header is not a
    /// shared array's.
    Corrupt(&'static str),
    /// Another OS error.
    Os(io::Error),
}

impl From<io::Error> for ShmError {
    fn from(e: io::Error) -> Self {
        ShmError::Os(e)
    }
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::Exists(n) => write!(f, "shared memory {n:?} already exists"),
            ShmError::NotFound(n) => write!(f, "no shared memory named {n:?}"),
            ShmError::ZeroSize => f.write_str("the size of a new segment must be above zero"),
            ShmError::InvalidName { name, reason } => {
                write!(f, "invalid shared memory name {name:?}: {reason}")
            }
            ShmError::WrongType {
                expected,
                found_size,
            } => write!(
                f,
                "the shared array does not hold {expected} (it was made with {found_size}-byte elements of another type)"
            ),
            ShmError::WrongLength { expected, found } => write!(
                f,
                "wrong shared array length: {expected} elements asked for, {found} held"
            ),
            ShmError::ChunkBusy { index, pid } => {
                write!(f, "chunk {index} is attached by live process {pid}")
            }
            ShmError::ForkedCopy => {
                f.write_str("this shared array handle belongs to the parent of this forked process")
            }
            ShmError::Shape(e) => write!(f, "shape does not fit the shared array: {e}"),
            ShmError::ChunksJoined => {
                f.write_str("the split array was joined by its owner; its chunks are closed")
            }
            ShmError::Corrupt(what) => write!(f, "not a shared array: {what}"),
            ShmError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShmError::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// A [`ShareableList`](crate::ShareableList) operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ListError {
    /// The index is out of range (Python: `IndexError`).
    Index(IndexError),
    /// A str or bytes item is longer than its slot (Python:
    /// `ValueError('bytes/str item exceeds available storage')`).
    ItemTooLong {
        /// The item's encoded length.
        len: usize,
        /// The slot's capacity.
        capacity: usize,
    },
    /// `index` found no such item (Python: `ValueError`).
    NotInList,
    /// The segment does not hold a well-formed list.
    Malformed(String),
    /// Making or opening the segment failed.
    Shm(ShmError),
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::Index(e) => e.fmt(f),
            ListError::ItemTooLong { len, capacity } => write!(
                f,
                "bytes/str item exceeds available storage ({len} > {capacity} bytes)"
            ),
            ListError::NotInList => f.write_str("value not in this container"),
            ListError::Malformed(m) => write!(f, "malformed ShareableList: {m}"),
            ListError::Shm(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ListError {}

impl From<ShmError> for ListError {
    fn from(e: ShmError) -> Self {
        ListError::Shm(e)
    }
}

impl From<IndexError> for ListError {
    fn from(e: IndexError) -> Self {
        ListError::Index(e)
    }
}

/// A [`SharedDict`](crate::SharedDict) operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DictError {
    /// The map's lock: [`SyncError::OwnerDied`] when a process died holding it (the map has
    /// been checked and repaired by this call, which did nothing else: retry it), or
    /// [`SyncError::Reentrant`] when a closure given to `update_with` uses the same map.
    Sync(SyncError),
    /// A key or value could not be serialized.
    Encode(String),
    /// Stored bytes did not decode as the requested type (the map was received as another
    /// `SharedDict<K, V>` than it was made with).
    Decode(String),
    /// A key or value carries a descriptor (a `Value`, a `Connection`, ...): the map stores
    /// bytes only.
    HasDescriptors,
    /// The map would outgrow the address space reserved for it.
    TooLarge,
    /// The shared block is not a well-formed map (received garbage, or written by something
    /// other than `SharedDict`).
    Corrupt(&'static str),
    /// The map received was made by a build of mp with another memory layout (the header's
    /// version): refused on arrival rather than misread. Both processes need the same mp.
    ///
    /// ```
    /// let e = mp_shm::DictError::LayoutVersion { found: 1, expected: 2 };
    /// assert!(e.to_string().contains("layout version 1"));
    /// ```
    LayoutVersion {
        /// The version in the received map's header.
        found: u16,
        /// The version this build reads and writes.
        expected: u16,
    },
    /// The OS refused (creating the shared blocks).
    Os(io::Error),
}

impl fmt::Display for DictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DictError::Sync(e) => write!(f, "{e}"),
            DictError::Encode(e) => write!(f, "cannot serialize a key or value: {e}"),
            DictError::Decode(e) => write!(f, "cannot decode a stored key or value: {e}"),
            DictError::HasDescriptors => {
                f.write_str("a SharedDict key or value cannot carry a file descriptor")
            }
            DictError::TooLarge => f.write_str("the SharedDict would outgrow its reserved space"),
            DictError::Corrupt(what) => {
                write!(f, "the SharedDict's shared block is corrupt: {what}")
            }
            DictError::LayoutVersion { found, expected } => write!(
                f,
                "the SharedDict received has layout version {found}, and this build of mp reads \
                 version {expected}: both processes need the same mp"
            ),
            DictError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DictError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DictError::Sync(e) => Some(e),
            DictError::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SyncError> for DictError {
    fn from(e: SyncError) -> Self {
        DictError::Sync(e)
    }
}

impl From<io::Error> for DictError {
    fn from(e: io::Error) -> Self {
        DictError::Os(e)
    }
}

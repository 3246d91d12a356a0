//! The mapped ring a process holds: its handles (memfd, side socket, doorbell), creating and
//! attaching (with the header's checks), raw access to the mapping, and the locks.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use mp_spawn::reduction::{self, Fd};

use mp_sys::mmap::Mapping;
use mp_sys::robust_mutex::Locked;

use super::RingError;
use super::layout::{HEADER_SIZE, Header, INITIAL_CAP, MAGIC, RESERVE};

/// One process's handle on a shared ring.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(super) map: Mapping,
    pub(super) memfd: Fd,
    /// Producers send item handles here...
    pub(super) fd_tx: Fd,
    /// ...and consumers take them from here (non-blocking).
    pub(super) fd_rx: Fd,
    /// Rung by producers while someone is in `wait` (or awaits an item).
    pub(super) bell: Fd,
    /// Rung by consumers of a bounded queue while someone awaits room (`put_async`; only
    /// with the feature `async`, so that other programs make no extra descriptor).
    #[cfg(feature = "async")]
    pub(super) room_bell: Fd,
    /// The last `head` this process's producers saw (under the producer lock): free space is
    /// at least what it implies, so the consumers' cache line is read only when that is short.
    pub(super) seen_head: AtomicU64,
    /// The last `tail` this process's consumers saw (under the consumer lock).
    pub(super) seen_tail: AtomicU64,
}

/// The handles that make up a ring, as they travel to another process...
#[derive(serde::Serialize)]
struct PartsRef<'a> {
    memfd: &'a Fd,
    fd_tx: &'a Fd,
    fd_rx: &'a Fd,
    bell: &'a Fd,
    #[cfg(feature = "async")]
    room_bell: &'a Fd,
}

/// ...and as they arrive (same fields, same order).
#[derive(serde::Deserialize)]
pub(super) struct Parts {
    pub(super) memfd: Fd,
    pub(super) fd_tx: Fd,
    pub(super) fd_rx: Fd,
    pub(super) bell: Fd,
    #[cfg(feature = "async")]
    pub(super) room_bell: Fd,
}

impl serde::Serialize for Ring {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PartsRef {
            memfd: &self.memfd,
            fd_tx: &self.fd_tx,
            fd_rx: &self.fd_rx,
            bell: &self.bell,
            #[cfg(feature = "async")]
            room_bell: &self.room_bell,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Ring {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parts = Parts::deserialize(d)?;
        Ring::from_parts(parts).map_err(|e| reduction::custom_error(format_args!("{e:?}")))
    }
}

impl Ring {
    /// Creates a ring holding at most `maxsize` items (0: unbounded).
    pub(crate) fn new(maxsize: u64) -> io::Result<Ring> {
        // Sealed against shrinking: no holder of the descriptor can truncate the ring's pages
        // away under the other users' mappings (SIGBUS).
        let memfd = mp_sys::shm::memfd_unshrinkable(c"mp-queue", RESERVE)?;
        let (fd_tx, fd_rx) = mp_sys::socket::socketpair(mp_sys::socket::Kind::SeqPacket)?;
        mp_sys::fd::set_nonblocking(fd_rx.as_fd(), true)?;
        let bell = mp_sys::eventfd::new()?;
        #[cfg(feature = "async")]
        let room_bell = mp_sys::eventfd::new()?;
        // SAFETY: a fresh memfd; the ring's protocol (ring/README.md) is the only way to it.
        let map = unsafe { Mapping::new(memfd.as_fd(), RESERVE as usize) }?;
        let header = map.ptr().cast::<Header>();
        // SAFETY: the mapping is fresh, zero-filled, at least HEADER_SIZE long and page
        // aligned; no other process has it yet, so initialising the mutexes in place is sound.
        unsafe {
            mp_sys::robust_mutex::init((*header).producers.lock.get())?;
            mp_sys::robust_mutex::init((*header).consumers.lock.get())?;
        }
        let ring = Ring {
            map,
            memfd: Fd::new(memfd),
            fd_tx: Fd::new(fd_tx),
            fd_rx: Fd::new(fd_rx),
            bell: Fd::new(bell),
            #[cfg(feature = "async")]
            room_bell: Fd::new(room_bell),
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
        };
        let shape = &ring.header().shape;
        shape.maxsize.store(maxsize, Ordering::Relaxed);
        shape.layouts[0]
            .offset
            .store(HEADER_SIZE, Ordering::Relaxed);
        shape.layouts[0].cap.store(INITIAL_CAP, Ordering::Relaxed);
        shape.magic.store(MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Attaches to a ring made by another process, checking that it is one: the memfd has the
    /// size of the mapping (so every offset below RESERVE is inside it), and the header passes
    /// [`Header::check_attach`]. Later reads of the header are checked at each use.
    pub(super) fn from_parts(parts: Parts) -> Result<Ring, RingError> {
        if mp_sys::shm::file_size(parts.memfd.as_fd())? != RESERVE {
            return Err(RingError::Corrupt("the shared memory is not an mp queue"));
        }
        if !mp_sys::shm::cannot_shrink(parts.memfd.as_fd())? {
            return Err(RingError::Corrupt(
                "the queue's shared memory is not sealed against shrinking",
            ));
        }
        // SAFETY: the ring's memfd, which every user reaches through the ring's protocol only
        // (ring/README.md): mp never hands the descriptor out.
        let map = unsafe { Mapping::new(parts.memfd.as_fd(), RESERVE as usize) }?;
        let ring = Ring {
            map,
            memfd: parts.memfd,
            fd_tx: parts.fd_tx,
            fd_rx: parts.fd_rx,
            bell: parts.bell,
            #[cfg(feature = "async")]
            room_bell: parts.room_bell,
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
        };
        ring.header().check_attach()?;
        Ok(ring)
    }

    #[inline]
    pub(super) fn header(&self) -> &Header {
        // SAFETY: the mapping is RESERVE (> HEADER_SIZE) bytes long, page aligned, and lives as
        // long as `self`; every field of Header is an atomic or a cell used only through raw
        // pointers, and any bit pattern is a valid value of each (other processes may write
        // anything: values are checked where they are used, see `layout`).
        unsafe { &*self.map.ptr().cast::<Header>() }
    }

    pub(crate) fn bell(&self) -> BorrowedFd<'_> {
        self.bell.as_fd()
    }

    #[cfg(feature = "async")]
    pub(crate) fn room_bell(&self) -> BorrowedFd<'_> {
        self.room_bell.as_fd()
    }

    // -----------------------------------------------------------------------------------------
    // raw access and locks

    /// # Safety
    /// `[at, at + data.len())` must lie in the mapping and be owned by the caller's lock.
    #[inline]
    pub(super) unsafe fn write_at(&self, at: u64, data: &[u8]) {
        // SAFETY: the caller guarantees the range is inside the mapping and not shared.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.ptr().add(at as usize),
                data.len(),
            )
        };
    }

    /// # Safety
    /// `[at, at + 8)` must lie in the mapping, in a published record.
    #[inline]
    pub(super) unsafe fn read_at(&self, at: u64) -> [u8; 8] {
        let mut out = [0u8; 8];
        // SAFETY: the caller guarantees the range is inside the mapping and stable.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.ptr().add(at as usize), out.as_mut_ptr(), 8)
        };
        out
    }

    pub(super) fn lock_producers(&self) -> io::Result<LockGuard<'_>> {
        LockGuard::new(self.header().producers.lock.get())
    }

    pub(super) fn lock_consumers(&self) -> io::Result<LockGuard<'_>> {
        LockGuard::new(self.header().consumers.lock.get())
    }

    /// Test hook: takes the producer lock and never gives it back (the caller is about to be
    /// killed), to check that the others go on.
    #[cfg(feature = "unstable-test-hooks")]
    pub(crate) fn hold_locks_forever(&self) -> io::Result<()> {
        std::mem::forget(self.lock_producers()?);
        std::mem::forget(self.lock_consumers()?);
        Ok(())
    }
}

/// A held robust lock. A previous holder's death needs no repair here: the ring is consistent
/// at every instant a lock holder can die (see `README.md`).
pub(super) struct LockGuard<'a> {
    mutex: *mut mp_sys::robust_mutex::RawMutex,
    _ring: std::marker::PhantomData<&'a Ring>,
}

impl LockGuard<'_> {
    fn new(mutex: *mut mp_sys::robust_mutex::RawMutex) -> io::Result<Self> {
        // SAFETY: the mutex was set up by `Ring::new` and lives in the mapping, which outlives
        // the guard (the guard borrows the ring).
        let _: Locked = unsafe { mp_sys::robust_mutex::lock(mutex) }?;
        Ok(LockGuard {
            mutex,
            _ring: std::marker::PhantomData,
        })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread took the mutex in `new`.
        let _ = unsafe { mp_sys::robust_mutex::unlock(self.mutex) };
    }
}

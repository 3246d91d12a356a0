//! Shared mappings of files (`mmap`/`munmap`, on rustix).

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use rustix::mm::{MapFlags, ProtFlags};

/// A shared, read-write mapping of the start of a file, unmapped on drop.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 4096)?;
/// let map = mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?;
/// assert_eq!(map.len(), 4096);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; its users reach it through atomics, locks, or
// copies whose synchronisation they document.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd`, shared, without reserving swap for them (`InvalidInput` for
    /// 0 bytes).
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh mapping at an address the kernel chooses; it aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::NORESERVE,
                fd,
                0,
            )
        }?;
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The first byte (page-aligned).
    #[inline]
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapped length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mappings have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping as 64-bit atomic words (the bytes after the last whole word are left
    /// out): shared counters that other processes read and write too.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use std::sync::atomic::Ordering;
    /// let fd = mp_sys::shm::memfd(c"example", 4096)?;
    /// let (a, b) = (mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?, mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?);
    /// a.atomic_words()[3].store(7, Ordering::Relaxed);
    /// assert_eq!(b.atomic_words()[3].load(Ordering::Relaxed), 7);
    /// assert_eq!(a.atomic_words().len(), 512);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn atomic_words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned (so 8-aligned), `len / 8` words fit in it, and
        // it stays mapped while `self` is borrowed. `AtomicU64` has `u64`'s layout, every bit
        // pattern is a valid value, and writes by other processes or other mappings of the
        // file are atomic accesses as far as this one is concerned: no data race.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU64>(), self.len / 8) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to the mapping any more.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

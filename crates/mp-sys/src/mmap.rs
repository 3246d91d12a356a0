//! Shared mappings of files (`mmap`/`munmap`, on rustix).

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

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
        Mapping::map(fd, 0, len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::empty())
    }

    /// Maps `len` bytes of `fd` from `offset` (a multiple of the page size), shared and
    /// read-write.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let fd = mp_sys::shm::memfd(c"example", 8192)?;
    /// let map = mp_sys::mmap::Mapping::at(fd.as_fd(), 4096, 4096)?;
    /// assert_eq!(map.len(), 4096);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn at(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Mapping> {
        Mapping::map(
            fd,
            offset,
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::empty(),
        )
    }

    /// Maps the first `len` bytes of `fd`, shared and read-only; `populate` faults every page
    /// in at once (`MAP_POPULATE`) instead of on first touch.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let fd = mp_sys::shm::memfd_sealable(c"example", 4096)?;
    /// mp_sys::shm::seal_read_only(fd.as_fd())?;
    /// let map = mp_sys::mmap::Mapping::read_only(fd.as_fd(), 4096, false)?;
    /// assert_eq!(map.len(), 4096);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_only(fd: BorrowedFd<'_>, len: usize, populate: bool) -> io::Result<Mapping> {
        let flags = if populate {
            MapFlags::POPULATE
        } else {
            MapFlags::empty()
        };
        Mapping::map(fd, 0, len, ProtFlags::READ, flags)
    }

    fn map(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
        prot: ProtFlags,
        flags: MapFlags,
    ) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh mapping at an address the kernel chooses; it aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED | MapFlags::NORESERVE | flags,
                fd,
                offset,
            )
        }?;
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// Keeps this mapping out of children forked from now on (`MADV_DONTFORK`): a forked
    /// child has nothing at these addresses.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let fd = mp_sys::shm::memfd(c"example", 4096)?;
    /// let map = mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?;
    /// map.keep_from_forks()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn keep_from_forks(&self) -> io::Result<()> {
        // SAFETY: the range is exactly this mapping; the advice changes nothing in this
        // process, only what a later fork copies.
        unsafe {
            rustix::mm::madvise(
                self.ptr.as_ptr().cast(),
                self.len,
                rustix::mm::Advice::LinuxDontFork,
            )
        }?;
        Ok(())
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
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to the mapping any more.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

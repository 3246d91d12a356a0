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
    /// Registered in `HOLES` (see `keep_from_forks`).
    kept: bool,
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
        Ok(Mapping {
            ptr,
            len,
            kept: false,
        })
    }

    /// Keeps this mapping out of children forked from now on (`MADV_DONTFORK`): no forked
    /// child shares these pages. So that a copy of a handle that a forked child has anyway
    /// (one a closure carried) still points at memory, the child finds private zero-filled
    /// pages at these addresses (mapped by a `pthread_atfork` child handler before `fork`
    /// returns there).
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let fd = mp_sys::shm::memfd(c"example", 4096)?;
    /// let mut map = mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?;
    /// map.keep_from_forks()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn keep_from_forks(&mut self) -> io::Result<()> {
        if self.kept {
            return Ok(());
        }
        holes::register(self.ptr.as_ptr() as usize, self.len);
        self.kept = true;
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
        if self.kept {
            holes::unregister(self.ptr.as_ptr() as usize);
        }
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to the mapping any more.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The mappings kept out of forks: a forked child maps private zero-filled pages in their
/// place before `fork` returns there, so that no address a handle holds is a hole.
mod holes {
    use std::cell::UnsafeCell;
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::mm::{MapFlags, ProtFlags};

    /// A spin lock and the list it guards: taken by the atfork prepare handler and released on
    /// both sides, so the child reads a list no thread was changing. (Not a std `Mutex`: its
    /// guard cannot be carried from one C callback to the next.)
    struct Holes {
        busy: AtomicBool,
        list: UnsafeCell<Vec<(usize, usize)>>,
    }

    // SAFETY: `list` is only touched with `busy` taken (see `with`).
    unsafe impl Sync for Holes {}

    static HOLES: Holes = Holes {
        busy: AtomicBool::new(false),
        list: UnsafeCell::new(Vec::new()),
    };

    fn lock() {
        while HOLES
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    fn unlock() {
        HOLES.busy.store(false, Ordering::Release);
    }

    fn with<R>(f: impl FnOnce(&mut Vec<(usize, usize)>) -> R) -> R {
        lock();
        // SAFETY: `busy` is taken: no other reference to the list exists.
        let r = f(unsafe { &mut *HOLES.list.get() });
        unlock();
        r
    }

    extern "C" fn prepare() {
        lock();
    }

    extern "C" fn parent() {
        unlock();
    }

    extern "C" fn child() {
        // SAFETY: `prepare` took `busy` before the fork, and this is the only thread.
        let list = unsafe { &*HOLES.list.get() };
        for &(addr, len) in list {
            // SAFETY: the range was a mapping of the parent kept out of the fork, so nothing
            // is mapped there in this child (which has run nothing else yet); private
            // anonymous pages replace the hole.
            let mapped = unsafe {
                rustix::mm::mmap_anonymous(
                    addr as *mut _,
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE,
                )
            };
            if mapped.is_err() {
                // A hole would be reachable through a handle: better not to run at all.
                std::process::abort();
            }
        }
        unlock();
    }

    pub(super) fn register(addr: usize, len: usize) {
        static ATFORK: Once = Once::new();
        ATFORK.call_once(|| {
            // SAFETY: plain extern "C" fns that take and release a spin lock and map memory.
            unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        });
        with(|l| l.push((addr, len)));
    }

    pub(super) fn unregister(addr: usize) {
        with(|l| l.retain(|&(a, _)| a != addr));
    }
}

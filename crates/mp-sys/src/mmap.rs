//! Shared mappings of files (`mmap`/`munmap`, on rustix).

use std::io;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use rustix::mm::{MapFlags, ProtFlags};

/// A shared mapping of the start of a file, unmapped on drop: read-write ([`ReadWrite`], the
/// default) or read-only ([`ReadOnly`], which has no [`atomic_words`](Mapping::atomic_words):
/// a store there would fault).
///
/// Making a writable mapping is `unsafe`, as in memmap2: the same file may be mapped by any
/// holder of its descriptor, in this process too, and the bytes are sound to reach only if
/// every such mapping follows the protocol of the structure that owns the file.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 4096)?;
/// // SAFETY: a fresh memfd, reached only through this mapping's atomics.
/// let map = unsafe { mp_sys::mmap::Mapping::new(fd.as_fd(), 4096) }?;
/// assert_eq!(map.len(), 4096);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Safe code cannot map a descriptor it received and write where a structure reads:
///
/// ```compile_fail,E0133
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 4096)?;
/// let map = mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// ```compile_fail,E0599
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd_sealable(c"example", 4096)?;
/// let map = mp_sys::mmap::Mapping::read_only(fd.as_fd(), 4096, false)?;
/// map.atomic_words()[0].store(1, std::sync::atomic::Ordering::Relaxed); // read-only: no words
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Mapping<A = ReadWrite> {
    ptr: NonNull<u8>,
    len: usize,
    /// Registered in `HOLES` (see `keep_from_forks`).
    kept: bool,
    _access: PhantomData<A>,
}

/// A [`Mapping`] that may be written.
#[derive(Debug)]
pub struct ReadWrite;

/// A [`Mapping`] that may only be read.
#[derive(Debug)]
pub struct ReadOnly;

// SAFETY: the mapping is plain shared memory; its users reach it through atomics, locks, or
// copies whose synchronisation they document.
unsafe impl<A> Send for Mapping<A> {}
// SAFETY: as above.
unsafe impl<A> Sync for Mapping<A> {}

impl Mapping<ReadWrite> {
    /// Maps `len` bytes of `fd`, shared, without reserving swap for them (`InvalidInput` for
    /// 0 bytes).
    ///
    /// # Safety
    /// Every access that this process makes to the mapped bytes, through this mapping or any
    /// other mapping of the same file, must follow the protocol of the structure that owns the
    /// file (atomics for words others may write at the same time, its lock for anything
    /// else), so that no two of them race. A fresh file reached only through atomics
    /// qualifies.
    pub unsafe fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        Mapping::map(fd, 0, len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::empty())
    }

    /// Maps `len` bytes of `fd` from `offset` (a multiple of the page size), shared and
    /// read-write.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let fd = mp_sys::shm::memfd(c"example", 8192)?;
    /// // SAFETY: a fresh memfd, not reached at all.
    /// let map = unsafe { mp_sys::mmap::Mapping::at(fd.as_fd(), 4096, 4096) }?;
    /// assert_eq!(map.len(), 4096);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    /// As [`Mapping::new`].
    pub unsafe fn at(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Mapping> {
        Mapping::map(
            fd,
            offset,
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::empty(),
        )
    }

    /// As [`Mapping::at`], and kept out of forks from the start (see
    /// [`keep_from_forks`](Mapping::keep_from_forks)): no fork copies it, not even one another
    /// thread makes at that very moment (a fork waits until the mapping is made and marked,
    /// where one between [`Mapping::at`] and `keep_from_forks` would copy it).
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let fd = mp_sys::shm::memfd(c"example", 8192)?;
    /// // SAFETY: a fresh memfd, not reached at all.
    /// let map = unsafe { mp_sys::mmap::Mapping::at_kept_from_forks(fd.as_fd(), 4096, 4096) }?;
    /// assert_eq!(map.len(), 4096);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    /// As [`Mapping::new`].
    pub unsafe fn at_kept_from_forks(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<Mapping> {
        // Before the range is listed: every fork from now on runs the holes' actions.
        HOLES_AROUND_FORK.register();
        // Under the list's lock, which a fork's prepare action takes: no fork in between.
        holes::with(|list| {
            let mut map = Mapping::map(
                fd,
                offset,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::empty(),
            )?;
            // Not `kept` yet: dropped on an error, it leaves the list (locked here) alone.
            map.dont_fork()?;
            list.push((map.ptr.as_ptr() as usize, map.len));
            map.kept = true;
            Ok(map)
        })
    }

    /// The mapping as 64-bit atomic words (the bytes after the last whole word are left
    /// out): shared counters that other processes read and write too.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use std::sync::atomic::Ordering;
    /// let fd = mp_sys::shm::memfd(c"example", 4096)?;
    /// // SAFETY: a fresh memfd, reached only through these atomics.
    /// let (a, b) = unsafe { (mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?, mp_sys::mmap::Mapping::new(fd.as_fd(), 4096)?) };
    /// a.atomic_words()[3].store(7, Ordering::Relaxed);
    /// assert_eq!(b.atomic_words()[3].load(Ordering::Relaxed), 7);
    /// assert_eq!(a.atomic_words().len(), 512);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn atomic_words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned (so 8-aligned), writable, `len / 8` words fit in
        // it, and it stays mapped while `self` is borrowed. `AtomicU64` has `u64`'s layout,
        // every bit pattern is a valid value, and every access of this process to these bytes
        // is race-free (the promise made to `new`); writes by other processes are atomic
        // accesses as far as this one is concerned.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU64>(), self.len / 8) }
    }
}

impl Mapping<ReadOnly> {
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
    pub fn read_only(fd: BorrowedFd<'_>, len: usize, populate: bool) -> io::Result<Mapping<ReadOnly>> {
        let flags = if populate {
            MapFlags::POPULATE
        } else {
            MapFlags::empty()
        };
        Mapping::map(fd, 0, len, ProtFlags::READ, flags)
    }
}

impl<A> Mapping<A> {
    fn map(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
        prot: ProtFlags,
        flags: MapFlags,
    ) -> io::Result<Mapping<A>> {
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
            _access: PhantomData,
        })
    }

    /// Keeps this mapping out of children forked from now on (`MADV_DONTFORK`): no forked
    /// child shares these pages. So that a copy of a handle that a forked child has anyway
    /// (one a closure carried) still points at memory, the child finds private zero-filled
    /// pages at these addresses (mapped by a child action of [`fork`](crate::fork) before
    /// `fork` returns there). A fork that another thread makes before this call copies the
    /// mapping: [`Mapping::at_kept_from_forks`] leaves no such moment.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let fd = mp_sys::shm::memfd(c"example", 4096)?;
    /// // SAFETY: a fresh memfd, not reached at all.
    /// let mut map = unsafe { mp_sys::mmap::Mapping::new(fd.as_fd(), 4096) }?;
    /// map.keep_from_forks()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn keep_from_forks(&mut self) -> io::Result<()> {
        if self.kept {
            return Ok(());
        }
        holes::register(self.ptr.as_ptr() as usize, self.len);
        self.kept = true;
        self.dont_fork()
    }

    fn dont_fork(&self) -> io::Result<()> {
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

impl<A> Drop for Mapping<A> {
    fn drop(&mut self) {
        if self.kept {
            holes::unregister(self.ptr.as_ptr() as usize);
        }
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to the mapping any more.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Registered before a range is first listed: see `holes`.
pub(crate) static HOLES_AROUND_FORK: crate::fork::AtFork = crate::fork::AtFork::around(
    crate::fork::Rank::MMAP_HOLES,
    holes::prepare,
    holes::parent,
    holes::child,
);

/// The mappings kept out of forks: a forked child maps private zero-filled pages in their
/// place before `fork` returns there, so that no address a handle holds is a hole.
mod holes {
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::mm::{MapFlags, ProtFlags};

    /// A spin lock and the list it guards: taken by the prepare action and released on both
    /// sides, so the child reads a list no thread was changing. (Not a std `Mutex`: its guard
    /// cannot be carried from one fork phase to the next.)
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

    pub(super) fn with<R>(f: impl FnOnce(&mut Vec<(usize, usize)>) -> R) -> R {
        lock();
        // SAFETY: `busy` is taken: no other reference to the list exists.
        let r = f(unsafe { &mut *HOLES.list.get() });
        unlock();
        r
    }

    pub(super) fn prepare() {
        lock();
    }

    pub(super) fn parent() {
        unlock();
    }

    pub(super) fn child() {
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
        // Before the range is listed: every fork from now on runs the actions above.
        super::HOLES_AROUND_FORK.register();
        with(|l| l.push((addr, len)));
    }

    pub(super) fn unregister(addr: usize) {
        with(|l| l.retain(|&(a, _)| a != addr));
    }
}

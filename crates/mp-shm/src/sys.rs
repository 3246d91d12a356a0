//! The thin layer over the OS: every `unsafe` call of mp-shm lives here (memfd and named
//! shared memory, mmap, futexes, process-shared robust mutexes). mp-ipc builds its queue on the
//! same pieces, so this module is public but hidden from the docs.

use std::cell::Cell;
use std::ffi::{CStr, c_int};
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Once;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant, SystemTime};

/// A libc return value: -1 becomes the OS error.
pub fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// As [`cvt`], retrying calls interrupted by a signal.
pub fn cvt_retry(mut f: impl FnMut() -> c_int) -> io::Result<c_int> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[inline]
fn check(r: c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Fills `buf` from the kernel's random source.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid writable buffer of the given length.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Gives up the CPU (the middle step of a spin-then-sleep wait).
pub fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

// ---------------------------------------------------------------------------------------------
// Shared memory

/// An anonymous shared-memory file of `len` bytes (sparse: pages cost nothing until touched).
/// It has no name, so nothing can leak: it is gone when the last descriptor and mapping are.
pub fn memfd(name: &CStr, len: u64) -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid C string; memfd_create returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: memfd_create succeeded, so the descriptor is open and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_len(fd.as_fd(), len)?;
    Ok(fd)
}

/// Sets the size of a file.
pub fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: ftruncate on a borrowed, open descriptor.
    cvt_retry(|| unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// The size of a file.
pub fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: fstat writes into `st`, which is valid for writes.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_size as u64)
}

/// Opens a POSIX named shared-memory object (`/dev/shm/<name without the slash>`).
/// `create` makes it exclusively (`O_CREAT | O_EXCL`, mode 0600, as Python).
pub fn shm_open(name: &CStr, create: bool) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR
        | libc::O_CLOEXEC
        | if create {
            libc::O_CREAT | libc::O_EXCL
        } else {
            0
        };
    // SAFETY: `name` is a valid C string; shm_open returns a new descriptor or -1.
    let fd = cvt_retry(|| unsafe { libc::shm_open(name.as_ptr(), flags, 0o600) })?;
    // SAFETY: the descriptor is new and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes a POSIX named shared-memory object's name.
pub fn shm_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid C string.
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) }).map(drop)
}

/// A shared mapping of the start of a file, unmapped on drop.
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
    /// Maps `len` bytes of `fd`, shared, without reserving swap for them.
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh mapping chosen by the kernel; it aliases no Rust object.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
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
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to the mapping any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Gives the pages of `[offset, offset + len)` back to the system; they read as zeros after.
pub fn punch_hole(fd: BorrowedFd<'_>, offset: u64, len: u64) {
    // SAFETY: fallocate on a descriptor we hold; a failure only means the memory stays in use.
    unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
}

// ---------------------------------------------------------------------------------------------
// Futexes (shared, so no FUTEX_PRIVATE_FLAG)

/// Sleeps while `*word == expected`, until woken or the deadline passes. Spurious returns are
/// allowed: callers re-check their condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let ts = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        libc::timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        }
    });
    if ts.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0) {
        return;
    }
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; `tsp` is null or
    // points to a timespec that outlives it. Errors (EAGAIN, EINTR, ETIMEDOUT) all mean "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            std::ptr::null::<u32>(),
            0,
        )
    };
}

/// Wakes up to `n` sleepers on `word`.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only reads its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        )
    };
}

// ---------------------------------------------------------------------------------------------
// Who is calling: the thread id, cached per thread.

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

static FORGET_AFTER_FORK: Once = Once::new();

extern "C" fn forget_thread_id() {
    // The forking thread is the child's only thread; its cached id is the parent's.
    TID.with(|tid| tid.set(0));
}

/// This thread's id, as robust futex words hold it (unique system-wide among live threads).
#[inline]
pub fn thread_id() -> u32 {
    TID.with(|cached| {
        let tid = cached.get();
        if tid != 0 {
            return tid;
        }
        FORGET_AFTER_FORK.call_once(|| {
            // SAFETY: registering a plain extern "C" function with no state; it only touches
            // this thread's thread-local.
            unsafe { libc::pthread_atfork(None, None, Some(forget_thread_id)) };
        });
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        cached.set(tid);
        tid
    })
}

/// Whether `tid` is a live thread of this process.
pub fn is_thread_of_this_process(tid: u32) -> bool {
    // SAFETY: signal 0 only checks that the thread exists in our thread group; nothing is sent.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, 0) == 0 }
}

// ---------------------------------------------------------------------------------------------
// Process-shared robust mutexes

/// What taking a robust lock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The lock was free or released normally.
    Clean,
    /// Its previous holder died while holding it; the lock is ours and marked consistent again.
    OwnerDied,
    /// The deadline passed (or the lock was busy and we were not to wait).
    TimedOut,
    /// The calling thread already holds it (the mutexes are error-checking).
    AlreadyHeld,
}

/// Initialises a `pthread_mutex_t` in shared memory as process-shared, robust and
/// error-checking (a second lock by the holder fails instead of deadlocking, an unlock by
/// anyone else fails: the checks cost nothing extra on a robust mutex).
///
/// # Safety
/// `m` must point to writable, suitably aligned memory that no one else uses yet.
pub unsafe fn robust_mutex_init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: attr is initialised by pthread_mutexattr_init before use and destroyed after;
    // the caller guarantees `m` is valid and unshared.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = mem::zeroed();
        check(libc::pthread_mutexattr_init(&mut attr))?;
        check(libc::pthread_mutexattr_setpshared(
            &mut attr,
            libc::PTHREAD_PROCESS_SHARED,
        ))?;
        check(libc::pthread_mutexattr_setrobust(
            &mut attr,
            libc::PTHREAD_MUTEX_ROBUST,
        ))?;
        check(libc::pthread_mutexattr_settype(
            &mut attr,
            libc::PTHREAD_MUTEX_ERRORCHECK,
        ))?;
        let r = check(libc::pthread_mutex_init(m, &attr));
        libc::pthread_mutexattr_destroy(&mut attr);
        r
    }
}

#[inline]
fn robust_outcome(m: *mut libc::pthread_mutex_t, r: c_int) -> io::Result<Locked> {
    match r {
        0 => Ok(Locked::Clean),
        libc::EOWNERDEAD => {
            // SAFETY: we hold the mutex (EOWNERDEAD hands it over), as consistent requires.
            check(unsafe { libc::pthread_mutex_consistent(m) })?;
            Ok(Locked::OwnerDied)
        }
        libc::ETIMEDOUT | libc::EBUSY => Ok(Locked::TimedOut),
        libc::EDEADLK => Ok(Locked::AlreadyHeld),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Takes a robust mutex; a dead holder is reported, and the mutex made consistent again.
///
/// # Safety
/// `m` must point to a mutex set up by [`robust_mutex_init`] in memory that stays mapped.
#[inline]
pub unsafe fn robust_mutex_lock(m: *mut libc::pthread_mutex_t) -> io::Result<Locked> {
    // SAFETY: the caller guarantees `m` is an initialised robust mutex.
    robust_outcome(m, unsafe { libc::pthread_mutex_lock(m) })
}

/// Tries a robust mutex without waiting ([`Locked::TimedOut`] if it is busy).
///
/// # Safety
/// As [`robust_mutex_lock`].
#[inline]
pub unsafe fn robust_mutex_trylock(m: *mut libc::pthread_mutex_t) -> io::Result<Locked> {
    // SAFETY: the caller guarantees `m` is an initialised robust mutex.
    robust_outcome(m, unsafe { libc::pthread_mutex_trylock(m) })
}

/// Takes a robust mutex, waiting at most until `deadline` (a monotonic instant; the wait is
/// re-armed if the wall clock jumps, since pthread only takes real-time deadlines).
///
/// # Safety
/// As [`robust_mutex_lock`].
pub unsafe fn robust_mutex_lock_until(
    m: *mut libc::pthread_mutex_t,
    deadline: Instant,
) -> io::Result<Locked> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // SAFETY: as the caller guarantees for this function.
            return unsafe { robust_mutex_trylock(m) };
        }
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .saturating_add(left);
        let ts = libc::timespec {
            tv_sec: wall.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: wall.subsec_nanos() as libc::c_long,
        };
        // SAFETY: the caller guarantees `m`; `ts` is a valid timespec for the call.
        let r = unsafe { libc::pthread_mutex_timedlock(m, &ts) };
        if r == libc::ETIMEDOUT && Instant::now() < deadline {
            continue;
        }
        return robust_outcome(m, r);
    }
}

/// Releases a robust mutex. `EPERM` when the calling thread does not hold it.
///
/// # Safety
/// `m` must point to a mutex set up by [`robust_mutex_init`] in memory that stays mapped.
#[inline]
pub unsafe fn robust_mutex_unlock(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: the caller guarantees `m`; glibc checks the owner of a robust mutex.
    check(unsafe { libc::pthread_mutex_unlock(m) })
}

// ---------------------------------------------------------------------------------------------
// Sockets and signals (the resource tracker's, and mp-ipc's)

/// A close-on-exec Unix socket pair of the given type (`SOCK_STREAM`, `SOCK_SEQPACKET`).
pub fn socketpair(kind: c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both descriptors are open and now owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes all of `data`, without raising `SIGPIPE`.
pub fn send_all(sock: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: `data` is a valid readable buffer of the given length.
        let n = cvt_retry(|| unsafe {
            libc::send(
                sock.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            ) as c_int
        })?;
        data = &data[n as usize..];
    }
    Ok(())
}

/// Ignores a signal in this process.
pub fn ignore_signal(signal: c_int) {
    // SAFETY: installing SIG_IGN has no preconditions.
    unsafe { libc::signal(signal, libc::SIG_IGN) };
}

/// Ends the process at once, without atexit handlers or unwinding.
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

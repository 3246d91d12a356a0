//! The thin layer over the OS: every `unsafe` call of mp-ipc lives here (sockets, poll,
//! memfd + mmap, futexes, eventfds and process-shared robust mutexes).

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_retry(mut f: impl FnMut() -> c_int) -> io::Result<c_int> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A close-on-exec Unix socket pair of the given type (`SOCK_STREAM`, `SOCK_SEQPACKET`).
pub(crate) fn socketpair(kind: c_int) -> io::Result<(OwnedFd, OwnedFd)> {
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

/// Shuts down one or both directions of a socket (`libc::SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
pub(crate) fn shutdown(sock: BorrowedFd<'_>, how: c_int) -> io::Result<()> {
    // SAFETY: shutdown on a borrowed, open descriptor.
    cvt(unsafe { libc::shutdown(sock.as_raw_fd(), how) }).map(drop)
}

/// Sets or clears `O_NONBLOCK` (shared by every duplicate of the descriptor).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a borrowed, open descriptor.
    unsafe {
        let flags = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        cvt(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags)).map(drop)
    }
}

/// Writes all of `data`, without raising `SIGPIPE` on sockets.
pub(crate) fn send_all(sock: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
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

/// Appends up to `max` bytes read from `fd` to `buf`, without zero-filling them first.
/// Returns the number read; 0 means end of stream.
pub(crate) fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.try_reserve(max)
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    let spare = buf.spare_capacity_mut();
    let want = max.min(spare.len());
    // SAFETY: `spare` is writable memory of at least `want` bytes owned by `buf`.
    let n = cvt_retry(|| unsafe {
        libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) as c_int
    })? as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Milliseconds for poll, rounded up so that a short timeout waits rather than spins.
fn poll_ms(deadline: Option<Instant>) -> c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_int
        }
    }
}

/// Waits until some of `fds` are readable (or hung up), or the deadline passes.
/// Returns which ones are ready; all false on timeout.
pub(crate) fn poll_in(fds: &[BorrowedFd<'_>], deadline: Option<Instant>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid array of pollfd of the given length.
        let r = unsafe {
            libc::poll(
                pfds.as_mut_ptr(),
                pfds.len() as libc::nfds_t,
                poll_ms(deadline),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(pfds.iter().map(|p| p.revents != 0).collect());
    }
}

/// Fills `buf` from the kernel's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
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

// ---------------------------------------------------------------------------------------------
// Shared memory

/// An anonymous shared-memory file, sized `len` (sparse: pages cost nothing until touched).
pub(crate) fn memfd(len: u64) -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid C string; memfd_create returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::memfd_create(c"mp-queue".as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: memfd_create succeeded, so the descriptor is open and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on the descriptor we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) })?;
    Ok(fd)
}

/// The size of a file.
pub(crate) fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: fstat writes into `st`, which is valid for writes.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_size as u64)
}

/// A shared mapping of a whole file, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access to it goes through atomics or
// through ranges that the queue's locks hand to one thread at a time.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd`, shared, without reserving swap for them.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
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

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to the mapping any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Gives the pages of `[offset, offset + len)` back to the system; they read as zeros after.
pub(crate) fn punch_hole(fd: BorrowedFd<'_>, offset: u64, len: u64) {
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
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
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
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
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
// eventfd: the pollable doorbell of a queue, for `wait`.

pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: the descriptor is new and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn eventfd_ring(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: an 8-byte write from a valid buffer; a full counter (EAGAIN) is still readable.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    // SAFETY: an 8-byte read into a valid buffer; EAGAIN (already zero) is fine.
    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
}

// ---------------------------------------------------------------------------------------------
// Process-shared robust mutexes

/// What taking a robust lock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// The lock was free or released normally.
    Clean,
    /// Its previous holder died while holding it; the lock is ours and marked consistent again.
    OwnerDied,
}

/// Initialises a `pthread_mutex_t` in shared memory as process-shared and robust.
///
/// # Safety
/// `m` must point to writable, suitably aligned memory that no one else uses yet.
pub(crate) unsafe fn robust_mutex_init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
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
        let r = check(libc::pthread_mutex_init(m, &attr));
        libc::pthread_mutexattr_destroy(&mut attr);
        r
    }
}

fn check(r: c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Takes a robust mutex; a dead holder is reported, and the mutex made consistent again.
///
/// # Safety
/// `m` must point to a mutex set up by [`robust_mutex_init`] in memory that stays mapped.
pub(crate) unsafe fn robust_mutex_lock(m: *mut libc::pthread_mutex_t) -> io::Result<Locked> {
    // SAFETY: the caller guarantees `m` is an initialised robust mutex.
    match unsafe { libc::pthread_mutex_lock(m) } {
        0 => Ok(Locked::Clean),
        libc::EOWNERDEAD => {
            // SAFETY: we hold the mutex (EOWNERDEAD hands it over), as consistent requires.
            check(unsafe { libc::pthread_mutex_consistent(m) })?;
            Ok(Locked::OwnerDied)
        }
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Releases a mutex taken by [`robust_mutex_lock`] on this thread.
///
/// # Safety
/// The calling thread must hold `m`.
pub(crate) unsafe fn robust_mutex_unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: the caller holds the mutex.
    unsafe { libc::pthread_mutex_unlock(m) };
}

/// Gives up the CPU (the middle step of the spin-then-sleep wait).
pub(crate) fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

//! Process-shared, robust, error-checking pthread mutexes in shared memory (on libc: rustix
//! has no pthread calls, and only glibc's mutex implements the robust-list protocol with the
//! kernel, so a holder that dies hands the lock over with `EOWNERDEAD`).
//!
//! Why [`owner`] reads glibc's private `pthread_mutex_t` layout: the holder's thread id is
//! needed without taking the lock (is the holder a thread of this process? a dying process
//! must not unmap a lock it holds). The kernel's robust-futex ABI fixes that the futex word
//! holds the owner's tid (masked by `FUTEX_TID_MASK`), and glibc puts that word (`__lock`) as
//! the first field of `pthread_mutex_t` on every architecture; the project is glibc-only.
//! This is the only place that relies on it.

use std::ffi::c_int;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The mutex type, as it lies in shared memory.
pub type RawMutex = libc::pthread_mutex_t;

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

#[inline]
fn check(r: c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Initialises a `pthread_mutex_t` in shared memory as process-shared, robust and
/// error-checking (a second lock by the holder fails instead of deadlocking, an unlock by
/// anyone else fails: the checks cost nothing extra on a robust mutex).
///
/// # Safety
/// `m` must point to writable, suitably aligned memory that no one else uses yet.
///
/// ```
/// use mp_sys::robust_mutex::{self, Locked, RawMutex};
/// let mut m = std::mem::MaybeUninit::<RawMutex>::uninit();
/// // SAFETY: `m` is ours, aligned, and stays alive for every call below.
/// unsafe {
///     robust_mutex::init(m.as_mut_ptr())?;
///     assert_eq!(robust_mutex::lock(m.as_mut_ptr())?, Locked::Clean);
///     assert_eq!(robust_mutex::owner(m.as_mut_ptr()), mp_sys::thread::id());
///     robust_mutex::unlock(m.as_mut_ptr())?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub unsafe fn init(m: *mut RawMutex) -> io::Result<()> {
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
fn outcome(m: *mut RawMutex, r: c_int) -> io::Result<Locked> {
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
/// `m` must point to a mutex set up by [`init`] in memory that stays mapped.
#[inline]
pub unsafe fn lock(m: *mut RawMutex) -> io::Result<Locked> {
    // SAFETY: the caller guarantees `m` is an initialised robust mutex.
    outcome(m, unsafe { libc::pthread_mutex_lock(m) })
}

/// Tries a robust mutex without waiting ([`Locked::TimedOut`] if it is busy).
///
/// # Safety
/// As [`lock`].
#[inline]
pub unsafe fn trylock(m: *mut RawMutex) -> io::Result<Locked> {
    // SAFETY: the caller guarantees `m` is an initialised robust mutex.
    outcome(m, unsafe { libc::pthread_mutex_trylock(m) })
}

/// Takes a robust mutex, waiting at most until `deadline` (a monotonic instant; the wait is
/// re-armed if the wall clock jumps, since pthread only takes real-time deadlines).
///
/// # Safety
/// As [`lock`].
pub unsafe fn lock_until(m: *mut RawMutex, deadline: Instant) -> io::Result<Locked> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // SAFETY: as the caller guarantees for this function.
            return unsafe { trylock(m) };
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
        return outcome(m, r);
    }
}

/// Releases a robust mutex. `EPERM` when the calling thread does not hold it.
///
/// # Safety
/// As [`lock`].
#[inline]
pub unsafe fn unlock(m: *mut RawMutex) -> io::Result<()> {
    // SAFETY: the caller guarantees `m`; glibc checks the owner of a robust mutex.
    check(unsafe { libc::pthread_mutex_unlock(m) })
}

/// The holder's thread id (0 when free), read without taking the lock (see the module doc for
/// why the layout is known).
///
/// # Safety
/// As [`lock`].
#[inline]
pub unsafe fn owner(m: *mut RawMutex) -> u32 {
    // SAFETY: the futex word is the first, 4-aligned field of glibc's pthread_mutex_t, in
    // memory the caller keeps mapped; glibc and the kernel update it atomically, so an atomic
    // read is the right view.
    let word = unsafe { &*m.cast::<AtomicU32>() };
    word.load(Ordering::Relaxed) & libc::FUTEX_TID_MASK
}

//! Process-shared, robust, error-checking pthread mutexes in shared memory (on libc: rustix
//! has no pthread calls, and the C library's mutex implements the robust-list protocol with
//! the kernel, so a holder that dies hands the lock over with `EOWNERDEAD`; glibc and musl
//! both do).
//!
//! The holder is needed without taking the lock (is it this thread? a thread of this process?
//! a dying process must not unmap a lock it holds), and `pthread_mutex_t` does not say. So a
//! [`RawMutex`] is the pthread mutex plus a holder word that the functions here keep: the
//! holder's [`thread::token`](crate::thread::token), written right after taking the mutex and
//! cleared right before releasing it. Nothing reads the C library's private layout. A holder
//! that dies leaves its token behind until the next taker's; a token names its process as well
//! as its thread, so a reused thread id does not make another thread the holder.

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The mutex as it lies in shared memory: the pthread mutex and its holder word.
#[repr(C)]
#[derive(Debug)]
pub struct RawMutex {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    holder: AtomicU64,
}

/// The pthread mutex inside `m`.
///
/// # Safety
/// `m` must point to a `RawMutex` in memory that stays mapped.
#[inline]
unsafe fn pthread(m: *mut RawMutex) -> *mut libc::pthread_mutex_t {
    // SAFETY: the caller guarantees `m`; no reference is formed.
    unsafe { UnsafeCell::raw_get(&raw const (*m).mutex) }
}

/// The holder word inside `m`.
///
/// # Safety
/// `m` must point to an initialised `RawMutex` in memory that stays mapped for `'a`.
#[inline]
unsafe fn holder<'a>(m: *mut RawMutex) -> &'a AtomicU64 {
    // SAFETY: the caller guarantees `m`; the word is only ever accessed atomically.
    unsafe { &(*m).holder }
}

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
///     assert_eq!(robust_mutex::owner(m.as_mut_ptr()), mp_sys::thread::token());
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
        (&raw mut (*m).holder).write(AtomicU64::new(0));
        let r = check(libc::pthread_mutex_init(pthread(m), &attr));
        libc::pthread_mutexattr_destroy(&mut attr);
        r
    }
}

/// What a lock call's result means; a taken mutex gets this thread as its holder.
///
/// # Safety
/// `m` must point to an initialised `RawMutex` in memory that stays mapped.
#[inline]
unsafe fn outcome(m: *mut RawMutex, r: c_int) -> io::Result<Locked> {
    let took = || {
        // SAFETY: the caller guarantees `m`.
        unsafe { holder(m) }.store(crate::thread::token(), Ordering::Relaxed);
    };
    match r {
        0 => {
            took();
            Ok(Locked::Clean)
        }
        libc::EOWNERDEAD => {
            // SAFETY: we hold the mutex (EOWNERDEAD hands it over), as consistent requires.
            check(unsafe { libc::pthread_mutex_consistent(pthread(m)) })?;
            took();
            Ok(Locked::OwnerDied)
        }
        // musl's trylock says EBUSY where glibc's says EDEADLK: the holder word tells.
        // SAFETY: the caller guarantees `m`.
        libc::EBUSY if unsafe { holder(m) }.load(Ordering::Relaxed) == crate::thread::token() => {
            Ok(Locked::AlreadyHeld)
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
    unsafe { outcome(m, libc::pthread_mutex_lock(pthread(m))) }
}

/// Tries a robust mutex without waiting ([`Locked::TimedOut`] if it is busy).
///
/// # Safety
/// As [`lock`].
#[inline]
pub unsafe fn trylock(m: *mut RawMutex) -> io::Result<Locked> {
    // SAFETY: the caller guarantees `m` is an initialised robust mutex.
    unsafe { outcome(m, libc::pthread_mutex_trylock(pthread(m))) }
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
            tv_sec: wall.as_secs().min(i64::MAX as u64) as _,
            tv_nsec: wall.subsec_nanos() as libc::c_long,
        };
        // SAFETY: the caller guarantees `m`; `ts` is a valid timespec for the call.
        let r = unsafe { libc::pthread_mutex_timedlock(pthread(m), &ts) };
        if r == libc::ETIMEDOUT && Instant::now() < deadline {
            continue;
        }
        // SAFETY: as the caller guarantees for this function.
        return unsafe { outcome(m, r) };
    }
}

/// Releases a robust mutex. `EPERM` when the calling thread does not hold it.
///
/// # Safety
/// As [`lock`].
#[inline]
pub unsafe fn unlock(m: *mut RawMutex) -> io::Result<()> {
    // SAFETY: the caller guarantees `m`.
    let holder = unsafe { holder(m) };
    let me = crate::thread::token();
    if holder.load(Ordering::Relaxed) != me {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    holder.store(0, Ordering::Relaxed);
    // SAFETY: the caller guarantees `m`; this thread holds it (it wrote the holder word after
    // taking it, and only the holder clears it).
    let r = check(unsafe { libc::pthread_mutex_unlock(pthread(m)) });
    if r.is_err() {
        holder.store(me, Ordering::Relaxed);
    }
    r
}

/// The holder's [`thread::token`](crate::thread::token) (0 when free), read without taking the
/// lock. A holder that died leaves its token until the mutex is taken again.
///
/// # Safety
/// As [`lock`].
#[inline]
pub unsafe fn owner(m: *mut RawMutex) -> u64 {
    // SAFETY: the caller guarantees `m`.
    unsafe { holder(m) }.load(Ordering::Relaxed)
}

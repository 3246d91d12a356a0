//! Process-shared locks and their relatives, as Python's `multiprocessing.synchronize`.
//!
//! Each object is a small anonymous shared block (see `heap`), so it travels to children as
//! an ordinary argument under every start method and leaves nothing behind in /dev/shm.
//! `Lock` and `RLock` are robust pthread mutexes: a holder that dies is noticed by the next
//! acquirer ([`SyncError::OwnerDied`]) instead of deadlocking it. The rest are futex words.

use std::cell::UnsafeCell;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use mp_spawn::reduction::Fd;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{LockError, LockResult, SyncError};
use crate::heap::{Block, Kind, Tagged};
use crate::sys::{self, Locked};

use mp_spawn::deadline::of as deadline;

fn timed_out(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

// ---------------------------------------------------------------------------------------------
// The robust mutex under Lock, RLock and the locks of Value and Array.

/// The shared state of a lock. Who holds it is the mutex's own business: a robust futex word
/// holds its owner's thread id (the kernel's robust-futex ABI, and the first field of glibc's
/// `pthread_mutex_t`), so there is nothing for us to keep in step.
#[repr(C)]
pub(crate) struct MutexState {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    /// RLock recursion depth; only the holder writes it.
    count: AtomicU32,
    /// Sticky: a holder died, and nobody has called `clear_owner_died` since.
    owner_died: AtomicU32,
    /// A `Value` or `Array` guard holds one level of the lock and hands out `&mut` to the data:
    /// the level may not be released under it. Only the holder writes it; every fresh take
    /// clears it (a guard cannot outlive its holder's hold, nor a dead holder).
    guarded: AtomicU32,
}

/// Where the data guarded by a lock starts in its block: its own cache line.
pub(crate) const DATA_OFFSET: usize = 64;
const _: () = assert!(std::mem::size_of::<MutexState>() <= DATA_OFFSET);

// SAFETY: the pthread mutex is process-shared and synchronises itself; the other fields are
// atomics.
unsafe impl Sync for MutexState {}

/// How long `acquire` may wait.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Instant),
    Forever,
}

impl Wait {
    fn new(block: bool, timeout: Option<Duration>) -> Wait {
        match (block, deadline(timeout)) {
            (false, _) => Wait::No,
            (true, Some(d)) => Wait::Until(d),
            (true, None) => Wait::Forever,
        }
    }
}

/// The block that holds a [`MutexState`], at offset 0, followed by whatever it guards.
#[derive(Debug)]
pub(crate) struct MutexBlock {
    block: Block,
}

impl MutexBlock {
    /// A new block of `MutexState` plus `extra` bytes (zero-filled) at [`DATA_OFFSET`], the
    /// mutex initialised.
    pub(crate) fn new(extra: usize) -> io::Result<MutexBlock> {
        let len = DATA_OFFSET
            .checked_add(extra)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let block = Block::new(Kind::Mutex, len)?;
        // SAFETY: the block is fresh, page-aligned, big enough, and not shared with anyone yet.
        unsafe { sys::robust_mutex_init(block.ptr().cast::<libc::pthread_mutex_t>())? };
        Ok(MutexBlock {
            block: block.with_drop_check(held_here),
        })
    }

    pub(crate) fn deserialize_sized<'de, D: Deserializer<'de>>(
        d: D,
        extra: usize,
    ) -> Result<MutexBlock, D::Error> {
        let fd = Tagged::deserialize(d)?
            .fd(Kind::Mutex)
            .map_err(custom_error)?;
        MutexBlock::attach(fd, extra).map_err(custom_error)
    }

    /// Maps a block received from another process, checking it has room for `extra` bytes.
    pub(crate) fn attach(fd: Fd, extra: usize) -> Result<MutexBlock, String> {
        let need = DATA_OFFSET
            .checked_add(extra)
            .ok_or_else(|| "the shared block would be too large".to_owned())?;
        let block = Block::attach(Kind::Mutex, fd, need)?;
        Ok(MutexBlock {
            block: block.with_drop_check(held_here),
        })
    }

    #[inline]
    fn state(&self) -> &MutexState {
        // SAFETY: the block starts with an initialised MutexState (checked size, page
        // alignment) and stays mapped while `self` lives; it is only reached through shared
        // references and atomics.
        unsafe { &*self.block.ptr().cast::<MutexState>() }
    }

    /// The guarded bytes, at [`DATA_OFFSET`] (64-byte aligned: the block is page-aligned).
    pub(crate) fn data(&self) -> *mut u8 {
        // SAFETY: every MutexBlock has at least DATA_OFFSET bytes (checked when made or attached).
        unsafe { self.block.ptr().add(DATA_OFFSET) }
    }

    #[inline]
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.state().mutex.get()
    }

    /// The thread id of the holder, 0 when free.
    #[inline]
    fn owner(&self) -> u32 {
        owner_of(self.mutex())
    }

    #[inline]
    pub(crate) fn held_by_me(&self) -> bool {
        self.owner() == sys::thread_id()
    }

    /// Takes the mutex at depth one, waiting as long as it takes (not re-entrant).
    #[inline]
    pub(crate) fn take_forever(&self) -> Result<bool, SyncError> {
        let taken = self.take(Wait::Forever);
        if matches!(taken, Ok(true) | Err(SyncError::OwnerDied)) {
            self.state().count.store(1, Relaxed);
        }
        taken
    }

    /// Takes the mutex (not re-entrant). `Ok(false)`: not taken in time.
    #[inline]
    fn take(&self, wait: Wait) -> Result<bool, SyncError> {
        let m = self.mutex();
        // SAFETY: `m` is the initialised robust mutex of this block, mapped while self lives.
        let locked = unsafe {
            match wait {
                Wait::No => sys::robust_mutex_trylock(m),
                Wait::Until(d) => sys::robust_mutex_lock_until(m, d),
                Wait::Forever => sys::robust_mutex_lock(m),
            }
        }?;
        let state = self.state();
        match locked {
            Locked::TimedOut => Ok(false),
            Locked::AlreadyHeld => Err(SyncError::Reentrant),
            Locked::Clean => {
                state.guarded.store(0, Relaxed);
                if state.owner_died.load(Relaxed) != 0 {
                    Err(SyncError::OwnerDied)
                } else {
                    Ok(true)
                }
            }
            Locked::OwnerDied => {
                state.guarded.store(0, Relaxed);
                state.owner_died.store(1, Relaxed);
                Err(SyncError::OwnerDied)
            }
        }
    }

    /// Releases the mutex entirely (whatever the recursion count), unless a guard holds it.
    #[inline]
    fn give(&self) -> Result<(), SyncError> {
        if !self.held_by_me() {
            return Err(SyncError::NotHeld);
        }
        if self.guarded() {
            return Err(SyncError::GuardHeld);
        }
        self.state().count.store(0, Relaxed);
        // SAFETY: the robust mutex of this block, held by this thread (checked above).
        unsafe { sys::robust_mutex_unlock(self.mutex()) }.map_err(|_| SyncError::NotHeld)
    }

    /// Plain-lock acquire: a second acquire by the holder cannot succeed.
    #[inline]
    pub(crate) fn acquire_once(
        &self,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        let wait = Wait::new(block, timeout);
        match self.take(wait) {
            // Held by this thread already: Python blocks; we fail a wait that would never end.
            Err(SyncError::Reentrant) => match wait {
                Wait::Forever => Err(SyncError::Reentrant),
                Wait::No => Ok(false),
                Wait::Until(d) => {
                    // Python waits out the timeout; nothing else can release it for us.
                    std::thread::sleep(d.saturating_duration_since(Instant::now()));
                    Ok(false)
                }
            },
            other => other,
        }
    }

    /// Plain-lock release: the mutex itself checks the holder. A `Value`'s lock received as a
    /// plain `Lock` is still refused under a live guard.
    #[inline]
    pub(crate) fn release_once(&self) -> Result<(), SyncError> {
        if self.guarded() && self.held_by_me() {
            return Err(SyncError::GuardHeld);
        }
        // SAFETY: the robust mutex of this block; an unlock by a non-holder fails with EPERM.
        unsafe { sys::robust_mutex_unlock(self.mutex()) }.map_err(|_| SyncError::NotHeld)
    }

    /// Re-entrant acquire.
    pub(crate) fn acquire_counted(
        &self,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        if self.held_by_me() {
            let state = self.state();
            let count = state.count.load(Relaxed);
            let next = count
                .checked_add(1)
                .ok_or(SyncError::Os(io::Error::from_raw_os_error(libc::EAGAIN)))?;
            state.count.store(next, Relaxed);
            return Ok(true);
        }
        let taken = self.take(Wait::new(block, timeout));
        if matches!(taken, Ok(true) | Err(SyncError::OwnerDied)) {
            self.state().count.store(1, Relaxed);
        }
        taken
    }

    pub(crate) fn release_counted(&self) -> Result<(), SyncError> {
        if !self.held_by_me() {
            return Err(SyncError::NotHeld);
        }
        let state = self.state();
        let count = state.count.load(Relaxed);
        if count > 1 {
            state.count.store(count - 1, Relaxed);
            Ok(())
        } else {
            self.give()
        }
    }

    /// Releases every level, returning the depth to restore (Condition.wait).
    fn release_save(&self) -> Result<u32, SyncError> {
        if !self.held_by_me() {
            return Err(SyncError::NotHeld);
        }
        let count = self.state().count.load(Relaxed);
        self.give()?;
        Ok(count)
    }

    fn acquire_restore(&self, count: u32) -> Result<(), SyncError> {
        let taken = self.take(Wait::Forever);
        self.state().count.store(count, Relaxed);
        taken.map(drop)
    }

    fn locked(&self) -> bool {
        self.owner() != 0
    }

    /// Whether a data guard holds a level of the lock (meaningful to the holder only).
    #[inline]
    pub(crate) fn guarded(&self) -> bool {
        self.state().guarded.load(Relaxed) != 0
    }

    /// Marks a data guard as holding a level; `false` if one already did. Holder only.
    pub(crate) fn set_guarded(&self) -> bool {
        self.state().guarded.swap(1, Relaxed) == 0
    }

    /// The data guard is gone. Holder only.
    pub(crate) fn clear_guarded(&self) {
        self.mark_guarded(false);
    }

    /// Sets or clears the guard mark. Holder only.
    #[inline]
    pub(crate) fn mark_guarded(&self, on: bool) {
        self.state().guarded.store(u32::from(on), Relaxed);
    }

    fn owner_died(&self) -> bool {
        self.state().owner_died.load(Relaxed) != 0
    }

    fn clear_owner_died(&self) {
        self.state().owner_died.store(0, Relaxed);
    }
}

/// The owner's thread id in a robust mutex's futex word (0 when free).
#[inline]
fn owner_of(m: *mut libc::pthread_mutex_t) -> u32 {
    // SAFETY: the futex word is the first, 4-aligned field of glibc's pthread_mutex_t, in a live
    // mapping; glibc and the kernel update it atomically, so an atomic read is the right view.
    let word = unsafe { &*m.cast::<AtomicU32>() };
    word.load(Relaxed) & libc::FUTEX_TID_MASK
}

/// A block is kept mapped when a thread of this process holds its mutex (see `Block`).
fn held_here(block: &Block) -> bool {
    let owner = owner_of(block.ptr().cast());
    owner != 0 && sys::is_thread_of_this_process(owner)
}

impl Serialize for MutexBlock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Lock

/// A process-shared lock (Python's `multiprocessing.Lock`), robust to the death of its holder.
///
/// Clones share the lock; so do copies sent to other processes (as an argument, or through a
/// `Queue` or `Connection`).
///
/// ```
/// use mp_shm::Lock;
///
/// let lock = Lock::new()?;
/// assert!(lock.acquire(true, None)?);
/// assert!(!lock.acquire(false, None)?); // held: a non-blocking acquire fails
/// lock.release()?;
/// assert!(lock.release().is_err()); // releasing an unlocked lock is an error
/// {
///     let _guard = lock.lock().unwrap(); // or as a guard
///     assert!(lock.locked());
/// }
/// assert!(!lock.locked());
/// # Ok::<(), mp_shm::SyncError>(())
/// ```
///
/// **Differences from Python.** Only the holding thread may release (a robust lock must know its
/// holder; Python lets any process release). A blocking `acquire` by the thread that already
/// holds it returns [`SyncError::Reentrant`] instead of deadlocking.
#[derive(Clone, Debug)]
pub struct Lock {
    inner: Arc<MutexBlock>,
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> io::Result<Lock> {
        Ok(Lock {
            inner: Arc::new(MutexBlock::new(0)?),
        })
    }

    /// Python's `acquire(block, timeout)`: `Ok(true)` when taken, `Ok(false)` when `block` is
    /// false and the lock is busy, or the timeout passed. A negative timeout cannot be written
    /// (`Duration`); `Some(Duration::ZERO)` is Python's `timeout <= 0`.
    ///
    /// `Err(SyncError::OwnerDied)` means the lock **is** held now, and a previous holder died
    /// holding it (see [`Lock::clear_owner_died`]).
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.inner.acquire_once(block, timeout)
    }

    /// Releases the lock. [`SyncError::NotHeld`] if this thread does not hold it.
    #[inline]
    pub fn release(&self) -> Result<(), SyncError> {
        self.inner.release_once()
    }

    /// Takes the lock and returns a guard that releases it when dropped (Python's `with lock:`).
    #[inline]
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        guard(self.acquire(true, None), || LockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether some thread, in any process, holds the lock (Python 3.14's `locked()`).
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }

    /// Whether a holder died and the mark has not been cleared since.
    pub fn is_owner_died(&self) -> bool {
        self.inner.owner_died()
    }

    /// Clears the owner-died mark, once the guarded data is repaired.
    pub fn clear_owner_died(&self) {
        self.inner.clear_owner_died()
    }
}

#[inline]
fn guard<G>(taken: Result<bool, SyncError>, make: impl FnOnce() -> G) -> LockResult<G> {
    match taken {
        Ok(true) => Ok(make()),
        Ok(false) => Err(LockError::Sync(SyncError::Os(io::Error::from(
            io::ErrorKind::TimedOut,
        )))),
        Err(SyncError::OwnerDied) => Err(LockError::OwnerDied(make())),
        Err(e) => Err(LockError::Sync(e)),
    }
}

impl Serialize for Lock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lock {
            inner: Arc::new(MutexBlock::deserialize_sized(d, 0)?),
        })
    }
}

/// Holds a [`Lock`] until dropped. Not `Send`: the thread that took the lock releases it.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

// ---------------------------------------------------------------------------------------------
// RLock

/// A process-shared re-entrant lock (Python's `multiprocessing.RLock`): the holding thread may
/// take it again, and must release it as many times. Robust to the death of its holder.
///
/// ```
/// use mp_shm::RLock;
///
/// let lock = RLock::new()?;
/// assert!(lock.acquire(true, None)?);
/// assert!(lock.acquire(true, None)?);
/// lock.release()?;
/// assert!(lock.locked());
/// lock.release()?;
/// assert!(!lock.locked());
/// assert!(lock.release().is_err()); // not held
/// # Ok::<(), mp_shm::SyncError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RLock {
    inner: Arc<MutexBlock>,
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    pub fn new() -> io::Result<RLock> {
        Ok(RLock {
            inner: Arc::new(MutexBlock::new(0)?),
        })
    }

    pub(crate) fn from_block(inner: Arc<MutexBlock>) -> RLock {
        RLock { inner }
    }

    /// As [`Lock::acquire`]; the holder's acquire succeeds at once and counts.
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.inner.acquire_counted(block, timeout)
    }

    /// Undoes one acquire. [`SyncError::NotHeld`] when this thread is not the holder (Python:
    /// `AssertionError('attempt to release recursive lock not owned by thread')`).
    pub fn release(&self) -> Result<(), SyncError> {
        self.inner.release_counted()
    }

    /// Takes the lock and returns a guard that releases it when dropped.
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        guard(self.acquire(true, None), || RLockGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether some thread, in any process, holds the lock.
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.inner.held_by_me()
    }

    /// Whether a holder died and the mark has not been cleared since.
    pub fn is_owner_died(&self) -> bool {
        self.inner.owner_died()
    }

    /// Clears the owner-died mark, once the guarded data is repaired.
    pub fn clear_owner_died(&self) {
        self.inner.clear_owner_died()
    }
}

impl Serialize for RLock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RLock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RLock {
            inner: Arc::new(MutexBlock::deserialize_sized(d, 0)?),
        })
    }
}

/// Holds one level of an [`RLock`] until dropped.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

// ---------------------------------------------------------------------------------------------
// Futex-word objects: Semaphore, BoundedSemaphore, Event, and the Condition's wait state.

/// The state types of futex-word objects, each with its block kind.
trait State {
    const KIND: Kind;
}

/// A block holding one `T` made of atomics, at offset 0.
struct Words<T> {
    block: Block,
    _t: PhantomData<T>,
}

impl<T: State> Words<T> {
    fn new() -> io::Result<Words<T>> {
        Ok(Words {
            block: Block::new(T::KIND, std::mem::size_of::<T>())?,
            _t: PhantomData,
        })
    }

    fn get(&self) -> &T {
        // SAFETY: the block is at least size_of::<T>() (checked when attached), page-aligned,
        // mapped while self lives, and T is made of atomics, valid when zeroed.
        unsafe { &*self.block.ptr().cast::<T>() }
    }
}

impl<T> std::fmt::Debug for Words<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Words").field("block", &self.block).finish()
    }
}

impl<T> Serialize for Words<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

impl<'de, T: State> Deserialize<'de> for Words<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Words {
            block: Block::deserialize_sized(d, T::KIND, std::mem::size_of::<T>())?,
            _t: PhantomData,
        })
    }
}

#[repr(C)]
struct SemState {
    value: AtomicU32,
    waiters: AtomicU32,
    /// The highest value a release may reach (u32::MAX - 1 for a plain Semaphore).
    bound: AtomicU32,
}

impl State for SemState {
    const KIND: Kind = Kind::Semaphore;
}

const SEM_VALUE_MAX: u32 = i32::MAX as u32;

#[derive(Debug, Serialize, Deserialize)]
struct SemCore(Words<SemState>);

impl SemCore {
    fn new(value: u32, bound: u32) -> io::Result<SemCore> {
        if value > bound {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "semaphore value above its maximum",
            ));
        }
        let words = Words::<SemState>::new()?;
        words.get().value.store(value, SeqCst);
        words.get().bound.store(bound, SeqCst);
        Ok(SemCore(words))
    }

    fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        let s = self.0.get();
        let deadline = deadline(timeout);
        loop {
            let v = s.value.load(SeqCst);
            if v > 0 {
                if s.value
                    .compare_exchange_weak(v, v - 1, SeqCst, Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if !block || timed_out(deadline) {
                return false;
            }
            s.waiters.fetch_add(1, SeqCst);
            sys::futex_wait(&s.value, 0, deadline);
            s.waiters.fetch_sub(1, SeqCst);
        }
    }

    fn release(&self) -> Result<(), SyncError> {
        let s = self.0.get();
        let bound = s.bound.load(Relaxed);
        s.value
            .fetch_update(SeqCst, SeqCst, |v| (v < bound).then_some(v + 1))
            .map_err(|_| SyncError::TooManyReleases)?;
        if s.waiters.load(SeqCst) > 0 {
            sys::futex_wake(&s.value, 1);
        }
        Ok(())
    }

    fn value(&self) -> u32 {
        self.0.get().value.load(SeqCst)
    }
}

/// A process-shared counting semaphore (Python's `multiprocessing.Semaphore`).
///
/// ```
/// use mp_shm::Semaphore;
///
/// let sem = Semaphore::new(2)?;
/// assert!(sem.acquire(true, None));
/// assert!(sem.acquire(true, None));
/// assert!(!sem.acquire(false, None));
/// sem.release()?;
/// assert_eq!(sem.get_value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Semaphore {
    core: Arc<SemCore>,
}

impl Semaphore {
    /// A semaphore with the given initial value (at most `i32::MAX`, as POSIX semaphores).
    pub fn new(value: u32) -> io::Result<Semaphore> {
        Ok(Semaphore {
            core: Arc::new(SemCore::new(value, SEM_VALUE_MAX)?),
        })
    }

    /// Takes one unit: `false` when `block` is false and none is free, or on timeout.
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.core.acquire(block, timeout)
    }

    /// Gives one unit back (any process may). [`SyncError::TooManyReleases`] at the bound
    /// (`i32::MAX`, or a [`BoundedSemaphore`]'s initial value).
    pub fn release(&self) -> Result<(), SyncError> {
        self.core.release()
    }

    /// The current value.
    pub fn get_value(&self) -> u32 {
        self.core.value()
    }
}

/// A semaphore that may not be released above its initial value (Python's
/// `multiprocessing.BoundedSemaphore`).
///
/// ```
/// use mp_shm::{BoundedSemaphore, SyncError};
///
/// let sem = BoundedSemaphore::new(1)?;
/// assert!(matches!(sem.release(), Err(SyncError::TooManyReleases)));
/// assert!(sem.acquire(true, None));
/// sem.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BoundedSemaphore(Semaphore);

impl BoundedSemaphore {
    /// A bounded semaphore with the given initial (and maximum) value. It is a [`Semaphore`]
    /// (as Python's subclass) whose `release` gives [`SyncError::TooManyReleases`] above it.
    pub fn new(value: u32) -> io::Result<BoundedSemaphore> {
        Ok(BoundedSemaphore(Semaphore {
            core: Arc::new(SemCore::new(value, value)?),
        }))
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

#[repr(C)]
struct EventState {
    flag: AtomicU32,
    waiters: AtomicU32,
}

impl State for EventState {
    const KIND: Kind = Kind::Event;
}

/// A process-shared flag that processes can wait for (Python's `multiprocessing.Event`).
///
/// ```
/// use mp_shm::Event;
/// use std::time::Duration;
///
/// let event = Event::new()?;
/// assert!(!event.wait(Some(Duration::from_millis(1))));
/// event.set();
/// assert!(event.is_set() && event.wait(None));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    words: Arc<Words<EventState>>,
}

impl Event {
    /// A new, unset event.
    pub fn new() -> io::Result<Event> {
        Ok(Event {
            words: Arc::new(Words::new()?),
        })
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.words.get().flag.load(SeqCst) != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let s = self.words.get();
        s.flag.store(1, SeqCst);
        if s.waiters.load(SeqCst) > 0 {
            sys::futex_wake(&s.flag, i32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.words.get().flag.store(0, SeqCst);
    }

    /// Waits until the flag is set; `false` if the timeout passed first.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let s = self.words.get();
        let deadline = deadline(timeout);
        loop {
            if s.flag.load(SeqCst) != 0 {
                return true;
            }
            if timed_out(deadline) {
                return false;
            }
            s.waiters.fetch_add(1, SeqCst);
            sys::futex_wait(&s.flag, 0, deadline);
            s.waiters.fetch_sub(1, SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Condition

/// The lock under a [`Condition`]: an [`RLock`] by default, as Python.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ConditionLock {
    /// A plain lock.
    Lock(Lock),
    /// A re-entrant lock.
    RLock(RLock),
}

impl From<Lock> for ConditionLock {
    fn from(l: Lock) -> Self {
        ConditionLock::Lock(l)
    }
}

impl From<RLock> for ConditionLock {
    fn from(l: RLock) -> Self {
        ConditionLock::RLock(l)
    }
}

impl ConditionLock {
    fn block(&self) -> &MutexBlock {
        match self {
            ConditionLock::Lock(l) => &l.inner,
            ConditionLock::RLock(l) => &l.inner,
        }
    }
}

/// A condition's wait state. Every field except `seq`'s futex sleep is read and written only by
/// the holder of the condition's lock, so the bookkeeping is as simple as `threading.Condition`'s
/// and a peer cannot race it (values a peer scribbled are survived with saturating arithmetic).
#[repr(C)]
struct CondState {
    /// Bumped by every notify that grants a wake-up: the futex word waiters sleep on.
    seq: AtomicU32,
    _pad: AtomicU32,
    /// Bumped by every notify. A waiter that registered at an older epoch was waiting when a
    /// notify was called; one that registered at the current epoch was not, and may not take
    /// a wake-up granted before it came.
    epoch: AtomicU64,
    /// Waiters that registered before the last notify and are still inside `wait`.
    old: AtomicU64,
    /// Waiters that registered since the last notify.
    new: AtomicU64,
    /// Wake-ups granted to `old` waiters and not yet taken (at most `old`).
    tokens: AtomicU64,
}

impl State for CondState {
    const KIND: Kind = Kind::Condition;
}

fn dec(a: &AtomicU64) {
    a.store(a.load(Relaxed).saturating_sub(1), Relaxed);
}

/// A process-shared condition variable (Python's `multiprocessing.Condition`).
///
/// `notify(n)` wakes `min(n, waiting)` of the waiters that were waiting when it was called, and
/// never one that starts waiting afterwards (as CPython's sleeping/woken counts): every notify
/// closes an epoch, and its wake-ups can be taken only by waiters of earlier epochs. A waiter
/// returns `true` only by taking one, so there are no spurious wake-ups; it may take it after
/// its timeout passed, if the notify came first.
///
/// A waiter killed inside `wait` stays counted: a later `notify_all` may then grant one wake-up
/// too many, which a waiter that comes later can take (its `wait` returns `true` without a
/// notify of its own, as a spurious wake-up). Nothing else breaks, and the lock itself is robust
/// (see [`SyncError::OwnerDied`]).
///
/// ```
/// use mp_shm::Condition;
/// use std::time::Duration;
///
/// let cond = Condition::new()?;
/// let _guard = cond.lock().unwrap();
/// assert!(!cond.wait(Some(Duration::from_millis(1)))?); // nobody notifies: times out
/// cond.notify(1)?; // nobody waits: a no-op
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Condition {
    lock: ConditionLock,
    words: Arc<Words<CondState>>,
}

impl Condition {
    /// A condition over a new [`RLock`].
    pub fn new() -> io::Result<Condition> {
        Condition::with_lock(RLock::new()?)
    }

    /// A condition over the given lock.
    pub fn with_lock(lock: impl Into<ConditionLock>) -> io::Result<Condition> {
        Ok(Condition {
            lock: lock.into(),
            words: Arc::new(Words::new()?),
        })
    }

    /// The underlying lock.
    pub fn get_lock(&self) -> &ConditionLock {
        &self.lock
    }

    /// Acquires the underlying lock (as its own `acquire`).
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool, SyncError> {
        match &self.lock {
            ConditionLock::Lock(l) => l.acquire(block, timeout),
            ConditionLock::RLock(l) => l.acquire(block, timeout),
        }
    }

    /// Releases the underlying lock.
    pub fn release(&self) -> Result<(), SyncError> {
        match &self.lock {
            ConditionLock::Lock(l) => l.release(),
            ConditionLock::RLock(l) => l.release(),
        }
    }

    /// Takes the underlying lock as a guard (Python's `with cond:`).
    pub fn lock(&self) -> LockResult<ConditionGuard<'_>> {
        guard(self.acquire(true, None), || ConditionGuard {
            cond: self,
            _not_send: PhantomData,
        })
    }

    /// Releases the lock, waits for a notify or the timeout, and takes the lock again.
    /// `Ok(false)` on timeout. The caller must hold the lock ([`SyncError::NotHeld`]).
    ///
    /// If the lock's previous holder died meanwhile, the lock is held again and the result is
    /// [`SyncError::OwnerDied`] (the wait is over either way).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        let block = self.lock.block();
        if !block.held_by_me() {
            return Err(SyncError::NotHeld);
        }
        let s = self.words.get();
        // Register under the lock: a notify (which needs the lock) either saw us or did not.
        let my_epoch = s.epoch.load(Relaxed);
        s.new.store(s.new.load(Relaxed).saturating_add(1), Relaxed);
        let mut seq = s.seq.load(Relaxed);
        let mut depth = match block.release_save() {
            Ok(d) => d,
            Err(e) => {
                dec(&s.new);
                return Err(e);
            }
        };
        let deadline = deadline(timeout);
        loop {
            // A notify between our release and this sleep changed `seq`: no wake-up is lost.
            sys::futex_wait(&s.seq, seq, deadline);
            let relocked = block.acquire_restore(depth);
            match &relocked {
                Ok(()) | Err(SyncError::OwnerDied) => {}
                // The lock is not ours: leave the registration (a stale waiter costs a later
                // notify at most one wake-up) rather than touch the state without the lock.
                Err(_) => return relocked.map(|()| false),
            }
            let old = s.epoch.load(Relaxed) != my_epoch;
            let tokens = s.tokens.load(Relaxed);
            if old && tokens > 0 {
                s.tokens.store(tokens - 1, Relaxed);
                dec(&s.old);
                return relocked.map(|()| true);
            }
            if timed_out(deadline) || relocked.is_err() {
                dec(if old { &s.old } else { &s.new });
                return relocked.map(|()| false);
            }
            // Woken for someone else's wake-up (or spuriously): sleep again.
            seq = s.seq.load(Relaxed);
            depth = block.release_save().inspect_err(|_| {
                dec(if old { &s.old } else { &s.new });
            })?;
        }
    }

    /// Waits until `predicate` is true, re-checking after each notify; returns its last value
    /// (false if the timeout passed first).
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        let deadline = deadline(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    Some(left)
                }
            };
            self.wait(left)?;
        }
    }

    /// Wakes up to `n` of the waiters waiting now. The caller must hold the lock.
    pub fn notify(&self, n: usize) -> Result<(), SyncError> {
        if !self.lock.block().held_by_me() {
            return Err(SyncError::NotHeld);
        }
        let s = self.words.get();
        // Everyone waiting now becomes eligible; whoever comes later starts a new epoch.
        let old = s.old.load(Relaxed).saturating_add(s.new.load(Relaxed));
        s.old.store(old, Relaxed);
        s.new.store(0, Relaxed);
        s.epoch
            .store(s.epoch.load(Relaxed).wrapping_add(1), Relaxed);
        let tokens = s.tokens.load(Relaxed).min(old);
        let granted = (old - tokens).min(n as u64);
        s.tokens.store(tokens + granted, Relaxed);
        if granted > 0 {
            s.seq.fetch_add(1, Relaxed);
            // Every sleeper is eligible now (no one registers while we hold the lock), so
            // waking `granted` of them reaches enough takers.
            sys::futex_wake(&s.seq, granted.min(i32::MAX as u64) as i32);
        }
        Ok(())
    }

    /// Wakes every waiter. The caller must hold the lock.
    pub fn notify_all(&self) -> Result<(), SyncError> {
        self.notify(usize::MAX)
    }
}

/// Holds a [`Condition`]'s lock until dropped.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        let _ = self.cond.release();
    }
}

// ---------------------------------------------------------------------------------------------
// Barrier

#[repr(C)]
struct BarrierState {
    /// 0 filling, 1 draining, -1 resetting, -2 broken (as `threading.Barrier`).
    state: AtomicI32,
    count: AtomicU32,
    parties: AtomicU32,
}

impl State for BarrierState {
    const KIND: Kind = Kind::Barrier;
}

const FILLING: i32 = 0;
const DRAINING: i32 = 1;
const RESETTING: i32 = -1;
const BROKEN: i32 = -2;

/// A process-shared barrier for a fixed number of parties (Python's `multiprocessing.Barrier`,
/// without `action`: a closure cannot be shared with spawned processes; let the party whose
/// `wait` returns `parties - 1` do the work, and a second `wait` hold the others until it is
/// done).
///
/// Rounds never mix: a party that comes back for the next round waits until every party of the
/// last one has left, and a wake-up meant for one round cannot be taken by a waiter of the next
/// (see [`Condition`]).
///
/// ```
/// use mp_shm::{Barrier, SyncError};
/// use std::time::Duration;
///
/// let barrier = Barrier::new(1, None)?;
/// assert_eq!(barrier.wait(None)?, 0); // one party: passes at once
/// let two = Barrier::new(2, None)?;
/// // Alone at a barrier of two: the timeout breaks it.
/// assert!(matches!(two.wait(Some(Duration::from_millis(10))), Err(SyncError::BrokenBarrier)));
/// assert!(two.broken());
/// two.reset()?;
/// assert!(!two.broken());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Barrier {
    cond: Condition,
    words: Arc<Words<BarrierState>>,
    timeout: Option<Duration>,
}

impl Barrier {
    /// A barrier for `parties` processes or threads; `timeout` is the default for [`wait`].
    ///
    /// [`wait`]: Barrier::wait
    pub fn new(parties: u32, timeout: Option<Duration>) -> io::Result<Barrier> {
        if parties == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a barrier needs at least one party",
            ));
        }
        let words = Words::<BarrierState>::new()?;
        words.get().parties.store(parties, SeqCst);
        Ok(Barrier {
            cond: Condition::with_lock(Lock::new()?)?,
            words: Arc::new(words),
            timeout,
        })
    }

    fn s(&self) -> &BarrierState {
        self.words.get()
    }

    /// Waits until all parties have called `wait`; returns this caller's arrival index
    /// (0 to parties - 1). [`SyncError::BrokenBarrier`] if the barrier breaks: aborted, reset,
    /// or a timeout (which breaks it for every waiter).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<usize, SyncError> {
        let timeout = timeout.or(self.timeout);
        let _guard = self.cond.lock().map_err(SyncError::from)?;
        let s = self.s();
        // Wait for a previous round to drain or reset.
        while matches!(s.state.load(SeqCst), DRAINING | RESETTING) {
            self.cond.wait(None)?;
        }
        if s.state.load(SeqCst) < 0 {
            return Err(SyncError::BrokenBarrier);
        }
        let index = s.count.fetch_add(1, SeqCst);
        // Wrapping: the words are shared, and a peer's garbage must not panic us.
        let result = if index.wrapping_add(1) == s.parties.load(SeqCst) {
            s.state.store(DRAINING, SeqCst);
            self.cond.notify_all().map(|()| index as usize)
        } else {
            match self
                .cond
                .wait_for(|| s.state.load(SeqCst) != FILLING, timeout)
            {
                Ok(false) => {
                    self.break_locked()?;
                    Err(SyncError::BrokenBarrier)
                }
                Ok(true) if s.state.load(SeqCst) < 0 => Err(SyncError::BrokenBarrier),
                Ok(true) => Ok(index as usize),
                Err(e) => Err(e),
            }
        };
        // Leave; the last one out of a draining or resetting round opens the barrier again.
        if s.count.fetch_sub(1, SeqCst) == 1 && matches!(s.state.load(SeqCst), DRAINING | RESETTING)
        {
            s.state.store(FILLING, SeqCst);
            self.cond.notify_all()?;
        }
        result
    }

    fn break_locked(&self) -> Result<(), SyncError> {
        self.s().state.store(BROKEN, SeqCst);
        self.cond.notify_all()
    }

    /// Breaks the barrier: current and future waiters get [`SyncError::BrokenBarrier`].
    pub fn abort(&self) -> Result<(), SyncError> {
        let _guard = self.cond.lock().map_err(SyncError::from)?;
        self.break_locked()
    }

    /// Returns the barrier to its initial state; current waiters get
    /// [`SyncError::BrokenBarrier`].
    pub fn reset(&self) -> Result<(), SyncError> {
        let _guard = self.cond.lock().map_err(SyncError::from)?;
        let s = self.s();
        if s.count.load(SeqCst) > 0 {
            match s.state.load(SeqCst) {
                FILLING | BROKEN => s.state.store(RESETTING, SeqCst),
                _ => {}
            }
        } else {
            s.state.store(FILLING, SeqCst);
        }
        self.cond.notify_all()
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.s().parties.load(SeqCst)
    }

    /// How many are waiting now.
    pub fn n_waiting(&self) -> u32 {
        let s = self.s();
        if s.state.load(SeqCst) == FILLING {
            s.count.load(SeqCst)
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.s().state.load(SeqCst) == BROKEN
    }
}

#[cfg(test)]
mod test;

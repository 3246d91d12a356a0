//! The robust mutex under Lock, RLock and the locks of Value and Array.

use std::cell::UnsafeCell;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

use mp_spawn::reduction::{Fd, custom_error};
use mp_sys::deadline::of as deadline;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{LockError, LockResult, SyncError};
use crate::heap::{Block, Kind, Tagged};
use mp_sys::robust_mutex::{self, Locked, RawMutex};

/// The shared state of a lock. Who holds it is the mutex's own business: `mp_sys`'s robust
/// mutex keeps its holder's thread token beside it, so there is nothing for us to keep in
/// step.
#[repr(C)]
pub(crate) struct MutexState {
    mutex: UnsafeCell<RawMutex>,
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
    pub(super) block: Block,
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
        unsafe { robust_mutex::init(block.ptr().cast::<RawMutex>())? };
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
    fn mutex(&self) -> *mut RawMutex {
        self.state().mutex.get()
    }

    /// The holder's thread token, 0 when free.
    #[inline]
    fn owner(&self) -> u64 {
        owner_of(self.mutex())
    }

    #[inline]
    pub(crate) fn held_by_me(&self) -> bool {
        self.owner() == mp_sys::thread::token()
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
                Wait::No => robust_mutex::trylock(m),
                Wait::Until(d) => robust_mutex::lock_until(m, d),
                Wait::Forever => robust_mutex::lock(m),
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
        unsafe { robust_mutex::unlock(self.mutex()) }.map_err(|_| SyncError::NotHeld)
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
        unsafe { robust_mutex::unlock(self.mutex()) }.map_err(|_| SyncError::NotHeld)
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
    pub(super) fn release_save(&self) -> Result<u32, SyncError> {
        if !self.held_by_me() {
            return Err(SyncError::NotHeld);
        }
        let count = self.state().count.load(Relaxed);
        self.give()?;
        Ok(count)
    }

    pub(super) fn acquire_restore(&self, count: u32) -> Result<(), SyncError> {
        let taken = self.take(Wait::Forever);
        self.state().count.store(count, Relaxed);
        taken.map(drop)
    }

    pub(super) fn locked(&self) -> bool {
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

    pub(super) fn owner_died(&self) -> bool {
        self.state().owner_died.load(Relaxed) != 0
    }

    pub(crate) fn clear_owner_died(&self) {
        self.state().owner_died.store(0, Relaxed);
    }
}

/// The holder's thread token (0 when free).
#[inline]
fn owner_of(m: *mut RawMutex) -> u64 {
    // SAFETY: every caller passes the initialised robust mutex of a block mapped while it runs.
    unsafe { robust_mutex::owner(m) }
}

/// A block is kept mapped when a thread of this process holds its mutex (see `Block`).
pub(super) fn held_here(block: &Block) -> bool {
    mp_sys::thread::is_ours(owner_of(block.ptr().cast()))
}

impl Serialize for MutexBlock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

#[inline]
pub(super) fn guard<G>(taken: Result<bool, SyncError>, make: impl FnOnce() -> G) -> LockResult<G> {
    match taken {
        Ok(true) => Ok(make()),
        Ok(false) => Err(LockError::Sync(SyncError::Os(io::Error::from(
            io::ErrorKind::TimedOut,
        )))),
        Err(SyncError::OwnerDied) => Err(LockError::OwnerDied(make())),
        Err(e) => Err(LockError::Sync(e)),
    }
}

//! `Condition`: a lock plus epoch bookkeeping and a futex word; the protocol and its invariants
//! are in `README.md` beside this file.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use mp_sys::deadline::of as deadline;
use mp_sys::parker;
use serde::{Deserialize, Serialize};

use super::lock::Lock;
use super::mutex::{MutexBlock, guard};
use super::rlock::RLock;
use super::words::{State, Words};
use crate::error::{LockResult, SyncError};
use crate::heap::Kind;

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
            parker::park(&s.seq, seq, deadline);
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
            if parker::timed_out(deadline) || relocked.is_err() {
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
            parker::unpark(&s.seq, granted);
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

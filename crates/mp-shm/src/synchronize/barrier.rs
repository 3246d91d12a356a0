//! `Barrier`: `rules::Barrier`'s state machine in shared words, under a `Condition` (see
//! `README.md` for why rounds never mix).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::*};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::lock::Lock;
use super::rules::{self, Phase};
use super::words::{State, Words};
use crate::error::SyncError;
use crate::heap::Kind;

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

impl BarrierState {
    /// The state as the shared rules see it (read under the condition's lock). An unknown
    /// phase (a peer's garbage) is a broken barrier.
    fn load(&self) -> rules::Barrier {
        rules::Barrier {
            phase: match self.state.load(SeqCst) {
                FILLING => Phase::Filling,
                DRAINING => Phase::Draining,
                RESETTING => Phase::Resetting,
                _ => Phase::Broken,
            },
            count: self.count.load(SeqCst).into(),
            parties: self.parties.load(SeqCst).max(1).into(),
        }
    }

    /// Stores what the rules changed (under the condition's lock).
    fn store(&self, b: rules::Barrier) {
        let phase = match b.phase {
            Phase::Filling => FILLING,
            Phase::Draining => DRAINING,
            Phase::Resetting => RESETTING,
            Phase::Broken => BROKEN,
        };
        self.state.store(phase, SeqCst);
        self.count
            .store(u32::try_from(b.count).unwrap_or(u32::MAX), SeqCst);
    }

    /// Applies `f` to the state (under the condition's lock).
    fn update<R>(&self, f: impl FnOnce(&mut rules::Barrier) -> R) -> R {
        let mut b = self.load();
        let r = f(&mut b);
        self.store(b);
        r
    }
}

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
        while s.load().closed() {
            self.cond.wait(None)?;
        }
        let broken = |_| SyncError::BrokenBarrier;
        let arrival = s.update(|b| b.arrive()).map_err(broken)?;
        // An index past usize (only from a peer's garbage) saturates.
        let index = usize::try_from(arrival.index).unwrap_or(usize::MAX);
        let result = if arrival.last {
            self.cond.notify_all().map(|()| index)
        } else {
            match self.cond.wait_for(|| s.load().outcome().is_some(), timeout) {
                Ok(false) => {
                    self.break_locked()?;
                    Err(SyncError::BrokenBarrier)
                }
                Ok(true) => s
                    .load()
                    .outcome()
                    .unwrap_or(Err(rules::Broken))
                    .map(|()| index)
                    .map_err(broken),
                Err(e) => Err(e),
            }
        };
        // Leave; the last one out of a draining or resetting round opens the barrier again.
        if s.update(|b| b.leave()) {
            self.cond.notify_all()?;
        }
        result
    }

    fn break_locked(&self) -> Result<(), SyncError> {
        self.s().update(|b| b.abort());
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
        self.s().update(|b| b.reset());
        self.cond.notify_all()
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.s().parties.load(SeqCst)
    }

    /// How many are waiting now.
    pub fn n_waiting(&self) -> u32 {
        // At most `count`, a u32.
        self.s().load().n_waiting() as u32
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.s().load().broken()
    }
}

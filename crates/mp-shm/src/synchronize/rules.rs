//! The rules of Python's sync primitives that both of mp's kinds share: mp-shm's futex-word
//! objects and mp-managers' server-held ones. Each rule is a pure function of the primitive's state, defined once, so that the
//! two cannot drift apart; each side keeps only how it stores the state and how it sleeps.
//!
//! Condition variables are not here: mp-shm's is an epoch protocol over futex words
//! (`README.md`), the manager's a FIFO of tickets under a mutex; both wake at most `n` of the
//! waiters waiting when `notify(n)` is called, in different orders.
//!
//! ```
//! use mp_shm::sync_rules::{acquired, event_woken, released};
//! assert_eq!(acquired(1), Some(0));
//! assert_eq!(released(1, 1, 1), None); // a BoundedSemaphore(1) released too many times
//! assert!(event_woken(false, 7, 8)); // set, then cleared while the waiter slept
//! ```

/// A semaphore's value after one acquire, or `None` if no unit is left.
///
/// ```
/// assert_eq!(mp_shm::sync_rules::acquired(0), None);
/// ```
pub fn acquired(value: u64) -> Option<u64> {
    value.checked_sub(1)
}

/// A semaphore's value after a release of `n` units, or `None` if it would pass `bound` (a
/// `BoundedSemaphore`'s initial value, or the type's largest value): released too many times.
/// A refused release changes nothing.
///
/// ```
/// assert_eq!(mp_shm::sync_rules::released(1, 2, u64::MAX), Some(3));
/// assert_eq!(mp_shm::sync_rules::released(u64::MAX, 1, u64::MAX), None);
/// ```
pub fn released(value: u64, n: u64, bound: u64) -> Option<u64> {
    value.checked_add(n).filter(|v| *v <= bound)
}

/// Whether an event's `wait` is over: the flag is set now, or the event was set since the
/// wait began (its set count moved from `start` to `now`). So a waiter woken by a set returns
/// `true` even if a `clear` came before it ran again, as `threading.Event` (CPython gh-57711,
/// bpo-13502), instead of sleeping on.
///
/// ```
/// use mp_shm::sync_rules::event_woken;
/// assert!(event_woken(true, 0, 0));
/// assert!(!event_woken(false, 3, 3));
/// ```
pub fn event_woken(set: bool, start: u64, now: u64) -> bool {
    set || now != start
}

/// Where a barrier's round is (`threading.Barrier`'s states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Parties are arriving.
    Filling,
    /// The round is complete and its parties are leaving; arrivals wait.
    Draining,
    /// A reset came while parties waited; they leave broken, and arrivals wait.
    Resetting,
    /// Aborted, or a waiter gave up: every wait fails until a reset.
    Broken,
}

/// The barrier is broken (or was reset under this wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broken;

/// A party's arrival: its index (`0..parties`), and whether it completed the round (then
/// the others are released: wake them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// How many arrived before it in this round.
    pub index: u64,
    /// It was the last party: the round is released.
    pub last: bool,
}

/// A barrier's state machine, as `threading.Barrier`'s: every transition of a wait, an abort
/// and a reset. The caller holds the barrier's lock around each call, wakes every waiter
/// where a call says so, and waits in between (while [`closed`](Barrier::closed) before
/// arriving, while [`outcome`](Barrier::outcome) is `None` after). Rounds never mix: a party
/// that comes back waits until every party of the last round has left.
///
/// ```
/// use mp_shm::sync_rules::{Barrier, Broken};
///
/// let mut b = Barrier::new(2);
/// assert!(!b.arrive()?.last);
/// assert_eq!(b.outcome(), None); // the round still fills
/// assert!(b.arrive()?.last); // the second party releases it
/// assert_eq!(b.outcome(), Some(Ok(())));
/// assert!(b.closed()); // draining: the next round waits
/// assert!(!b.leave());
/// assert!(b.leave()); // the last one out reopens it
/// assert!(!b.closed());
/// # Ok::<(), Broken>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Barrier {
    /// Where the round is.
    pub phase: Phase,
    /// The parties inside `wait` (arrived and not left).
    pub count: u64,
    /// How many parties make a round (at least 1).
    pub parties: u64,
}

impl Barrier {
    /// A new, filling barrier for `parties` (0 is taken as 1: the caller refuses it first).
    pub fn new(parties: u64) -> Barrier {
        Barrier {
            phase: Phase::Filling,
            count: 0,
            parties: parties.max(1),
        }
    }

    /// Whether an arriving party must wait (for the last round to drain or reset) first.
    pub fn closed(&self) -> bool {
        matches!(self.phase, Phase::Draining | Phase::Resetting)
    }

    /// A party arrives (the barrier not [`closed`](Barrier::closed)).
    pub fn arrive(&mut self) -> Result<Arrival, Broken> {
        if self.phase == Phase::Broken {
            return Err(Broken);
        }
        let index = self.count;
        // Saturating: the state may be shared with peers whose garbage must not panic us.
        self.count = self.count.saturating_add(1);
        let last = self.count == self.parties;
        if last {
            self.phase = Phase::Draining;
        }
        Ok(Arrival { index, last })
    }

    /// How an arrived party's wait ends: `None` while the round fills, then released
    /// (`Ok`) or broken or reset (`Err`).
    pub fn outcome(&self) -> Option<Result<(), Broken>> {
        match self.phase {
            Phase::Filling => None,
            Phase::Draining => Some(Ok(())),
            Phase::Resetting | Phase::Broken => Some(Err(Broken)),
        }
    }

    /// Breaks the barrier (an abort, or a waiter that gave up: a time-out, a party gone);
    /// wake every waiter.
    pub fn abort(&mut self) {
        self.phase = Phase::Broken;
    }

    /// An arrived party leaves `wait`; `true` if it was the last out of a released or reset
    /// round and reopened the barrier (wake every waiter).
    pub fn leave(&mut self) -> bool {
        self.count = self.count.saturating_sub(1);
        let reopen = self.count == 0 && self.closed();
        if reopen {
            self.phase = Phase::Filling;
        }
        reopen
    }

    /// Back to the initial state: the parties waiting now leave broken, and it is usable
    /// again once they have; wake every waiter.
    pub fn reset(&mut self) {
        if self.count == 0 {
            self.phase = Phase::Filling;
        } else if matches!(self.phase, Phase::Filling | Phase::Broken) {
            self.phase = Phase::Resetting;
        }
    }

    /// How many parties wait for the round to fill.
    pub fn n_waiting(&self) -> u64 {
        if self.phase == Phase::Filling {
            self.count
        } else {
            0
        }
    }

    /// Whether it is broken.
    pub fn broken(&self) -> bool {
        self.phase == Phase::Broken
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_semaphore_never_passes_its_bound_nor_zero() {
        assert_eq!(acquired(2), Some(1));
        assert_eq!(acquired(0), None);
        assert_eq!(released(0, 1, 1), Some(1));
        assert_eq!(released(1, 1, 1), None);
        assert_eq!(released(0, 2, 1), None);
        assert_eq!(released(5, 0, 5), Some(5));
        assert_eq!(released(u64::MAX - 1, 2, u64::MAX), None);
    }

    /// One party of each role walks a barrier of 3 through a round, a reset under waiters, a
    /// time-out and an abort.
    #[test]
    fn a_barrier_round_reset_and_break() {
        let mut b = Barrier::new(3);
        let a0 = b.arrive().unwrap();
        let a1 = b.arrive().unwrap();
        assert_eq!((a0.index, a0.last, a1.index, a1.last), (0, false, 1, false));
        assert_eq!((b.n_waiting(), b.outcome()), (2, None));
        assert_eq!(
            b.arrive(),
            Ok(Arrival {
                index: 2,
                last: true
            })
        );
        assert_eq!((b.outcome(), b.n_waiting()), (Some(Ok(())), 0));
        // A party of the next round waits until the last one leaves.
        assert!(b.closed());
        assert!(!b.leave() && !b.leave());
        assert!(b.leave());
        assert_eq!(b, Barrier::new(3));

        // A reset under two waiters: they leave broken; then it fills again.
        b.arrive().unwrap();
        b.arrive().unwrap();
        b.reset();
        assert_eq!(b.outcome(), Some(Err(Broken)));
        assert!(b.closed() && !b.broken());
        assert!(!b.leave());
        assert!(b.leave());
        assert_eq!(b, Barrier::new(3));

        // A waiter that gives up breaks it for everyone, until a reset.
        b.arrive().unwrap();
        b.abort();
        assert_eq!(b.outcome(), Some(Err(Broken)));
        assert!(!b.leave());
        assert!(b.broken() && !b.closed());
        assert_eq!(b.arrive(), Err(Broken));
        b.reset();
        assert_eq!(b, Barrier::new(3));

        // A forged party count of 0 is a barrier of one; garbage counts never panic.
        assert!(Barrier::new(0).arrive().unwrap().last);
        let mut garbage = Barrier {
            phase: Phase::Filling,
            count: u64::MAX,
            parties: 2,
        };
        assert!(!garbage.arrive().unwrap().last);
        garbage.count = 0;
        assert!(!garbage.leave());
    }

    #[test]
    fn an_event_wait_ends_on_the_flag_or_a_set_since() {
        assert!(event_woken(true, 1, 1));
        assert!(event_woken(false, 1, 2));
        // The count wraps in shared memory: any change is a set.
        assert!(event_woken(false, u64::MAX, 0));
        assert!(!event_woken(false, 9, 9));
    }
}

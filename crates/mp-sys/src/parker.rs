//! The one futex parker: every sleep of a futex-word object (Semaphore, Event, Condition) goes
//! through [`park`], and every wake-up through [`unpark`] / [`unpark_all`].
//!
//! A futex sleep returns early for many reasons (a wake meant for another waiter, a signal:
//! EINTR, the word already changed: EAGAIN). [`park`] hides them all: it returns only when the
//! word no longer holds the value the caller saw, or the deadline passed. The caller then
//! re-checks its own condition, as after any wake-up. A wake-up is never lost: the kernel
//! compares the word with `expected` atomically with going to sleep, so a change made (and
//! woken) between the caller's read and the sleep makes the sleep return at once.
//!
//! Here in the OS layer so that mp-shm's Semaphore, Event and Condition and mp-ipc's ring
//! sleep the same way without one depending on the other.
//!
//! ```
//! use mp_sys::parker::{Parked, park, unpark_all};
//! use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
//! use std::time::Duration;
//!
//! let word = AtomicU32::new(0);
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         word.store(1, SeqCst); // change first, then wake
//!         unpark_all(&word);
//!     });
//!     assert_eq!(park(&word, 0, None), Parked::Changed);
//! });
//! let soon = mp_sys::deadline::after(Duration::from_millis(1));
//! assert_eq!(park(&word, 1, soon), Parked::TimedOut);
//! ```

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Instant;

use crate::futex;

/// Why [`park`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// The word no longer holds the expected value.
    Changed,
    /// The deadline passed first (the word still held the expected value when last read).
    TimedOut,
}

/// Whether `deadline` (None: never) has passed.
///
/// ```
/// use std::time::Duration;
/// assert!(!mp_sys::parker::timed_out(None));
/// assert!(mp_sys::parker::timed_out(mp_sys::deadline::after(Duration::ZERO)));
/// ```
#[inline]
pub fn timed_out(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Sleeps while `*word == expected`, until it changes or `deadline` passes (None: forever).
/// Returns at once if the word already differs.
///
/// ```
/// use mp_sys::parker::{Parked, park};
/// use std::sync::atomic::AtomicU32;
/// assert_eq!(park(&AtomicU32::new(1), 0, None), Parked::Changed);
/// ```
pub fn park(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Parked {
    loop {
        if word.load(SeqCst) != expected {
            return Parked::Changed;
        }
        if timed_out(deadline) {
            return Parked::TimedOut;
        }
        // Spurious returns (EINTR, a wake for someone else, a time-out rounded short) all
        // land back at the checks above.
        futex::wait(word, expected, deadline);
    }
}

/// Wakes up to `n` sleepers parked on `word`. The caller changes the word first, or the woken
/// ones go back to sleep.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
/// let word = AtomicU32::new(0);
/// word.store(1, SeqCst);
/// mp_sys::parker::unpark(&word, 1); // nobody parked: a no-op
/// ```
#[inline]
pub fn unpark(word: &AtomicU32, n: u64) {
    // The kernel takes an i32; more sleepers than that cannot exist.
    futex::wake(word, n.min(i32::MAX as u64) as i32);
}

/// Wakes every sleeper parked on `word`.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// mp_sys::parker::unpark_all(&AtomicU32::new(0));
/// ```
#[inline]
pub fn unpark_all(word: &AtomicU32) {
    futex::wake(word, i32::MAX);
}

#[cfg(test)]
mod test;

//! The rules of Python's sync primitives that both of mp's kinds share: mp-shm's futex-word
//! objects and mp-managers' server-held ones (feature `unstable-internals`: not covered by
//! semver). Each rule is a pure function of the primitive's state, defined once, so that the
//! two cannot drift apart; each side keeps only how it stores the state and how it sleeps.
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

    #[test]
    fn an_event_wait_ends_on_the_flag_or_a_set_since() {
        assert!(event_woken(true, 1, 1));
        assert!(event_woken(false, 1, 2));
        // The count wraps in shared memory: any change is a set.
        assert!(event_woken(false, u64::MAX, 0));
        assert!(!event_woken(false, 9, 9));
    }
}

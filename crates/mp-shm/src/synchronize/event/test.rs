//! CPython `lock_tests.EventTests.test_set_and_clear` on the futex event, with threads as the
//! waiters (as CPython's are; a peer process parks on the same word the same way), and the
//! same test as mp-managers' server-held event runs (both keep `rules::event_woken`).

use super::*;

use std::time::Duration;

use mp_sys::deadline;

/// A failure bound only: every wait bounded by it is expected to end long before.
const HANG: Duration = Duration::from_secs(30);

/// Runs `n` threads, each waiting once on `event`; once all of them are inside `wait` (counted
/// as waiters, which they become after reading the set count), runs `then`. Returns their
/// results.
fn waiters(event: &Event, n: u32, then: impl FnOnce()) -> Vec<bool> {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..n).map(|_| s.spawn(|| event.wait(Some(HANG)))).collect();
        let guard = deadline::after(HANG);
        while event.words.get().waiters.load(SeqCst) < n {
            assert!(!parker::timed_out(guard), "the waiters never waited");
            std::thread::yield_now();
        }
        then();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// A waiter returns true when the event is cleared before it runs again after the set
/// (gh-57711, bpo-13502); before, it slept on until its timeout. Whether a woken waiter runs
/// before the clear is up to the scheduler: ten rounds.
#[test]
fn set_and_clear() {
    let event = Event::new().unwrap();
    for round in 0..10 {
        let results = waiters(&event, 5, || {
            event.set();
            event.clear();
        });
        assert_eq!(results, vec![true; 5], "round {round}");
        assert!(!event.is_set());
    }
}

/// A wait that times out with no set in between is false; a zero timeout never waits; a set
/// event is seen at once.
#[test]
fn timeout() {
    let event = Event::new().unwrap();
    assert!(!event.wait(Some(Duration::ZERO)));
    assert!(!event.wait(Some(Duration::from_millis(10))));
    event.set();
    assert!(event.wait(Some(Duration::ZERO)));
    event.clear();
    // A set before the wait began, then cleared: nothing to wake this wait.
    assert!(!event.wait(Some(Duration::from_millis(10))));
}

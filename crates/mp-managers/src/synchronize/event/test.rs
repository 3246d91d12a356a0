//! CPython `lock_tests.EventTests` (`test_is_set`, `test_notify`, `test_set_and_clear`) on the
//! server's side of an event, with threads as the waiters, as CPython's are.
//!
//! A waiter is known to be waiting from its first liveness check: the server checks a caller
//! only after it has read the event's state and waited once (see `Cell::wait_with`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::{EventCall, EventServant};
use crate::servant::{Caller, SharedServant};

/// A failure bound only: every wait bounded by it is expected to end long before.
const HANG: Duration = Duration::from_secs(30);

fn call(event: &EventServant, call: EventCall) -> bool {
    let caller = Caller {
        id: 0,
        alive: &|| true,
    };
    event.call(call, &caller).unwrap()
}

/// Runs `n` threads, each calling `waits` waits of `timeout` on `event` in a row; once every
/// thread is inside its first wait, runs `then`. Returns each thread's results.
fn waiters(
    event: &EventServant,
    n: u64,
    waits: usize,
    timeout: Option<Duration>,
    then: impl FnOnce(),
) -> Vec<Vec<bool>> {
    let (waiting, inside) = mpsc::channel();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|id| {
                let waiting = waiting.clone();
                s.spawn(move || {
                    let told = AtomicBool::new(false);
                    let alive = || {
                        if !told.swap(true, Ordering::Relaxed) {
                            let _ = waiting.send(());
                        }
                        true
                    };
                    let caller = Caller { id, alive: &alive };
                    (0..waits)
                        .map(|_| event.call(EventCall::Wait(timeout), &caller).unwrap())
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        for _ in 0..n {
            inside.recv_timeout(HANG).expect("hang guard");
        }
        then();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn is_set() {
    let event = EventServant::default();
    assert!(!call(&event, EventCall::IsSet));
    call(&event, EventCall::Set);
    assert!(call(&event, EventCall::IsSet));
    call(&event, EventCall::Set);
    assert!(call(&event, EventCall::IsSet));
    call(&event, EventCall::Clear);
    assert!(!call(&event, EventCall::IsSet));
    call(&event, EventCall::Clear);
    assert!(!call(&event, EventCall::IsSet));
}

/// CPython `_check_notify`: every waiter is woken by a set, and its next wait returns at once.
fn check_notify(event: &EventServant) {
    let results = waiters(event, 5, 2, None, || {
        call(event, EventCall::Set);
    });
    assert_eq!(results, vec![vec![true, true]; 5]);
}

#[test]
fn notify() {
    let event = EventServant::default();
    check_notify(&event);
    // Another time, after an explicit clear.
    call(&event, EventCall::Set);
    call(&event, EventCall::Clear);
    check_notify(&event);
}

/// CPython `test_set_and_clear` (gh-57711, bpo-13502): a waiter returns true when the event
/// is cleared before it runs again after the set. Whether a woken waiter runs before the
/// clear is up to the scheduler (the bug showed in about half the rounds here): ten rounds.
#[test]
fn set_and_clear() {
    let event = EventServant::default();
    for round in 0..10 {
        let results = waiters(&event, 5, 1, Some(HANG), || {
            call(&event, EventCall::Set);
            call(&event, EventCall::Clear);
        });
        assert_eq!(results, vec![vec![true]; 5], "round {round}");
        assert!(!call(&event, EventCall::IsSet));
    }
}

/// A wait that times out with no set in between is false; a zero timeout never waits.
#[test]
fn timeout() {
    let event = EventServant::default();
    assert!(!call(&event, EventCall::Wait(Some(Duration::ZERO))));
    assert!(!call(
        &event,
        EventCall::Wait(Some(Duration::from_millis(10)))
    ));
    call(&event, EventCall::Set);
    assert!(call(&event, EventCall::Wait(Some(Duration::ZERO))));
}

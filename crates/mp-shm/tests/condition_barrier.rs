//! Condition and Barrier under reuse and races: a notify wakes only waiters that were already
//! waiting, and a barrier's rounds never mix. CPython's `_TestCondition` and `_TestBarrier`
//! ported, with the parties as processes (all three start methods) and as threads.

use std::time::Duration;

use mp_shm::{Barrier, Condition, Semaphore, SyncError};

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(50);

/// The bug of issue #13: B's notify was taken back by B's own later wait, and A timed out.
#[test]
fn notify_does_not_wake_a_later_waiter() {
    for _ in 0..20 {
        let cond = Condition::new().unwrap();
        let ready = Semaphore::new(0).unwrap();
        let (c, r) = (cond.clone(), ready.clone());
        let a = std::thread::spawn(move || {
            let _g = c.lock().unwrap();
            r.release().unwrap();
            c.wait(Some(LONG)).unwrap()
        });
        assert!(ready.acquire(true, Some(LONG)));
        // A released the lock only inside `wait`: it is waiting once we hold the lock.
        let _g = cond.lock().unwrap();
        cond.notify(1).unwrap();
        assert!(
            !cond.wait(Some(SHORT)).unwrap(),
            "a wait that began after the notify took its wake-up"
        );
        drop(_g);
        assert!(a.join().unwrap(), "the waiter that was waiting was not woken");
    }
}

/// Barrier(5) passed 1000 times in a row by threads.
#[test]
fn barrier_thousand_passes_threads() {
    let barrier = Barrier::new(5, Some(LONG)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    b.wait(None).unwrap();
                }
            })
        })
        .collect();
    for _ in 0..1000 {
        barrier.wait(None).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
}

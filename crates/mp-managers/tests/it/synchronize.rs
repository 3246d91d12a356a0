//! The managed synchronisation primitives (issue #16 item 2) under every start method, with
//! children as the other parties (and threads where CPython uses threads): CPython's
//! `_TestLock`, `_TestSemaphore`, `_TestCondition` and `_TestEvent` as run for
//! `TYPE = 'manager'`, and the faults Python's manager does not survive: a holder killed with
//! its lock, a waiter killed at a condition or a semaphore (the barrier is in `barrier.rs`).
//!
//! Ordering comes from events (semaphores, queues, a condition's lock), never from a sleep:
//! where CPython sleeps "long enough" for the others to be waiting, these tests wait for a
//! fact that proves they are.

use crate::common;
use common::{manager, start};

use std::time::Duration;

use mp_ipc::Queue;
use mp_managers::{
    Condition, Event, Lock, ManagedValue, ManagerError, RLock, RemoteError, Semaphore,
};
use mp_spawn::StartMethod;
use mp_spawn::testing::park_forever;

mp_spawn::test_matrix!(
    lock,
    rlock,
    lock_context,
    semaphore,
    bounded_semaphore,
    semaphore_timeout,
    condition_notify,
    condition_notify_all,
    condition_notify_n,
    condition_timeout,
    condition_waitfor,
    condition_waitfor_timeout,
    condition_wait_result,
    condition_needs_its_lock,
    event,
    a_killed_holder_frees_its_lock,
    a_killed_holder_frees_its_rlock,
    a_killed_holder_frees_its_condition,
    a_waiter_killed_at_a_condition_swallows_no_notify,
    a_waiter_killed_at_a_semaphore_takes_no_unit,
    a_call_blocked_in_one_thread_does_not_hold_up_another,
    a_huge_timeout_is_forever_not_a_panic,
);

/// A hang guard only: every wait bounded by it is expected to end long before.
const HANG: Duration = Duration::from_secs(60);
/// A timeout the test is about (CPython's `TIMEOUT1`): only "timed out" is asserted.
const TIMEOUT1: Duration = Duration::from_millis(100);

/// Takes one unit of `sem`, which must come (the hang guard panics otherwise).
fn take(sem: &Semaphore) {
    assert!(sem.acquire(true, Some(HANG)).unwrap(), "hang guard");
}

fn is_runtime<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> bool {
    matches!(r, Err(ManagerError::Remote(RemoteError::Runtime(_))))
}

// ---- _TestLock ----

/// CPython `_TestLock.test_lock`.
fn lock(m: StartMethod) {
    let manager = manager(m);
    let lock = manager.lock().unwrap();
    assert!(lock.acquire(true, None).unwrap());
    assert!(lock.locked().unwrap());
    assert!(!lock.acquire(false, None).unwrap());
    lock.release().unwrap();
    assert!(!lock.locked().unwrap());
    assert!(is_runtime(lock.release()), "released while unlocked");
}

fn release_from_here(lock: Lock, rlock: RLock, done: Queue<bool>) {
    // Python's Lock may be released by anyone; its RLock only by its owner.
    assert!(is_runtime(rlock.release()));
    assert!(!rlock.is_owned().unwrap());
    lock.release().unwrap();
    done.put(true).unwrap();
}

/// CPython `_TestLock.test_rlock`, and who may release which (the owner is a thread of a
/// process: here another process).
fn rlock(m: StartMethod) {
    let manager = manager(m);
    let rlock = manager.rlock().unwrap();
    for _ in 0..3 {
        assert!(rlock.acquire(true, None).unwrap());
        assert!(rlock.locked().unwrap());
    }
    assert!(rlock.is_owned().unwrap());
    std::thread::scope(|s| {
        // Another thread of this process is another owner.
        s.spawn(|| {
            assert!(!rlock.is_owned().unwrap());
            assert!(is_runtime(rlock.release()));
            assert!(!rlock.acquire(false, None).unwrap());
        });
    });
    for _ in 0..3 {
        assert!(rlock.locked().unwrap());
        rlock.release().unwrap();
    }
    assert!(is_runtime(rlock.release()), "released more than taken");
    assert!(!rlock.locked().unwrap());

    let lock = manager.lock().unwrap();
    assert!(lock.acquire(true, None).unwrap());
    assert!(rlock.acquire(true, None).unwrap());
    let done = Queue::new().unwrap();
    let mut p = start(
        m,
        release_from_here,
        (lock.clone(), rlock.clone(), done.clone()),
    );
    assert!(done.get().unwrap());
    p.join().unwrap();
    assert!(!lock.locked().unwrap(), "the child released the plain lock");
    assert!(
        rlock.is_owned().unwrap(),
        "the child could not release the rlock"
    );
    rlock.release().unwrap();
}

/// CPython `_TestLock.test_lock_context` and `test_rlock_context`.
fn lock_context(m: StartMethod) {
    let manager = manager(m);
    let lock = manager.lock().unwrap();
    {
        let _held = lock.lock().unwrap();
        assert!(lock.locked().unwrap());
    }
    assert!(!lock.locked().unwrap());
    let rlock = manager.rlock().unwrap();
    {
        let _outer = rlock.lock().unwrap();
        let _inner = rlock.lock().unwrap();
    }
    assert!(!rlock.locked().unwrap());
}

// ---- _TestSemaphore ----

/// CPython `_TestSemaphore._test_semaphore`.
fn check_semaphore(acquire: impl Fn(bool) -> bool, release: impl Fn(), value: impl Fn() -> u64) {
    assert_eq!(value(), 2);
    assert!(acquire(true));
    assert_eq!(value(), 1);
    assert!(acquire(true));
    assert_eq!(value(), 0);
    assert!(!acquire(false));
    assert_eq!(value(), 0);
    release();
    assert_eq!(value(), 1);
    release();
    assert_eq!(value(), 2);
}

/// CPython `_TestSemaphore.test_semaphore`.
fn semaphore(m: StartMethod) {
    let manager = manager(m);
    let sem = manager.semaphore(2).unwrap();
    check_semaphore(
        |block| sem.acquire(block, None).unwrap(),
        || sem.release().unwrap(),
        || sem.get_value().unwrap(),
    );
    sem.release().unwrap();
    assert_eq!(sem.get_value().unwrap(), 3);
    sem.release().unwrap();
    assert_eq!(sem.get_value().unwrap(), 4);
    sem.release_n(2).unwrap();
    assert_eq!(sem.get_value().unwrap(), 6);
}

/// CPython `_TestSemaphore.test_bounded_semaphore`, and a release above the bound (Python's
/// `ValueError`).
fn bounded_semaphore(m: StartMethod) {
    let manager = manager(m);
    let sem = manager.bounded_semaphore(2).unwrap();
    check_semaphore(
        |block| sem.acquire(block, None).unwrap(),
        || sem.release().unwrap(),
        || sem.get_value().unwrap(),
    );
    assert!(is_runtime(sem.release()));
    assert_eq!(
        sem.get_value().unwrap(),
        2,
        "a refused release changes nothing"
    );
    assert!(sem.acquire(false, None).unwrap());
    assert!(is_runtime(sem.release_n(2)));
    assert_eq!(sem.get_value().unwrap(), 1);
}

/// CPython `_TestSemaphore.test_timeout` (only "timed out" is asserted, never how long).
fn semaphore_timeout(m: StartMethod) {
    let manager = manager(m);
    let sem = manager.semaphore(0).unwrap();
    assert!(!sem.acquire(false, None).unwrap());
    assert!(!sem.acquire(false, Some(TIMEOUT1)).unwrap());
    assert!(!sem.acquire(true, Some(TIMEOUT1)).unwrap());
    assert!(!sem.acquire(true, Some(Duration::ZERO)).unwrap());
}

// ---- _TestCondition ----

/// CPython `_TestCondition.f`: takes the lock, says it is about to sleep, waits, says it woke.
fn sleeper(cond: Condition, sleeping: Semaphore, woken: Semaphore, timeout: Option<Duration>) {
    assert!(cond.acquire(true, None).unwrap());
    sleeping.release().unwrap();
    // Timed out or notified, it holds the lock again.
    cond.wait(timeout).unwrap();
    woken.release().unwrap();
    cond.release().unwrap();
}

/// Every sleeper that has said so is waiting once the lock is free: each holds the lock from
/// before `sleeping.release()` until its `wait` lets go of it.
fn all_asleep(cond: &Condition) {
    assert!(cond.acquire(true, Some(HANG)).unwrap(), "hang guard");
    cond.release().unwrap();
}

/// Starts `n` sleeper processes and `n` sleeper threads (in `scope`).
fn sleepers<'s>(
    m: StartMethod,
    scope: &'s std::thread::Scope<'s, '_>,
    n: usize,
    (cond, sleeping, woken): (&Condition, &Semaphore, &Semaphore),
    timeout: Option<Duration>,
) -> Vec<mp_spawn::Process<()>> {
    (0..n)
        .map(|_| {
            let args = (cond.clone(), sleeping.clone(), woken.clone(), timeout);
            let p = start(m, sleeper, args.clone());
            scope.spawn(move || sleeper(args.0, args.1, args.2, args.3));
            p
        })
        .collect()
}

fn notify(cond: &Condition, n: u64) {
    let _held = cond.lock().unwrap();
    cond.notify(n).unwrap();
}

/// CPython `_TestCondition.test_notify`: a process and a thread wait; each notify wakes one.
fn condition_notify(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let sleeping = manager.semaphore(0).unwrap();
    let woken = manager.semaphore(0).unwrap();
    std::thread::scope(|s| {
        let mut children = sleepers(m, s, 1, (&cond, &sleeping, &woken), None);
        take(&sleeping);
        take(&sleeping);
        all_asleep(&cond);
        assert_eq!(woken.get_value().unwrap(), 0);
        notify(&cond, 1);
        take(&woken);
        // Nobody else was notified, so nobody else can have woken.
        assert_eq!(woken.get_value().unwrap(), 0);
        notify(&cond, 1);
        take(&woken);
        assert_eq!(woken.get_value().unwrap(), 0);
        for p in &mut children {
            p.join().unwrap();
        }
    });
}

/// CPython `_TestCondition.test_notify_all`: three processes and three threads time out, then
/// three and three more wait and one `notify_all` wakes all six.
fn condition_notify_all(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let sleeping = manager.semaphore(0).unwrap();
    let woken = manager.semaphore(0).unwrap();
    let parts = (&cond, &sleeping, &woken);
    std::thread::scope(|s| {
        let mut children = sleepers(m, s, 3, parts, Some(TIMEOUT1));
        for _ in 0..6 {
            take(&sleeping);
        }
        // Nobody notifies: they all time out.
        for _ in 0..6 {
            take(&woken);
        }
        assert_eq!(woken.get_value().unwrap(), 0);

        children.extend(sleepers(m, s, 3, parts, None));
        for _ in 0..6 {
            take(&sleeping);
        }
        all_asleep(&cond);
        assert_eq!(woken.get_value().unwrap(), 0);
        {
            let _held = cond.lock().unwrap();
            cond.notify_all().unwrap();
        }
        for _ in 0..6 {
            take(&woken);
        }
        assert_eq!(woken.get_value().unwrap(), 0);
        for p in &mut children {
            p.join().unwrap();
        }
    });
}

/// CPython `_TestCondition.test_notify_n`: `notify(2)` wakes two of six, `notify(4)` the
/// other four, and `notify(3)` with nobody waiting wakes nobody.
fn condition_notify_n(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let sleeping = manager.semaphore(0).unwrap();
    let woken = manager.semaphore(0).unwrap();
    std::thread::scope(|s| {
        let mut children = sleepers(m, s, 3, (&cond, &sleeping, &woken), None);
        for _ in 0..6 {
            take(&sleeping);
        }
        all_asleep(&cond);
        assert_eq!(woken.get_value().unwrap(), 0);
        notify(&cond, 2);
        take(&woken);
        take(&woken);
        assert_eq!(woken.get_value().unwrap(), 0, "only two were notified");
        notify(&cond, 4);
        for _ in 0..4 {
            take(&woken);
        }
        notify(&cond, 3);
        for p in &mut children {
            p.join().unwrap();
        }
        assert_eq!(woken.get_value().unwrap(), 0);
    });
}

/// CPython `_TestCondition.test_timeout` (only "timed out" is asserted).
fn condition_timeout(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    assert!(cond.acquire(true, None).unwrap());
    assert!(!cond.wait(Some(TIMEOUT1)).unwrap());
    // Held again after the wait.
    cond.release().unwrap();
    assert!(is_runtime(cond.release()));
}

/// CPython `_TestCondition._test_waitfor_f`.
fn waitfor_child(cond: Condition, state: ManagedValue<i64>) {
    let _held = cond.lock().unwrap();
    state.set(0).unwrap();
    cond.notify(1).unwrap();
    let result = cond.wait_for(|| state.get().unwrap() == 4, None).unwrap();
    assert!(result);
    assert_eq!(state.get().unwrap(), 4);
}

/// CPython `_TestCondition.test_waitfor`.
fn condition_waitfor(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let state = manager.value(-1i64).unwrap();
    let mut p = start(m, waitfor_child, (cond.clone(), state.clone()));
    {
        let _held = cond.lock().unwrap();
        let result = cond.wait_for(|| state.get().unwrap() == 0, Some(HANG));
        assert!(result.unwrap(), "hang guard");
        assert_eq!(state.get().unwrap(), 0);
    }
    for _ in 0..4 {
        let _held = cond.lock().unwrap();
        state.set(state.get().unwrap() + 1).unwrap();
        cond.notify(1).unwrap();
    }
    p.join().unwrap();
}

/// CPython `_TestCondition._test_waitfor_timeout_f` (the duration is not checked).
fn waitfor_timeout_child(cond: Condition, state: ManagedValue<i64>, started: Semaphore) {
    started.release().unwrap();
    let _held = cond.lock().unwrap();
    let result = cond.wait_for(|| state.get().unwrap() == 4, Some(TIMEOUT1));
    assert!(!result.unwrap(), "the state never reaches 4");
}

/// CPython `_TestCondition.test_waitfor_timeout`.
fn condition_waitfor_timeout(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let state = manager.value(0i64).unwrap();
    let started = manager.semaphore(0).unwrap();
    let mut p = start(
        m,
        waitfor_timeout_child,
        (cond.clone(), state.clone(), started.clone()),
    );
    take(&started);
    for _ in 0..3 {
        let _held = cond.lock().unwrap();
        state.set(state.get().unwrap() + 1).unwrap();
        cond.notify(1).unwrap();
    }
    p.join().unwrap();
}

/// CPython `_TestCondition._test_wait_result`.
fn notify_once(cond: Condition) {
    let _held = cond.lock().unwrap();
    cond.notify(1).unwrap();
}

/// CPython `_TestCondition.test_wait_result` (without its SIGINT part: a manager's wait is a
/// call in the server, which Ctrl-C does not reach).
fn condition_wait_result(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let _held = cond.lock().unwrap();
    assert!(!cond.wait(Some(Duration::ZERO)).unwrap());
    assert!(!cond.wait(Some(TIMEOUT1)).unwrap());
    // The child needs the lock to notify, which only the wait lets go of: it notifies a
    // waiter.
    let mut p = start(m, notify_once, (cond.clone(),));
    assert!(cond.wait(Some(HANG)).unwrap(), "hang guard");
    p.join().unwrap();
}

/// Python's `RuntimeError`s of a condition used without its lock.
fn condition_needs_its_lock(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    assert!(is_runtime(cond.wait(Some(Duration::ZERO))));
    assert!(is_runtime(cond.notify(1)));
    assert!(is_runtime(cond.notify_all()));
    assert!(is_runtime(cond.release()));
    // Reentrant, as Python's default condition lock is.
    let _outer = cond.lock().unwrap();
    let _inner = cond.lock().unwrap();
    assert!(!cond.wait(Some(Duration::ZERO)).unwrap());
    cond.notify_all().unwrap();
}

// ---- _TestEvent ----

fn set_event(event: Event) {
    event.set().unwrap();
}

/// CPython `_TestEvent.test_event` (only "timed out" is asserted, never how long).
fn event(m: StartMethod) {
    let manager = manager(m);
    let event = manager.event().unwrap();
    assert!(!event.is_set().unwrap());
    assert!(!event.wait(Some(Duration::ZERO)).unwrap());
    assert!(!event.wait(Some(TIMEOUT1)).unwrap());
    event.set().unwrap();
    assert!(event.is_set().unwrap());
    assert!(event.wait(None).unwrap());
    assert!(event.wait(Some(TIMEOUT1)).unwrap());
    event.clear().unwrap();
    assert!(!event.is_set().unwrap());
    let mut p = start(m, set_event, (event.clone(),));
    assert!(event.wait(Some(HANG)).unwrap(), "hang guard");
    p.join().unwrap();
}

// ---- Beyond Python: faults ----

fn hold_lock_and_park(lock: Lock, rlock: RLock, which: u8, ready: Queue<bool>) {
    if which == 0 {
        assert!(lock.acquire(true, None).unwrap());
    } else {
        assert!(rlock.acquire(true, None).unwrap());
        assert!(rlock.acquire(true, None).unwrap());
    }
    ready.put(true).unwrap();
    park_forever();
}

/// A process killed while it holds a lock (`which`: 0 a Lock, 1 an RLock taken twice): the
/// lock becomes free, and a waiter (a thread of the test, blocked before the kill) gets it.
fn killed_holder(m: StartMethod, which: u8) {
    let manager = manager(m);
    let (lock, rlock) = (manager.lock().unwrap(), manager.rlock().unwrap());
    let ready = Queue::new().unwrap();
    let mut p = start(
        m,
        hold_lock_and_park,
        (lock.clone(), rlock.clone(), which, ready.clone()),
    );
    assert!(ready.get().unwrap());
    let acquire = |block| match which {
        0 => lock.acquire(block, Some(HANG)).unwrap(),
        _ => rlock.acquire(block, Some(HANG)).unwrap(),
    };
    assert!(!acquire(false), "the child holds it");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| acquire(true));
        p.kill().unwrap();
        p.join().unwrap_err();
        assert!(
            waiter.join().unwrap(),
            "the waiter got the dead holder's lock"
        );
    });
    // The waiter thread held it and is gone: free again.
    assert!(acquire(true));
}

fn a_killed_holder_frees_its_lock(m: StartMethod) {
    killed_holder(m, 0);
}

fn a_killed_holder_frees_its_rlock(m: StartMethod) {
    killed_holder(m, 1);
}

fn hold_condition_and_park(cond: Condition, ready: Queue<bool>) {
    assert!(cond.acquire(true, None).unwrap());
    assert!(cond.acquire(true, None).unwrap());
    ready.put(true).unwrap();
    park_forever();
}

/// A process killed while it holds a condition's lock (twice): the lock becomes free, and a
/// waiter blocked on it gets it.
fn a_killed_holder_frees_its_condition(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let ready = Queue::new().unwrap();
    let mut p = start(m, hold_condition_and_park, (cond.clone(), ready.clone()));
    assert!(ready.get().unwrap());
    assert!(!cond.acquire(false, None).unwrap(), "the child holds it");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| cond.acquire(true, Some(HANG)).unwrap());
        p.kill().unwrap();
        p.join().unwrap_err();
        assert!(
            waiter.join().unwrap(),
            "the waiter got the dead holder's lock"
        );
    });
    // The waiter thread held it and is gone: free again.
    assert!(cond.acquire(true, Some(HANG)).unwrap());
    assert!(!cond.wait(Some(Duration::ZERO)).unwrap());
    cond.release().unwrap();
}

/// A waiter killed at a condition: a `notify(1)` goes to a living waiter, not to the dead one
/// (which waited first, so it is the first in line).
fn a_waiter_killed_at_a_condition_swallows_no_notify(m: StartMethod) {
    let manager = manager(m);
    let cond = manager.condition().unwrap();
    let sleeping = manager.semaphore(0).unwrap();
    let woken = manager.semaphore(0).unwrap();
    let mut p = start(
        m,
        sleeper,
        (cond.clone(), sleeping.clone(), woken.clone(), None),
    );
    take(&sleeping);
    all_asleep(&cond);
    std::thread::scope(|s| {
        let living = s.spawn(|| {
            let _held = cond.lock().unwrap();
            sleeping.release().unwrap();
            cond.wait(Some(HANG)).unwrap()
        });
        take(&sleeping);
        all_asleep(&cond);
        p.kill().unwrap();
        p.join().unwrap_err();
        notify(&cond, 1);
        assert!(living.join().unwrap(), "the living waiter was notified");
    });
    assert_eq!(woken.get_value().unwrap(), 0, "the dead waiter never woke");
}

fn acquire_forever(sem: Semaphore, about_to_acquire: Queue<bool>) {
    about_to_acquire.put(true).unwrap();
    // Nothing to take: this waits until the test kills it.
    let _ = sem.acquire(true, None);
    park_forever();
}

/// A process killed while it waits at a semaphore: a unit released after its death goes to
/// the living (a semaphore has no owner, so a unit the dead took would be lost for good).
fn a_waiter_killed_at_a_semaphore_takes_no_unit(m: StartMethod) {
    let manager = manager(m);
    let sem = manager.semaphore(0).unwrap();
    let about_to_acquire = Queue::new().unwrap();
    let mut p = start(m, acquire_forever, (sem.clone(), about_to_acquire.clone()));
    assert!(about_to_acquire.get().unwrap());
    // Round trips while the child's `acquire` reaches the server (it is there, or about to
    // be).
    for _ in 0..10 {
        assert_eq!(sem.get_value().unwrap(), 0);
    }
    p.kill().unwrap();
    p.join().unwrap_err();
    sem.release().unwrap();
    take(&sem);
}

fn blocked_and_free_threads(cond: Condition, event: Event, sleeping: Semaphore) {
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let _held = cond.lock().unwrap();
            sleeping.release().unwrap();
            // Notified by the other thread while this one is blocked in the server.
            cond.wait(Some(HANG)).unwrap()
        });
        // Free only once the waiter is in its wait: the waiter is blocked in the server now.
        take(&sleeping);
        all_asleep(&cond);
        // Calls of this thread go through while the waiter's call blocks.
        event.set().unwrap();
        assert!(event.wait(Some(HANG)).unwrap());
        notify(&cond, 1);
        assert!(waiter.join().unwrap(), "hang guard");
    });
}

/// Each thread has its own connection: a call that blocks in the server (a condition's wait)
/// holds up its own thread only, in the test and in a child.
fn a_call_blocked_in_one_thread_does_not_hold_up_another(m: StartMethod) {
    let manager = manager(m);
    let (cond, event) = (manager.condition().unwrap(), manager.event().unwrap());
    let sleeping = manager.semaphore(0).unwrap();
    blocked_and_free_threads(cond.clone(), event.clone(), sleeping.clone());
    let mut p = start(m, blocked_and_free_threads, (cond, event, sleeping));
    p.join().unwrap();
}

/// `Duration::MAX` as a timeout is "forever" in the server (no `Instant` overflow, which would
/// panic the server's thread and lose the call).
fn a_huge_timeout_is_forever_not_a_panic(m: StartMethod) {
    let manager = manager(m);
    let lock = manager.lock().unwrap();
    assert!(lock.acquire(true, Some(Duration::MAX)).unwrap());
    let sem = manager.semaphore(1).unwrap();
    assert!(sem.acquire(true, Some(Duration::MAX)).unwrap());
    let event = manager.event().unwrap();
    event.set().unwrap();
    assert!(event.wait(Some(Duration::MAX)).unwrap());
    let cond = manager.condition().unwrap();
    assert!(cond.acquire(true, Some(Duration::MAX)).unwrap());
    let mut p = start(m, notify_once, (cond.clone(),));
    // The child needs the lock that the wait lets go of: it notifies this waiter.
    assert!(cond.wait(Some(Duration::MAX)).unwrap());
    p.join().unwrap();
    cond.release().unwrap();
    let barrier = manager.barrier(1, Some(Duration::MAX)).unwrap();
    assert_eq!(barrier.wait(Some(Duration::MAX)).unwrap(), 0);
    assert_eq!(barrier.wait(None).unwrap(), 0);
    let q = manager.bounded_queue::<u8>(1).unwrap();
    q.put_timeout(1, Duration::MAX).unwrap();
    assert_eq!(q.get_timeout(Duration::MAX).unwrap(), 1);
    // Still serving.
    assert!(lock.locked().unwrap());
}

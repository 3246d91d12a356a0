//! Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier across processes,
//! under all three start methods.

use std::collections::BTreeSet;
use std::time::Duration;

use mp_shm::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, RawValue, Semaphore, SyncError,
};
use mp_spawn::StartMethod;
use mp_spawn::testing::{ctx, park_forever};

mp_spawn::test_matrix!(
    lock_held_by_a_child,
    lock_holder_killed,
    lock_holder_exits_without_releasing,
    rlock_holder_killed_mid_recursion,
    rlock_of_another_process_cannot_be_released,
    semaphore_across_processes,
    event_set_by_a_child,
    condition_notify_wakes_exactly_n,
    condition_wait_for_a_shared_value,
    barrier_indices_across_processes,
    barrier_timeout_breaks_it_for_every_waiter,
    barrier_abort_from_another_process,
);

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(50);

fn hold_until(lock: Lock, held: Event, go: Event) {
    assert!(lock.acquire(true, None).unwrap());
    held.set();
    assert!(go.wait(Some(LONG)));
    lock.release().unwrap();
}

fn lock_held_by_a_child(m: StartMethod) {
    let (lock, held, go) = (
        Lock::new().unwrap(),
        Event::new().unwrap(),
        Event::new().unwrap(),
    );
    let mut p = ctx(m).process(hold_until, (lock.clone(), held.clone(), go.clone()));
    p.start().unwrap();
    assert!(held.wait(Some(LONG)));
    assert!(lock.locked());
    assert!(!lock.acquire(false, None).unwrap());
    assert!(!lock.acquire(true, Some(SHORT)).unwrap());
    // Not the holder: Python would let us release; a robust lock does not.
    assert!(matches!(lock.release(), Err(SyncError::NotHeld)));
    go.set();
    assert!(lock.acquire(true, Some(LONG)).unwrap());
    lock.release().unwrap();
    p.join().unwrap();
}

fn take_and_park(lock: Lock, held: Event) {
    lock.acquire(true, None).unwrap();
    held.set();
    park_forever();
}

fn lock_holder_killed(m: StartMethod) {
    let (lock, held) = (Lock::new().unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(take_and_park, (lock.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait(Some(LONG)));
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    // The next acquirer gets the lock, told that its holder died.
    assert!(matches!(
        lock.acquire(true, Some(LONG)),
        Err(SyncError::OwnerDied)
    ));
    assert!(lock.is_owner_died());
    lock.release().unwrap();
    // The mark stays until cleared, so every acquirer hears of it; a guard comes anyway.
    let guard = lock.lock().unwrap_err().into_inner().expect("a guard");
    lock.clear_owner_died();
    drop(guard);
    assert!(lock.acquire(false, None).unwrap());
    lock.release().unwrap();
}

fn take_and_return(lock: Lock) {
    lock.acquire(true, None).unwrap();
}

fn lock_holder_exits_without_releasing(m: StartMethod) {
    let lock = Lock::new().unwrap();
    let mut p = ctx(m).process(take_and_return, (lock.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    assert!(matches!(
        lock.acquire(true, Some(LONG)),
        Err(SyncError::OwnerDied)
    ));
    lock.clear_owner_died();
    lock.release().unwrap();
}

fn recurse_and_park(lock: RLock, held: Event) {
    for _ in 0..3 {
        lock.acquire(true, None).unwrap();
    }
    held.set();
    park_forever();
}

fn rlock_holder_killed_mid_recursion(m: StartMethod) {
    let (lock, held) = (RLock::new().unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(recurse_and_park, (lock.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait(Some(LONG)));
    assert!(!lock.acquire(false, None).unwrap());
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    assert!(matches!(
        lock.acquire(true, Some(LONG)),
        Err(SyncError::OwnerDied)
    ));
    lock.clear_owner_died();
    // Ours now, at depth one: the dead holder's three levels are gone.
    assert!(lock.is_owned());
    lock.release().unwrap();
    assert!(!lock.locked());
}

fn try_release(lock: RLock) -> bool {
    matches!(lock.release(), Err(SyncError::NotHeld))
}

fn rlock_of_another_process_cannot_be_released(m: StartMethod) {
    let lock = RLock::new().unwrap();
    lock.acquire(true, None).unwrap();
    lock.acquire(true, None).unwrap();
    let mut p = ctx(m).process(try_release, (lock.clone(),));
    p.start().unwrap();
    assert!(p.join().unwrap(), "a child released the parent's RLock");
    lock.release().unwrap();
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(SyncError::NotHeld)));
}

fn take_units(sem: Semaphore, n: u32, taken: Event) {
    for _ in 0..n {
        assert!(sem.acquire(true, Some(LONG)));
    }
    taken.set();
}

fn semaphore_across_processes(m: StartMethod) {
    let (sem, taken) = (Semaphore::new(1).unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(take_units, (sem.clone(), 3, taken.clone()));
    p.start().unwrap();
    // The child takes the one free unit, then waits for the two we release.
    sem.release().unwrap();
    sem.release().unwrap();
    assert!(taken.wait(Some(LONG)));
    p.join().unwrap();
    assert_eq!(sem.get_value(), 0);
    assert!(!sem.acquire(true, Some(SHORT)));

    let bounded = BoundedSemaphore::new(2).unwrap();
    assert!(bounded.acquire(false, None));
    bounded.release().unwrap();
    assert!(matches!(bounded.release(), Err(SyncError::TooManyReleases)));
    assert_eq!(bounded.get_value(), 2);
}

fn set_after(event: Event, go: Event) {
    assert!(go.wait(Some(LONG)));
    event.set();
}

fn event_set_by_a_child(m: StartMethod) {
    let (event, go) = (Event::new().unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(set_after, (event.clone(), go.clone()));
    p.start().unwrap();
    assert!(!event.wait(Some(SHORT)));
    go.set();
    assert!(event.wait(Some(LONG)));
    assert!(event.is_set());
    event.clear();
    assert!(!event.is_set());
    p.join().unwrap();
}

fn wait_once(cond: Condition, woken: Semaphore, ready: Semaphore) -> bool {
    let _guard = cond.lock().unwrap();
    ready.release().unwrap();
    let notified = cond.wait(Some(LONG)).unwrap();
    woken.release().unwrap();
    notified
}

fn condition_notify_wakes_exactly_n(m: StartMethod) {
    let cond = Condition::new().unwrap();
    let (woken, ready) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
    let mut children: Vec<_> = (0..3)
        .map(|_| ctx(m).process(wait_once, (cond.clone(), woken.clone(), ready.clone())))
        .collect();
    for c in &mut children {
        c.start().unwrap();
    }
    for _ in 0..3 {
        assert!(ready.acquire(true, Some(LONG)));
    }
    // Each child released the lock only inside `wait`, so all three are waiting once we hold it.
    {
        let _guard = cond.lock().unwrap();
        cond.notify(1).unwrap();
    }
    assert!(woken.acquire(true, Some(LONG)));
    assert!(
        !woken.acquire(true, Some(SHORT)),
        "notify(1) woke more than one"
    );
    {
        let _guard = cond.lock().unwrap();
        cond.notify_all().unwrap();
    }
    for _ in 0..2 {
        assert!(woken.acquire(true, Some(LONG)));
    }
    for c in &mut children {
        assert!(
            c.join().unwrap(),
            "a waiter timed out instead of being notified"
        );
    }
    // Without the lock: an error, as Python's RuntimeError.
    assert!(matches!(cond.notify(1), Err(SyncError::NotHeld)));
    assert!(matches!(cond.wait(Some(SHORT)), Err(SyncError::NotHeld)));
}

fn count_to(cond: Condition, value: RawValue<u32>, target: u32) {
    for _ in 0..target {
        let _guard = cond.lock().unwrap();
        value.set(value.get() + 1);
        cond.notify_all().unwrap();
    }
}

fn condition_wait_for_a_shared_value(m: StartMethod) {
    let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
    let value = RawValue::new(0u32).unwrap();
    let mut p = ctx(m).process(count_to, (cond.clone(), value.clone(), 20));
    let _guard = cond.lock().unwrap();
    p.start().unwrap();
    assert!(cond.wait_for(|| value.get() == 20, Some(LONG)).unwrap());
    assert!(!cond.wait_for(|| value.get() == 21, Some(SHORT)).unwrap());
    drop(_guard);
    p.join().unwrap();
}

fn pass_barrier(barrier: Barrier) -> Result<usize, String> {
    barrier.wait(Some(LONG)).map_err(|e| e.to_string())
}

fn barrier_indices_across_processes(m: StartMethod) {
    let barrier = Barrier::new(4, None).unwrap();
    assert_eq!(barrier.parties(), 4);
    let mut children: Vec<_> = (0..3)
        .map(|_| ctx(m).process(pass_barrier, (barrier.clone(),)))
        .collect();
    for c in &mut children {
        c.start().unwrap();
    }
    let mut indices = BTreeSet::from([barrier.wait(Some(LONG)).unwrap()]);
    for c in &mut children {
        indices.insert(c.join().unwrap().unwrap());
    }
    assert_eq!(indices, BTreeSet::from([0, 1, 2, 3]));
    // Reusable: a second round.
    let mut again: Vec<_> = (0..3)
        .map(|_| ctx(m).process(pass_barrier, (barrier.clone(),)))
        .collect();
    for c in &mut again {
        c.start().unwrap();
    }
    barrier.wait(Some(LONG)).unwrap();
    for c in &mut again {
        c.join().unwrap().unwrap();
    }
}

fn wait_on_barrier(barrier: Barrier, timeout: Option<Duration>) -> bool {
    matches!(barrier.wait(timeout), Err(SyncError::BrokenBarrier))
}

fn barrier_timeout_breaks_it_for_every_waiter(m: StartMethod) {
    let barrier = Barrier::new(3, None).unwrap();
    // One child waits without a timeout; the parent's short timeout breaks it for both.
    let mut p = ctx(m).process(wait_on_barrier, (barrier.clone(), None));
    p.start().unwrap();
    while barrier.n_waiting() < 1 {
        std::thread::yield_now();
    }
    assert!(matches!(
        barrier.wait(Some(SHORT)),
        Err(SyncError::BrokenBarrier)
    ));
    assert!(
        p.join().unwrap(),
        "the other waiter was not told the barrier broke"
    );
    assert!(barrier.broken());
    barrier.reset().unwrap();
    assert!(!barrier.broken());
}

fn barrier_abort_from_another_process(m: StartMethod) {
    let barrier = Barrier::new(2, None).unwrap();
    let mut p = ctx(m).process(wait_on_barrier, (barrier.clone(), Some(LONG)));
    p.start().unwrap();
    while barrier.n_waiting() < 1 {
        std::thread::yield_now();
    }
    barrier.abort().unwrap();
    assert!(p.join().unwrap());
    assert!(matches!(barrier.wait(None), Err(SyncError::BrokenBarrier)));
}

#[test]
fn lock_in_process_semantics() {
    let lock = Lock::new().unwrap();
    assert!(matches!(lock.release(), Err(SyncError::NotHeld)));
    assert!(lock.acquire(true, Some(Duration::ZERO)).unwrap());
    // Held by us: a non-blocking or timed acquire fails; a blocking one would never return.
    assert!(!lock.acquire(false, None).unwrap());
    assert!(!lock.acquire(true, Some(Duration::from_millis(1))).unwrap());
    assert!(matches!(
        lock.acquire(true, None),
        Err(SyncError::Reentrant)
    ));
    // Another thread of this process cannot release it either.
    let other = lock.clone();
    let released = std::thread::spawn(move || other.release().is_ok())
        .join()
        .unwrap();
    assert!(!released);
    lock.release().unwrap();
}

#[test]
fn rlock_counts_in_process() {
    let lock = RLock::new().unwrap();
    let _a = lock.lock().unwrap();
    let _b = lock.lock().unwrap();
    let other = lock.clone();
    let got = std::thread::spawn(move || other.acquire(true, Some(SHORT)).unwrap())
        .join()
        .unwrap();
    assert!(!got);
    drop(_a);
    assert!(lock.locked());
    drop(_b);
    assert!(!lock.locked());
}

#[test]
fn condition_between_threads() {
    let cond = Condition::new().unwrap();
    let flag = RawValue::new(0u8).unwrap();
    let (c2, f2) = (cond.clone(), flag.clone());
    let t = std::thread::spawn(move || {
        let _g = c2.lock().unwrap();
        c2.wait_for(|| f2.get() == 1, Some(LONG)).unwrap()
    });
    loop {
        let _g = cond.lock().unwrap();
        flag.set(1);
        cond.notify(1).unwrap();
        drop(_g);
        if t.is_finished() {
            break;
        }
        std::thread::yield_now();
    }
    assert!(t.join().unwrap());
}

#[test]
fn bad_arguments() {
    assert!(Barrier::new(0, None).is_err());
    assert!(BoundedSemaphore::new(0).is_ok());
    assert!(Semaphore::new(u32::MAX).is_err());
}

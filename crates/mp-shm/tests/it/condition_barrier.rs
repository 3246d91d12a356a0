//! Condition and Barrier under reuse and races: a notify wakes only waiters that were already
//! waiting, and a barrier's rounds never mix. CPython's `_TestCondition` and `_TestBarrier`
//! ported, with the parties as processes (all three start methods) and as threads.

use std::time::{Duration, Instant};

use mp_shm::{Array, Barrier, Condition, Event, Semaphore, SyncError, Value};
use mp_spawn::testing::ctx;
use mp_spawn::{Process, StartMethod, Target};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
        assert!(
            a.join().unwrap(),
            "the waiter that was waiting was not woken"
        );
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

// ---------------------------------------------------------------------------------------------
// Harness: the parties of a test are processes (one start method) or threads, as CPython runs
// each test class once with `ProcessesMixin` and once with `ThreadsMixin`.

#[derive(Clone, Copy)]
enum Mode {
    Processes(StartMethod),
    Threads,
}

macro_rules! modes {
    ($($name:ident),* $(,)?) => {
        mod fork { $( #[test] fn $name() { super::$name(super::Mode::Processes(mp_spawn::StartMethod::Fork)) } )* }
        mod spawn { $( #[test] fn $name() { super::$name(super::Mode::Processes(mp_spawn::StartMethod::Spawn)) } )* }
        mod forkserver { $( #[test] fn $name() { super::$name(super::Mode::Processes(mp_spawn::StartMethod::Forkserver)) } )* }
        mod threads { $( #[test] fn $name() { super::$name(super::Mode::Threads) } )* }
    };
}

modes!(
    test_notify,
    test_notify_all,
    test_notify_n,
    test_waitfor,
    test_waitfor_timeout,
    test_wait_result,
    test_barrier,
    test_barrier_10,
    test_wait_return,
    test_action,
    test_abort,
    test_reset,
    test_abort_and_reset,
    test_timeout,
    test_default_timeout,
    test_thousand,
    condition_ping_pong_thousand_rounds,
);

/// Started parties; on a failing test the processes are killed and reaped, so none is left.
#[derive(Default)]
struct Parties {
    processes: Vec<Process<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Parties {
    fn process<F, A>(&mut self, m: StartMethod, f: F, args: A)
    where
        F: Target<A, Output = ()>,
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        let mut p = ctx(m).process(f, args);
        p.start().unwrap();
        self.processes.push(p);
    }

    fn thread<F, A>(&mut self, f: F, args: A)
    where
        F: Target<A, Output = ()>,
        A: Send + 'static,
    {
        self.threads.push(std::thread::spawn(move || f.call(args)));
    }

    /// One party of the test's kind.
    fn spawn<F, A>(&mut self, mode: Mode, f: F, args: A)
    where
        F: Target<A, Output = ()>,
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        match mode {
            Mode::Processes(m) => self.process(m, f, args),
            Mode::Threads => self.thread(f, args),
        }
    }

    fn join(mut self) {
        for mut p in std::mem::take(&mut self.processes) {
            p.join().expect("a party failed");
        }
        for t in std::mem::take(&mut self.threads) {
            t.join().expect("a party failed");
        }
    }
}

impl Drop for Parties {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.join();
        }
    }
}

/// CPython's `run_threads`: `N - 1` parties run `f`, and so does the test itself.
fn run_parties<F, A>(mode: Mode, f: F, args: A)
where
    F: Target<A, Output = ()> + Copy,
    A: Clone + Serialize + DeserializeOwned + Send + 'static,
{
    let mut parties = Parties::default();
    for _ in 0..N - 1 {
        parties.spawn(mode, f, args.clone());
    }
    f.call(args);
    parties.join();
}

/// A counter shared by every party (CPython's `DummyList` / manager list, by its length).
type Count = Value<u32>;

fn count() -> Count {
    Value::new(0).unwrap()
}

fn incr(c: &Count) {
    c.update(|x| *x += 1).unwrap();
}

fn get(c: &Count) -> u32 {
    c.value().unwrap()
}

// ---------------------------------------------------------------------------------------------
// _TestCondition

fn sleeper(cond: Condition, sleeping: Semaphore, woken: Semaphore, timeout: Option<Duration>) {
    let _g = cond.lock().unwrap();
    sleeping.release().unwrap();
    cond.wait(timeout).unwrap();
    woken.release().unwrap();
}

/// Nothing is left over: a fresh waiter is not woken by an old notify (CPython's
/// `check_invariant`).
fn check_invariant(cond: &Condition) {
    let _g = cond.lock().unwrap();
    assert!(!cond.wait(Some(Duration::ZERO)).unwrap());
}

fn acquire_n(sem: &Semaphore, n: usize) {
    for _ in 0..n {
        assert!(sem.acquire(true, Some(LONG)), "a party did not arrive");
    }
}

fn notify(cond: &Condition, n: usize) {
    let _g = cond.lock().unwrap();
    cond.notify(n).unwrap();
}

/// CPython: test_notify. One process and one thread (or two threads) wait; each notify wakes one.
fn test_notify(mode: Mode) {
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
    let args = (cond.clone(), sleeping.clone(), woken.clone(), Some(LONG));
    let mut parties = Parties::default();
    parties.spawn(mode, sleeper, args.clone());
    parties.thread(sleeper, args);
    acquire_n(&sleeping, 2);
    assert!(!woken.acquire(true, Some(SHORT)), "woken without a notify");
    notify(&cond, 1);
    acquire_n(&woken, 1);
    assert!(!woken.acquire(true, Some(SHORT)), "notify() woke two");
    notify(&cond, 1);
    acquire_n(&woken, 1);
    check_invariant(&cond);
    parties.join();
}

/// CPython: test_notify_all. Three of each kind time out at once, three of each wait; one
/// notify_all wakes the waiting six.
fn test_notify_all(mode: Mode) {
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
    let mut parties = Parties::default();
    for timeout in [Some(Duration::ZERO), Some(LONG)] {
        let args = (cond.clone(), sleeping.clone(), woken.clone(), timeout);
        for _ in 0..3 {
            parties.spawn(mode, sleeper, args.clone());
            parties.thread(sleeper, args.clone());
        }
        acquire_n(&sleeping, 6);
        if timeout == Some(Duration::ZERO) {
            // They time out by themselves.
            acquire_n(&woken, 6);
        }
    }
    assert!(!woken.acquire(true, Some(SHORT)), "woken without a notify");
    {
        let _g = cond.lock().unwrap();
        cond.notify_all().unwrap();
    }
    acquire_n(&woken, 6);
    check_invariant(&cond);
    parties.join();
}

/// CPython: test_notify_n. notify(2) wakes two of six, notify(4) the other four, notify(3)
/// then wakes nobody (and leaves nothing for later waiters).
fn test_notify_n(mode: Mode) {
    let cond = Condition::new().unwrap();
    let (sleeping, woken) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
    let args = (cond.clone(), sleeping.clone(), woken.clone(), Some(LONG));
    let mut parties = Parties::default();
    for _ in 0..3 {
        parties.spawn(mode, sleeper, args.clone());
        parties.thread(sleeper, args.clone());
    }
    acquire_n(&sleeping, 6);
    assert!(!woken.acquire(true, Some(SHORT)), "woken without a notify");
    notify(&cond, 2);
    acquire_n(&woken, 2);
    assert!(
        !woken.acquire(true, Some(SHORT)),
        "notify(2) woke more than two"
    );
    notify(&cond, 4);
    acquire_n(&woken, 4);
    notify(&cond, 3);
    check_invariant(&cond);
    parties.join();
}

/// CPython: test_timeout (a lower bound only: the wait may not end early).
#[test]
fn test_condition_timeout() {
    let cond = Condition::new().unwrap();
    let _g = cond.lock().unwrap();
    let t0 = Instant::now();
    assert!(!cond.wait(Some(SHORT)).unwrap());
    assert!(t0.elapsed() >= SHORT);
}

fn waitfor_f(cond: Condition, state: Value<i32>) {
    let _g = cond.lock().unwrap();
    state.set_value(0).unwrap();
    cond.notify(1).unwrap();
    let result = cond
        .wait_for(|| state.value().unwrap() == 4, Some(LONG))
        .unwrap();
    assert!(result && state.value().unwrap() == 4);
}

/// CPython: test_waitfor.
fn test_waitfor(mode: Mode) {
    let cond = Condition::new().unwrap();
    let state = Value::new(-1i32).unwrap();
    let mut parties = Parties::default();
    {
        let _g = cond.lock().unwrap();
        parties.spawn(mode, waitfor_f, (cond.clone(), state.clone()));
        let result = cond
            .wait_for(|| state.value().unwrap() == 0, Some(LONG))
            .unwrap();
        assert!(result);
        assert_eq!(state.value().unwrap(), 0);
    }
    for _ in 0..4 {
        let _g = cond.lock().unwrap();
        state.update(|v| *v += 1).unwrap();
        cond.notify(1).unwrap();
    }
    parties.join();
}

fn waitfor_timeout_f(cond: Condition, state: Value<i32>, success: Value<u8>, sem: Semaphore) {
    sem.release().unwrap();
    let _g = cond.lock().unwrap();
    let expected = Duration::from_millis(100);
    let t0 = Instant::now();
    let result = cond
        .wait_for(|| state.value().unwrap() == 4, Some(expected))
        .unwrap();
    if !result && t0.elapsed() >= expected {
        success.set_value(1).unwrap();
    }
}

/// CPython: test_waitfor_timeout. The predicate never holds: wait_for returns false, not early.
fn test_waitfor_timeout(mode: Mode) {
    let cond = Condition::new().unwrap();
    let state = Value::new(0i32).unwrap();
    let success = Value::new(0u8).unwrap();
    let sem = Semaphore::new(0).unwrap();
    let mut parties = Parties::default();
    let args = (cond.clone(), state.clone(), success.clone(), sem.clone());
    parties.spawn(mode, waitfor_timeout_f, args);
    acquire_n(&sem, 1);
    for _ in 0..3 {
        let _g = cond.lock().unwrap();
        state.update(|v| *v += 1).unwrap();
        cond.notify(1).unwrap();
    }
    parties.join();
    assert_eq!(success.value().unwrap(), 1);
}

fn notify_once(cond: Condition) {
    let _g = cond.lock().unwrap();
    cond.notify(1).unwrap();
}

/// CPython: test_wait_result (without its SIGINT part).
fn test_wait_result(mode: Mode) {
    let cond = Condition::new().unwrap();
    let mut parties = Parties::default();
    {
        let _g = cond.lock().unwrap();
        assert!(!cond.wait(Some(Duration::ZERO)).unwrap());
        assert!(!cond.wait(Some(Duration::from_millis(10))).unwrap());
        parties.spawn(mode, notify_once, (cond.clone(),));
        assert!(cond.wait(Some(LONG)).unwrap());
    }
    parties.join();
}

// ---------------------------------------------------------------------------------------------
// _TestBarrier (N = 5, default timeout 30 s as CPython's defaultTimeout)

const N: u32 = 5;

fn barrier() -> Barrier {
    Barrier::new(N, Some(LONG)).unwrap()
}

fn multipass(barrier: Barrier, results: (Count, Count), passes: u32) {
    let m = barrier.parties();
    assert_eq!(m, N);
    for i in 0..passes {
        incr(&results.0);
        assert_eq!(get(&results.1), i * m);
        barrier.wait(None).unwrap();
        incr(&results.1);
        assert_eq!(get(&results.0), (i + 1) * m);
        barrier.wait(None).unwrap();
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
}

/// CPython: test_barrier.
fn test_barrier(mode: Mode) {
    run_parties(mode, multipass, (barrier(), (count(), count()), 1));
}

/// CPython: test_barrier_10.
fn test_barrier_10(mode: Mode) {
    run_parties(mode, multipass, (barrier(), (count(), count()), 10));
}

fn wait_return_f(barrier: Barrier, seen: Array<u32>) {
    let i = barrier.wait(None).unwrap();
    seen.lock().unwrap()[i] += 1;
}

/// CPython: test_wait_return (stronger: every index 0..N is returned exactly once).
fn test_wait_return(mode: Mode) {
    let seen = Array::<u32>::zeroed(N as usize).unwrap();
    run_parties(mode, wait_return_f, (barrier(), seen.clone()));
    assert_eq!(seen.to_vec().unwrap(), [1; N as usize]);
}

fn action_f(barrier: Barrier, results: Count) {
    // No `action` argument (a closure cannot reach a spawned process): the documented
    // substitute is that the last party to arrive runs it, and a second wait holds the others.
    if barrier.wait(None).unwrap() == N as usize - 1 {
        incr(&results);
    }
    barrier.wait(None).unwrap();
    assert_eq!(get(&results), 1);
}

/// CPython: test_action, through the substitute for `action` (see `action_f`).
fn test_action(mode: Mode) {
    let results = count();
    run_parties(mode, action_f, (barrier(), results.clone()));
    assert_eq!(get(&results), 1);
}

/// Runs the part of a CPython party that may raise: `Ok(true)` is its `RuntimeError`.
fn abort_part(barrier: &Barrier, r1: &Count) -> Result<bool, SyncError> {
    let i = barrier.wait(None)?;
    if i == N as usize / 2 {
        return Ok(true);
    }
    barrier.wait(None)?;
    incr(r1);
    Ok(false)
}

fn abort_f(barrier: Barrier, r1: Count, r2: Count) {
    match abort_part(&barrier, &r1) {
        Ok(true) => barrier.abort().unwrap(),
        Ok(false) => {}
        Err(SyncError::BrokenBarrier) => incr(&r2),
        Err(e) => panic!("{e}"),
    }
}

/// CPython: test_abort.
fn test_abort(mode: Mode) {
    let (b, r1, r2) = (barrier(), count(), count());
    run_parties(mode, abort_f, (b.clone(), r1.clone(), r2.clone()));
    assert_eq!(get(&r1), 0);
    assert_eq!(get(&r2), N - 1);
    assert!(b.broken());
}

fn reset_f(barrier: Barrier, r1: Count, r2: Count, r3: Count) {
    let i = barrier.wait(None).unwrap();
    if i == N as usize / 2 {
        // Wait until the others are all in the barrier. The barrier offers no event for
        // "a party arrived", so this polls its count, as CPython's test does; correctness
        // does not depend on the pace (a hang guard only).
        let give_up = mp_sys::deadline::after(LONG).expect("a finite guard");
        while barrier.n_waiting() < N - 1 {
            assert!(Instant::now() < give_up, "the others never arrived");
            std::thread::yield_now();
        }
        barrier.reset().unwrap();
    } else {
        match barrier.wait(None) {
            Ok(_) => incr(&r1),
            Err(SyncError::BrokenBarrier) => incr(&r2),
            Err(e) => panic!("{e}"),
        }
    }
    // Pass it again.
    barrier.wait(None).unwrap();
    incr(&r3);
}

/// CPython: test_reset.
fn test_reset(mode: Mode) {
    let (r1, r2, r3) = (count(), count(), count());
    run_parties(
        mode,
        reset_f,
        (barrier(), r1.clone(), r2.clone(), r3.clone()),
    );
    assert_eq!((get(&r1), get(&r2), get(&r3)), (0, N - 1, N));
}

fn abort_and_reset_f(barrier: Barrier, barrier2: Barrier, r: (Count, Count, Count)) {
    match abort_part(&barrier, &r.0) {
        Ok(true) => barrier.abort().unwrap(),
        Ok(false) => {}
        Err(SyncError::BrokenBarrier) => incr(&r.1),
        Err(e) => panic!("{e}"),
    }
    // Everyone has left `barrier` before the reset, and nobody enters it before.
    if barrier2.wait(None).unwrap() == N as usize / 2 {
        barrier.reset().unwrap();
    }
    barrier2.wait(None).unwrap();
    barrier.wait(None).unwrap();
    incr(&r.2);
}

/// CPython: test_abort_and_reset.
fn test_abort_and_reset(mode: Mode) {
    let r = (count(), count(), count());
    let barrier2 = Barrier::new(N, Some(LONG)).unwrap();
    run_parties(mode, abort_and_reset_f, (barrier(), barrier2, r.clone()));
    assert_eq!((get(&r.0), get(&r.1), get(&r.2)), (0, N - 1, N));
}

fn timeout_f(barrier: Barrier, results: Count, broke: Event, timeout: Option<Duration>) {
    let i = barrier.wait(Some(LONG)).unwrap();
    if i == N as usize / 2 {
        // One party is late: it comes only once the others have broken the barrier (CPython
        // sleeps a second instead).
        assert!(broke.wait(Some(LONG)));
    }
    match barrier.wait(timeout) {
        Err(SyncError::BrokenBarrier) => {
            incr(&results);
            broke.set();
        }
        other => panic!("expected a broken barrier, got {other:?}"),
    }
}

/// CPython: test_timeout.
fn test_timeout(mode: Mode) {
    let (b, results) = (barrier(), count());
    let args = (
        b.clone(),
        results.clone(),
        Event::new().unwrap(),
        Some(SHORT),
    );
    run_parties(mode, timeout_f, args);
    assert_eq!(get(&results), b.parties());
}

/// CPython: test_default_timeout.
fn test_default_timeout(mode: Mode) {
    let (b, results) = (Barrier::new(N, Some(SHORT)).unwrap(), count());
    let args = (b.clone(), results.clone(), Event::new().unwrap(), None);
    run_parties(mode, timeout_f, args);
    assert_eq!(get(&results), b.parties());
}

/// CPython: test_single_thread.
#[test]
fn test_single_thread() {
    let b = Barrier::new(1, None).unwrap();
    b.wait(None).unwrap();
    b.wait(None).unwrap();
}

const PASSES: u32 = 1000;

fn thousand_f(barrier: Barrier, passed: Count) {
    for i in 0..PASSES {
        barrier.wait(None).unwrap();
        // Rounds never mix: nobody reaches round i + 1 before all have counted round i.
        passed
            .update(|n| {
                assert!((i * N..(i + 1) * N).contains(n), "round {i} saw count {n}");
                *n += 1;
            })
            .unwrap();
    }
}

/// CPython: test_thousand (N parties, none of them the test itself; a shared count replaces the
/// pipe, and checks the same order).
fn test_thousand(mode: Mode) {
    let (b, passed) = (barrier(), count());
    let mut parties = Parties::default();
    for _ in 0..N {
        parties.spawn(mode, thousand_f, (b.clone(), passed.clone()));
    }
    parties.join();
    assert_eq!(get(&passed), PASSES * N);
}

/// Reuse after abort and reset, many times over, with threads.
#[test]
fn barrier_reused_after_abort_and_reset() {
    let b = Barrier::new(3, Some(LONG)).unwrap();
    for _ in 0..50 {
        let others: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        b.wait(None).unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..10 {
            b.wait(None).unwrap();
        }
        for t in others {
            t.join().unwrap();
        }
        b.abort().unwrap();
        assert!(matches!(b.wait(None), Err(SyncError::BrokenBarrier)));
        b.reset().unwrap();
        assert!(!b.broken());
    }
}

const ROUNDS: u32 = 1000;

/// One side of a ping-pong: each notifies the other and then waits itself, the pattern whose
/// wake-up the notifier used to take back.
fn ping_pong(cond: Condition, turn: Value<u32>, me: u32) {
    let _g = cond.lock().unwrap();
    for _ in 0..ROUNDS {
        let mine = || turn.value().unwrap() % 2 == me;
        assert!(cond.wait_for(mine, Some(LONG)).unwrap(), "never woken");
        turn.update(|t| *t += 1).unwrap();
        cond.notify(1).unwrap();
    }
}

/// A thousand rounds of ping-pong between two parties over one condition.
fn condition_ping_pong_thousand_rounds(mode: Mode) {
    let (cond, turn) = (Condition::new().unwrap(), Value::new(0u32).unwrap());
    let mut parties = Parties::default();
    parties.spawn(mode, ping_pong, (cond.clone(), turn.clone(), 1));
    ping_pong(cond, turn.clone(), 0);
    parties.join();
    assert_eq!(turn.value().unwrap(), 2 * ROUNDS);
}

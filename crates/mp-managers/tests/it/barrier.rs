//! The managed barrier (issue #16 item 2) under every start method: CPython's `_TestBarrier`
//! as run for `TYPE = 'manager'`, with `N - 1` children and the test itself as the parties,
//! and a party killed while it waits, which breaks the barrier instead of hanging the others.
//!
//! Ordering comes from the barrier itself and from events, never from a sleep: where CPython
//! sleeps so that the others time out, the party that stays away here waits for an event that
//! only a broken barrier sets.

use crate::common;
use common::{manager, start};

use std::time::Duration;

use mp_ipc::Queue;
use mp_managers::{Barrier, Event, List, Manager, ManagerError, RemoteError};
use mp_spawn::testing::park_forever;
use mp_spawn::{Portable, StartMethod, Target};

mp_spawn::test_matrix!(
    barrier,
    barrier_10,
    barrier_wait_return,
    barrier_action,
    barrier_abort,
    barrier_reset,
    barrier_abort_and_reset,
    barrier_timeout,
    barrier_default_timeout,
    barrier_single_thread,
    a_party_killed_at_a_barrier_breaks_it,
);

/// A hang guard only: every wait bounded by it is expected to end long before.
const HANG: Duration = Duration::from_secs(60);

fn is_broken<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> bool {
    matches!(r, Err(ManagerError::Remote(RemoteError::BrokenBarrier)))
}

// ---- _TestBarrier ----

/// CPython `_TestBarrier.N`: the parties, of which `N - 1` are children and one is the test.
const N: u64 = 5;
/// CPython `_TestBarrier.defaultTimeout`: a hang guard here.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// CPython `_TestBarrier.setUp`.
fn new_barrier(manager: &Manager) -> Barrier {
    manager.barrier(N, Some(DEFAULT_TIMEOUT)).unwrap()
}

/// CPython `_TestBarrier.run_threads` (a `Bunch` of `N - 1` processes, and the test itself as
/// the last party): runs `f(args)` in all of them.
fn run_parties<F, A>(m: StartMethod, f: F, args: A)
where
    F: Target<(A,), Output = ()> + Copy,
    A: Portable + Send + Clone,
{
    let mut children: Vec<_> = (1..N).map(|_| start(m, f, (args.clone(),))).collect();
    f.call((args,));
    for p in &mut children {
        p.join().unwrap();
    }
}

type Passes = (Barrier, List<bool>, List<bool>, u64);

/// CPython `_TestBarrier.multipass`.
fn multipass((barrier, results0, results1, n): Passes) {
    let m = barrier.parties().unwrap();
    assert_eq!(m, N);
    for i in 0..n {
        results0.append(true).unwrap();
        assert_eq!(len(&results1), i * m);
        barrier.wait(None).unwrap();
        results1.append(true).unwrap();
        assert_eq!(len(&results0), (i + 1) * m);
        barrier.wait(None).unwrap();
    }
    assert_eq!(barrier.n_waiting().unwrap(), 0);
    assert!(!barrier.broken().unwrap());
}

/// CPython `_TestBarrier.test_barrier`.
fn barrier_passes(m: StartMethod, passes: u64) {
    let manager = manager(m);
    let barrier = new_barrier(&manager);
    let results = (manager.list().unwrap(), manager.list().unwrap());
    run_parties(
        m,
        multipass,
        (barrier.clone(), results.0, results.1, passes),
    );
    barrier.abort().unwrap();
}

/// CPython `_TestBarrier.test_barrier`: the parties pass in lockstep.
fn barrier(m: StartMethod) {
    barrier_passes(m, 1);
}

/// CPython `_TestBarrier.test_barrier_10`: ten rounds in a row.
fn barrier_10(m: StartMethod) {
    barrier_passes(m, 10);
}

/// CPython `_TestBarrier._test_wait_return_f`.
fn wait_return((barrier, results): (Barrier, Queue<u64>)) {
    results.put(barrier.wait(None).unwrap()).unwrap();
}

/// CPython `_TestBarrier.test_wait_return`: one party, and only one, gets index 0.
fn barrier_wait_return(m: StartMethod) {
    let manager = manager(m);
    let barrier = new_barrier(&manager);
    let results = Queue::new().unwrap();
    run_parties(m, wait_return, (barrier.clone(), results.clone()));
    let mut indices: Vec<u64> = (0..N).map(|_| results.get().unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..N).collect::<Vec<_>>());
    barrier.abort().unwrap();
}

/// CPython `_TestBarrier._test_action_f`, with the action run by the party that got index 0
/// (the managed barrier takes no `action`); the second wait stands for the action being done
/// before anyone goes on.
fn action((barrier, results): (Barrier, List<bool>)) {
    if barrier.wait(None).unwrap() == 0 {
        results.append(true).unwrap();
    }
    barrier.wait(None).unwrap();
    assert_eq!(len(&results), 1);
}

/// CPython `_TestBarrier.test_action`.
fn barrier_action(m: StartMethod) {
    let manager = manager(m);
    let barrier = new_barrier(&manager);
    let results = manager.list().unwrap();
    run_parties(m, action, (barrier.clone(), results.clone()));
    assert_eq!(len(&results), 1);
}

type Results2 = (Barrier, List<bool>, List<bool>);

/// CPython `_TestBarrier._test_abort_f`.
fn abort_f((barrier, results1, results2): Results2) {
    let outcome = barrier.wait(None).and_then(|i| {
        if i == N / 2 {
            // Python's `raise RuntimeError`, caught by `barrier.abort()`.
            barrier.abort()?;
            return Ok(false);
        }
        barrier.wait(None).map(|_| true)
    });
    match outcome {
        Ok(true) => results1.append(true).unwrap(),
        Ok(false) => {}
        Err(e) => {
            assert!(is_broken(Err::<(), _>(e)));
            results2.append(true).unwrap();
        }
    }
}

/// CPython `_TestBarrier.test_abort`: an abort breaks the barrier for the others.
fn barrier_abort(m: StartMethod) {
    let manager = manager(m);
    let barrier = new_barrier(&manager);
    let (results1, results2) = (manager.list().unwrap(), manager.list().unwrap());
    run_parties(
        m,
        abort_f,
        (barrier.clone(), results1.clone(), results2.clone()),
    );
    assert_eq!(len(&results1), 0);
    assert_eq!(len(&results2), N - 1);
    assert!(barrier.broken().unwrap());
    assert!(
        is_broken(barrier.wait(None)),
        "a broken barrier stays broken"
    );
}

type Results3 = (Barrier, List<bool>, List<bool>, List<bool>);

/// Waits (without a clock) until `n` parties wait at `barrier`.
fn wait_for_waiting(barrier: &Barrier, n: u64) {
    let deadline = mp_sys::deadline::after(HANG);
    while barrier.n_waiting().unwrap() < n {
        assert!(
            deadline.is_none_or(|d| d > std::time::Instant::now()),
            "hang guard"
        );
        std::thread::yield_now();
    }
}

/// CPython `_TestBarrier._test_reset_f`.
fn reset_f((barrier, results1, results2, results3): Results3) {
    let i = barrier.wait(None).unwrap();
    if i == N / 2 {
        wait_for_waiting(&barrier, N - 1);
        barrier.reset().unwrap();
    } else {
        match barrier.wait(None) {
            Ok(_) => results1.append(true).unwrap(),
            r => {
                assert!(is_broken(r));
                results2.append(true).unwrap();
            }
        }
    }
    // The barrier is new again: everyone passes it.
    barrier.wait(None).unwrap();
    results3.append(true).unwrap();
}

/// CPython `_TestBarrier.test_reset`: a reset frees its waiters (with an error) and the
/// barrier can be used again.
fn barrier_reset(m: StartMethod) {
    let manager = manager(m);
    let barrier = new_barrier(&manager);
    let results: Vec<List<bool>> = (0..3).map(|_| manager.list().unwrap()).collect();
    let args = (
        barrier.clone(),
        results[0].clone(),
        results[1].clone(),
        results[2].clone(),
    );
    run_parties(m, reset_f, args);
    assert_eq!(len(&results[0]), 0);
    assert_eq!(len(&results[1]), N - 1);
    assert_eq!(len(&results[2]), N);
    barrier.abort().unwrap();
}

type AbortReset = (Barrier, Barrier, List<bool>, List<bool>, List<bool>);

/// CPython `_TestBarrier._test_abort_and_reset_f`.
fn abort_and_reset_f((barrier, barrier2, results1, results2, results3): AbortReset) {
    abort_f((barrier.clone(), results1, results2));
    if barrier2.wait(None).unwrap() == N / 2 {
        barrier.reset().unwrap();
    }
    barrier2.wait(None).unwrap();
    barrier.wait(None).unwrap();
    results3.append(true).unwrap();
}

/// CPython `_TestBarrier.test_abort_and_reset`: a broken barrier can be reset.
fn barrier_abort_and_reset(m: StartMethod) {
    let manager = manager(m);
    let barrier = new_barrier(&manager);
    let barrier2 = new_barrier(&manager);
    let results: Vec<List<bool>> = (0..3).map(|_| manager.list().unwrap()).collect();
    let args = (
        barrier.clone(),
        barrier2.clone(),
        results[0].clone(),
        results[1].clone(),
        results[2].clone(),
    );
    run_parties(m, abort_and_reset_f, args);
    assert_eq!(len(&results[0]), 0);
    assert_eq!(len(&results[1]), N - 1);
    assert_eq!(len(&results[2]), N);
    barrier.abort().unwrap();
    barrier2.abort().unwrap();
}

type TimeoutArgs = (Barrier, List<bool>, Event, Option<Duration>);

/// CPython `_TestBarrier._test_timeout_f` and `_test_default_timeout_f`: the party with index
/// `N / 2` stays away (instead of CPython's `sleep(1.0)`, it waits until someone has seen the
/// barrier broken), so the others' `wait(timeout)` times out and breaks it.
fn timeout_f((barrier, results, broken, timeout): TimeoutArgs) {
    let i = barrier.wait(Some(DEFAULT_TIMEOUT)).unwrap();
    if i == N / 2 {
        assert!(broken.wait(Some(HANG)).unwrap(), "hang guard");
    }
    if is_broken(barrier.wait(timeout)) {
        broken.set().unwrap();
        results.append(true).unwrap();
    }
}

fn barrier_timeouts(m: StartMethod, default: Option<Duration>, wait: Option<Duration>) {
    let manager = manager(m);
    let barrier = manager.barrier(N, default).unwrap();
    let results = manager.list().unwrap();
    let broken = manager.event().unwrap();
    run_parties(
        m,
        timeout_f,
        (barrier.clone(), results.clone(), broken, wait),
    );
    assert_eq!(len(&results), barrier.parties().unwrap());
}

/// CPython `_TestBarrier.test_timeout`: `wait(timeout)` breaks the barrier.
fn barrier_timeout(m: StartMethod) {
    barrier_timeouts(m, Some(DEFAULT_TIMEOUT), Some(Duration::from_millis(500)));
}

/// CPython `_TestBarrier.test_default_timeout`: the barrier's own timeout does too.
fn barrier_default_timeout(m: StartMethod) {
    barrier_timeouts(m, Some(Duration::from_millis(500)), None);
}

/// CPython `_TestBarrier.test_single_thread`.
fn barrier_single_thread(m: StartMethod) {
    let manager = manager(m);
    let barrier = manager.barrier(1, None).unwrap();
    assert_eq!(barrier.wait(None).unwrap(), 0);
    assert_eq!(barrier.wait(None).unwrap(), 0);
    // No parties: Python's ValueError.
    assert!(matches!(
        manager.barrier(0, None),
        Err(mp_managers::ManagerError::Remote(
            mp_managers::RemoteError::Value
        ))
    ));
}

// ---- Beyond Python: faults ----

fn wait_at_barrier(barrier: Barrier) {
    // Never passes: the test kills it while it waits.
    let _ = barrier.wait(None);
    park_forever();
}

/// A party killed while it waits at a barrier breaks it: the others get `BrokenBarrier`
/// instead of waiting forever for a party that will never come.
fn a_party_killed_at_a_barrier_breaks_it(m: StartMethod) {
    let manager = manager(m);
    let barrier = manager.barrier(3, None).unwrap();
    let mut p = start(m, wait_at_barrier, (barrier.clone(),));
    std::thread::scope(|s| {
        let other = s.spawn(|| barrier.wait(None));
        wait_for_waiting(&barrier, 2);
        p.kill().unwrap();
        p.join().unwrap_err();
        assert!(
            is_broken(other.join().unwrap()),
            "the other waiter is freed"
        );
    });
    assert!(barrier.broken().unwrap());
    assert!(is_broken(barrier.wait(None)));
}

/// A result list's length, as the barrier counts parties.
fn len(list: &List<bool>) -> u64 {
    list.len().unwrap() as u64
}

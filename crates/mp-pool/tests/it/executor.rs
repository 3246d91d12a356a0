//! `ProcessPoolExecutor` and `as_completed` (issue #18 item 4): Python's `concurrent.futures`
//! names over a `Pool`, each test once per start method. CPython:
//! `test_concurrent_futures` (`test_map`, `test_submit`, `test_shutdown`,
//! `test_cancel_futures`, `test_as_completed`, `test_terminate_workers`, `test_kill_workers`).

use crate::common;

use std::time::Duration;

use common::{pool, square};
use mp_pool::{PoolError, ProcessPoolExecutor, as_completed, as_completed_timeout};
use mp_shm::Event;
use mp_spawn::StartMethod;

mp_spawn::test_matrix!(
    submit_map_and_as_completed,
    as_completed_yields_in_finishing_order,
    shutdown_with_cancel_futures_cancels_what_no_worker_took,
    terminate_and_kill_workers_fail_the_running_tasks,
    drop_waits_for_the_submitted_tasks,
);

/// Waits until `event` is set, then returns `x`.
fn wait_then(event: Event, x: u64) -> u64 {
    event.wait(None);
    x
}

fn executor(m: StartMethod, n: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::from_pool(pool(m, n))
}

fn submit_map_and_as_completed(m: StartMethod) {
    let executor = executor(m, 2);
    let futures: Vec<_> = (0..10u64)
        .map(|x| executor.submit(square, (x,)).unwrap())
        .collect();
    let mut values: Vec<u64> = as_completed(futures).map(|f| f.get().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(values, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
    // map is lazy and ordered, over an endless input too.
    let first: Vec<u64> = executor
        .map(square, 0u64..)
        .take(5)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, [0, 1, 4, 9, 16]);
    // With chunks and a bounded look-ahead (3.14's buffersize).
    let chunked: Vec<u64> = executor
        .pool()
        .chunksize(3)
        .buffersize(2)
        .imap(square, 0u64..7)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, [0, 1, 4, 9, 16, 25, 36]);
    executor.shutdown(true, false).unwrap();
    assert!(matches!(
        executor.submit(square, (1,)),
        Err(PoolError::NotRunning)
    ));
}

fn as_completed_yields_in_finishing_order(m: StartMethod) {
    let executor = executor(m, 2);
    // Both workers up: the least loaded takes each task, so the two run side by side (had the
    // fast one queued behind the slow one, it could not finish first).
    let up = executor
        .pool()
        .wait_ready_pids(Duration::from_secs(60), |up| up.len() == 2);
    assert!(up.is_some());
    let gate = Event::new().unwrap();
    let slow = executor.submit(wait_then, (gate.clone(), 1)).unwrap();
    let fast = executor.submit(square, (3,)).unwrap();
    let mut order = as_completed_timeout([slow, fast], Duration::from_secs(60));
    // The fast one first, although it was submitted second; the slow one only after the gate.
    assert_eq!(order.next().unwrap().unwrap().get().unwrap(), 9);
    gate.set();
    assert_eq!(order.next().unwrap().unwrap().get().unwrap(), 1);
    assert!(order.next().is_none());

    // A timeout: one `Timeout`, then the end.
    let blocked = Event::new().unwrap();
    let never = executor.submit(wait_then, (blocked.clone(), 0)).unwrap();
    let mut timed = as_completed_timeout([never], Duration::from_millis(1));
    assert!(matches!(timed.next(), Some(Err(PoolError::Timeout))));
    assert!(timed.next().is_none());
    blocked.set();
}

fn shutdown_with_cancel_futures_cancels_what_no_worker_took(m: StartMethod) {
    let executor = executor(m, 1);
    let gate = Event::new().unwrap();
    let running = executor.submit(wait_then, (gate.clone(), 7)).unwrap();
    // More than a worker's queue can hold (64 chunks): the rest wait in the pool.
    let queued: Vec<_> = (0..200u64)
        .map(|x| executor.submit(square, (x,)).unwrap())
        .collect();
    executor.shutdown(false, true).unwrap();
    gate.set();
    assert_eq!(running.get().unwrap(), 7);
    let outcomes: Vec<_> = queued.iter().map(|f| f.get()).collect();
    let cancelled = outcomes
        .iter()
        .filter(|r| matches!(r, Err(PoolError::Cancelled)))
        .count();
    assert!(cancelled >= 200 - 64, "only {cancelled} cancelled");
    for (x, r) in (0u64..).zip(&outcomes) {
        assert!(matches!(r, Ok(v) if *v == x * x) || matches!(r, Err(PoolError::Cancelled)));
    }
    assert!(matches!(outcomes.last(), Some(Err(PoolError::Cancelled))));
    executor.shutdown(true, false).unwrap();
}

fn terminate_and_kill_workers_fail_the_running_tasks(m: StartMethod) {
    for kill in [false, true] {
        let executor = executor(m, 2);
        let gate = Event::new().unwrap();
        let stuck = executor.submit(wait_then, (gate.clone(), 1)).unwrap();
        // Workers up, so that there is someone to signal.
        let up = executor
            .pool()
            .wait_ready_pids(Duration::from_secs(60), |up| up.len() == 2);
        assert!(up.is_some());
        if kill {
            executor.kill_workers().unwrap();
        } else {
            executor.terminate_workers().unwrap();
        }
        assert!(matches!(stuck.get(), Err(PoolError::Terminated)));
        assert!(matches!(
            executor.submit(square, (1,)),
            Err(PoolError::NotRunning)
        ));
    }
}

fn drop_waits_for_the_submitted_tasks(m: StartMethod) {
    let executor = executor(m, 2);
    let futures: Vec<_> = (0..20u64)
        .map(|x| executor.submit(square, (x,)).unwrap())
        .collect();
    drop(executor);
    for (x, f) in (0u64..).zip(futures) {
        assert!(f.ready());
        assert_eq!(f.get().unwrap(), x * x);
    }
}

//! `AsyncResult` as a `Future` and `IMap` as a `Stream` (feature `async`), under tokio
//! (current-thread and multi-thread), futures' executor and async-io's `block_on`, with pools
//! of each start method.

use crate::common;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};

use common::{pool, square};
use futures::StreamExt;
use mp_ipc::Queue;
use mp_pool::{Pool, PoolError};
use mp_spawn::StartMethod;

mp_spawn::test_matrix!(
    awaited_apply_async,
    awaited_map_async,
    imap_as_a_stream,
    dead_worker_resolves_to_worker_died,
    dropped_future_leaves_the_result_gettable,
    dropped_stream_leaves_the_pool_usable,
    terminated_pool_resolves_pending_futures,
    ready_fd_turns_readable,
);

/// Runs the future `make(pool)` gives under each executor in turn: tokio current-thread,
/// tokio multi-thread (on a worker, spawned), futures' and async-io's.
fn on_each_executor<F, Fut>(pool: &Arc<Pool>, make: F)
where
    F: Fn(Arc<Pool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(make(pool.clone()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(rt.spawn(make(pool.clone()))).unwrap();
    futures::executor::block_on(make(pool.clone()));
    async_io::block_on(make(pool.clone()));
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn awaited_apply_async(m: StartMethod) {
    let pool = Arc::new(pool(m, 2));
    on_each_executor(&pool, |pool| async move {
        let r = pool.apply_async(add, (2, 3)).unwrap();
        assert_eq!(r.await.unwrap(), 5);
        // Many at once, awaited out of order.
        let rs: Vec<_> = (0..20u64)
            .map(|i| pool.apply_async(square, (i,)).unwrap())
            .collect();
        let mut values = Vec::new();
        for r in rs.into_iter().rev() {
            values.push(r.await.unwrap());
        }
        values.reverse();
        assert_eq!(values, (0..20u64).map(|i| i * i).collect::<Vec<_>>());
    });
}

fn awaited_map_async(m: StartMethod) {
    let pool = Arc::new(pool(m, 2));
    on_each_executor(&pool, |pool| async move {
        let r = pool.chunksize(3).map_async(square, 0..100u64).unwrap();
        let v = r.await.unwrap();
        assert_eq!(v.len(), 100);
        assert_eq!(v[9], 81);
    });
}

fn imap_as_a_stream(m: StartMethod) {
    let pool = Arc::new(pool(m, 2));
    on_each_executor(&pool, |pool| async move {
        let v: Vec<u64> = pool
            .imap(square, 0..50u64)
            .into_stream()
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(v, (0..50u64).map(|i| i * i).collect::<Vec<_>>());
        let mut v: Vec<u64> = pool
            .chunksize(4)
            .imap_unordered(square, 0..50u64)
            .into_stream()
            .map(|r| r.unwrap())
            .collect()
            .await;
        v.sort_unstable();
        assert_eq!(v, (0..50u64).map(|i| i * i).collect::<Vec<_>>());
    });
}

fn die_on(x: u64, victim: u64) -> u64 {
    if x == victim {
        // SAFETY: killing this worker process is the behaviour under test.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

fn dead_worker_resolves_to_worker_died(m: StartMethod) {
    let pool = Arc::new(pool(m, 2));
    on_each_executor(&pool, |pool| async move {
        let r = pool.apply_async(die_on, (1, 1)).unwrap();
        assert!(matches!(
            r.await,
            Err(PoolError::WorkerDied { exitcode: -9, .. })
        ));
        // In a stream: the dead worker's item fails, the others arrive.
        let results: Vec<_> = pool
            .chunksize(1)
            .imap(|(x, v)| die_on(x, v), (0..6u64).map(|x| (x, 3)))
            .into_stream()
            .collect()
            .await;
        assert_eq!(results.len(), 6);
        for (i, r) in results.iter().enumerate() {
            if i == 3 {
                assert!(
                    matches!(r, Err(PoolError::WorkerDied { index: 3, .. })),
                    "{r:?}"
                );
            } else {
                assert_eq!(*r.as_ref().unwrap(), i as u64);
            }
        }
        assert_eq!(pool.apply_async(add, (1, 1)).unwrap().await.unwrap(), 2);
    });
}

fn square_on_go((go, x): (Queue<()>, u64)) -> u64 {
    go.get().unwrap();
    x * x
}

/// A future dropped while the task runs: the task still finishes, and a new future (or a
/// blocking `get`) on the same result gets its value. Which is which: `&AsyncResult` is not
/// awaited, the `AsyncResult` is, so the test polls a pinned reference to keep the result.
fn dropped_future_leaves_the_result_gettable(m: StartMethod) {
    let pool = pool(m, 2);
    let go = Queue::<()>::new().unwrap();
    let mut r = pool.apply_async(square_on_go, ((go.clone(), 6),)).unwrap();
    {
        let mut cx = Context::from_waker(Waker::noop());
        // The task waits for `go`: the result cannot be ready.
        assert!(std::pin::Pin::new(&mut r).poll(&mut cx).is_pending());
    }
    go.put(()).unwrap();
    assert_eq!(r.get().unwrap(), 36);
    assert_eq!(futures::executor::block_on(r).unwrap(), 36);
}

/// A stream dropped mid-way cancels what has not started; the pool goes on.
fn dropped_stream_leaves_the_pool_usable(m: StartMethod) {
    let pool = pool(m, 2);
    futures::executor::block_on(async {
        // The `IMap` itself is a stream too.
        let mut s = pool.chunksize(1).imap(square, 0..1000u64);
        assert_eq!(StreamExt::next(&mut s).await.unwrap().unwrap(), 0);
        assert_eq!(StreamExt::next(&mut s).await.unwrap().unwrap(), 1);
    });
    assert_eq!(pool.map(square, 0..10u64).unwrap()[3], 9);
}

/// Terminating the pool resolves the futures still pending (`Terminated`), and wakes them.
fn terminated_pool_resolves_pending_futures(m: StartMethod) {
    let pool = pool(m, 1);
    let go = Queue::<()>::new().unwrap();
    let r = pool.apply_async(square_on_go, ((go.clone(), 2),)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let task = rt.spawn(r);
    let terminator = std::thread::spawn(move || {
        pool.terminate();
    });
    let out = rt.block_on(task).unwrap();
    terminator.join().unwrap();
    assert!(matches!(out, Err(PoolError::Terminated)), "{out:?}");
}

/// `ready_fd` turns readable when the result settles (asked for before, or after).
fn ready_fd_turns_readable(m: StartMethod) {
    use std::os::fd::AsFd;
    let pool = pool(m, 1);
    let go = Queue::<()>::new().unwrap();
    let r = pool.apply_async(square_on_go, ((go.clone(), 5),)).unwrap();
    let fd = r.ready_fd().unwrap();
    let zero = std::time::Duration::ZERO;
    assert_eq!(
        mp_sys::poll::readable(&[fd.as_fd()], Some(zero)).unwrap(),
        [false]
    );
    go.put(()).unwrap();
    assert_eq!(mp_sys::poll::readable(&[fd.as_fd()], None).unwrap(), [true]);
    assert!(r.ready());
    assert_eq!(r.get().unwrap(), 25);
    // Asked for once the result is there: readable at once.
    let done = pool.apply_async(square, (2,)).unwrap();
    done.wait(None);
    let fd = done.ready_fd().unwrap();
    assert_eq!(
        mp_sys::poll::readable(&[fd.as_fd()], Some(zero)).unwrap(),
        [true]
    );
}

//! `Queue::get_async`/`put_async` and `Connection::recv_async`/`send_async` (feature `async`)
//! under tokio (current-thread and multi-thread), futures' executor and async-io's `block_on`,
//! with children under all three start methods.

use crate::common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use common::ctx;
use mp_ipc::{Connection, GetError, JoinableQueue, Queue, RecvError, pipe};
use mp_spawn::StartMethod;

mp_spawn::test_matrix!(
    get_async_from_a_child,
    put_async_waits_for_room_made_by_a_child,
    many_tasks_await_one_queue,
    joinable_put_async_counts,
    recv_async_and_send_async_with_a_child,
    large_messages_both_ways,
    recv_async_sees_end_of_file,
    forked_child_while_a_get_is_pending,
    doorbell_rings_for_a_child_put,
    blocking_and_async_receivers_share_a_queue,
    blocking_and_async_receivers_share_a_connection,
);

/// Runs the future `make()` gives under each executor in turn: tokio current-thread, tokio
/// multi-thread (on a worker, spawned), futures' and async-io's.
fn on_each_executor<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(make());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(rt.spawn(make())).unwrap();
    futures::executor::block_on(make());
    async_io::block_on(make());
}

/// Waits for `go`, then puts `0..n`.
fn put_range_on_go(q: Queue<u64>, go: Queue<()>, n: u64) {
    go.get().unwrap();
    for i in 0..n {
        q.put(i).unwrap();
    }
}

fn get_async_from_a_child(m: StartMethod) {
    on_each_executor(|| {
        let q = Queue::<u64>::new().unwrap();
        let go = Queue::<()>::new().unwrap();
        let mut p = ctx(m).process(put_range_on_go, (q.clone(), go.clone(), 100));
        async move {
            p.start().unwrap();
            // The first get waits (nothing was put before `go`).
            let mut first = pin!(q.get_async());
            assert!(
                first
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
            go.put(()).unwrap();
            assert_eq!(first.await.unwrap(), 0);
            for i in 1..100 {
                assert_eq!(q.get_async().await.unwrap(), i);
            }
            p.join_async().await.unwrap();
        }
    });
}

/// Takes `n` items and returns their sum.
fn take_and_sum(q: Queue<u64>, n: u64) -> u64 {
    (0..n).map(|_| q.get().unwrap()).sum()
}

fn put_async_waits_for_room_made_by_a_child(m: StartMethod) {
    on_each_executor(|| {
        let q = Queue::<u64>::with_maxsize(2).unwrap();
        let mut p = ctx(m).process(take_and_sum, (q.clone(), 200));
        async move {
            q.put(0).unwrap();
            q.put(1).unwrap();
            // Full, and nobody takes yet: the put waits.
            {
                let mut put = pin!(q.put_async(99));
                assert!(
                    put.as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()))
                        .is_pending()
                );
            }
            // The dropped put put nothing.
            assert_eq!(q.qsize(), 2);
            p.start().unwrap();
            for i in 2..200 {
                q.put_async(i).await.unwrap();
            }
            assert_eq!(p.join_async().await.unwrap(), (0..200).sum::<u64>());
            assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
        }
    });
}

/// Several tasks of one process await the same queue at once (each registers its own
/// duplicate of the doorbell); every item reaches exactly one of them.
fn many_tasks_await_one_queue(m: StartMethod) {
    let q = Queue::<u64>::new().unwrap();
    let go = Queue::<()>::new().unwrap();
    let mut p = ctx(m).process(put_range_on_go, (q.clone(), go.clone(), 8));
    p.start().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let q = q.clone();
            rt.spawn(async move { q.get_async().await.unwrap() })
        })
        .collect();
    go.put(()).unwrap();
    let mut got: Vec<u64> = tasks.into_iter().map(|t| rt.block_on(t).unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    p.join().unwrap();
}

fn take_and_mark_done(q: JoinableQueue<u64>, n: u64) {
    for _ in 0..n {
        q.get().unwrap();
        q.task_done().unwrap();
    }
}

fn joinable_put_async_counts(m: StartMethod) {
    on_each_executor(|| {
        let q = JoinableQueue::<u64>::with_maxsize(1).unwrap();
        let mut p = ctx(m).process(take_and_mark_done, (q.clone(), 5));
        async move {
            p.start().unwrap();
            for i in 0..5 {
                q.put_async(i).await.unwrap();
            }
            // Counted: `join` returns only once the child marked all five done.
            q.join();
            p.join_async().await.unwrap();
            assert!(q.task_done().is_err());
        }
    });
}

/// Echoes every string back, upper-cased, until "stop".
fn echo_upper(c: Connection) {
    loop {
        let s: String = c.recv().unwrap();
        if s == "stop" {
            return;
        }
        c.send(&s.to_uppercase()).unwrap();
    }
}

fn recv_async_and_send_async_with_a_child(m: StartMethod) {
    on_each_executor(|| {
        let (a, b) = pipe(true).unwrap();
        let mut p = ctx(m).process(echo_upper, (b,));
        async move {
            p.start().unwrap();
            // Waiting before anything was sent: a dropped receive takes nothing.
            {
                let mut r = pin!(a.recv_async::<String>());
                assert!(
                    r.as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()))
                        .is_pending()
                );
            }
            for word in ["one", "two", "three"] {
                a.send_async(word).await.unwrap();
                assert_eq!(a.recv_async::<String>().await.unwrap(), word.to_uppercase());
            }
            a.send_async("raw").await.unwrap();
            assert_eq!(a.recv_bytes_async(None).await.unwrap(), {
                let mut v = Vec::new();
                mp_spawn::reduction::dumps_into(&"RAW".to_string(), &mut v).unwrap();
                v
            });
            a.send_async("stop").await.unwrap();
            p.join_async().await.unwrap();
        }
    });
}

/// Sends back what it receives, once.
fn echo_once(c: Connection) {
    let v: Vec<u8> = c.recv().unwrap();
    c.send(&v).unwrap();
}

/// Messages larger than the socket's buffer, both ways.
fn large_messages_both_ways(m: StartMethod) {
    on_each_executor(|| {
        let (a, b) = pipe(true).unwrap();
        let mut p = ctx(m).process(echo_once, (b,));
        async move {
            p.start().unwrap();
            let data: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
            a.send_async(&data).await.unwrap();
            let back: Vec<u8> = a.recv_async().await.unwrap();
            assert!(back == data);
            p.join_async().await.unwrap();
        }
    });
}

fn drop_it(c: Connection) {
    drop(c);
}

fn recv_async_sees_end_of_file(m: StartMethod) {
    // `b` is moved into the child (the parent's copy goes at `start`); a forked child's copy
    // of `a` closes when it exits.
    on_each_executor(|| {
        let (a, b) = pipe(true).unwrap();
        let mut p = ctx(m).process(drop_it, (b,));
        async move {
            p.start().unwrap();
            p.join_async().await.unwrap();
            assert!(matches!(a.recv_async::<u64>().await, Err(RecvError::Eof)));
        }
    });
}

fn put_one(q: Queue<u64>) {
    q.put(7).unwrap();
}

/// The reactor's thread sleeps in `epoll_wait` (holding its locks) while a get is pending;
/// children forked meanwhile, which never await, run and end normally.
fn forked_child_while_a_get_is_pending(m: StartMethod) {
    let waited = Queue::<u64>::new().unwrap();
    let w = waited.clone();
    let waiter = std::thread::spawn(move || futures::executor::block_on(w.get_async()));
    let q = Queue::<u64>::new().unwrap();
    for _ in 0..5 {
        let mut p = ctx(StartMethod::Fork).process(put_one, (q.clone(),));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(q.get().unwrap(), 7);
    }
    let mut p = ctx(m).process(put_one, (waited.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 7);
}

/// A queue's doorbell, polled by hand (as a user's own reactor would): a child's put rings it.
fn doorbell_rings_for_a_child_put(m: StartMethod) {
    use std::os::fd::AsFd;
    let q = Queue::<u64>::new().unwrap();
    let go = Queue::<()>::new().unwrap();
    let bell = q.doorbell();
    let zero = std::time::Duration::ZERO;
    assert!(!bell.ready());
    assert_eq!(
        mp_sys::poll::readable(&[bell.as_fd()], Some(zero)).unwrap(),
        [false]
    );
    let mut p = ctx(m).process(put_range_on_go, (q.clone(), go.clone(), 1));
    p.start().unwrap();
    go.put(()).unwrap();
    assert_eq!(
        mp_sys::poll::readable(&[bell.as_fd()], None).unwrap(),
        [true]
    );
    assert!(bell.ready());
    assert_eq!(q.get_nowait().unwrap(), 0);
    // Taken: a stale ring is reset by `ready`, which then says no.
    assert!(!bell.ready());
    assert_eq!(
        mp_sys::poll::readable(&[bell.as_fd()], Some(zero)).unwrap(),
        [false]
    );
    p.join().unwrap();
}

/// A blocking `get` on another thread (parked on the futex) and an awaiting one (on the
/// doorbell) wait on one queue; a child's two puts reach one each.
fn blocking_and_async_receivers_share_a_queue(m: StartMethod) {
    let q = Queue::<u64>::new().unwrap();
    let go = Queue::<()>::new().unwrap();
    let blocking = {
        let q = q.clone();
        std::thread::spawn(move || q.get().unwrap())
    };
    let mut p = ctx(m).process(put_range_on_go, (q.clone(), go.clone(), 2));
    p.start().unwrap();
    let awaited = futures::executor::block_on(async {
        let mut get = pin!(q.get_async());
        assert!(
            get.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        go.put(()).unwrap();
        get.await.unwrap()
    });
    let mut got = [awaited, blocking.join().unwrap()];
    got.sort_unstable();
    assert_eq!(got, [0, 1]);
    p.join().unwrap();
}

/// Waits for the parent's word, sends `0..n` on `c`, then waits for another word to end (so
/// that its end stays open).
fn send_range_on_go(c: Connection, n: u64) {
    let _: () = c.recv().unwrap();
    for i in 0..n {
        c.send(&i).unwrap();
    }
    let _: () = c.recv().unwrap();
}

/// A blocking `recv` on another thread holds the receive lock while it waits. An awaiting
/// `recv_async` on the same connection must not block its (single) executor thread behind
/// that lock: the task that sends the child its go runs on the same thread. Each receiver
/// gets one of the two messages.
fn blocking_and_async_receivers_share_a_connection(m: StartMethod) {
    let (a, b) = pipe(true).unwrap();
    let a = std::sync::Arc::new(a);
    let blocking = {
        let a = a.clone();
        std::thread::spawn(move || a.recv::<u64>().unwrap())
    };
    let mut p = ctx(m).process(send_range_on_go, (b, 2));
    p.start().unwrap();
    let (awaited, sent) = futures::executor::block_on(futures::future::join(
        a.recv_async::<u64>(),
        a.send_async(&()),
    ));
    sent.unwrap();
    let mut got = [awaited.unwrap(), blocking.join().unwrap()];
    got.sort_unstable();
    assert_eq!(got, [0, 1]);
    a.send(&()).unwrap();
    p.join().unwrap();
}

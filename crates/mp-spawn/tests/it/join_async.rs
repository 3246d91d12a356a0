//! `Process::join_async` (feature `async`) under tokio (current-thread and multi-thread), futures'
//! executor and async-io's `block_on`, for each start method.

use crate::common;

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use common::{park_forever, pipe};
use mp_spawn::reduction::Fd;
use mp_spawn::{ProcessError, StartMethod, get_context};

mp_spawn::test_matrix!(
    join_async_returns_value,
    join_async_reports_a_kill,
    join_async_drains_a_large_result,
    dropped_join_future_loses_nothing,
    forked_child_while_a_join_is_pending,
);

fn ctx(method: StartMethod) -> mp_spawn::Context {
    get_context(method.name()).unwrap()
}

/// Runs the future `make()` gives to completion under each executor in turn: tokio
/// current-thread, tokio multi-thread (on a worker, spawned), futures' and async-io's.
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

fn square(n: u64) -> u64 {
    n * n
}

fn join_async_returns_value(m: StartMethod) {
    on_each_executor(|| {
        let mut p = ctx(m).process(square, (7,));
        async move {
            p.start().unwrap();
            assert_eq!(p.join_async().await.unwrap(), 49);
            assert_eq!(p.exitcode().unwrap(), Some(0));
            // As `join`: the value went to the first join; a second one says so at once.
            assert!(matches!(
                p.join_async().await,
                Err(ProcessError::AlreadyJoined)
            ));
            // A target that returns `()` joins any number of times, as Python's.
            let mut q = ctx(m).process(nothing, ());
            q.start().unwrap();
            q.join_async().await.unwrap();
            q.join_async().await.unwrap();
            q.join().unwrap();
        }
    });
}

fn nothing() {}

fn join_async_reports_a_kill(m: StartMethod) {
    on_each_executor(|| {
        let mut p = ctx(m).process(park_forever, ());
        async move {
            p.start().unwrap();
            p.kill().unwrap();
            assert!(matches!(
                p.join_async().await,
                Err(ProcessError::Killed { signal: 9 })
            ));
            assert_eq!(p.exitcode().unwrap(), Some(-9));
            // Joined again, blocking or not: the same ending, at once.
            assert!(matches!(
                p.join_async().await,
                Err(ProcessError::Killed { signal: 9 })
            ));
            assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 9 })));
        }
    });
}

fn bigger(n: usize) -> Vec<u8> {
    vec![7; n]
}

/// A result larger than the socket's buffer: the child blocks writing it until the parent
/// reads, so the future must wake on the result channel too, not only on the exit.
fn join_async_drains_a_large_result(m: StartMethod) {
    on_each_executor(|| {
        let mut p = ctx(m).process(bigger, (4 << 20,));
        async move {
            p.start().unwrap();
            let out = p.join_async().await.unwrap();
            assert_eq!(out.len(), 4 << 20);
            assert!(out.iter().all(|&b| b == 7));
        }
    });
}

/// Returns once a byte arrives on `fd`.
fn wait_for_byte(fd: Fd) -> u64 {
    let mut f = std::fs::File::from(fd.into_inner());
    let mut b = [0u8; 1];
    f.read_exact(&mut b).unwrap();
    u64::from(b[0])
}

/// A join future dropped while the child runs leaves the process joinable, by `join` or by a
/// new `join_async`.
fn dropped_join_future_loses_nothing(m: StartMethod) {
    for blocking in [true, false] {
        let (reader, mut writer) = pipe();
        let mut p = ctx(m).process(wait_for_byte, (Fd::from(OwnedFd::from(reader)),));
        p.start().unwrap();
        {
            let mut fut = std::pin::pin!(p.join_async());
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            // The child waits for our byte: the join cannot be ready.
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        writer.write_all(&[5]).unwrap();
        let value = if blocking {
            p.join().unwrap()
        } else {
            futures::executor::block_on(p.join_async()).unwrap()
        };
        assert_eq!(value, 5);
    }
}

/// The reactor's thread sleeps in `epoll_wait` (holding its locks) while a join is pending; a
/// child forked meanwhile, which never awaits, must run and end normally.
fn forked_child_while_a_join_is_pending(m: StartMethod) {
    let mut parked = ctx(m).process(park_forever, ());
    parked.start().unwrap();
    let pid = parked.pid().unwrap();
    let waiter = std::thread::spawn(move || futures::executor::block_on(parked.join_async()));
    for _ in 0..5 {
        let mut p = ctx(StartMethod::Fork).process(square, (3,));
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 9);
    }
    // The Process moved into the waiter thread: kill the child through a pidfd of our own.
    let pidfd = mp_sys::pidfd::open(pid).unwrap();
    mp_sys::pidfd::send_signal(std::os::fd::AsFd::as_fd(&pidfd), libc::SIGKILL).unwrap();
    assert!(matches!(
        waiter.join().unwrap(),
        Err(ProcessError::Killed { signal: 9 })
    ));
}

#[test]
fn join_async_before_start_is_an_error() {
    let mut p = ctx(StartMethod::Spawn).process(square, (1,));
    assert!(matches!(
        futures::executor::block_on(p.join_async()),
        Err(ProcessError::NotStarted)
    ));
}

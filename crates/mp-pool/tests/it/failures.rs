//! Failures around the pool (issue #13): workers killed while idle, callbacks that must run
//! before a result is ready, and an `imap` input that panics. Each test once per start method.

use crate::common;
#[path = "failures/control.rs"]
mod control;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{pool, square};
use mp_ipc::Queue;
use mp_pool::PoolError;
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

/// A hang guard only: every wait below ends on an event long before it.
const GUARD: Duration = Duration::from_secs(60);

// --- Workers killed while idle ---------------------------------------------------------------

/// Kills idle workers (each one once it is up) many more times than the crash-loop guard's
/// limit of `2 × processes + 2` deaths in a row: the pool keeps replacing them and working.
fn idle_workers_killed_many_times(m: StartMethod) {
    let processes = 2;
    let pool = pool(m, processes);
    let kills = 4 * (2 * processes + 2);
    let mut killed = Vec::new();
    for _ in 0..kills {
        // Every worker is up (started and ready for tasks), none is one we killed.
        let up = pool
            .wait_ready_pids(GUARD, |up| {
                up.len() == processes && up.iter().all(|p| !killed.contains(p))
            })
            .expect("the workers come up");
        let victim = up[killed.len() % processes];
        // SAFETY: SIGKILL to one of this pool's own idle workers.
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
        killed.push(victim);
    }
    assert_eq!(pool.map(square, 0..100).unwrap()[9], 81);
    assert_eq!(pool.apply(square, (7,)).unwrap(), 49);
}

// --- Callbacks run before the result is ready --------------------------------------------------

/// Returns `x` once the test says go: the callback is attached by then, so it runs on the
/// pool's thread, when the result arrives.
fn square_on_go((go, x): (Queue<()>, u64)) -> u64 {
    go.get().unwrap();
    x * x
}

fn fail_on_go(go: Queue<()>) -> u64 {
    go.get().unwrap();
    panic!("failed on purpose");
}

/// Marks `flag`, after a delay that makes a waiter that does not wait for the callback see
/// it unmarked (correctness does not depend on the delay).
/// Hangs at `x == 500` (until killed); returns `x` otherwise.
fn hang_at_500(x: u64) -> u64 {
    if x == 500 {
        loop {
            std::thread::park();
        }
    }
    x
}

/// Issue #26's first test: a task that hangs for ever under a timeout, beside 1,000 quick
/// ones: exactly that one fails, with `TaskTimeout`; the rest succeed; the pool goes on with a
/// new worker. (A long timeout: a quick task never comes near it, however loaded the host.)
fn one_hanging_task_among_a_thousand_times_out(m: StartMethod) {
    let pool = pool(m, 2);
    let before = pool.pids();
    let timeout = Duration::from_secs(2);
    let out: Vec<Result<u64, PoolError>> = pool
        .chunksize(1)
        .timeout(timeout)
        .imap(hang_at_500, 0..1000u64)
        .collect();
    assert_eq!(out.len(), 1000);
    for (i, r) in out.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, i as u64),
            Err(PoolError::TaskTimeout { index, timeout: t }) => {
                assert_eq!((*index, *t), (500, timeout))
            }
            Err(e) => panic!("item {i}: {e:?}"),
        }
    }
    assert_eq!(out.iter().filter(|r| r.is_err()).count(), 1);
    // The killed worker was replaced: two workers, one of them new; the pool works.
    let after = pool.pids();
    assert_eq!(after.len(), 2);
    assert_ne!(before, after);
    assert_eq!(pool.map(square, 0..10u64).unwrap()[3], 9);
    // joblib's Parallel takes the same timeout.
    let e = mp_pool::Parallel::new(2)
        .context(ctx(m))
        .batch_size(1)
        .timeout(timeout)
        .run(hang_at_500, [(1,), (500,)])
        .unwrap_err();
    assert!(
        matches!(e, PoolError::TaskTimeout { index: 1, .. }),
        "{e:?}"
    );
}

fn mark_slowly(flag: &AtomicBool) {
    std::thread::sleep(Duration::from_millis(20));
    flag.store(true, Ordering::SeqCst);
}

fn callbacks_finish_before_ready(m: StartMethod) {
    let pool = pool(m, 2);
    let go = Queue::<()>::new().unwrap();
    for round in 0..10u64 {
        // `callback`, then `wait`.
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let r = pool
            .apply_async(square_on_go, ((go.clone(), round),))
            .unwrap()
            .callback(move |v| {
                assert_eq!(*v, round * round);
                mark_slowly(&flag);
            });
        go.put(()).unwrap();
        assert!(r.wait(Some(GUARD)));
        assert!(
            done.load(Ordering::SeqCst),
            "wait returned before the callback ran"
        );
        assert!(r.ready());

        // `callback`, then `get`.
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let r = pool
            .map_async(square_on_go, [(go.clone(), round)])
            .unwrap()
            .callback(move |_| mark_slowly(&flag));
        go.put(()).unwrap();
        assert_eq!(r.get().unwrap(), [round * round]);
        assert!(
            done.load(Ordering::SeqCst),
            "get returned before the callback ran"
        );

        // `error_callback`, then `get` and `ready`.
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let r = pool
            .apply_async(fail_on_go, (go.clone(),))
            .unwrap()
            .error_callback(move |e| {
                assert!(matches!(e, PoolError::Panicked { .. }), "{e:?}");
                mark_slowly(&flag);
            });
        go.put(()).unwrap();
        assert!(matches!(r.get(), Err(PoolError::Panicked { .. })));
        assert!(
            done.load(Ordering::SeqCst),
            "get returned before the error callback ran"
        );
    }
}

/// A callback that panics is reported by the panic hook and goes no further: the result is
/// ready, and the pool (whose thread ran the callback) goes on working.
fn panicking_callback_leaves_the_pool_working(m: StartMethod) {
    let pool = pool(m, 2);
    let go = Queue::<()>::new().unwrap();
    let r = pool
        .apply_async(square_on_go, ((go.clone(), 3),))
        .unwrap()
        .callback(|_| panic!("a callback that panics"));
    go.put(()).unwrap();
    assert!(r.wait(Some(GUARD)));
    assert_eq!(r.get().unwrap(), 9);
    let after = pool.map_async(square, 0..10).unwrap();
    assert_eq!(after.get_timeout(GUARD).unwrap()[3], 9);
}

fn parse(s: String) -> u64 {
    s.parse().expect("not a number")
}

/// A recorded callback call: the values, or the failure.
type Call = Result<Vec<u64>, String>;

/// CPython's `test_map_async_callbacks`: right after `wait`, exactly one of the callbacks
/// has run.
fn map_async_callbacks(m: StartMethod) {
    let pool = pool(m, 2);
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let (ok, err) = (Arc::clone(&calls), Arc::clone(&calls));
    pool.map_async(parse, ["1".to_string()])
        .unwrap()
        .callback(move |v| ok.lock().unwrap().push(Ok(v.clone())))
        .error_callback(move |e| err.lock().unwrap().push(Err(e.to_string())))
        .wait(None);
    assert_eq!(*calls.lock().unwrap(), [Ok(vec![1])]);

    let (ok, err) = (Arc::clone(&calls), Arc::clone(&calls));
    pool.map_async(parse, ["a".to_string()])
        .unwrap()
        .callback(move |v| ok.lock().unwrap().push(Ok(v.clone())))
        .error_callback(move |e| err.lock().unwrap().push(Err(e.to_string())))
        .wait(None);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].as_ref().is_err_and(|e| e.contains("not a number")),
        "{calls:?}"
    );
}

// --- imap over an input that panics ----------------------------------------------------------

/// CPython's `exception_throwing_generator(total, when)`: `0..total`, panicking when it
/// reaches `when` (Python's `when = -1`, at once, is `when = 0` here).
fn panicking_input(total: u64, when: u64) -> impl Iterator<Item = u64> {
    (0..total).inspect(move |&i| {
        if i == when {
            panic!("Somebody said when");
        }
    })
}

fn assert_input_panic(e: PoolError, at: usize) {
    match e {
        PoolError::InputPanicked { index, message } => {
            assert_eq!(index, at);
            assert!(message.contains("Somebody said when"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// CPython's `test_imap_handle_iterable_exception`: the values of the items before the
/// panic, in order, then the failure, then the end. (Python also drops the items of the
/// chunk it was reading when the input raised; here they run.)
fn imap_handle_iterable_exception(m: StartMethod) {
    let pool = pool(m, 2);
    for chunksize in [1, 2, 4] {
        // At the very first item, twice (the pool is reusable after it).
        for _ in 0..2 {
            let mut it = pool
                .chunksize(chunksize)
                .imap(square, panicking_input(1, 0));
            assert_input_panic(it.next().unwrap().unwrap_err(), 0);
            assert!(it.next().is_none());
        }
        for (total, when) in [(10, 3), (20, 7)] {
            let mut it = pool
                .chunksize(chunksize)
                .imap(square, panicking_input(total, when));
            for i in 0..when {
                assert_eq!(it.next().unwrap().unwrap(), i * i, "chunksize {chunksize}");
            }
            assert_input_panic(it.next().unwrap().unwrap_err(), when as usize);
            assert!(it.next().is_none());
        }
    }
    assert_eq!(pool.map(square, 0..10).unwrap()[3], 9);
}

/// CPython's `test_imap_unordered_handle_iterable_exception`: the failure comes, in some
/// place among the values, which are each right.
fn imap_unordered_handle_iterable_exception(m: StartMethod) {
    let pool = pool(m, 2);
    for chunksize in [1, 2] {
        let mut it = pool
            .chunksize(chunksize)
            .imap_unordered(square, panicking_input(1, 0));
        assert_input_panic(it.next().unwrap().unwrap_err(), 0);
        assert!(it.next().is_none());

        for (total, when) in [(10, 3), (20, 7)] {
            let mut values = Vec::new();
            let mut failures = 0;
            for item in pool
                .chunksize(chunksize)
                .imap_unordered(square, panicking_input(total, when))
            {
                match item {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        assert_input_panic(e, when as usize);
                        failures += 1;
                    }
                }
            }
            assert_eq!(failures, 1);
            values.sort_unstable();
            assert_eq!(values, (0..when).map(square).collect::<Vec<_>>());
        }
    }
}

mp_spawn::test_matrix!(
    idle_workers_killed_many_times,
    callbacks_finish_before_ready,
    map_async_callbacks,
    panicking_callback_leaves_the_pool_working,
    imap_handle_iterable_exception,
    imap_unordered_handle_iterable_exception,
    one_hanging_task_among_a_thousand_times_out,
);

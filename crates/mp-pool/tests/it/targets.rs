//! What a pool task may be (issue #15): fn items and non-capturing closures, and fn pointers
//! (found by their offset in every worker), through every entry point and start method. A
//! closure that captures state is refused: at build time (the compile-fail doctests on each
//! entry point), or, if it captures one pointer-sized value, with `InvalidArgument`.

#[allow(dead_code)] // `square` is for the other suites
use crate::common;

use common::pool;
use mp_ipc::Queue;
use mp_pool::{Parallel, Pool, PoolError};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

mp_spawn::test_matrix!(
    fn_pointers_through_every_entry_point,
    a_fn_pointer_initializer_runs_in_every_worker,
    a_pointer_sized_capture_is_refused,
);

fn double(x: u64) -> u64 {
    2 * x
}

fn triple(x: u64) -> u64 {
    3 * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// A choice made at run time, so the compiler cannot turn the pointer back into an item.
fn chosen(first: bool) -> fn(u64) -> u64 {
    if std::hint::black_box(first) {
        double
    } else {
        triple
    }
}

fn fn_pointers_through_every_entry_point(m: StartMethod) {
    let pool = pool(m, 2);
    let f = chosen(false);
    assert_eq!(pool.map(f, 0..5).unwrap(), [0, 3, 6, 9, 12]);
    assert_eq!(pool.map(chosen(true), [7]).unwrap(), [14]);
    let add: fn(u64, u64) -> u64 = std::hint::black_box(add);
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    assert_eq!(pool.apply_async(add, (20, 22)).unwrap().get().unwrap(), 42);
    let lazy: Vec<u64> = pool.imap(f, 0..4).collect::<Result<_, _>>().unwrap();
    assert_eq!(lazy, [0, 3, 6, 9]);
    let mut unordered: Vec<u64> = pool
        .imap_unordered(f, 0..4)
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort();
    assert_eq!(unordered, [0, 3, 6, 9]);
    let parallel = Parallel::new(2).context(ctx(m));
    assert_eq!(parallel.run(f, [(1,), (2,)]).unwrap(), [3, 6]);
}

fn record(q: Queue<u32>) {
    q.put(std::process::id()).unwrap();
}

fn a_fn_pointer_initializer_runs_in_every_worker(m: StartMethod) {
    let q = Queue::<u32>::new().unwrap();
    let init: fn(Queue<u32>) = std::hint::black_box(record);
    let pool = Pool::builder()
        .processes(2)
        .initializer(init, (q.clone(),))
        .context(ctx(m))
        .build()
        .unwrap();
    assert_eq!(pool.map(double, 0..4).unwrap(), [0, 2, 4, 6]);
    pool.close();
    pool.join().unwrap();
    let mut seen = Vec::new();
    while let Ok(pid) = q.get_nowait() {
        seen.push(pid);
    }
    assert!(!seen.is_empty());
}

fn a_pointer_sized_capture_is_refused(m: StartMethod) {
    let pool = pool(m, 1);
    let base = std::hint::black_box(40u64);
    let f = move |x: u64| base + x;
    assert!(matches!(
        pool.map(f, [2]),
        Err(PoolError::InvalidArgument(_))
    ));
    assert!(matches!(
        pool.apply_async(f, (2,)),
        Err(PoolError::InvalidArgument(_))
    ));
    let mut lazy = pool.imap(f, 0..);
    let first = lazy.next();
    assert!(
        matches!(first, Some(Err(PoolError::InvalidArgument(_)))),
        "{first:?}"
    );
    // Once: the endless input is not read on, chunk after failing chunk.
    assert!(lazy.next().is_none());
    // The pool is unharmed.
    assert_eq!(pool.map(double, [21]).unwrap(), [42]);
}

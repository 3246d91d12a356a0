//! Progress on pool calls (issue #18 item 2): counted per item as the workers finish them,
//! not per chunk (tqdm#973), on `map`, `map_async`, `starmap`, `imap`, `imap_unordered` and
//! `Parallel`; a worker's death still fails its chunk with `WorkerDied`. Each test once per
//! start method.

use crate::common;

use common::{pool, square};
use mp_pool::{Parallel, PoolError};
use mp_shm::Event;
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

mp_spawn::test_matrix!(
    a_chunk_is_counted_item_by_item,
    every_call_shows_progress_and_gets_its_values,
    a_dead_worker_still_fails_its_chunk,
);

/// Item 5 waits for `gate`; the others return at once.
fn stop_at_five((gate, x): (Event, u64)) -> u64 {
    if x == 5 {
        gate.wait(None);
    }
    x
}

fn a_chunk_is_counted_item_by_item(m: StartMethod) {
    let pool = pool(m, 2);
    let gate = Event::new().unwrap();
    // One chunk of ten items: a count per chunk would stay at 0 until all ten are done.
    let result = pool
        .chunksize(10)
        .progress(true)
        .map_async(stop_at_five, (0..10).map(|x| (gate.clone(), x)))
        .unwrap();
    // The worker stores its count as it goes: wait for it to reach the blocked item.
    while result.progress(&pool) != Some(5) {
        assert!(!result.ready());
        std::thread::yield_now();
    }
    gate.set();
    assert_eq!(result.get().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(result.progress(&pool), Some(10));
    // A call that does not show progress counts nothing.
    let plain = pool.map_async(square, 0..10u64).unwrap();
    plain.wait(None);
    assert_eq!(plain.progress(&pool), None);
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn every_call_shows_progress_and_gets_its_values(m: StartMethod) {
    let pool = pool(m, 2);
    let expected: Vec<u64> = (0..500u64).map(|x| x * x).collect();
    assert_eq!(
        pool.progress(true).map(square, 0..500u64).unwrap(),
        expected
    );
    assert_eq!(
        pool.chunksize(7)
            .progress(true)
            .starmap(add, (0..100u64).map(|x| (x, 1)))
            .unwrap(),
        (1..=100).collect::<Vec<u64>>()
    );
    let lazy: Vec<u64> = pool
        .chunksize(3)
        .progress(true)
        .imap(square, 0..500u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(lazy, expected);
    let mut unordered: Vec<u64> = pool
        .progress(true)
        .imap_unordered(square, 0..500u64)
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, expected);
    // An endless input: no total, the count alone.
    let first: Vec<u64> = pool
        .progress(true)
        .imap(square, 0u64..)
        .take(10)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, expected[..10]);
    // More watched calls than the board has rows: the extra ones run without a bar.
    let many: Vec<_> = (0..100u64)
        .map(|x| pool.progress(true).map_async(square, [x]).unwrap())
        .collect();
    for (x, r) in (0u64..).zip(many) {
        assert_eq!(r.get().unwrap(), [x * x]);
    }
    let values = Parallel::new(2)
        .context(ctx(m))
        .progress(true)
        .run(add, (0..50u64).map(|x| (x, x)))
        .unwrap();
    assert_eq!(values, (0..50u64).map(|x| 2 * x).collect::<Vec<_>>());
}

fn die_on_three(x: u64) -> u64 {
    if x == 3 {
        // SAFETY: raising a signal in this worker process is the behaviour under test.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

fn a_dead_worker_still_fails_its_chunk(m: StartMethod) {
    let pool = pool(m, 2);
    let result = pool.chunksize(2).progress(true).map(die_on_three, 0..8u64);
    assert!(matches!(
        result,
        Err(PoolError::WorkerDied {
            index: 2,
            len: 2,
            ..
        })
    ));
    // The pool goes on, and so do its bars.
    assert_eq!(
        pool.progress(true).map(square, 0..4u64).unwrap(),
        [0, 1, 4, 9]
    );
}

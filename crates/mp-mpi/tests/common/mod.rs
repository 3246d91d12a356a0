//! Task functions and the generic test body run against both `Pool` and `MpiPool`.
#![allow(dead_code)]

use std::fmt::Debug;

use mp_mpi::{Pending, PoolApi};

pub(crate) fn square(x: u64) -> u64 {
    x * x
}

pub(crate) fn add(a: u64, b: u64) -> u64 {
    a + b
}

pub(crate) fn mul(a: u64, b: u64) -> u64 {
    a * b
}

/// Panics at 7.
pub(crate) fn boom(x: u64) -> u64 {
    if x == 7 {
        panic!("boom at {x}");
    }
    x
}

/// The same body against any pool: switching between `Pool` and `MpiPool` is the line that
/// makes `pool`.
pub(crate) fn generic_body<P: PoolApi>(pool: &P)
where
    P::Error: Debug,
{
    // CPython's _TestPool.test_apply: papply(sqr, (5,)) == sqr(5).
    assert_eq!(
        pool.apply_async(square, (5u64,)).unwrap().get().unwrap(),
        25
    );
    // test_map: pmap(sqr, list(range(10))) == list(map(sqr, range(10))), and over range(100).
    for n in [10u64, 100] {
        let squares = pool.map(square, 0..n).unwrap();
        assert_eq!(squares, (0..n).map(square).collect::<Vec<_>>());
    }
    // test_map, second half: pmap(sqr, list(range(100)), chunksize=20).
    let squares = pool.map_chunksize(20, square, 0..100u64).unwrap();
    assert_eq!(squares, (0..100u64).map(square).collect::<Vec<_>>());
    // test_starmap: starmap(mul, zip(range(10), range(9, -1, -1))) == itertools.starmap(...).
    let tuples: Vec<(u64, u64)> = (0..10).zip((0..10).rev()).collect();
    let expected: Vec<u64> = tuples.iter().map(|&(a, b)| mul(a, b)).collect();
    assert_eq!(pool.starmap(mul, tuples).unwrap(), expected);
    assert_eq!(pool.starmap(add, [(1u64, 2u64), (3, 4)]).unwrap(), [3, 7]);
    // test_imap: list(imap(sqr, range(10))) == list(map(sqr, range(10))).
    let all: Vec<u64> = pool
        .imap(square, 0..10u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all, (0..10u64).map(square).collect::<Vec<_>>());
    // test_imap, second half: imap(sqr, list(range(1000)), chunksize=100).
    let all: Vec<u64> = pool
        .imap_chunksize(100, square, 0..1000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all, (0..1000u64).map(square).collect::<Vec<_>>());
    // test_imap_unordered, second half: chunksize=53.
    let mut unordered: Vec<u64> = pool
        .imap_unordered_chunksize(53, square, 0..1000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..1000u64).map(square).collect::<Vec<_>>());
    // test_imap_unordered: sorted(imap_unordered(sqr, range(1000))) == list(map(sqr, ...)).
    let mut thousand: Vec<u64> = pool
        .imap_unordered(square, 0..1000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    thousand.sort_unstable();
    assert_eq!(thousand, (0..1000u64).map(square).collect::<Vec<_>>());
    let first: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(5)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, [0, 1, 4, 9, 16]);
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0..20u64)
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..20u64).map(square).collect::<Vec<_>>());
    let pending = pool.apply_async(add, (2u64, 3u64)).unwrap();
    assert_eq!(pending.get().unwrap(), 5);
    let failure = pool.map(boom, 0..10u64).unwrap_err();
    assert!(format!("{failure}").contains("boom at 7"), "{failure}");
    // A failed chunk (of one item by default) gives one `Err`, then the output goes on.
    let out: Vec<Result<u64, P::Error>> = pool.imap(boom, 0..10u64).collect();
    assert_eq!(out.len(), 10);
    for (i, item) in out.iter().enumerate() {
        match item {
            Ok(v) => assert_eq!(*v, i as u64),
            Err(e) => {
                assert_eq!(i, 7);
                assert!(format!("{e}").contains("boom at 7"), "{e}");
            }
        }
    }
    assert!(out[7].is_err());
}

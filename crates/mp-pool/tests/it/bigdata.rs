//! Big data through a pool (issue #17): shared arrays as task arguments (a descriptor per
//! task, mapped once per worker), chunks of one output array filled by tasks in parallel, a
//! worker killed mid-chunk, an array as a task's result, and an idle pool letting go of the
//! arrays. Each test once per start method.

use crate::common;

use common::{pool, square};
use mp_pool::PoolError;
use mp_shm::{Chunk, SharedArray, SharedArrayMut};
use mp_spawn::StartMethod;

mp_spawn::test_matrix!(
    tasks_read_a_shared_array_mapped_once_per_worker,
    tasks_fill_the_chunks_of_one_array_in_parallel,
    a_worker_killed_mid_chunk_leaves_the_others_intact,
    a_task_returns_an_array_without_copying_it,
    an_idle_pool_lets_go_of_the_arrays,
);

/// How many mappings of shared arrays process `pid` has.
fn array_mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("memfd:mp-array"))
        .count()
}

/// One task: the sum of elements `i * 100 .. (i + 1) * 100`, and the worker's mappings.
fn hundred_sum((array, i): (SharedArray<u64>, usize)) -> (u64, usize) {
    let sum = array[i * 100..(i + 1) * 100].iter().sum();
    (sum, array_mappings(std::process::id()))
}

fn tasks_read_a_shared_array_mapped_once_per_worker(m: StartMethod) {
    let pool = pool(m, 2);
    let array = SharedArray::from_vec((0..10_000u64).collect()).unwrap();
    let out = pool
        .chunksize(1)
        .map(hundred_sum, (0..100).map(|i| (array.clone(), i)))
        .unwrap();
    for (i, (sum, mappings)) in (0u64..).zip(out) {
        assert_eq!(sum, (i * 100..(i + 1) * 100).sum::<u64>());
        // A hundred tasks took the array: a worker has one mapping of it at a time, never one
        // per task (a page of header and the data may show as two lines).
        assert!((1..=2).contains(&mappings), "{mappings} mappings");
    }
}

/// One task: `x * x` into every element of its chunk, `x` being the chunk's index.
fn fill(mut chunk: Chunk<u64>) {
    let x = chunk.index() as u64;
    chunk.iter_mut().for_each(|v| *v = x * x);
}

fn tasks_fill_the_chunks_of_one_array_in_parallel(m: StartMethod) {
    let pool = pool(m, 2);
    let chunks = SharedArrayMut::<u64>::zeroed(1000)
        .unwrap()
        .split(64)
        .unwrap();
    pool.chunksize(1).map(fill, chunks.parts()).unwrap();
    let array = chunks.freeze().unwrap();
    for (i, v) in array.iter().enumerate() {
        let x = (i / 64) as u64;
        assert_eq!(*v, x * x, "element {i}");
    }
}

/// As `fill`, but chunk 3's task dies half-way through.
fn fill_or_die(mut chunk: Chunk<u64>) {
    let x = chunk.index() as u64;
    for (k, v) in chunk.iter_mut().enumerate() {
        if x == 3 && k == 10 {
            // SAFETY: raising a signal in this worker process is the behaviour under test.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        *v = x + 1;
    }
}

fn a_worker_killed_mid_chunk_leaves_the_others_intact(m: StartMethod) {
    let pool = pool(m, 2);
    let chunks = SharedArrayMut::<u64>::zeroed(640)
        .unwrap()
        .split(64)
        .unwrap();
    let results: Vec<_> = chunks
        .parts()
        .into_iter()
        .map(|c| pool.apply_async(fill_or_die, (c,)).unwrap())
        .collect();
    for (x, r) in results.iter().enumerate() {
        match r.get() {
            Ok(()) => assert_ne!(x, 3),
            Err(PoolError::WorkerDied { .. }) => assert_eq!(x, 3),
            Err(e) => panic!("chunk {x}: {e}"),
        }
    }
    // The dead worker's claim is gone with it: the owner gets its array back.
    let array = chunks.join().unwrap();
    for (i, v) in array.iter().enumerate() {
        let x = (i / 64) as u64;
        if x == 3 {
            // What it wrote before it died, then zeros.
            let k = i % 64;
            assert_eq!(*v, if k < 10 { 4 } else { 0 }, "element {i}");
        } else {
            assert_eq!(*v, x + 1, "element {i}");
        }
    }
}

/// A task that makes a big result: an array, which travels back as a descriptor.
fn make_array(n: u64) -> SharedArray<u64> {
    SharedArray::from_vec((0..n).map(|i| i * n).collect()).unwrap()
}

fn a_task_returns_an_array_without_copying_it(m: StartMethod) {
    let pool = pool(m, 2);
    // Beside plain values, in the same pool.
    assert_eq!(pool.map(square, [3u64]).unwrap(), [9]);
    let arrays = pool.map(make_array, [1000u64, 2000]).unwrap();
    assert_eq!(arrays[0].len(), 1000);
    assert_eq!(arrays[1][1999], 1999 * 2000);
    assert!(arrays[0].is_write_sealed().unwrap());
}

fn touch((array, i): (SharedArray<u8>, usize)) -> u8 {
    array[i]
}

fn an_idle_pool_lets_go_of_the_arrays(m: StartMethod) {
    let pool = pool(m, 2);
    let array = SharedArray::from_vec(vec![7u8; 1 << 20]).unwrap();
    assert_eq!(
        pool.chunksize(1)
            .map(touch, (0..20).map(|i| (array.clone(), i)))
            .unwrap(),
        [7; 20]
    );
    drop(array);
    // Idle, each worker keeps the array it received last a moment (for a next call on it),
    // then unmaps it: the memory goes once nobody maps it. Wait for that, not for a clock.
    let pids = pool.pids();
    while pids.iter().map(|&pid| array_mappings(pid)).sum::<usize>() > 0 {
        std::thread::yield_now();
    }
}

//! Post 001's sum-of-squares job for big data (issue #17): a 1 GiB `f64` array shared with a
//! `Pool(2)` instead of copied to it. Each of 64 tasks gets the array (a descriptor: the workers
//! map it once, read-only) and sums the squares of its chunk; then a second map writes the
//! squares into a shared output array, each task into its own chunk, in parallel, with no lock.
//! Prints both totals and the times beside the serial loop; the totals are the same number
//! three times (the values are `i % 1000`, so every sum is an exact integer in an `f64`).

use std::time::Instant;

use mp::Pool;
use mp::shm::{Chunk, SharedArray, SharedArrayMut};

/// 1 GiB of `f64`.
const LEN: usize = 1 << 27;
const CHUNKS: usize = 64;

fn chunk_range(len: usize, index: usize) -> std::ops::Range<usize> {
    let size = len.div_ceil(CHUNKS);
    (index * size).min(len)..((index + 1) * size).min(len)
}

/// One task of the first map: the sum of the squares of chunk `index`.
fn sum_of_squares((input, index): (SharedArray<f64>, usize)) -> f64 {
    input[chunk_range(input.len(), index)]
        .iter()
        .map(|x| x * x)
        .sum()
}

/// One task of the second map: the squares of the input, written into this task's chunk of
/// the output (its own `&mut [f64]`: no other task can hold it).
fn write_squares((input, mut out): (SharedArray<f64>, Chunk<f64>)) {
    let range = out.range();
    for (o, x) in out.iter_mut().zip(&input[range]) {
        *o = x * x;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input = SharedArray::from_vec((0..LEN).map(|i| (i % 1000) as f64).collect())?;
    println!(
        "input: {} f64 ({} MiB), shared",
        input.len(),
        (LEN * 8) >> 20
    );
    let pool = Pool::new(2)?;

    let start = Instant::now();
    let total: f64 = pool
        .chunksize(1)
        .map(sum_of_squares, (0..CHUNKS).map(|i| (input.clone(), i)))?
        .iter()
        .sum();
    println!(
        "Pool(2), {CHUNKS} tasks: sum of squares = {total}  ({:.3}s)",
        start.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let serial: f64 = input.iter().map(|x| x * x).sum();
    println!(
        "one process, a loop:   sum of squares = {serial}  ({:.3}s)",
        start.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let chunks = SharedArrayMut::<f64>::zeroed(LEN)?.split(LEN.div_ceil(CHUNKS))?;
    pool.chunksize(1).map(
        write_squares,
        chunks.parts().into_iter().map(|c| (input.clone(), c)),
    )?;
    let squares = chunks.freeze()?;
    let written: f64 = squares.iter().sum();
    println!(
        "Pool(2) wrote the squares into a shared array: their sum = {written}  ({:.3}s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

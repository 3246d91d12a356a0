//! Big data through a pool (issue #17): a `Pool(2)` map that sums a shared 1 GiB `f64` array in
//! 64 chunks, beside the same sum in one process; and 1,000 tasks that each read a bit of a
//! shared 64 MiB argument, beside 20 tasks that get the argument serialised.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use mp::Pool;
use mp::shm::SharedArray;

mod common;
use common::{ctx, tune};

const GIB: usize = 1 << 30;
const CHUNKS: usize = 64;

fn pool() -> Pool {
    Pool::builder()
        .processes(2)
        .context(ctx())
        .build()
        .expect("pool")
}

/// One task: the sum of the `index`th of `CHUNKS` chunks.
fn chunk_sum((array, index): (SharedArray<f64>, usize)) -> f64 {
    let len = array.len().div_ceil(CHUNKS);
    array.chunks(len).nth(index).map_or(0.0, sum)
}

/// Eight accumulators: the sum runs at memory speed rather than one add's latency.
fn sum(xs: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f64>() + chunks.remainder().iter().sum::<f64>()
}

fn shared_1gib(c: &mut Criterion) {
    let pool = pool();
    let array = SharedArray::from_vec(vec![1.0f64; GIB / 8]).expect("array");
    let mut g = c.benchmark_group("pool_shared_1gib");
    tune(&mut g, 10, 8);
    g.bench_function("pool_2_sum_64_chunks", |b| {
        b.iter(|| {
            let sums = pool
                .chunksize(1)
                .map(chunk_sum, (0..CHUNKS).map(|i| (array.clone(), i)))
                .expect("map");
            assert_eq!(sums.iter().sum::<f64>(), (GIB / 8) as f64);
        })
    });
    g.bench_function("serial_sum", |b| b.iter(|| sum(black_box(&array))));
    g.finish();
}

fn read_shared((array, i): (SharedArray<u8>, usize)) -> u8 {
    array[i % array.len()]
}

fn read_serialised((bytes, i): (serde_bytes::ByteBuf, usize)) -> u8 {
    bytes[i % bytes.len()]
}

fn big_arg(c: &mut Criterion) {
    let pool = pool();
    let data = vec![1u8; 64 << 20];
    let array = SharedArray::from_slice(&data).expect("array");
    let bytes = serde_bytes::ByteBuf::from(data);
    let mut g = c.benchmark_group("pool_big_arg");
    tune(&mut g, 10, 8);
    g.bench_function("shared_64mib_1000_tasks", |b| {
        b.iter(|| {
            let out = pool
                .chunksize(1)
                .map(read_shared, (0..1000).map(|i| (array.clone(), i)))
                .expect("map");
            assert_eq!(out.len(), 1000);
        })
    });
    g.bench_function("serialised_64mib_20_tasks", |b| {
        b.iter(|| {
            let out = pool
                .chunksize(1)
                .map(read_serialised, (0..20).map(|i| (bytes.clone(), i)))
                .expect("map");
            assert_eq!(out.len(), 20);
        })
    });
    g.finish();
}

criterion_group!(benches, shared_1gib, big_arg);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Pool: `map` of a trivial function over 200k items at the default chunksize and over 20k
//! items at chunksize 1, the `apply_async(...).get()` round trip, and the tutorial's CPU job
//! (4 × the sum of i*i for i < 10^7) on 2 workers beside the same work serially; and
//! procspawn's pool on the same tasks, in the same run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use mp::Pool;

/// Forkserver workers, as the other benches use (under fork a worker would inherit every
/// descriptor of the bench process).
fn ctx() -> mp::Context {
    mp::get_context("forkserver").expect("forkserver context")
}

fn identity(x: u64) -> u64 {
    x
}

fn sum_squares(count: u64) -> u128 {
    // black_box: without it LLVM replaces the loop by the closed form.
    (0..count as u128).map(|i| black_box(i) * i).sum()
}

const CPU_JOB: u64 = 10_000_000;

fn pool() -> Pool {
    Pool::builder()
        .processes(2)
        .context(ctx())
        .build()
        .expect("pool")
}

fn map(c: &mut Criterion) {
    let pool = pool();
    let mut g = c.benchmark_group("pool_map");
    g.sample_size(30);
    g.bench_function("200k_default_chunksize", |b| {
        b.iter(|| {
            let out = pool.map(identity, 0..200_000u64).expect("map");
            assert_eq!(out.len(), 200_000);
        })
    });
    g.bench_function("20k_chunksize_1", |b| {
        b.iter(|| {
            let out = pool.chunksize(1).map(identity, 0..20_000u64).expect("map");
            assert_eq!(out.len(), 20_000);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("pool_apply");
    g.bench_function("apply_async_get", |b| {
        b.iter(|| {
            pool.apply_async(identity, (7,))
                .expect("apply")
                .get()
                .expect("get")
        })
    });
    g.finish();
}

fn cpu(c: &mut Criterion) {
    let pool = pool();
    let mut g = c.benchmark_group("pool_cpu");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("serial_4_jobs", |b| {
        b.iter(|| (0..4).map(|_| sum_squares(CPU_JOB)).sum::<u128>())
    });
    g.bench_function("pool_2_workers_4_jobs", |b| {
        b.iter(|| {
            let out = pool
                .chunksize(1)
                .map(sum_squares, [CPU_JOB; 4])
                .expect("map");
            out.into_iter().sum::<u128>()
        })
    });
    g.finish();
}

fn procspawn_pool(c: &mut Criterion) {
    let pool = procspawn::Pool::new(2).expect("procspawn pool");
    let mut g = c.benchmark_group("procspawn_pool");
    g.sample_size(10);
    g.bench_function("2k_tasks", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..2_000u64).map(|x| pool.spawn(x, identity)).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .sum::<u64>()
        })
    });
    g.bench_function("apply_rtt", |b| {
        b.iter(|| pool.spawn(7u64, identity).join().expect("join"))
    });
    g.finish();
    pool.shutdown();
}

criterion_group!(benches, map, cpu, procspawn_pool);

fn main() {
    // procspawn re-executes this binary for its workers and catches them here.
    procspawn::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

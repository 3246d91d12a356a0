//! Pool: `map` of a trivial function over 200k items at the default chunksize (also with
//! cross-process logging on, and with a progress bar) and over 20k items at chunksize 1, the
//! 20k at chunksize 1 with a task timeout, retries and a memory cap on, a task timeout's kill
//! and replacement, the `apply_async(...).get()` round trip (and the same awaited under tokio), the tutorial's CPU job
//! (4 × the sum of i*i for i < 10^7) on 2 workers beside the same work serially and on 2
//! threads (the machine's limit), and `Parallel` over 20k calls; and procspawn's pool on the
//! same tasks, in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use mp::{Parallel, Pool};

mod common;
use common::{ctx, tune};

fn identity(x: u64) -> u64 {
    x
}

/// The workers get `count` at run time; so does every in-process baseline (through
/// `black_box`), or LLVM compiles the loop for the constant and the baselines measure other code.
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
    tune(&mut g, 30, 5);
    g.bench_function("200k_default_chunksize", |b| {
        b.iter(|| {
            let out = pool.map(identity, 0..200_000u64).expect("map");
            assert_eq!(out.len(), 200_000);
        })
    });
    // The same map with its progress bar (not drawn: stderr is not a terminal here, as in
    // most benchmark and CI runs; the workers count per item all the same).
    g.bench_function("200k_progress", |b| {
        b.iter(|| {
            let out = pool
                .progress(true)
                .map(identity, 0..200_000u64)
                .expect("map");
            assert_eq!(out.len(), 200_000);
        })
    });
    g.bench_function("20k_chunksize_1", |b| {
        b.iter(|| {
            let out = pool.chunksize(1).map(identity, 0..20_000u64).expect("map");
            assert_eq!(out.len(), 20_000);
        })
    });
    // The same map with a task timeout, retries and a memory cap all on (issue #26): what
    // the per-task control costs a map that never needs it.
    let limited = Pool::builder()
        .processes(2)
        .context(ctx())
        .task_timeout(Duration::from_secs(600))
        .retries(2)
        .max_memory_per_worker(4 << 30)
        .build()
        .expect("pool");
    g.bench_function("20k_chunksize_1_limits", |b| {
        b.iter(|| {
            let out = limited
                .chunksize(1)
                .map(identity, 0..20_000u64)
                .expect("map");
            assert_eq!(out.len(), 20_000);
        })
    });
    drop(limited);
    // Cross-process logging on (a subscriber at INFO here, every worker forwarding), nothing
    // logged: what forwarding costs a map that does not log.
    mp::log_to_stderr(tracing::Level::INFO);
    let logging = self::pool();
    g.bench_function("200k_logging_on", |b| {
        b.iter(|| {
            let out = logging.map(identity, 0..200_000u64).expect("map");
            assert_eq!(out.len(), 200_000);
        })
    });
    g.finish();
    drop(logging);

    let mut g = c.benchmark_group("pool_apply");
    tune(&mut g, 100, 5);
    g.bench_function("apply_async_get", |b| {
        b.iter(|| {
            pool.apply_async(identity, (7,))
                .expect("apply")
                .get()
                .expect("get")
        })
    });
    // The same round trip awaited (issue #18): the pool's thread wakes the task, which runs
    // on a tokio current-thread runtime, as a program on tokio would await it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    g.bench_function("apply_async_await", |b| {
        b.iter(|| {
            rt.block_on(async {
                pool.apply_async(identity, (7,))
                    .expect("apply")
                    .await
                    .expect("await")
            })
        })
    });
    g.finish();
}

fn cpu(c: &mut Criterion) {
    let pool = pool();
    let mut g = c.benchmark_group("pool_cpu");
    tune(&mut g, 10, 8);
    g.bench_function("serial_4_jobs", |b| {
        b.iter(|| {
            (0..4)
                .map(|_| sum_squares(black_box(CPU_JOB)))
                .sum::<u128>()
        })
    });
    g.bench_function("threads_2_4_jobs", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                let halves = [s.spawn(two_jobs), s.spawn(two_jobs)];
                halves.map(|h| h.join().expect("join")).iter().sum::<u128>()
            })
        })
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

fn two_jobs() -> u128 {
    sum_squares(black_box(CPU_JOB)) + sum_squares(black_box(CPU_JOB))
}

fn identity_chunk(items: Vec<u64>) -> Vec<u64> {
    items.into_iter().map(identity).collect()
}

fn parallel(c: &mut Criterion) {
    let mut g = c.benchmark_group("parallel");
    tune(&mut g, 10, 5);
    // joblib's Parallel(n_jobs=2)(delayed(identity)(i) for i in range(20_000)); like a first
    // joblib call, each run starts its workers.
    g.bench_function("20k_calls_2_jobs", |b| {
        b.iter(|| {
            let out = Parallel::new(2)
                .context(ctx())
                .run(identity, (0..20_000u64).map(|i| (i,)))
                .expect("run");
            assert_eq!(out.len(), 20_000);
        })
    });
    g.finish();
}

fn procspawn_pool(c: &mut Criterion) {
    let pool = procspawn::Pool::new(2).expect("procspawn pool");
    let mut g = c.benchmark_group("procspawn_pool");
    tune(&mut g, 10, 5);
    // What a procspawn user writes for a 200k-item map: the same 8 chunks as mp's default.
    g.bench_function("200k_in_8_chunks", |b| {
        b.iter(|| {
            let items: Vec<u64> = (0..200_000).collect();
            let handles: Vec<_> = items
                .chunks(25_000)
                .map(|c| pool.spawn(c.to_vec(), identity_chunk))
                .collect();
            let out: Vec<u64> = handles
                .into_iter()
                .flat_map(|h| h.join().expect("join"))
                .collect();
            assert_eq!(out.len(), 200_000);
        })
    });
    g.bench_function("cpu_4_jobs", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..4).map(|_| pool.spawn(CPU_JOB, sum_squares)).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .sum::<u128>()
        })
    });
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

/// Parks until its worker is killed.
fn forever() -> u64 {
    loop {
        std::thread::park();
    }
}

/// The task timeout that kills (issue #26): from a task's deadline to its `TaskTimeout`
/// returned and a replacement worker running the next task. One worker, so that the next task
/// can only run on the replacement; the figure is the whole cycle minus the timeout (the
/// task starts within microseconds of its submission to an idle worker). pebble's
/// `ProcessPool(1).schedule(timeout=)` is measured the same way in pool.py.
fn timeout_kill(c: &mut Criterion) {
    const TIMEOUT: Duration = Duration::from_millis(20);
    let pool = Pool::builder()
        .processes(1)
        .context(ctx())
        .build()
        .expect("pool");
    let mut g = c.benchmark_group("pool_timeout");
    tune(&mut g, 20, 5);
    g.bench_function("kill_and_replace", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let e = pool.timeout(TIMEOUT).apply(forever, ()).unwrap_err();
                assert!(matches!(e, mp::PoolError::TaskTimeout { .. }), "{e:?}");
                assert_eq!(pool.apply(identity, (7,)).expect("apply"), 7);
                total += start.elapsed().saturating_sub(TIMEOUT);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, map, timeout_kill, cpu, parallel, procspawn_pool);

fn main() {
    // procspawn re-executes this binary for its workers and catches them here.
    procspawn::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

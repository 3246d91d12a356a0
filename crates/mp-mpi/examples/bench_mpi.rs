//! The MPI rows of `cargo xtask bench` (which runs this as below when `mpirun` is present):
//!
//! cargo build --release -p mp-mpi --features mpi --example bench_mpi && mpirun --oversubscribe -n 3 target/release/examples/bench_mpi [--quick]
//!
//! 1 master + 2 worker ranks (one local process each), the work of the local pool's rows:
//! a map of a trivial function over 200k items (default chunksize), and 4 x sum of i*i
//! (i < 10^7) serially on the master and over the ranks; then the same on a local `Pool(2)`
//! on the master (the rows' peer column, measured in the same conditions). Prints `<key> <median> <spread_%>`
//! lines, as `benches/python/stats.py` does.

use std::hint::black_box;
use std::time::Instant;

fn identity(x: u64) -> u64 {
    x
}

fn sum_squares(count: u64) -> u128 {
    (0..count as u128).map(|i| black_box(i) * i).sum()
}

/// Seconds per call of `f`, one sample per round, after a warm-up call.
fn times(rounds: usize, mut f: impl FnMut()) -> Vec<f64> {
    f();
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// Median and interquartile spread (% of the median), as stats.py's `emit`.
fn emit(key: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q * (samples.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        samples[lo] + (samples[hi] - samples[lo]) * (pos - lo as f64)
    };
    let median = at(0.5);
    let spread = if median != 0.0 {
        (at(0.75) - at(0.25)).abs() / median * 100.0
    } else {
        0.0
    };
    println!("{key} {median:.6} {spread:.1}");
}

fn main() -> Result<(), mp_mpi::MpiError> {
    let pool = mp_mpi::MpiPool::init()?;
    let rounds = if std::env::args().any(|a| a == "--quick") {
        3
    } else {
        7
    };
    let items: Vec<u64> = (0..200_000).collect();
    let t = times(rounds, || {
        black_box(pool.map(identity, items.iter().copied()).unwrap());
    });
    emit(
        "map_200k_tasks_per_s",
        t.iter().map(|s| 200_000.0 / s).collect(),
    );

    let jobs = [10_000_000u64; 4];
    let serial = times(rounds, || {
        black_box(jobs.iter().map(|c| sum_squares(*c)).collect::<Vec<_>>());
    });
    let parallel = times(rounds, || {
        black_box(pool.chunksize(1).map(sum_squares, jobs).unwrap());
    });
    emit("cpu_serial_s", serial);
    emit("cpu_pool_s", parallel);

    // The local Pool(2) on the same work in the same run (the peer column), started on the
    // master while the worker ranks idle.
    let local = mp_pool::Pool::new(2)?;
    let t = times(rounds, || {
        black_box(local.map(identity, items.iter().copied()).unwrap());
    });
    emit(
        "local_map_200k_tasks_per_s",
        t.iter().map(|s| 200_000.0 / s).collect(),
    );
    let parallel = times(rounds, || {
        black_box(local.chunksize(1).map(sum_squares, jobs).unwrap());
    });
    emit("local_cpu_pool_s", parallel);
    Ok(())
}

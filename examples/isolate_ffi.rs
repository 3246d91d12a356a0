//! Isolating an unreliable library (issue #26): a pool runs a function that, like a C library
//! with bugs, sometimes hangs, sometimes crashes and sometimes eats memory without end. A task
//! timeout kills the hung worker, retries run a crashed task again (a crash budget stops one
//! that always crashes), and a memory cap stops the runaway allocation; every other task
//! finishes, and the pool is still whole at the end. Python's equivalent, with pebble, is in
//! the README ("Pools").
//!
//! Run: `cargo run --example isolate_ffi`

use std::path::{Path, PathBuf};
use std::time::Duration;

use mp::{Pool, PoolError, Retry, RetryOn};

/// The library call, by input: 3 hangs, 5 crashes on its first call only (a flaky init), 7
/// allocates until something stops it, 8 always crashes; the others answer `x * x`. `dir`
/// remembers which inputs were seen, across the worker processes.
fn unreliable((x, dir): (u64, PathBuf)) -> u64 {
    let first_call = std::fs::create_dir(dir.join(x.to_string())).is_ok();
    match x {
        3 => loop {
            std::thread::park();
        },
        5 if first_call => crash(),
        8 => crash(),
        7 => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(vec![1; 16 << 20]);
            }
        }
        _ => x * x,
    }
}

/// Stands in for the library's segfault: the worker process dies of SIGSEGV.
fn crash() -> u64 {
    mp_sys::signal::kill_self(11);
    unreachable!("SIGSEGV kills the worker")
}

fn outcome(result: &Result<u64, PoolError>) -> String {
    match result {
        Ok(v) => format!("ok: {v}"),
        Err(PoolError::TaskTimeout { timeout, .. }) => {
            format!("hung: killed at its {timeout:?} timeout")
        }
        Err(PoolError::MemoryLimit { limit, .. }) => {
            format!("ran past its {} MiB memory cap", limit >> 20)
        }
        Err(PoolError::GaveUp { attempts, error }) => {
            format!("gave up after {attempts} runs: {error}")
        }
        Err(e) => format!("failed: {e}"),
    }
}

fn main() -> Result<(), PoolError> {
    let dir = std::env::temp_dir().join(format!("mp-isolate-ffi-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(500))
        .max_memory_per_worker(256 << 20)
        // Crashes run again, at most 3 runs and 2 dead workers per task; a hang or a memory
        // blow-up would only repeat.
        .retry(Retry::new(2).on(RetryOn::CRASH).crash_limit(2))
        .build()?;
    let before = pool.pids();
    let inputs = (0..10u64).map(|x| (x, dir.clone()));
    let results: Vec<Result<u64, PoolError>> = pool.chunksize(1).imap(unreliable, inputs).collect();
    for (x, result) in results.iter().enumerate() {
        println!("task {x}: {}", outcome(result));
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let retried = runs(&dir, 5);
    println!(
        "{ok} of {} tasks answered (task 5 after a crash: {retried}); the pool still has {} \
         workers, {} of them new",
        results.len(),
        pool.pids().len(),
        pool.pids().iter().filter(|p| !before.contains(p)).count(),
    );
    pool.close();
    pool.join()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Whether input `x` was seen, for the summary.
fn runs(dir: &Path, x: u64) -> &'static str {
    if dir.join(x.to_string()).exists() {
        "retried"
    } else {
        "never seen"
    }
}

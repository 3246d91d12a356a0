//! Control over one task (issue #26): a timeout that kills beside a thousand quick tasks,
//! cancelling a queued, a running and a finished task, retries that count their runs, a crash
//! budget, a grace period before SIGKILL. Each test once per start method.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use mp_ipc::Queue;
use mp_pool::{Cancel, Pool, PoolError, Retry};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

use super::{GUARD, pool, square};

/// Parks for ever (until its worker is killed).
fn forever() -> u64 {
    loop {
        std::thread::park();
    }
}

/// Says it started, then parks for ever.
fn started_then_forever(started: Queue<()>) -> u64 {
    started.put(()).unwrap();
    forever()
}

/// Says it ran.
fn mark(ran: Queue<()>) -> u64 {
    ran.put(()).unwrap();
    7
}

/// Issue #26's first test with its 100 ms timeout: a task that hangs for ever under it, beside
/// 1,000 quick tasks of another call (no timeout, so a loaded host cannot fail them): exactly
/// the hanging one fails, with `TaskTimeout`; the pool goes on with a new worker.
fn a_hanging_task_under_100ms_beside_a_thousand(m: StartMethod) {
    let pool = pool(m, 2);
    let before = pool.pids();
    let timeout = Duration::from_millis(100);
    let hung = pool.timeout(timeout).apply_async(forever, ()).unwrap();
    let quick = pool.chunksize(1).map_async(square, 0..1000u64).unwrap();
    let e = hung.get_timeout(GUARD).unwrap_err();
    assert!(
        matches!(e, PoolError::TaskTimeout { index: 0, timeout: t } if t == timeout),
        "{e:?}"
    );
    let values = quick.get_timeout(GUARD).unwrap();
    assert_eq!(values.len(), 1000);
    assert!(
        values
            .iter()
            .enumerate()
            .all(|(i, v)| *v == square(i as u64))
    );
    let after = pool.pids();
    assert_eq!(after.len(), 2);
    assert_ne!(before, after, "the hung worker was replaced");
    assert_eq!(pool.apply(square, (9,)).unwrap(), 81);
}

/// pebble's `test_process_pool_cancel` and its queued/finished cases: a queued task never
/// runs; a running one has its worker killed and replaced; a finished one is left alone.
fn cancel_queued_running_and_finished(m: StartMethod) {
    let pool = pool(m, 1);
    let before = pool.pids();
    let (started, ran) = (Queue::new().unwrap(), Queue::new().unwrap());
    let stuck = pool
        .apply_async(started_then_forever, (started.clone(),))
        .unwrap();
    let behind = pool.apply_async(mark, (ran.clone(),)).unwrap();
    started.get_timeout(GUARD).unwrap();

    assert_eq!(
        behind.cancel(),
        Cancel::Cancelled {
            queued: 1,
            running: 0
        }
    );
    assert!(matches!(behind.get(), Err(PoolError::Cancelled)));
    assert_eq!(
        stuck.cancel(),
        Cancel::Cancelled {
            queued: 0,
            running: 1
        }
    );
    assert!(matches!(stuck.get(), Err(PoolError::Cancelled)));
    assert_eq!(
        stuck.cancel(),
        Cancel::Finished,
        "cancelling twice is a no-op"
    );

    let done = pool.apply_async(square, (5,)).unwrap();
    assert_eq!(done.get_timeout(GUARD).unwrap(), 25);
    assert_eq!(done.cancel(), Cancel::Finished);
    assert_eq!(done.get().unwrap(), 25);
    assert_ne!(
        pool.pids(),
        before,
        "the running task's worker was replaced"
    );

    pool.close();
    pool.join().unwrap();
    assert!(
        matches!(
            ran.get_timeout(Duration::ZERO),
            Err(mp_ipc::GetError::Empty)
        ),
        "the cancelled queued task ran"
    );

    // The executor's futures are the same results.
    let executor = mp_pool::ProcessPoolExecutor::from_pool(super::common::pool(m, 1));
    let started = Queue::new().unwrap();
    let future = executor
        .submit(started_then_forever, (started.clone(),))
        .unwrap();
    started.get_timeout(GUARD).unwrap();
    assert!(matches!(
        future.cancel(),
        Cancel::Cancelled { running: 1, .. }
    ));
    assert!(matches!(future.get(), Err(PoolError::Cancelled)));
    assert_eq!(executor.submit(square, (3,)).unwrap().get().unwrap(), 9);
}

/// An `imap` dropped early with `cancel_on_drop` kills the worker that runs its chunk.
fn imap_dropped_early_cancels_what_runs(m: StartMethod) {
    let pool = pool(m, 1);
    let before = pool.pids();
    let started = Queue::new().unwrap();
    let mut it = pool.cancel_on_drop(true).imap(
        started_then_forever,
        std::iter::repeat_n(started.clone(), 3),
    );
    // Reading starts the chunks; the first one runs for ever.
    assert!(matches!(
        it.next_timeout(Duration::from_millis(1)),
        Some(Err(PoolError::Timeout))
    ));
    started.get_timeout(GUARD).unwrap();
    drop(it);
    assert_eq!(pool.apply(square, (4,)).unwrap(), 16);
    assert_ne!(pool.pids(), before);
}

/// A file that counts the runs of a task: one byte per run.
struct RunLog(PathBuf);

impl RunLog {
    /// A log of its own (the start methods' tests run at once, in one process).
    fn new(m: StartMethod, name: &str) -> RunLog {
        let path = std::env::temp_dir().join(format!(
            "mp-pool-{name}-{}-{}",
            m.name(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        RunLog(path)
    }

    fn runs(&self) -> u64 {
        std::fs::metadata(&self.0).map_or(0, |m| m.len())
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Counts its run in `log`, then segfaults while the count is at most `crashes`; returns the
/// count.
fn flaky((log, crashes): (String, u64)) -> u64 {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log)
        .unwrap();
    file.write_all(b"x").unwrap();
    drop(file);
    let runs = std::fs::metadata(&log).unwrap().len();
    if runs <= crashes {
        // As a broken C library's crash. (Raised, not a fault: Rust's own SIGSEGV handler, which
        // mp's chains to, used to swallow it once.)
        // SAFETY: raising a signal in this process: the crash this test wants.
        unsafe { libc::raise(libc::SIGSEGV) };
    }
    runs
}

/// Issue #26's retry test: a task that segfaults on its first two runs succeeds on its third
/// under `retries(2)`, and the run count says 3; under `retries(1)` it fails with the attempt
/// count; without retries it runs once; one that always crashes stops at its crash budget.
fn retries_count_their_runs(m: StartMethod) {
    let pool = pool(m, 2);
    let log = RunLog::new(m, "retries-2");
    let arg = (log.0.to_string_lossy().into_owned(), 2);
    assert_eq!(pool.retries(2).apply(flaky, (arg,)).unwrap(), 3);
    assert_eq!(log.runs(), 3);
    let log = RunLog::new(m, "parallel");
    let arg = (log.0.to_string_lossy().into_owned(), 1);
    let out = mp_pool::Parallel::new(2)
        .context(ctx(m))
        .retries(1)
        .run(flaky, [(arg,)])
        .unwrap();
    assert_eq!((out, log.runs()), (vec![2], 2));

    let log = RunLog::new(m, "retries-1");
    let arg = (log.0.to_string_lossy().into_owned(), 2);
    match pool.retries(1).apply(flaky, (arg,)).unwrap_err() {
        PoolError::GaveUp { attempts: 2, error } => assert!(
            matches!(*error, PoolError::WorkerDied { exitcode: -11, .. }),
            "{error:?}"
        ),
        e => panic!("{e:?}"),
    }
    assert_eq!(log.runs(), 2);

    let log = RunLog::new(m, "retries-0");
    let arg = (log.0.to_string_lossy().into_owned(), 2);
    let e = pool.apply(flaky, (arg,)).unwrap_err();
    assert!(matches!(e, PoolError::WorkerDied { .. }), "{e:?}");
    assert_eq!(log.runs(), 1, "nothing runs twice unless asked");

    let log = RunLog::new(m, "budget");
    let arg = (log.0.to_string_lossy().into_owned(), u64::MAX);
    let e = pool
        .retry(Retry::new(10).crash_limit(3))
        .apply(flaky, (arg,))
        .unwrap_err();
    assert!(matches!(e, PoolError::GaveUp { attempts: 3, .. }), "{e:?}");
    assert_eq!(log.runs(), 3, "the crash budget bounds the runs");

    // The pool-wide default, under map: every crashing item runs again.
    let pool = Pool::builder()
        .processes(2)
        .context(ctx(m))
        .retries(1)
        .build()
        .unwrap();
    let logs: Vec<RunLog> = (0..4)
        .map(|i| RunLog::new(m, &format!("map-{i}")))
        .collect();
    let args: Vec<(String, u64)> = logs
        .iter()
        .map(|l| (l.0.to_string_lossy().into_owned(), 1))
        .collect();
    assert_eq!(pool.chunksize(1).map(flaky, args).unwrap(), [2, 2, 2, 2]);
    assert!(logs.iter().all(|l| l.runs() == 2));
}

/// Ignores SIGTERM, then parks for ever.
fn deaf_forever() -> u64 {
    // SAFETY: ignoring a signal: no handler runs.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    forever()
}

/// With a grace period, a timed-out worker gets SIGTERM first; one that ignores it is killed
/// when the grace period ends, and replaced.
fn a_worker_deaf_to_sigterm_is_killed_after_its_grace(m: StartMethod) {
    let pool = Pool::builder()
        .processes(1)
        .context(ctx(m))
        .kill_grace(Duration::from_millis(50))
        .build()
        .unwrap();
    let e = pool
        .timeout(Duration::from_millis(100))
        .apply(deaf_forever, ())
        .unwrap_err();
    assert!(matches!(e, PoolError::TaskTimeout { .. }), "{e:?}");
    // Only a new worker can run this: the deaf one must have been killed.
    let next = pool.apply_async(square, (6,)).unwrap();
    assert_eq!(next.get_timeout(GUARD).unwrap(), 36);
}

/// Holds `mib` MiB, touched, and returns how many.
fn hog(mib: usize) -> usize {
    let mut held = Vec::new();
    for _ in 0..mib {
        held.push(vec![1u8; 1 << 20]);
    }
    held.len()
}

/// Leaks `mib` MiB, touched, and returns its pid.
fn leak(mib: usize) -> u32 {
    for _ in 0..mib {
        std::hint::black_box(Box::leak(vec![1u8; 1 << 20].into_boxed_slice()));
    }
    std::process::id()
}

/// Spins for `ms` milliseconds of this process's CPU time.
fn spin_cpu(ms: u64) -> u64 {
    let start = cpu_time();
    while cpu_time() - start < Duration::from_millis(ms) {
        std::hint::black_box(0);
    }
    ms
}

fn cpu_time() -> Duration {
    mp_sys::resource::cpu_time().unwrap()
}

/// Issue #26's memory test: a task that allocates past its worker's cap fails with the typed
/// memory error, its worker is replaced, and the pool goes on; a memory death is retried only
/// if `RetryOn` says so.
fn a_task_past_the_memory_cap_fails_with_memory_limit(m: StartMethod) {
    let cap = 64 << 20;
    let pool = Pool::builder()
        .processes(2)
        .context(ctx(m))
        .max_memory_per_worker(cap)
        .build()
        .unwrap();
    assert_eq!(pool.apply(hog, (16,)).unwrap(), 16);
    let e = pool.apply(hog, (1024,)).unwrap_err();
    assert!(
        matches!(e, PoolError::MemoryLimit { index: 0, len: 1, limit } if limit == cap),
        "{e:?}"
    );
    assert!(e.to_string().contains("memory cap"), "{e}");
    let e = pool
        .retry(Retry::new(3).on(mp_pool::RetryOn::CRASH))
        .apply(hog, (1024,))
        .unwrap_err();
    assert!(
        matches!(e, PoolError::MemoryLimit { .. }),
        "not retried: {e:?}"
    );
    let e = pool.retries(1).apply(hog, (1024,)).unwrap_err();
    assert!(
        matches!(&e, PoolError::GaveUp { attempts: 2, error } if matches!(**error, PoolError::MemoryLimit { .. })),
        "{e:?}"
    );
    assert_eq!(pool.map(square, 0..100u64).unwrap()[9], 81);
    // joblib's Parallel takes the cap too.
    let e = mp_pool::Parallel::new(2)
        .context(ctx(m))
        .max_memory_per_worker(cap)
        .run(hog, [(8,), (1024,)])
        .unwrap_err();
    assert!(
        matches!(e, PoolError::MemoryLimit { index: 1, .. }),
        "{e:?}"
    );
}

/// A task past its CPU-time cap fails with `CpuLimit`; the cap counts per task (two tasks of
/// 600 ms each on one worker, under a 1 s cap, both succeed).
fn a_task_past_the_cpu_cap_fails_with_cpu_limit(m: StartMethod) {
    let pool = Pool::builder()
        .processes(1)
        .context(ctx(m))
        .max_cpu_time_per_task(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(pool.map(spin_cpu, [600, 600]).unwrap(), [600, 600]);
    let e = pool.apply(spin_cpu, (60_000,)).unwrap_err();
    assert!(
        matches!(e, PoolError::CpuLimit { limit, .. } if limit == Duration::from_secs(1)),
        "{e:?}"
    );
    assert_eq!(pool.apply(square, (3,)).unwrap(), 9);
}

/// A worker whose resident set grew past the leak guard is replaced after its task; the task
/// itself succeeds.
fn a_leaky_worker_is_replaced_after_its_task(m: StartMethod) {
    let pool = Pool::builder()
        .processes(1)
        .context(ctx(m))
        .leak_guard(256 << 20)
        .build()
        .unwrap();
    let first = pool.apply(leak, (0,)).unwrap();
    assert_eq!(
        pool.apply(leak, (0,)).unwrap(),
        first,
        "no leak, same worker"
    );
    let leaky = pool.apply(leak, (300,)).unwrap();
    assert_eq!(leaky, first);
    let next = pool.apply(leak, (0,)).unwrap();
    assert_ne!(next, leaky, "the leaky worker was replaced");
}

fn pid() -> u32 {
    std::process::id()
}

fn exit_1() -> u64 {
    std::process::exit(1)
}

/// pebble's own `ProcessPool` tests, where they apply (their waits for "the process picked up
/// the task" are events here, not sleeps): `test_process_pool_timeout` and `_timeout_callback`,
/// `_cancel` and `_cancel_callback`, `_stop_timeout` and `_stop_cancel` (the next task runs in
/// another process), `_future_limit` (`max_tasks` is `maxtasksperchild`),
/// `_ignoring_sigterm` and `_expired_worker`.
fn pebble_process_pool_tests(m: StartMethod) {
    use std::sync::{Arc, Mutex};
    let pool = pool(m, 1);
    // _timeout, _timeout_callback.
    let seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let r = pool
        .timeout(Duration::from_millis(100))
        .apply_async(forever, ())
        .unwrap()
        .error_callback(move |e| *sink.lock().unwrap() = Some(e.to_string()));
    assert!(matches!(r.get(), Err(PoolError::TaskTimeout { .. })));
    assert!(seen.lock().unwrap().as_deref().unwrap().contains("timeout"));
    // _cancel, _cancel_callback.
    let started = Queue::new().unwrap();
    let sink = Arc::clone(&seen);
    let r = pool
        .apply_async(started_then_forever, (started.clone(),))
        .unwrap()
        .error_callback(move |e| *sink.lock().unwrap() = Some(format!("{e:?}")));
    started.get_timeout(GUARD).unwrap();
    assert!(matches!(r.cancel(), Cancel::Cancelled { running: 1, .. }));
    assert!(matches!(r.get(), Err(PoolError::Cancelled)));
    assert_eq!(seen.lock().unwrap().as_deref(), Some("Cancelled"));
    // _stop_timeout, _stop_cancel.
    let first = pool.apply(pid, ()).unwrap();
    let _ = pool.timeout(Duration::from_millis(100)).apply(forever, ());
    let second = pool.apply(pid, ()).unwrap();
    assert_ne!(first, second);
    let r = pool
        .apply_async(started_then_forever, (started.clone(),))
        .unwrap();
    started.get_timeout(GUARD).unwrap();
    r.cancel();
    assert_ne!(pool.apply(pid, ()).unwrap(), second);
    // _ignoring_sigterm: without a grace period the kill is SIGKILL, which it cannot ignore.
    let e = pool
        .timeout(Duration::from_millis(200))
        .apply(deaf_forever, ())
        .unwrap_err();
    assert!(matches!(e, PoolError::TaskTimeout { .. }));
    // _expired_worker.
    let e = pool.apply(exit_1, ()).unwrap_err();
    assert!(
        matches!(e, PoolError::WorkerDied { exitcode: 1, .. }),
        "{e:?}"
    );
    // _future_limit: max_tasks=2, four tasks, two processes.
    let limited = Pool::builder()
        .processes(1)
        .maxtasksperchild(2)
        .context(ctx(m))
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..4).map(|_| limited.apply(pid, ()).unwrap()).collect();
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "{pids:?}");
}

mp_spawn::test_matrix!(
    pebble_process_pool_tests,
    a_task_past_the_memory_cap_fails_with_memory_limit,
    a_task_past_the_cpu_cap_fails_with_cpu_limit,
    a_leaky_worker_is_replaced_after_its_task,
    a_hanging_task_under_100ms_beside_a_thousand,
    cancel_queued_running_and_finished,
    imap_dropped_early_cancels_what_runs,
    retries_count_their_runs,
    a_worker_deaf_to_sigterm_is_killed_after_its_grace,
);

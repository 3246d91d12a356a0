//! One test body for every pool, whatever carries its chunks: local worker processes (under
//! each start method), a transport (`mp_pool::transport`, the loopback below), and the ranks of
//! an MPI job (mp-mpi's suite includes this file). Each transport gets every feature of the
//! one pool engine, so each is tested with all of them.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_pool::transport::{Sink, Transport};
use mp_pool::{Cancel, Pool, PoolError};

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

fn zeros(n: usize) -> Vec<u8> {
    vec![0; n]
}

/// Blocks until someone opens the FIFO `path` for writing.
fn wait_for_release(path: String) -> u64 {
    let mut byte = [0u8; 1];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut byte));
    read.map_or(0, |n| n as u64)
}

/// Crashes (SIGSEGV) the first time it sees `marker` missing, which it creates; 7 after.
fn crash_once(marker: String) -> u64 {
    if std::fs::create_dir(&marker).is_ok() {
        mp_sys::signal::kill_self(11);
    }
    7
}

/// Every pool behaves so (CPython's `_TestPool` cases first), whatever its workers are.
pub(crate) fn generic_body(pool: &Pool) {
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
    let squares = pool.chunksize(20).map(square, 0..100u64).unwrap();
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
        .chunksize(100)
        .imap(square, 0..1000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all, (0..1000u64).map(square).collect::<Vec<_>>());
    // test_imap_unordered, second half: chunksize=53.
    let mut unordered: Vec<u64> = pool
        .chunksize(53)
        .imap_unordered(square, 0..1000u64)
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
    let pending = pool.apply_async(add, (2u64, 3u64)).unwrap();
    assert_eq!(pending.get().unwrap(), 5);
    let failure = pool.map(boom, 0..10u64).unwrap_err();
    assert!(format!("{failure}").contains("boom at 7"), "{failure}");
    assert!(
        matches!(failure.local(), PoolError::Panicked { index: 7, .. }),
        "{failure:?}"
    );
    assert!(failure.is_task_failure());
    // A failed chunk (of one item by default) gives one `Err`, then the output goes on.
    let out: Vec<Result<u64, PoolError>> = pool.imap(boom, 0..10u64).collect();
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

    // test_async's callbacks: they have run by the time the result is ready.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (ok, failed) = (Arc::clone(&seen), Arc::clone(&seen));
    let r = pool
        .apply_async(square, (6u64,))
        .unwrap()
        .callback(move |v| ok.lock().unwrap().push(format!("value {v}")));
    let e = pool
        .apply_async(boom, (7u64,))
        .unwrap()
        .error_callback(move |e| failed.lock().unwrap().push(format!("error {e}")));
    assert!(r.wait(None) && e.wait(None));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1], "value 36");
    assert!(seen[0].contains("boom at 7"), "{seen:?}");
    // concurrent.futures' as_completed over the pool's results.
    let futures: Vec<_> = (0..4u64)
        .map(|i| pool.apply_async(square, (i,)).unwrap())
        .collect();
    let mut done: Vec<u64> = mp_pool::as_completed(futures)
        .map(|f| f.get().unwrap())
        .collect();
    done.sort_unstable();
    assert_eq!(done, [0, 1, 4, 9]);

    // A result over the call's limit is refused where it was made.
    let e = pool
        .chunksize(1)
        .max_result_bytes(4096)
        .map(zeros, [10usize, 100_000])
        .unwrap_err();
    match e.local() {
        PoolError::ResultTooLarge { index, len, limit } => {
            assert_eq!((*index, *limit), (1, 4096));
            assert!(*len > 100_000, "{e}");
        }
        other => panic!("{other:?}"),
    }

    // A task past its timeout fails with `TaskTimeout`; the pool goes on. The task waits on
    // a FIFO that nobody opens until the timeout has failed it: it cannot finish in time,
    // whatever the scheduling.
    let fifo = new_fifo();
    let timeout = Duration::from_millis(200);
    let e = pool
        .chunksize(1)
        .timeout(timeout)
        .map(wait_for_release, [fifo.to_string_lossy().into_owned()])
        .unwrap_err();
    assert!(
        matches!(e.local(), PoolError::TaskTimeout { index: 0, timeout: t } if *t == timeout),
        "{e:?}"
    );
    if let PoolError::Remote { .. } = e {
        // A remote worker is not killed: release the task, so that it answers (late).
        release(&fifo);
    }
    std::fs::remove_file(&fifo).unwrap();
    assert_eq!(pool.map(square, 0..100u64).unwrap().len(), 100);

    // Cancel: a finished task is left alone; an unfinished one fails with `Cancelled` (a
    // local worker running it is killed; a remote one runs on, its answer dropped).
    let done = pool.apply_async(square, (4,)).unwrap();
    assert_eq!(done.get().unwrap(), 16);
    assert_eq!(done.cancel(), Cancel::Finished);
    assert_eq!(done.get().unwrap(), 16);
    let fifo = new_fifo();
    let stuck = pool
        .apply_async(wait_for_release, (fifo.to_string_lossy().into_owned(),))
        .unwrap();
    let report = stuck.cancel();
    assert!(matches!(report, Cancel::Cancelled { .. }), "{report:?}");
    assert!(matches!(stuck.get(), Err(PoolError::Cancelled)));
    let remote = pool.pids().is_empty();
    if remote
        && report
            == (Cancel::Cancelled {
                queued: 0,
                running: 1,
            })
    {
        release(&fifo);
    }
    std::fs::remove_file(&fifo).unwrap();
    // Retries are an option of every pool: a task whose worker died runs again (on a remote
    // worker, one of its own workers), once here; without retries it fails.
    let marker = unique_path("ran");
    let path = marker.to_string_lossy().into_owned();
    assert_eq!(
        pool.retries(1).apply(crash_once, (path.clone(),)).unwrap(),
        7
    );
    std::fs::remove_dir(&marker).unwrap();
    let e = pool.apply(crash_once, (path,)).unwrap_err();
    assert!(matches!(e.cause(), PoolError::WorkerDied { .. }), "{e:?}");
    std::fs::remove_dir(&marker).unwrap();

    // A closure with state is refused before anything is sent; a fn pointer is found.
    let f: fn(u64) -> u64 = square;
    assert_eq!(pool.map(f, [3u64]).unwrap(), [9]);
    let k = std::hint::black_box(3u64);
    let e = pool.map(move |x: u64| x * k, [1u64]).unwrap_err();
    assert!(matches!(e, PoolError::InvalidArgument(m) if m.contains("captures state")));
}

/// A path in the temporary directory that no other body uses.
fn unique_path(kind: &str) -> std::path::PathBuf {
    static PATHS: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "mp-pool-{kind}-{}-{}",
        std::process::id(),
        PATHS.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Lets the task waiting on `fifo` (`wait_for_release`) return.
fn release(fifo: &std::path::Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
        .unwrap();
}

/// A new FIFO of its own: bodies run at once, on several threads of one test process.
fn new_fifo() -> std::path::PathBuf {
    let fifo = unique_path("release");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()));
    fifo
}

/// Remote workers that are local pools, reached through the transport API: what a real
/// transport does over a network, without one (each "send" is a `relay` on that pool).
#[derive(Debug)]
pub(crate) struct Loopback {
    remotes: Vec<Pool>,
    sink: Mutex<Option<Sink>>,
}

impl Loopback {
    /// `workers` remote workers, each a pool of `processes` local processes.
    pub(crate) fn new(workers: usize, processes: usize, ctx: mp_spawn::Context) -> Loopback {
        Loopback {
            remotes: (0..workers)
                .map(|_| {
                    Pool::builder()
                        .processes(processes)
                        .context(ctx)
                        .build()
                        .unwrap()
                })
                .collect(),
            sink: Mutex::new(None),
        }
    }
}

impl Transport for Loopback {
    fn workers(&self) -> usize {
        self.remotes.len()
    }

    fn rank(&self, worker: usize) -> u32 {
        worker as u32 + 1
    }

    fn parallel(&self, worker: usize) -> usize {
        self.remotes[worker].processes()
    }

    fn start(&self, sink: Sink) -> std::io::Result<()> {
        *self.sink.lock().unwrap() = Some(sink);
        Ok(())
    }

    fn send(&self, worker: usize, frame: &[u8]) -> std::io::Result<()> {
        let sink = self.sink.lock().unwrap().clone();
        let sink = sink.ok_or_else(|| std::io::Error::other("not started"))?;
        // SAFETY: the frames come from the pool of this very process.
        unsafe {
            self.remotes[worker].relay(frame, usize::MAX, move |answer| {
                sink.deliver(worker, answer);
            })
        };
        Ok(())
    }

    fn shutdown(&self) {
        for pool in &self.remotes {
            pool.close();
            let _ = pool.join();
        }
    }
}

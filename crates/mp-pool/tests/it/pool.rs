//! Pool behaviour, each test once per start method (as CPython's `_test_multiprocessing`).

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{pool, square};
use mp_ipc::Queue;
use mp_pool::{Pool, PoolError};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

fn panic_on_odd(x: u64) -> u64 {
    if x % 2 == 1 {
        panic!("odd input {x}");
    }
    x
}

fn die_on(x: u64, victim: u64, signal: i32) -> u64 {
    if x == victim {
        // SAFETY: raising a signal in this worker process is the behaviour under test.
        unsafe { libc::raise(signal) };
        mp_sys::process::exit_now(3);
    }
    x
}

fn segfault(_: u64) -> u64 {
    // SAFETY: not safe at all: a real segfault (as in C code) is the behaviour under test.
    unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
    0
}

fn abort_on_3(x: u64) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    x
}

fn check_result(x: u64) -> Result<u64, String> {
    if x == 2 {
        Err(format!("no {x}"))
    } else {
        Ok(x)
    }
}

/// Reports its pid on `q`, then waits to be killed.
fn park_and_report(q: Queue<u32>) -> u64 {
    q.put(std::process::id()).unwrap();
    mp_spawn::testing::park_forever();
    0
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn whoami(_: u64) -> (String, bool) {
    let me = mp_spawn::current_process();
    (me.name, me.daemon)
}

fn record_pid(q: Queue<u32>) {
    q.put(std::process::id()).unwrap();
}

fn bad_initializer() {
    panic!("cannot initialise");
}

fn nested(n: u64) -> Vec<u64> {
    let inner = Pool::new(2).unwrap();
    inner.map(square, 0..n).unwrap()
}

fn bytes_len(data: serde_bytes::ByteBuf) -> serde_bytes::ByteBuf {
    let mut out = data.into_vec();
    out.reverse();
    serde_bytes::ByteBuf::from(out)
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

fn wait_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| pid_alive(p)) {
        assert!(
            Instant::now() < deadline,
            "workers {pids:?} are still alive"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------

fn map_apply_starmap(m: StartMethod) {
    let pool = pool(m, 2);
    assert_eq!(pool.map(square, [1, 2, 3]).unwrap(), [1, 4, 9]);
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
    let expected: Vec<u64> = (0..1000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..1000).unwrap(), expected);
    assert_eq!(pool.chunksize(1).map(square, 0..1000).unwrap(), expected);
    assert_eq!(pool.chunksize(7).map(square, 0..1000).unwrap(), expected);
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    assert_eq!(pool.apply(add, (20, 22)).unwrap(), 42);
    let r = pool.apply_async(square, (9,)).unwrap();
    assert!(r.wait(None));
    assert!(r.ready());
    assert!(r.successful().unwrap());
    assert_eq!(r.get().unwrap(), 81);
    assert_eq!(r.get().unwrap(), 81, "get may be called again");
    let m = pool.map_async(square, 0..10).unwrap();
    let s = pool.starmap_async(add, [(1, 1)]).unwrap();
    assert_eq!(m.get().unwrap()[3], 9);
    assert_eq!(s.get().unwrap(), [2]);
}

fn negate_bits(x: f64) -> f64 {
    -x
}

fn to_i8(x: i64) -> i8 {
    x as i8
}

fn wide(x: u8, y: i128) -> (u8, i128) {
    (x, y)
}

/// Plain numbers take the raw-bytes path (see `plain.rs`); every value and sign must survive,
/// in every direction, beside types that still go through serde.
fn plain_numbers_keep_every_value(m: StartMethod) {
    let pool = pool(m, 2);
    let floats = [0.5, -0.0, f64::INFINITY, f64::NAN, f64::MIN_POSITIVE, 1e300];
    let out = pool.chunksize(2).map(negate_bits, floats).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&out), bits(&floats.map(|x| -x)));
    let out = pool.map(to_i8, -300..300i64).unwrap();
    assert_eq!(out, (-300..300i64).map(|x| x as i8).collect::<Vec<_>>());
    assert_eq!(pool.apply(to_i8, (-1,)).unwrap(), -1);
    assert_eq!(pool.starmap(negate_bits, [(2.0,)]).unwrap(), [-2.0]);
    assert_eq!(
        pool.starmap(wide, [(255, i128::MIN)]).unwrap(),
        [(255, i128::MIN)]
    );
    let squares: Vec<u64> = pool.imap(square, 0..100u64).map(Result::unwrap).collect();
    assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<_>>());
}

fn result_values_stay_typed(m: StartMethod) {
    let pool = pool(m, 2);
    let out = pool.map(check_result, 0..4).unwrap();
    assert_eq!(out, [Ok(0), Ok(1), Err("no 2".to_string()), Ok(3)]);
}

fn panics_come_back_and_map_waits_for_all(m: StartMethod) {
    let pool = pool(m, 2);
    let e = pool.chunksize(1).map(panic_on_odd, 0..10).unwrap_err();
    match &e {
        PoolError::Panicked { index, message } => {
            // The lowest failed index, whatever finished first.
            assert_eq!(*index, 1);
            assert!(message.contains("odd input 1"), "{message}");
            assert!(
                message.contains("tests/it/pool.rs"),
                "the location is kept: {message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Every item ran: the unordered iterator sees all of them, failures included.
    let results: Vec<_> = pool.imap_unordered(panic_on_odd, 0..10).collect();
    assert_eq!(results.len(), 10);
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 5);
    // The workers survived their panics.
    assert_eq!(pool.map(square, [3]).unwrap(), [9]);
    let r = pool.apply_async(panic_on_odd, (5,)).unwrap();
    assert!(r.wait(None));
    assert!(!r.successful().unwrap());
    assert!(matches!(r.get(), Err(PoolError::Panicked { index: 0, .. })));
}

fn worker_killed_mid_map(m: StartMethod) {
    let pool = pool(m, 2);
    let before = pool.pids();
    let e = pool
        .chunksize(1)
        .starmap(die_on, (0..20).map(|x| (x, 7, libc::SIGKILL)))
        .unwrap_err();
    match e {
        PoolError::WorkerDied {
            index,
            len,
            exitcode,
            pid,
        } => {
            assert_eq!((index, len, exitcode), (7, 1, -9));
            assert!(before.contains(&pid));
        }
        other => panic!("{other:?}"),
    }
    display_names_signal(&pool);
    // A new worker took the dead one's place, and the pool goes on.
    let after = pool.pids();
    assert_eq!(after.len(), 2);
    assert_ne!(before, after);
    assert_eq!(pool.map(square, 0..100).unwrap()[10], 100);
}

fn display_names_signal(pool: &Pool) {
    let e = pool.apply(segfault, (1,)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("SIGSEGV") && text.contains("task 0"),
        "{text}"
    );
}

fn worker_killed_mid_imap_unordered(m: StartMethod) {
    let pool = pool(m, 2);
    let results: Vec<Result<u64, PoolError>> = pool.imap_unordered(abort_on_3, 0..12).collect();
    assert_eq!(results.len(), 12);
    let ok: HashSet<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(ok, (0..12).filter(|&x| x != 3).collect());
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        matches!(
            failed[..],
            [PoolError::WorkerDied {
                index: 3,
                exitcode: -6,
                ..
            }]
        ),
        "{failed:?}"
    );
}

fn worker_killed_from_outside(m: StartMethod) {
    let pool = pool(m, 2);
    let q = Queue::<u32>::new().unwrap();
    let parked = pool.apply_async(park_and_report, (q.clone(),)).unwrap();
    let others = pool.map_async(square, 0..50).unwrap();
    let pid = q.get_timeout(Duration::from_secs(10)).unwrap();
    // SAFETY: SIGKILL to one of our own workers.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    match parked.get_timeout(Duration::from_secs(10)) {
        Err(PoolError::WorkerDied {
            pid: p,
            exitcode: -9,
            index: 0,
            ..
        }) => assert_eq!(p, pid),
        other => panic!("{other:?}"),
    }
    assert_eq!(others.get().unwrap()[7], 49);
}

fn maxtasksperchild_replaces_workers(m: StartMethod) {
    let pool = Pool::builder()
        .processes(1)
        .maxtasksperchild(2)
        .context(ctx(m))
        .build()
        .unwrap();
    let pids = pool.chunksize(1).map(pid_of, 0..6).unwrap();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[2], pids[3]);
}

fn initializer_runs_once_per_worker(m: StartMethod) {
    let q = Queue::<u32>::new().unwrap();
    let pool = Pool::builder()
        .processes(2)
        .initializer(record_pid, (q.clone(),))
        .context(ctx(m))
        .build()
        .unwrap();
    let used: HashSet<u32> = pool
        .chunksize(1)
        .map(pid_of, 0..40)
        .unwrap()
        .into_iter()
        .collect();
    pool.close();
    pool.join().unwrap();
    let mut initialised = HashSet::new();
    while let Ok(pid) = q.get_nowait() {
        assert!(initialised.insert(pid), "initializer ran twice in {pid}");
    }
    assert_eq!(initialised.len(), 2);
    assert!(used.is_subset(&initialised));
}

fn initializer_panic_fails_tasks(m: StartMethod) {
    let pool = Pool::builder()
        .processes(1)
        .initializer(bad_initializer, ())
        .context(ctx(m))
        .build()
        .unwrap();
    match pool.map(square, 0..4) {
        Err(PoolError::Initializer { message }) => assert!(message.contains("cannot initialise")),
        // The failure may come before the submission.
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pool.apply(square, (1,)),
        Err(PoolError::Initializer { .. })
    ));
}

fn workers_are_named_daemons(m: StartMethod) {
    let pool = pool(m, 2);
    let prefix = match m {
        StartMethod::Fork => "ForkPoolWorker-",
        StartMethod::Spawn => "SpawnPoolWorker-",
        StartMethod::Forkserver => "ForkServerPoolWorker-",
    };
    for (name, daemon) in pool.chunksize(1).map(whoami, 0..8).unwrap() {
        assert!(name.starts_with(prefix), "{name}");
        assert!(daemon);
    }
}

fn nested_pool(m: StartMethod) {
    let pool = pool(m, 2);
    let out = pool.map(nested, [3, 4]).unwrap();
    assert_eq!(out, [vec![0, 1, 4], vec![0, 1, 4, 9]]);
}

fn imap_is_lazy_and_endless(m: StartMethod) {
    let pool = pool(m, 2);
    let read = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&read);
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut it = pool.buffersize(4).imap(square, endless);
    for expected in (0u64..200).map(|x| x * x) {
        assert_eq!(it.next().unwrap().unwrap(), expected);
        // Never more than the look-ahead past what was handed out.
        assert!(read.load(Ordering::Relaxed) <= (expected as f64).sqrt() as usize + 1 + 4);
    }
    drop(it);
    let chunked: Vec<u64> = pool
        .chunksize(5)
        .imap(square, 0..23)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, (0..23).map(|x| x * x).collect::<Vec<_>>());
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0..30)
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..30).map(|x| x * x).collect::<Vec<_>>());
}

fn record_slowly((done, x): (Queue<u64>, u64)) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    done.put(x).unwrap();
    x
}

fn dropped_imap_cancels_its_queued_chunks(m: StartMethod) {
    let pool = pool(m, 1);
    let done = Queue::new().unwrap();
    let items = (0..40u64).map(|x| (done.clone(), x));
    let mut it = pool.chunksize(1).buffersize(40).imap(record_slowly, items);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    drop(it);
    // join waits for every task still queued: only those a worker already held may run.
    pool.close();
    pool.join().unwrap();
    let mut ran = 0;
    while done.get_nowait().is_ok() {
        ran += 1;
    }
    assert!(
        (1..=10).contains(&ran),
        "{ran} of 40 tasks ran after the drop"
    );
}

fn imap_next_timeout(m: StartMethod) {
    let pool = pool(m, 1);
    let mut it = pool.imap(sleep_ms, [300, 1]);
    assert!(matches!(
        it.next_timeout(Duration::from_millis(10)),
        Some(Err(PoolError::Timeout))
    ));
    assert_eq!(it.next().unwrap().unwrap(), 300);
    assert_eq!(it.next().unwrap().unwrap(), 1);
    assert!(it.next().is_none());
}

fn get_timeout_then_get(m: StartMethod) {
    let pool = pool(m, 1);
    let r = pool.apply_async(sleep_ms, (200,)).unwrap();
    assert!(matches!(
        r.get_timeout(Duration::from_millis(5)),
        Err(PoolError::Timeout)
    ));
    assert!(!r.ready());
    assert!(matches!(r.successful(), Err(PoolError::StillRunning)));
    assert_eq!(r.get().unwrap(), 200);
}

fn callbacks(m: StartMethod) {
    let pool = pool(m, 2);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    pool.apply_async(square, (6,))
        .unwrap()
        .callback(move |v| tx.send(Ok(*v)).unwrap());
    pool.apply_async(panic_on_odd, (3,))
        .unwrap()
        .callback(|_| panic!("no value"))
        .error_callback(move |e| tx2.send(Err(e.to_string())).unwrap());
    let mut got: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    got.sort();
    assert_eq!(got[0], Ok(36));
    assert!(got[1].as_ref().unwrap_err().contains("odd input 3"));
}

fn close_join_terminate(m: StartMethod) {
    let pool = pool(m, 2);
    assert!(matches!(pool.join(), Err(PoolError::StillRunning)));
    let pending = pool.map_async(sleep_ms, [50, 50, 50]).unwrap();
    let pids = pool.pids();
    pool.close();
    assert!(matches!(
        pool.apply(square, (1,)),
        Err(PoolError::NotRunning)
    ));
    pool.join().unwrap();
    assert_eq!(
        pending.get().unwrap(),
        [50, 50, 50],
        "close lets the work finish"
    );
    wait_gone(&pids);

    let pool = self::pool(m, 2);
    let long = pool.apply_async(sleep_ms, (60_000,)).unwrap();
    let pids = pool.pids();
    pool.terminate();
    assert!(matches!(long.get(), Err(PoolError::Terminated)));
    pool.join().unwrap();
    wait_gone(&pids);
}

fn drop_terminates(m: StartMethod) {
    let pool = pool(m, 2);
    let long = pool.apply_async(sleep_ms, (60_000,)).unwrap();
    let pids = pool.pids();
    let started = Instant::now();
    drop(pool);
    assert!(matches!(long.get(), Err(PoolError::Terminated)));
    assert!(started.elapsed() < Duration::from_secs(30));
    wait_gone(&pids);
}

fn large_arguments_and_results(m: StartMethod) {
    let pool = pool(m, 2);
    let data: Vec<u8> = (0..(8 << 20)).map(|i| (i % 251) as u8).collect();
    let out = pool
        .apply(bytes_len, (serde_bytes::ByteBuf::from(data.clone()),))
        .unwrap()
        .into_vec();
    assert_eq!(out.len(), data.len());
    assert!(out.iter().rev().eq(data.iter()));
}

fn bad_settings() {
    assert!(matches!(Pool::new(0), Err(PoolError::InvalidArgument(_))));
    assert!(matches!(
        Pool::builder().processes(1).maxtasksperchild(0).build(),
        Err(PoolError::InvalidArgument(_))
    ));
}

#[test]
fn invalid_settings_are_errors() {
    bad_settings();
}

/// The body every pool runs (mp-mpi's suite runs it under `mpirun` too).
fn generic_body_on_a_local_pool(m: StartMethod) {
    common::generic::generic_body(&pool(m, 2));
}

/// The same body on a pool whose workers are behind a transport: two "remote" workers of two
/// processes each, reached through `Transport` and `Pool::relay`.
fn generic_body_over_a_transport(m: StartMethod) {
    let transport = common::generic::Loopback::new(2, 2, ctx(m));
    let pool = Pool::builder().build_with(Arc::new(transport)).unwrap();
    assert!(pool.pids().is_empty());
    common::generic::generic_body(&pool);
    // `close` and `join` end the transport once the work is done.
    let last = pool.map_async(square, 0..50u64).unwrap();
    pool.close();
    pool.join().unwrap();
    assert_eq!(last.get().unwrap().len(), 50);
}

mp_spawn::test_matrix!(
    generic_body_on_a_local_pool,
    generic_body_over_a_transport,
    map_apply_starmap,
    plain_numbers_keep_every_value,
    result_values_stay_typed,
    panics_come_back_and_map_waits_for_all,
    worker_killed_mid_map,
    worker_killed_mid_imap_unordered,
    worker_killed_from_outside,
    maxtasksperchild_replaces_workers,
    initializer_runs_once_per_worker,
    initializer_panic_fails_tasks,
    workers_are_named_daemons,
    nested_pool,
    imap_is_lazy_and_endless,
    dropped_imap_cancels_its_queued_chunks,
    imap_next_timeout,
    get_timeout_then_get,
    callbacks,
    close_join_terminate,
    drop_terminates,
    large_arguments_and_results,
);

fn crashing_initializer() {
    std::process::abort();
}

fn initializer_crash_does_not_respawn_forever(m: StartMethod) {
    let pool = Pool::builder()
        .processes(1)
        .initializer(crashing_initializer, ())
        .context(ctx(m))
        .build()
        .unwrap();
    match pool.map(square, 0..4) {
        Err(PoolError::Initializer { message }) => {
            assert!(message.contains("died"), "{message}");
            // The message says what really happened to the workers.
            assert!(message.contains("SIGABRT"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pool.apply(square, (1,)),
        Err(PoolError::Initializer { .. })
    ));
}

mod crash_loop {
    mp_spawn::test_matrix!(initializer_crash_does_not_respawn_forever);
    use super::initializer_crash_does_not_respawn_forever;
}

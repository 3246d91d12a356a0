//! Every worker of a pool is alike, the first ones and their replacements (issue #13, item 6):
//! under the fork method a replacement used to be forked from the pool's handler thread, so it
//! ran tasks on that thread's small stack and inherited the locks other threads held at that
//! moment. Each test runs once per start method.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use mp_ipc::Queue;
use mp_pool::{Pool, PoolError};
use mp_shm::Barrier;
use mp_spawn::StartMethod;
use mp_spawn::testing::{ctx, wait_gone};

/// Hang guard only: every wait below ends on an event long before this.
const GUARD: Duration = Duration::from_secs(60);

/// Each worker reports its pid once it has started.
fn report_pid(started: Queue<u32>) {
    started.put(std::process::id()).unwrap();
}

fn pool_reporting_pids(m: StartMethod, n: usize, started: &Queue<u32>) -> Pool {
    Pool::builder()
        .processes(n)
        .initializer(report_pid, (started.clone(),))
        .context(ctx(m))
        .build()
        .unwrap()
}

fn next_pid(started: &Queue<u32>) -> u32 {
    started.get_timeout(GUARD).expect("a worker started")
}

/// Kills a worker and waits for its replacement to start; returns the new pid.
fn replace(pool: &Pool, victim: u32, started: &Queue<u32>) -> u32 {
    // SAFETY: kill(2) with a worker's pid, which stays reserved until the pool reaps it.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let new = next_pid(started);
    assert_ne!(new, victim);
    let pids: HashSet<u32> = pool.pids().into_iter().collect();
    assert!(pids.contains(&new) && !pids.contains(&victim), "{pids:?}");
    new
}

/// How long a task waits at the barrier for the other workers: long enough for any of them
/// to take its chunk; a worker that died (before the fix) lets the others go on after it.
const BARRIER_WAIT: Duration = Duration::from_secs(20);

/// Runs `task` once in each of the `n` workers: the barrier holds each worker until all have
/// taken one chunk, so no worker can take two. Returns the pids that ran it.
fn on_every_worker<F>(pool: &Pool, n: usize, task: F) -> Result<HashSet<u32>, PoolError>
where
    F: Fn(Barrier) -> u32 + Copy + Send + 'static,
{
    let barrier = Barrier::new(n as u32, Some(BARRIER_WAIT)).unwrap();
    let result = pool
        .chunksize(1)
        .map_async(task, (0..n).map(|_| barrier.clone()))?;
    Ok(result.get_timeout(GUARD)?.into_iter().collect())
}

/// Needs about 4 MiB of stack: more than a thread's default 2 MiB.
fn big_stack_task(barrier: Barrier) -> u32 {
    // A broken barrier (a worker died) is not this task's failure: the pids tell.
    let _ = barrier.wait(None);
    let buf = [7u8; 4 << 20];
    let buf = std::hint::black_box(buf);
    assert_eq!(buf[(4 << 20) - 1], 7);
    std::process::id()
}

/// The test's body runs on a thread with a large stack, as a program's main thread has: the
/// workers forked from it have that stack, and so must their replacements.
fn on_big_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(body)
        .unwrap()
        .join()
        .unwrap();
}

fn replacement_has_the_creators_stack(m: StartMethod) {
    on_big_stack(move || {
        let started = Queue::new().unwrap();
        let pool = pool_reporting_pids(m, 2, &started);
        let first: HashSet<u32> = [next_pid(&started), next_pid(&started)].into();
        assert_eq!(on_every_worker(&pool, 2, big_stack_task).unwrap(), first);
        let victim = *first.iter().next().unwrap();
        let new = replace(&pool, victim, &started);
        let now: HashSet<u32> = pool.pids().into_iter().collect();
        assert!(now.contains(&new));
        assert_eq!(
            on_every_worker(&pool, 2, big_stack_task).unwrap(),
            now,
            "the replacement runs the task as the first workers did"
        );
        let helper = pool.fork_helper_pid();
        assert_eq!(helper.is_some(), m == StartMethod::Fork);
        drop(pool);
        if let Some(helper) = helper {
            // Reaped, not a zombie: the pid no longer exists at all.
            // SAFETY: kill(2) with signal 0 only checks the pid.
            let gone = unsafe { libc::kill(helper as i32, 0) } == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            assert!(gone, "the fork helper {helper} is left behind");
        }
    });
}

static HELD: Mutex<u32> = Mutex::new(0);

fn lock_held_task(barrier: Barrier) -> u32 {
    let _ = barrier.wait(None);
    *HELD.lock().unwrap() += 1;
    std::process::id()
}

fn replacement_misses_locks_held_by_other_threads(m: StartMethod) {
    let started = Queue::new().unwrap();
    let pool = pool_reporting_pids(m, 2, &started);
    let first: HashSet<u32> = [next_pid(&started), next_pid(&started)].into();
    assert_eq!(on_every_worker(&pool, 2, lock_held_task).unwrap(), first);
    // Another thread holds the lock while a worker is replaced.
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let guard = HELD.lock().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        drop(guard);
    });
    held_rx.recv().unwrap();
    let victim = *first.iter().next().unwrap();
    let new = replace(&pool, victim, &started);
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let ran = on_every_worker(&pool, 2, lock_held_task)
        .expect("the replacement does not inherit the lock another thread held");
    assert!(ran.contains(&new));
}

/// How many workers the killed owner's pool has: several, since they share their owner's
/// lifeline, and a watch set on its shared open file description protected only the last one.
const OWNER_WORKERS: usize = 3;

/// Builds a pool with the owner's start method, reports the pids of its fork helper (0 if
/// none) and of its workers, and waits to be killed.
fn pool_owner(report: Queue<u32>) {
    let pool = Pool::builder()
        .processes(OWNER_WORKERS)
        .context(ctx(mp_spawn::get_start_method()))
        .build()
        .unwrap();
    report.put(pool.fork_helper_pid().unwrap_or(0)).unwrap();
    for pid in pool.pids() {
        report.put(pid).unwrap();
    }
    mp_spawn::testing::park_forever();
}

/// The owner of a pool is killed: its fork helper (under fork) and all its workers die too.
fn pool_dies_with_its_owner(m: StartMethod) {
    // Orphans come back to this process, to be reaped here rather than left to init.
    mp_spawn::testing::adopt_orphans();
    let report = Queue::new().unwrap();
    let mut owner = ctx(m).process(pool_owner, (report.clone(),));
    owner.start().unwrap();
    let helper = report.get_timeout(GUARD).unwrap();
    assert_eq!(helper != 0, m == StartMethod::Fork);
    let workers: Vec<u32> = (0..OWNER_WORKERS)
        .map(|_| report.get_timeout(GUARD).unwrap())
        .collect();
    owner.kill().unwrap();
    assert!(matches!(
        owner.join(),
        Err(mp_spawn::ProcessError::Killed { signal: 9 })
    ));
    if helper != 0 {
        wait_gone(helper);
    }
    for worker in workers {
        wait_gone(worker);
    }
}

mp_spawn::test_matrix!(
    replacement_has_the_creators_stack,
    replacement_misses_locks_held_by_other_threads,
    pool_dies_with_its_owner,
);

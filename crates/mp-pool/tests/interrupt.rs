//! Ctrl-C during `map`: the wait ends with `Interrupted`, the workers stop, nothing is printed
//! by them. Each case runs in a fresh copy of this test binary (an ignored helper test), in
//! its own process group, because SIGINT reaches every thread and pool of a process.

use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use mp_pool::{Pool, PoolError};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn report_pid(q: mp_ipc::Queue<u32>) {
    q.put(std::process::id()).unwrap();
}

fn method_from_env() -> StartMethod {
    match std::env::var("MP_TEST_METHOD").as_deref() {
        Ok("fork") => StartMethod::Fork,
        Ok("spawn") => StartMethod::Spawn,
        _ => StartMethod::Forkserver,
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The child: a map of long tasks, and Ctrl-C to the whole process group once they run.
#[test]
#[ignore = "helper: run by sigint_* tests in a fresh process"]
fn sigint_child() {
    // SAFETY: setpgid on ourselves: a group of our own, so that killpg reaches only us and
    // our workers, as the terminal's Ctrl-C reaches a foreground job.
    unsafe { libc::setpgid(0, 0) };
    let q = mp_ipc::Queue::<u32>::new().unwrap();
    let pool = Pool::builder()
        .processes(2)
        .initializer(report_pid, (q.clone(),))
        .context(ctx(method_from_env()))
        .build()
        .unwrap();
    let workers = [q.get().unwrap(), q.get().unwrap()];
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: SIGINT to our own process group.
        unsafe { libc::killpg(libc::getpgrp(), libc::SIGINT) };
    });
    let started = Instant::now();
    let result = pool.chunksize(1).map(sleep_ms, [60_000u64; 8]);
    let waited = started.elapsed();
    assert!(matches!(result, Err(PoolError::Interrupted)), "{result:?}");
    assert!(waited < Duration::from_secs(20), "took {waited:?}");
    // The pool is stopped, its workers gone.
    assert!(matches!(
        pool.apply(sleep_ms, (1,)),
        Err(PoolError::NotRunning)
    ));
    pool.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|&p| pid_alive(p)) {
        assert!(Instant::now() < deadline, "workers survived");
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("INTERRUPTED-OK {}", waited.as_millis());
}

/// The child: SIGINT with a pool alive but nobody waiting ends the program, as usual.
#[test]
#[ignore = "helper: run by sigint_* tests in a fresh process"]
fn sigint_idle_child() {
    let _pool = Pool::builder()
        .processes(1)
        .context(ctx(method_from_env()))
        .build()
        .unwrap();
    // SAFETY: SIGINT to ourselves.
    unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
    std::thread::sleep(Duration::from_secs(30));
    println!("SURVIVED");
}

fn run_child(test: &str, method: StartMethod) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MP_TEST_METHOD", method.name())
        .output()
        .unwrap()
}

fn sigint_interrupts_map(m: StartMethod) {
    let out = run_child("sigint_child", m);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("INTERRUPTED-OK"), "{stdout}\n{stderr}");
    // No worker printed anything: no panic, no "Process ...:" line, no traceback.
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Process "),
        "{stderr}"
    );
}

fn sigint_without_waiter_ends_the_program(m: StartMethod) {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("sigint_idle_child", m);
    assert_eq!(out.status.signal(), Some(libc::SIGINT), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SURVIVED"));
}

mp_spawn::test_matrix!(
    sigint_interrupts_map,
    sigint_without_waiter_ends_the_program,
    sigint_to_a_child_leaves_its_pool_owning_parent,
    sigint_to_a_child_with_its_own_pool_reaches_only_it,
);

// Issue #24 item 4: a child (a fork-method one above all) of a process that owns a pool does
// not share the parent's SIGINT handler, nor the descriptor number it wrote to.

/// A bound on the waits below, for failures only.
const LONG: Duration = Duration::from_secs(30);

/// The child: says it runs, then waits for its SIGINT.
fn wait_for_sigint(running: mp_ipc::Connection) {
    running.send(&()).unwrap();
    mp_spawn::testing::park_forever();
}

/// Joins a child that SIGINT should end; one that outlives [`LONG`] is killed and reported.
fn join_interrupted(child: &mut mp_spawn::Process<()>) {
    let ended = child.join_timeout(LONG);
    if matches!(ended, Ok(None)) {
        child.kill().unwrap();
        let _ = child.join();
        panic!("the child outlived its SIGINT");
    }
    assert!(
        matches!(
            ended,
            Err(mp_spawn::ProcessError::Killed {
                signal: libc::SIGINT
            })
        ),
        "{ended:?}"
    );
}

/// The parent: owns a pool (so its SIGINT handler is installed), and interrupts a child.
#[test]
#[ignore = "helper: run by sigint_* tests in a fresh process"]
fn sigint_to_child_parent() {
    let m = method_from_env();
    let pool = Pool::builder()
        .processes(1)
        .context(ctx(m))
        .build()
        .unwrap();
    let (running, theirs) = mp_ipc::pipe(false).unwrap();
    let mut child = ctx(m).process(wait_for_sigint, (theirs,));
    // A daemon: should SIGINT kill this process instead, the child goes with it, and the
    // test sees the failure instead of waiting on the child's copy of our stdout.
    child.set_daemon(true).unwrap();
    child.start().unwrap();
    running.recv::<()>().unwrap();
    child.interrupt().unwrap();
    join_interrupted(&mut child);
    // The parent lived through it, with its pool.
    assert_eq!(pool.apply(sleep_ms, (1,)).unwrap(), 1);
    println!("PARENT-LIVES");
}

/// The child: makes a pool of its own, then unrelated sockets (they take the lowest free
/// numbers, where a number that its SIGINT handler was once given and lost would be), then
/// takes a SIGINT on this thread (the handler runs before `raise` returns).
fn own_pool_then_sigint() {
    let _pool = Pool::builder()
        .processes(1)
        .context(ctx(method_from_env()))
        .build()
        .unwrap();
    let pairs: Vec<_> = (0..32)
        .map(|_| mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap())
        .collect();
    // SAFETY: raise only sends SIGINT to this thread.
    unsafe { libc::raise(libc::SIGINT) };
    let ends: Vec<_> = pairs
        .iter()
        .flat_map(|(a, b)| [a.as_fd(), b.as_fd()])
        .collect();
    let readable = mp_sys::poll::readable(&ends, Some(Duration::ZERO)).unwrap();
    if readable.contains(&true) {
        // The handler wrote into a socket that is not its own.
        mp_sys::process::exit_now(3);
    }
    // The pool's watcher ends this process with SIGINT (nobody waits on the pool): wait for
    // that on a descriptor that never becomes ready, `LONG` being only the failure bound.
    let (never, _writer) = mp_sys::fd::pipe().unwrap();
    let _ = mp_sys::poll::readable(&[never.as_fd()], Some(LONG));
    mp_sys::process::exit_now(4);
}

/// The parent of [`own_pool_then_sigint`]: owns a pool too.
#[test]
#[ignore = "helper: run by sigint_* tests in a fresh process"]
fn sigint_to_child_with_own_pool_parent() {
    let m = method_from_env();
    let _pool = Pool::builder()
        .processes(1)
        .context(ctx(m))
        .build()
        .unwrap();
    let mut child = ctx(m).process(own_pool_then_sigint, ());
    child.set_daemon(true).unwrap();
    child.start().unwrap();
    join_interrupted(&mut child);
    println!("PARENT-LIVES");
}

fn assert_parent_lives(test: &str, m: StartMethod) {
    let out = run_child(test, m);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("PARENT-LIVES"), "{stdout}\n{stderr}");
}

fn sigint_to_a_child_leaves_its_pool_owning_parent(m: StartMethod) {
    assert_parent_lives("sigint_to_child_parent", m);
}

fn sigint_to_a_child_with_its_own_pool_reaches_only_it(m: StartMethod) {
    assert_parent_lives("sigint_to_child_with_own_pool_parent", m);
}

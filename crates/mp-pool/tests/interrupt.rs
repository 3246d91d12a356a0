//! Ctrl-C during `map`: the wait ends with `Interrupted`, the workers stop, nothing is printed
//! by them. Each case runs in a fresh copy of this test binary (an ignored helper test), in
//! its own process group, because SIGINT reaches every thread and pool of a process.

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
    sigint_without_waiter_ends_the_program
);

//! Forks while other threads hammer mp's registries and std's stdout and stderr: no child may
//! hang on a lock that a thread it does not have held at the fork (issue: 8 of 300 forked
//! children hung with three threads printing). Under every start method, though only fork
//! copies a multi-threaded parent.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

const CHILDREN: usize = 200;

/// What a child does with the locks its parent's other threads hammer.
fn child() -> u32 {
    let _ = std::io::stdout().lock().write_all(b"");
    let _ = std::io::stderr().lock().write_all(b"");
    let _ = mp_spawn::current_process();
    let _ = mp_spawn::active_children();
    let _ = mp_spawn::parent_process();
    7
}

fn hammer(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        // Direct locks: the test harness's capture of `print!` is not what a child takes.
        let _ = std::io::stdout().lock().write_all(b"");
        let _ = std::io::stderr().lock().write_all(b"");
        let _ = mp_spawn::current_process();
        let _ = mp_spawn::active_children();
        let _ = mp_spawn::parent_process();
        let _ = mp_spawn::get_start_method();
        let _ = mp_spawn::resources::inherited("no such key");
    }
}

fn no_child_hangs_while_threads_hammer(m: StartMethod) {
    mp_spawn::set_fork_warning(false);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || hammer(stop))
        })
        .collect();
    let mut hung = 0;
    for _ in 0..CHILDREN {
        let mut p = ctx(m).process(child, ());
        p.start().unwrap();
        // A hang guard, not a timing assertion: a healthy child ends in milliseconds.
        match p.join_timeout(Duration::from_secs(60)).unwrap() {
            Some(v) => assert_eq!(v, 7),
            None => {
                hung += 1;
                p.kill().unwrap();
                let _ = p.join();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(hung, 0, "{hung} of {CHILDREN} children hung");
}

mp_spawn::test_matrix!(no_child_hangs_while_threads_hammer);

fn nothing() {}

/// Runs in a fresh copy of this binary (see below): forks twice beside a parked thread.
#[test]
fn warn_case() {
    let Some(mode) = std::env::var_os("MP_FORK_WARN_CASE") else {
        return;
    };
    if mode == "silenced" {
        mp_spawn::set_fork_warning(false);
    }
    let _parked = std::thread::spawn(std::thread::park);
    for _ in 0..2 {
        let mut p = ctx(StartMethod::Fork).process(nothing, ());
        p.start().unwrap();
        p.join().unwrap();
    }
    let mut p = ctx(StartMethod::Forkserver).process(nothing, ());
    p.start().unwrap();
    p.join().unwrap();
}

/// Python 3.12's DeprecationWarning, once per process: a fork with other threads alive says
/// so on stderr, and `set_fork_warning(false)` silences it.
#[test]
fn fork_with_threads_warns_once() {
    for (mode, expected) in [("warn", 1), ("silenced", 0)] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "warn_case", "--nocapture", "--test-threads=1"])
            .env("MP_FORK_WARN_CASE", mode)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("mp: warning: this process runs").count(),
            expected,
            "{mode}: {stderr}"
        );
    }
}

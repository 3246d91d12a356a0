//! `cargo xtask stress [--runs N] [--hogs N]`: the README's test command, N times in a row (3 by
//! default), while N CPU-bound processes (2 by default) spin beside it, as on a loaded CI
//! machine. Every run must pass, and leave no new /dev/shm entry behind.
//!
//! The tests wait on events, never on sleeps or on who runs first: this is how that is checked.

use std::collections::BTreeSet;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Instant;

use crate::root;

/// Spins forever (the hog's body, run as `xtask hog`).
pub(crate) fn hog() -> ExitCode {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// The hogs, killed and reaped when dropped (also when a run fails).
struct Hogs(Vec<Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

fn shm_entries() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn stress(runs: usize, hogs: usize) -> ExitCode {
    let root = root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("== building the tests");
    let built = Command::new(&cargo)
        .current_dir(&root)
        .args(["test", "--workspace", "--no-run"])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("the tests do not build");
        return ExitCode::FAILURE;
    }
    let exe = std::env::current_exe().expect("the xtask knows its own path");
    let spawned: Result<Vec<Child>, _> = (0..hogs)
        .map(|_| {
            Command::new(&exe)
                .arg("hog")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
        })
        .collect();
    let _hogs = match spawned {
        Ok(children) => Hogs(children),
        Err(e) => {
            eprintln!("cannot start the CPU hogs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = 0;
    for run in 1..=runs {
        let before = shm_entries();
        let started = Instant::now();
        println!("== run {run}/{runs}: cargo test --workspace, beside {hogs} CPU hogs");
        let passed = Command::new(&cargo)
            .current_dir(&root)
            .args(["test", "--workspace"])
            .status()
            .is_ok_and(|s| s.success());
        let leaked: Vec<_> = shm_entries().difference(&before).cloned().collect();
        let secs = started.elapsed().as_secs_f64();
        match (passed, leaked.is_empty()) {
            (true, true) => println!("== run {run}/{runs}: passed in {secs:.0} s"),
            (true, false) => {
                failed += 1;
                println!(
                    "== run {run}/{runs}: passed in {secs:.0} s but left /dev/shm entries: {leaked:?}"
                );
            }
            (false, _) => {
                failed += 1;
                println!("== run {run}/{runs}: FAILED after {secs:.0} s");
            }
        }
    }
    println!("stress: {} passed, {failed} failed", runs - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! Start+join of a trivial target per start method, beside the Rust peer (procspawn's
//! `spawn` + `join`, which re-executes the binary as our spawn does) and the OS baselines
//! measured in the same run: a bare `fork` + `_exit` + `waitpid`, and a bare fork+exec of this
//! same binary.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};

mod common;
use common::tune;

/// argv[1] that makes this binary exit at once (the fork+exec baseline).
const BARE_EXIT: &str = "--bare-exit";

fn trivial(x: u64) -> u64 {
    x + 1
}

fn start_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("start_join");
    tune(&mut group, 40, 4);
    for method in ["fork", "spawn", "forkserver"] {
        let ctx = mp::get_context(method).expect("a known method");
        group.bench_function(method, |b| {
            b.iter(|| {
                let mut p = ctx.process(trivial, (black_box(1),));
                p.start().expect("start");
                assert_eq!(p.join().expect("join"), 2);
            })
        });
    }
    group.bench_function("bare_fork_waitpid", |b| {
        b.iter(|| {
            // SAFETY: the child only calls _exit, which is async-signal-safe.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: _exit never returns and is safe in a forked child.
                unsafe { libc::_exit(0) };
            }
            let mut status = 0;
            // SAFETY: waits for the child just created; `status` is valid for writes.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        })
    });
    group.bench_function("procspawn", |b| {
        b.iter(|| {
            let child = procspawn::spawn(black_box(1u64), trivial);
            assert_eq!(child.join().expect("join"), 2);
        })
    });
    group.bench_function("bare_fork_exec_self", |b| {
        b.iter(|| {
            let status = std::process::Command::new("/proc/self/exe")
                .arg(BARE_EXIT)
                .status()
                .expect("spawn self");
            assert!(status.success());
        })
    });
    group.finish();
}

criterion_group!(benches, start_join);

fn main() {
    if std::env::args().nth(1).as_deref() == Some(BARE_EXIT) {
        return;
    }
    // procspawn re-executes this binary for its children and catches them here.
    procspawn::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

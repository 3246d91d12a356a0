//! Helpers for the test suites of the mp crates (hidden from the docs).

use crate::{Context, StartMethod, get_context};

/// Runs each named test body `fn(StartMethod)` once per start method, as CPython's suite does:
/// it makes the modules `fork`, `spawn` and `forkserver` with one `#[test]` each.
#[macro_export]
macro_rules! test_matrix {
    ($($name:ident),* $(,)?) => {
        mod fork { $( #[test] fn $name() { super::$name($crate::StartMethod::Fork) } )* }
        mod spawn { $( #[test] fn $name() { super::$name($crate::StartMethod::Spawn) } )* }
        mod forkserver { $( #[test] fn $name() { super::$name($crate::StartMethod::Forkserver) } )* }
    };
}

/// The context of a start method.
pub fn ctx(method: StartMethod) -> Context {
    get_context(method.name()).expect("every start method exists on Linux")
}

/// A target that never returns (to be killed).
pub fn park_forever() {
    loop {
        std::thread::park();
    }
}

/// Waits for `pid` to end, whoever its parent is (its pidfd turns readable; a hang guard of
/// 60 s panics), then reaps it if it is this process's child (a child subreaper's orphans
/// included). A pid that is already gone returns at once.
pub fn wait_gone(pid: u32) {
    if let Ok(pidfd) = mp_sys::pidfd::open(pid) {
        wait_pidfd(std::os::fd::AsFd::as_fd(&pidfd));
    }
    mp_sys::process::reap_pid(pid);
}

/// Waits until the process behind `pidfd` has ended (it turns readable; a hang guard of 60 s
/// panics). For a pid that may be reused meanwhile: open its pidfd while it surely lives.
pub fn wait_pidfd(pidfd: std::os::fd::BorrowedFd<'_>) {
    let ended = mp_sys::poll::readable(&[pidfd], Some(std::time::Duration::from_secs(60)));
    assert!(ended.is_ok_and(|r| r[0]), "still alive after 60 s");
}

/// Makes this process a child subreaper, so that the orphans of a test that kills a process
/// (its server, its helpers) come back here and are reaped by pid rather than left to init.
/// Idempotent; other tests' orphans then reach init only when this process ends.
pub fn adopt_orphans() {
    mp_sys::process::become_subreaper().expect("PR_SET_CHILD_SUBREAPER");
}

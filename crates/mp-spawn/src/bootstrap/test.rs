//! A spawned child that is handed a bad bootstrap reports a typed failure and exits with 1:
//! it never jumps to an address it cannot trust.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::{Bootstrap, MAGIC, Outcome, SPAWN_MARK};
use crate::popen_spawn::spawn_with_channel;
use crate::{channel, sys};

fn noop() {}

/// Spawns a child, hands it `send` to write on its channel, and returns (its outcome, its exit
/// code).
fn run_with(send: impl FnOnce(BorrowedFd<'_>)) -> (Option<Outcome>, i32) {
    let (ours, theirs) = sys::socketpair().unwrap();
    let pid = spawn_with_channel(SPAWN_MARK, &theirs).unwrap();
    drop(theirs);
    let pidfd = sys::pidfd_open(pid).unwrap();
    send(ours.as_fd());
    let outcome = channel::recv(ours.as_fd(), channel::LIMIT)
        .ok()
        .and_then(|(p, _)| postcard::from_bytes(&p).ok());
    sys::poll_readable(&[pidfd.as_fd()], Some(Duration::from_secs(60))).unwrap();
    (outcome, sys::reap_pidfd(pidfd.as_fd()).unwrap().unwrap())
}

/// Sends `payload` as a well-formed frame with `fds` (a child that is gone is no error here).
fn frame<'a>(payload: &'a [u8], fds: &'a [BorrowedFd<'a>]) -> impl FnOnce(BorrowedFd<'_>) + 'a {
    move |sock| {
        let _ = channel::send(sock, payload, fds);
    }
}

fn bootstrap(exe: (u64, u64), magic: u64) -> Vec<u8> {
    let boot = Bootstrap {
        magic,
        exe,
        entry: super::hook_offset(noop),
        name: "tampered".into(),
        identity: vec![1],
        daemon: false,
        parent_name: "MainProcess".into(),
        parent_pid: sys::getpid(),
        shared: Vec::new(),
        args: Vec::new(),
    };
    postcard::to_stdvec(&boot).unwrap()
}

#[test]
fn another_executable_is_refused() {
    let lifeline = sys::pipe().unwrap();
    let boot = bootstrap((1, 2), MAGIC);
    let (outcome, code) = run_with(frame(&boot, &[lifeline.0.as_fd()]));
    match outcome {
        Some(Outcome::Failed(message)) => {
            assert!(message.contains("different executable"), "{message}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(code, 1);
}

#[test]
fn a_bad_magic_is_refused() {
    let lifeline = sys::pipe().unwrap();
    let exe = super::exe_identity().unwrap();
    let boot = bootstrap(exe, MAGIC ^ 1);
    let (outcome, code) = run_with(frame(&boot, &[lifeline.0.as_fd()]));
    assert!(matches!(outcome, Some(Outcome::Failed(m)) if m.contains("bad magic")));
    assert_eq!(code, 1);
}

#[test]
fn garbage_is_refused() {
    let (outcome, code) = run_with(frame(b"\xff\xff\xff\xff garbage", &[]));
    assert!(matches!(outcome, Some(Outcome::Failed(m)) if m.contains("malformed")));
    assert_eq!(code, 1);
    // Not even a frame: the child gives up without running anything.
    let (outcome, code) = run_with(|sock| {
        let _ = sys::write_all(sock, b"not a frame at all");
    });
    assert!(outcome.is_none());
    assert_eq!(code, 1);
}

#[test]
fn a_missing_lifeline_is_refused() {
    let exe = super::exe_identity().unwrap();
    let boot = bootstrap(exe, MAGIC);
    let (outcome, code) = run_with(frame(&boot, &[]));
    assert!(matches!(outcome, Some(Outcome::Failed(m)) if m.contains("lifeline")));
    assert_eq!(code, 1);
}

//! A target that overflows its stack ends the same way under every start method: Rust's
//! message on stderr (after `Process <name>:`), SIGABRT, and `ProcessError::StackOverflow`.
//! Any other fault still kills the child with its own signal.

#[allow(dead_code)] // park_forever is for the other suites
use crate::common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use common::pipe;
use mp_spawn::reduction::Fd;
use mp_spawn::testing::ctx;
use mp_spawn::{ProcessError, StartMethod};

mp_spawn::test_matrix!(
    stack_overflow_is_reported,
    stack_overflow_in_a_grandchild_is_reported,
    null_pointer_write_is_still_sigsegv,
    sent_sigsegv_is_not_a_fault,
);

/// Recurses without end; `black_box` keeps it a real recursion with a real frame.
#[allow(unconditional_recursion)] // the point of the test
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    recurse(std::hint::black_box(depth + 1)).wrapping_add(frame[depth as usize % 16])
}

/// Points this process's stderr at `stderr`, then overflows the stack.
fn overflow_with_stderr_to(stderr: Fd) -> u64 {
    let stderr = stderr.into_inner();
    // SAFETY: dup2 of a descriptor we own onto fd 2; std's stderr keeps using fd 2.
    assert_eq!(unsafe { libc::dup2(stderr.as_raw_fd(), 2) }, 2);
    drop(stderr);
    recurse(0)
}

/// Reads what the child wrote to its stderr: until the last line of the message, or the end.
fn read_message(mut reader: std::fs::File) -> String {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&text).contains("stack overflow, aborting\n") {
        match reader.read(&mut buf).unwrap() {
            0 => break,
            n => text.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn stack_overflow_is_reported(m: StartMethod) {
    let (reader, writer) = pipe();
    let mut p = ctx(m).process(overflow_with_stderr_to, (Fd::from(OwnedFd::from(writer)),));
    p.set_name("Deep");
    p.start().unwrap();
    let err = p.join().unwrap_err();
    assert!(
        matches!(err, ProcessError::StackOverflow),
        "{m}: expected a stack overflow, got {err:?}"
    );
    assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGABRT));
    let text = read_message(reader);
    assert!(text.contains("Process Deep:\n"), "{m}: {text:?}");
    assert!(text.contains("has overflowed its stack\n"), "{m}: {text:?}");
    assert!(
        text.contains("fatal runtime error: stack overflow, aborting\n"),
        "{m}: {text:?}"
    );
}

/// A child of a fork helper (what a fork-method pool's workers are) is guarded too.
#[test]
fn stack_overflow_in_a_fork_helper_child_is_reported() {
    let server = mp_spawn::ForkServer::start().unwrap();
    let (reader, writer) = pipe();
    let mut p = server
        .process(overflow_with_stderr_to, (Fd::from(OwnedFd::from(writer)),))
        .with_name("Helped");
    p.start().unwrap();
    let err = p.join().unwrap_err();
    assert!(matches!(err, ProcessError::StackOverflow), "{err:?}");
    assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGABRT));
    let text = read_message(reader);
    assert!(text.contains("Process Helped:\n"), "{text:?}");
    assert!(text.contains("has overflowed its stack\n"), "{text:?}");
}

/// A child's own child (started with the same method) is guarded too, with its own stack
/// and its own result channel.
fn start_overflowing_child(method: String, stderr: Fd) -> (String, Option<i32>) {
    let m = mp_spawn::get_context(&method).unwrap();
    let mut p = m.process(overflow_with_stderr_to, (stderr,));
    p.start().unwrap();
    let err = p.join().unwrap_err();
    (format!("{err:?}"), p.exitcode().unwrap())
}

fn stack_overflow_in_a_grandchild_is_reported(m: StartMethod) {
    let (reader, writer) = pipe();
    let mut p = ctx(m).process(
        start_overflowing_child,
        (m.name().to_owned(), Fd::from(OwnedFd::from(writer))),
    );
    p.start().unwrap();
    let (err, code) = p.join().unwrap();
    assert_eq!(err, "StackOverflow", "{m}");
    assert_eq!(code, Some(-libc::SIGABRT), "{m}");
    let text = read_message(reader);
    assert!(text.contains("has overflowed its stack\n"), "{m}: {text:?}");
}

fn write_through_null() {
    // SAFETY: none: this is the fault under test; the child dies of SIGSEGV before anything
    // can observe the write.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) }
}

fn null_pointer_write_is_still_sigsegv(m: StartMethod) {
    let mut p = ctx(m).process(write_through_null, ());
    p.start().unwrap();
    let err = p.join().unwrap_err();
    assert!(
        matches!(err, ProcessError::Killed { signal } if signal == libc::SIGSEGV),
        "{m}: {err:?}"
    );
    assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGSEGV));
}

fn raise_sigsegv() {
    // SAFETY: raise has no memory preconditions; the signal is the test.
    unsafe { libc::raise(libc::SIGSEGV) };
}

/// A SIGSEGV sent by a process (here the child itself) is not a fault: it never counts as an
/// overflow, and without a handler before the guard's (spawn, forkserver) it still kills.
/// Under fork std's handler came first: it resets the action and returns, as without mp.
fn sent_sigsegv_is_not_a_fault(m: StartMethod) {
    let mut p = ctx(m).process(raise_sigsegv, ());
    p.start().unwrap();
    match (m, p.join()) {
        (StartMethod::Fork, Ok(())) => {}
        (_, Err(ProcessError::Killed { signal })) if signal == libc::SIGSEGV => {
            assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGSEGV));
        }
        (_, other) => panic!("{m}: {other:?}"),
    }
}

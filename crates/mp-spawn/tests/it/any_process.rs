//! `AnyProcess`: processes of different return types in one list, as Python's list of
//! processes, under all three start methods.

use crate::common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{park_forever, pipe};
use mp_spawn::reduction::Fd;
use mp_spawn::testing::ctx;
use mp_spawn::{AnyProcess, Process, ProcessError, StartMethod};

mp_spawn::test_matrix!(
    a_list_of_different_return_types,
    terminate_and_kill_through_the_erased_handle,
    failures_and_misuse_through_the_erased_handle,
    names_daemon_and_sentinel,
    downcast_gives_the_typed_process_back,
);

fn square(n: u64) -> u64 {
    n * n
}

fn greet(name: String) -> String {
    format!("hello {name}")
}

fn nothing() {}

// Not `std::process::exit`: in a child forked from a multi-threaded test process, std's exit
// cleanup takes a std-internal lock that another thread may have held at the fork (a thread
// starting or ending then), and the child hangs. `_exit` is what Python's children use too.
fn exit_with(code: i32) -> Vec<u8> {
    mp_sys::process::exit_now(code)
}

fn boom() -> (u8, u8) {
    panic!("boom")
}

/// Writes one byte, so that the parent knows the child runs, then parks.
fn ready_then_park(ready: Fd) {
    std::fs::File::from(ready.into_inner())
        .write_all(b"r")
        .unwrap();
    park_forever()
}

/// A `Vec` of processes of five return types, started and joined in a loop, with their exit
/// codes checked (Python's `procs = [Process(...) for ...]; for p in procs: p.start()` ...).
fn a_list_of_different_return_types(m: StartMethod) {
    let c = ctx(m);
    let mut procs: Vec<AnyProcess> = vec![
        c.process(square, (7,)).erase(),
        c.process(greet, ("bob".to_string(),)).into(),
        c.process(nothing, ()).erase(),
        c.process(exit_with, (3,)).erase(),
        c.process(boom, ()).erase(),
    ];
    for p in &procs {
        assert_eq!(p.pid(), None);
        assert!(!p.is_alive().unwrap());
        assert_eq!(p.exitcode().unwrap(), None);
    }
    for p in &mut procs {
        p.start().unwrap();
        assert!(p.pid().is_some());
    }
    let results: Vec<Result<(), ProcessError>> = procs.iter_mut().map(|p| p.join()).collect();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert!(
        matches!(results[3], Err(ProcessError::Exited { code: 3 })),
        "{:?}",
        results[3]
    );
    assert!(
        matches!(&results[4], Err(ProcessError::Panicked { message }) if message.ends_with("boom")),
        "{:?}",
        results[4]
    );
    let codes: Vec<_> = procs.iter().map(|p| p.exitcode().unwrap()).collect();
    assert_eq!(codes, [Some(0), Some(0), Some(0), Some(3), Some(1)]);
    // Python's `for p in procs: p.join()` once more: at once, the same results.
    let again: Vec<Result<(), ProcessError>> = procs.iter_mut().map(|p| p.join()).collect();
    assert_eq!(format!("{again:?}"), format!("{results:?}"));
    for p in &mut procs {
        assert!(!p.is_alive().unwrap());
        p.close().unwrap();
    }
}

fn terminate_and_kill_through_the_erased_handle(m: StartMethod) {
    let c = ctx(m);
    let (mut r1, w1) = pipe();
    let (mut r2, w2) = pipe();
    let mut procs: Vec<AnyProcess> = vec![
        c.process(ready_then_park, (Fd::from(OwnedFd::from(w1)),))
            .erase(),
        c.process(ready_then_park, (Fd::from(OwnedFd::from(w2)),))
            .erase(),
        c.process(square, (2,)).erase(),
    ];
    for p in &mut procs {
        p.start().unwrap();
    }
    // Wait until both parked children run: a signal before that would hit the start-up code.
    let mut byte = [0u8];
    r1.read_exact(&mut byte).unwrap();
    r2.read_exact(&mut byte).unwrap();
    assert!(procs[0].is_alive().unwrap());
    assert_eq!(
        procs[0].join_timeout(Duration::from_millis(10)).unwrap(),
        None
    );
    // A live process cannot be closed.
    assert!(matches!(procs[0].close(), Err(ProcessError::StillRunning)));
    procs[0].terminate().unwrap();
    procs[1].kill().unwrap();
    assert!(matches!(
        procs[0].join(),
        Err(ProcessError::Killed { signal: 15 })
    ));
    assert!(matches!(
        procs[1].join_timeout(Duration::from_secs(60)),
        Err(ProcessError::Killed { signal: 9 })
    ));
    assert_eq!(
        procs[2].join_timeout(Duration::from_secs(60)).unwrap(),
        Some(())
    );
    let codes: Vec<_> = procs.iter().map(|p| p.exitcode().unwrap()).collect();
    assert_eq!(codes, [Some(-15), Some(-9), Some(0)]);
}

fn failures_and_misuse_through_the_erased_handle(m: StartMethod) {
    let mut p = ctx(m).process(square, (5,)).erase();
    assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
    assert!(matches!(p.terminate(), Err(ProcessError::NotStarted)));
    assert!(matches!(p.sentinel(), Err(ProcessError::NotStarted)));
    p.start().unwrap();
    assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    assert!(matches!(
        p.set_daemon(true),
        Err(ProcessError::AlreadyStarted)
    ));
    p.join().unwrap();
    // No value is handed back, so none was taken: joined again, `Ok` again, as Python's.
    p.join().unwrap();
    p.wait().unwrap();
    assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), Some(()));
    p.close().unwrap();
    assert!(matches!(p.exitcode(), Err(ProcessError::Closed)));
    assert!(matches!(p.is_alive(), Err(ProcessError::Closed)));
}

fn names_daemon_and_sentinel(m: StartMethod) {
    let mut p: AnyProcess = ctx(m).process(greet, ("x".to_string(),)).into();
    assert!(p.name().starts_with("Process-"), "{}", p.name());
    p.set_name("worker");
    assert_eq!(p.name(), "worker");
    assert!(!p.daemon());
    p.set_daemon(true).unwrap();
    assert!(p.daemon());
    assert!(format!("{p:?}").contains("worker"), "{p:?}");
    p.start().unwrap();
    // The sentinel turns readable when the process ends.
    let ended = mp_sys::poll::readable(&[p.sentinel().unwrap()], Some(Duration::from_secs(60)));
    assert_eq!(ended.unwrap(), [true]);
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(0));
}

fn downcast_gives_the_typed_process_back(m: StartMethod) {
    let mut any = ctx(m).process(greet, ("ann".to_string(),)).erase();
    any.start().unwrap();
    // `wait` takes no value: the typed join below still gets it.
    any.wait().unwrap();
    assert!(any.is::<String>());
    assert!(!any.is::<u64>());
    let any = any.downcast::<u64>().unwrap_err();
    let mut p: Process<String> = any.downcast().unwrap();
    assert_eq!(p.join().unwrap(), "hello ann");
}

#[test]
fn an_erased_process_is_send() {
    fn send<T: Send>() {}
    send::<AnyProcess>();
}

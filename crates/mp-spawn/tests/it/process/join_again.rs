//! Joining a process that has ended, again and again (issue #27 item 6), under all three start
//! methods: as Python's `join`, it returns at once; the value goes to the first join only.

use std::time::{Duration, Instant};

use mp_spawn::{ProcessError, StartMethod};

use super::{boom, ctx, exit_with, park_forever, square};

matrix!(
    terminate_then_join_twice,
    kill_then_join_twice,
    a_unit_target_joins_any_number_of_times,
    a_value_goes_to_the_first_join_only,
    wait_leaves_the_value_for_join,
    a_failure_is_reported_to_every_join,
    join_timeout_after_the_end,
);

/// A join of a process that has ended: no waiting on the clock. Generous, for a loaded
/// machine; a join that waited for anything would hang instead.
const AT_ONCE: Duration = Duration::from_secs(1);

/// CPython's `_kill_process` (`test_terminate`, `test_kill`): `join(0)` of a running process
/// returns at once, a join after the signal returns, the process is no longer alive nor among
/// the active children, and a second `join()` returns too; the exit code is `-signal`.
fn kill_process(m: StartMethod, send: fn(&mp_spawn::Process<()>), signal: i32) {
    let mut p = ctx(m).process(park_forever, ()).with_daemon(true);
    p.start().unwrap();
    assert!(p.is_alive().unwrap());
    assert!(
        mp_spawn::active_children()
            .iter()
            .any(|c| Some(c.pid) == p.pid())
    );
    assert_eq!(p.exitcode().unwrap(), None);
    let started = Instant::now();
    assert!(p.join_timeout(Duration::ZERO).unwrap().is_none());
    assert!(started.elapsed() < AT_ONCE);
    assert!(p.is_alive().unwrap());
    send(&p);
    let joined = p.join();
    assert!(
        matches!(joined, Err(ProcessError::Killed { signal: s }) if s == signal),
        "{joined:?}"
    );
    assert!(!p.is_alive().unwrap());
    assert!(
        !mp_spawn::active_children()
            .iter()
            .any(|c| Some(c.pid) == p.pid())
    );
    let again = Instant::now();
    let joined = p.join();
    assert!(again.elapsed() < AT_ONCE);
    assert!(
        matches!(joined, Err(ProcessError::Killed { signal: s }) if s == signal),
        "{joined:?}"
    );
    assert_eq!(p.exitcode().unwrap(), Some(-signal));
}

fn terminate_then_join_twice(m: StartMethod) {
    kill_process(m, |p| p.terminate().unwrap(), libc::SIGTERM);
}

fn kill_then_join_twice(m: StartMethod) {
    kill_process(m, |p| p.kill().unwrap(), libc::SIGKILL);
}

fn nothing() {}

/// Python's `p.join(); p.join()`: a target that returns `()` joins with `Ok(())` every time.
fn a_unit_target_joins_any_number_of_times(m: StartMethod) {
    let mut p = ctx(m).process(nothing, ());
    p.start().unwrap();
    p.join().unwrap();
    let again = Instant::now();
    p.join().unwrap();
    p.join().unwrap();
    assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), Some(()));
    assert_eq!(p.join_timeout(Duration::from_secs(60)).unwrap(), Some(()));
    p.wait().unwrap();
    assert!(again.elapsed() < AT_ONCE);
    assert_eq!(p.exitcode().unwrap(), Some(0));
    assert!(!p.is_alive().unwrap());
}

/// A value is moved out by the first join; later joins say so, and `wait` still answers.
fn a_value_goes_to_the_first_join_only(m: StartMethod) {
    let mut p = ctx(m).process(square, (7,));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 49);
    assert!(matches!(p.join(), Err(ProcessError::AlreadyJoined)));
    assert!(matches!(
        p.join_timeout(Duration::ZERO),
        Err(ProcessError::AlreadyJoined)
    ));
    p.wait().unwrap();
    p.wait().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(0));
    // A first join through `join_timeout` takes it just the same.
    let mut q = ctx(m).process(square, (3,));
    q.start().unwrap();
    assert_eq!(q.join_timeout(Duration::from_secs(60)).unwrap(), Some(9));
    assert!(matches!(q.join(), Err(ProcessError::AlreadyJoined)));
}

fn wait_leaves_the_value_for_join(m: StartMethod) {
    let mut p = ctx(m).process(square, (5,));
    p.start().unwrap();
    p.wait().unwrap();
    p.wait().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(0));
    assert_eq!(p.join().unwrap(), 25);
    p.wait().unwrap();
}

/// A process that panicked or exited without a value gives the same error to every join and
/// every wait, as the first join got.
fn a_failure_is_reported_to_every_join(m: StartMethod) {
    let mut p = ctx(m).process(boom, ());
    p.start().unwrap();
    let Err(ProcessError::Panicked { message }) = p.join() else {
        panic!("expected a panic");
    };
    for _ in 0..2 {
        match p.join() {
            Err(ProcessError::Panicked { message: again }) => assert_eq!(again, message),
            other => panic!("expected the same panic, got {other:?}"),
        }
    }
    assert!(matches!(p.wait(), Err(ProcessError::Panicked { .. })));
    assert!(matches!(
        p.join_timeout(Duration::ZERO),
        Err(ProcessError::Panicked { .. })
    ));
    assert_eq!(p.exitcode().unwrap(), Some(1));

    let mut q = ctx(m).process(exit_with, (3,));
    q.start().unwrap();
    assert!(matches!(q.wait(), Err(ProcessError::Exited { code: 3 })));
    assert!(matches!(q.join(), Err(ProcessError::Exited { code: 3 })));
    assert!(matches!(q.join(), Err(ProcessError::Exited { code: 3 })));
    assert_eq!(q.exitcode().unwrap(), Some(3));
}

/// Timed joins: `Ok(None)` while it runs takes nothing; after the end they answer at once.
fn join_timeout_after_the_end(m: StartMethod) {
    let mut p = ctx(m).process(park_forever, ());
    p.start().unwrap();
    assert!(p.join_timeout(Duration::from_millis(20)).unwrap().is_none());
    p.kill().unwrap();
    assert!(matches!(
        p.join_timeout(Duration::from_secs(60)),
        Err(ProcessError::Killed { signal: 9 })
    ));
    let again = Instant::now();
    assert!(matches!(
        p.join_timeout(Duration::from_secs(60)),
        Err(ProcessError::Killed { signal: 9 })
    ));
    assert!(again.elapsed() < AT_ONCE);
    p.close().unwrap();
    assert!(matches!(p.join(), Err(ProcessError::Closed)));
    assert!(matches!(p.wait(), Err(ProcessError::Closed)));
}

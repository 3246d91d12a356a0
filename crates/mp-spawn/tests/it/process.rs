//! Every process behaviour under all three start methods (a matrix, as CPython's test suite).

use crate::common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use common::{park_forever, pipe};
use mp_spawn::reduction::Fd;
use mp_spawn::{Process, ProcessError, StartMethod, get_context};
use serde::{Deserialize, Serialize};

macro_rules! matrix {
    ($($name:ident),* $(,)?) => {
        mod fork { $( #[test] fn $name() { super::$name(mp_spawn::StartMethod::Fork) } )* }
        mod spawn { $( #[test] fn $name() { super::$name(mp_spawn::StartMethod::Spawn) } )* }
        mod forkserver { $( #[test] fn $name() { super::$name(mp_spawn::StartMethod::Forkserver) } )* }
    };
}

matrix!(
    returns_value,
    several_arguments_and_structs,
    panic_gives_exitcode_1,
    panic_message_has_location,
    explicit_exit_code,
    terminate_and_kill_exit_codes,
    join_timeout,
    hundred_short_lived_processes,
    misuse_is_a_typed_error,
    not_our_child,
    sentinel_turns_readable,
    closures,
    handles_travel_as_arguments,
    handles_travel_back,
    current_and_parent_process,
    daemon_flag_is_inherited,
    active_children_reaps,
    stdin_is_dev_null,
    large_arguments_and_results,
    join_waits_without_spinning,
    child_start_method_is_its_own,
);

/// Names: a process's own, its children's, and what `ps` shows.
#[path = "process/names.rs"]
mod names;

/// Joining an ended process again: at once, as Python's `join` (issue #27 item 6).
#[path = "process/join_again.rs"]
mod join_again;

/// Caps on memory and CPU time (`Limits`), and what a child that dies of one gives.
#[path = "process/limits.rs"]
mod limits;

fn ctx(method: StartMethod) -> mp_spawn::Context {
    get_context(method.name()).unwrap()
}

fn square(n: u64) -> u64 {
    n * n
}

fn returns_value(m: StartMethod) {
    let mut p = ctx(m).process(square, (7,));
    assert_eq!(p.exitcode().unwrap(), None);
    assert!(!p.is_alive().unwrap());
    assert_eq!(p.pid(), None);
    p.start().unwrap();
    assert!(p.pid().is_some());
    assert_eq!(p.join().unwrap(), 49);
    assert_eq!(p.exitcode().unwrap(), Some(0));
    assert!(!p.is_alive().unwrap());
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Job {
    label: String,
    values: Vec<i64>,
}

fn summarise(job: Job, factor: i64, suffix: String) -> (String, i64) {
    (job.label + &suffix, job.values.iter().sum::<i64>() * factor)
}

fn several_arguments_and_structs(m: StartMethod) {
    let job = Job {
        label: "첫 번째".into(),
        values: vec![1, 2, 3],
    };
    let mut p = ctx(m).process(summarise, (job, 10, "!".to_string()));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), ("첫 번째!".to_string(), 60));
}

fn boom() {
    panic!("boom in the child");
}

fn panic_gives_exitcode_1(m: StartMethod) {
    let mut p = ctx(m).process(boom, ());
    p.start().unwrap();
    match p.join() {
        Err(ProcessError::Panicked { message }) => {
            assert!(message.starts_with("panicked at "), "{message}");
            assert!(message.ends_with(":\nboom in the child"), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(p.exitcode().unwrap(), Some(1));
}

/// Panics with the line it panics at, so that the test can find it in the report.
fn boom_at_a_line() {
    panic!("boom at line {}", line!())
}

/// The child's panic report names where it panicked, as `PoolError::Panicked` does
/// (`panicked at file:line:col:` then the message, as Rust prints it).
fn panic_message_has_location(m: StartMethod) {
    let mut p = ctx(m).process(boom_at_a_line, ());
    p.start().unwrap();
    let Err(ProcessError::Panicked { message }) = p.join() else {
        panic!("expected a panic");
    };
    let line: u32 = message
        .rsplit("boom at line ")
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no line in {message:?}"));
    let at = format!("panicked at {}:{line}:", file!());
    assert!(
        message.starts_with(&at),
        "{message:?} should start with {at:?}"
    );
    assert!(
        message.ends_with(&format!(":\nboom at line {line}")),
        "{message:?}"
    );
    assert_eq!(p.exitcode().unwrap(), Some(1));
}

// Not `std::process::exit`: in a child forked from a multi-threaded test process, std's exit
// cleanup takes a std-internal lock that another thread may have held at the fork (a thread
// starting or ending then), and the child hangs. `_exit` is what Python's children use too.
fn exit_with(code: i32) -> u8 {
    mp_sys::process::exit_now(code)
}

fn exit_zero() {
    mp_sys::process::exit_now(0)
}

fn explicit_exit_code(m: StartMethod) {
    let mut p = ctx(m).process(exit_with, (3,));
    p.start().unwrap();
    assert!(matches!(p.join(), Err(ProcessError::Exited { code: 3 })));
    assert_eq!(p.exitcode().unwrap(), Some(3));
    // exit(0) without a value: fine when there is no value to hand back.
    let mut q = ctx(m).process(exit_zero, ());
    q.start().unwrap();
    q.join().unwrap();
    assert_eq!(q.exitcode().unwrap(), Some(0));
}

fn terminate_and_kill_exit_codes(m: StartMethod) {
    let mut p = ctx(m).process(park_forever, ());
    p.start().unwrap();
    p.terminate().unwrap();
    assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 15 })));
    assert_eq!(p.exitcode().unwrap(), Some(-15));
    p.terminate().unwrap(); // an ended process: no error

    let mut q = ctx(m).process(park_forever, ());
    q.start().unwrap();
    q.kill().unwrap();
    assert!(matches!(q.join(), Err(ProcessError::Killed { signal: 9 })));
    assert_eq!(q.exitcode().unwrap(), Some(-9));
}

fn join_timeout(m: StartMethod) {
    let mut p = ctx(m).process(park_forever, ());
    p.start().unwrap();
    assert!(p.join_timeout(Duration::from_millis(50)).unwrap().is_none());
    assert!(p.join_timeout(Duration::ZERO).unwrap().is_none());
    assert!(p.is_alive().unwrap());
    assert_eq!(p.exitcode().unwrap(), None);
    p.kill().unwrap();
    assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 9 })));
    let mut q = ctx(m).process(square, (3,));
    q.start().unwrap();
    assert_eq!(q.join_timeout(Duration::from_secs(60)).unwrap(), Some(9));
}

fn hundred_short_lived_processes(m: StartMethod) {
    let mut ps: Vec<_> = (0..100u64).map(|i| ctx(m).process(square, (i,))).collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for (i, p) in ps.iter_mut().enumerate() {
        assert_eq!(p.join().unwrap(), (i * i) as u64);
        assert_eq!(p.exitcode().unwrap(), Some(0));
    }
}

fn misuse_is_a_typed_error(m: StartMethod) {
    let mut p = ctx(m).process(park_forever, ());
    assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
    assert!(matches!(
        p.join_timeout(Duration::ZERO),
        Err(ProcessError::NotStarted)
    ));
    assert!(matches!(p.terminate(), Err(ProcessError::NotStarted)));
    assert!(matches!(p.sentinel(), Err(ProcessError::NotStarted)));
    p.start().unwrap();
    assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    assert!(matches!(
        p.set_daemon(true),
        Err(ProcessError::AlreadyStarted)
    ));
    assert!(matches!(p.close(), Err(ProcessError::StillRunning)));
    p.kill().unwrap();
    let _ = p.join();
    // Joined again: the same ending, as Python's `join` may be called again (join_again.rs).
    assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 9 })));
    p.close().unwrap();
    p.close().unwrap(); // twice is fine
    assert!(matches!(p.join(), Err(ProcessError::Closed)));
    assert!(matches!(p.is_alive(), Err(ProcessError::Closed)));
    assert!(matches!(p.exitcode(), Err(ProcessError::Closed)));
    assert!(matches!(p.start(), Err(ProcessError::Closed)));
    assert!(matches!(p.kill(), Err(ProcessError::Closed)));
    assert!(matches!(p.sentinel(), Err(ProcessError::Closed)));
    // Closing a process that never started is fine too.
    ctx(m).process(square, (1,)).close().unwrap();
}

fn not_our_child(m: StartMethod) {
    // A daemon: the parent drops it unjoined below, and exit terminates daemons (it would join
    // a non-daemon forever, as Python does).
    let mut p = ctx(m).process(park_forever, ()).with_daemon(true);
    p.start().unwrap();
    let pid = p.pid().unwrap() as i32;
    // A forked child holds a copy of `p`, but `p` is not its child.
    let mut checker = get_context("fork").unwrap().process_closure(move || {
        let verdicts = [
            format!("{:?}", p.join_timeout(Duration::ZERO).err()),
            format!("{:?}", p.is_alive().err()),
            format!("{:?}", p.kill().err()),
        ];
        std::mem::forget(p);
        verdicts.to_vec()
    });
    checker.start().unwrap();
    for verdict in checker.join().unwrap() {
        assert_eq!(verdict, "Some(NotOurChild)");
    }
    // SAFETY: kill with a pid and a signal; the registry reaps it at the next sweep or exit.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut fresh = ctx(m).process(square, (2,));
    fresh.start().unwrap();
    let mut starter = get_context("fork").unwrap().process_closure(move || {
        let mut unstarted = fresh;
        let r = format!("{:?}", unstarted.start().err());
        std::mem::forget(unstarted);
        r
    });
    starter.start().unwrap();
    assert_eq!(starter.join().unwrap(), "Some(AlreadyStarted)");
}

fn sentinel_turns_readable(m: StartMethod) {
    let mut p = ctx(m).process(park_forever, ());
    p.start().unwrap();
    let readable = |p: &Process<()>, ms: i32| {
        let mut pfd = libc::pollfd {
            fd: p.sentinel().unwrap().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) == 1 }
    };
    assert!(!readable(&p, 0));
    p.terminate().unwrap();
    assert!(readable(&p, 60_000));
    assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 15 })));
}

fn closures(m: StartMethod) {
    let captured = [3u64, 4, 5];
    let mut p = ctx(m).process_closure(move || captured.iter().map(|x| x * x).sum::<u64>());
    match m {
        StartMethod::Fork => {
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), 50);
        }
        _ => {
            assert!(
                matches!(p.start(), Err(ProcessError::ClosureNeedsFork { method }) if method == m)
            );
            assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
        }
    }
}

fn write_greeting(out: Fd, name: String) {
    let mut file = std::fs::File::from(out.into_inner());
    write!(file, "hello {name}").unwrap();
}

fn handles_travel_as_arguments(m: StartMethod) {
    let (mut reader, writer) = pipe();
    let mut p = ctx(m).process(
        write_greeting,
        (Fd::from(OwnedFd::from(writer)), "bob".to_string()),
    );
    p.start().unwrap();
    p.join().unwrap();
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello bob");
}

fn make_filled_pipe() -> Fd {
    let (reader, mut writer) = pipe();
    writer.write_all(b"from the child").unwrap();
    Fd::from(OwnedFd::from(reader))
}

fn handles_travel_back(m: StartMethod) {
    let mut p = ctx(m).process(make_filled_pipe, ());
    p.start().unwrap();
    let mut reader = std::fs::File::from(p.join().unwrap().into_inner());
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "from the child");
}

fn relatives() -> (u32, Option<(String, u32, bool)>, u32) {
    let me = mp_spawn::current_process();
    let parent = mp_spawn::parent_process().map(|p| (p.name.clone(), p.pid, p.is_alive()));
    (me.pid, parent, std::process::id())
}

fn current_and_parent_process(m: StartMethod) {
    assert!(mp_spawn::parent_process().is_none());
    let mut p = ctx(m).process(relatives, ());
    p.start().unwrap();
    let pid = p.pid().unwrap();
    let (child_pid, parent, os_pid) = p.join().unwrap();
    assert_eq!(child_pid, pid);
    assert_eq!(os_pid, pid);
    assert_eq!(
        parent,
        Some(("MainProcess".to_string(), std::process::id(), true))
    );
}

fn am_i_daemon() -> bool {
    mp_spawn::current_process().daemon
}

fn daemon_child_of_daemon(method: String) -> (bool, bool) {
    let mut p = get_context(&method).unwrap().process(am_i_daemon, ());
    p.start().unwrap();
    (mp_spawn::current_process().daemon, p.join().unwrap())
}

fn daemon_flag_is_inherited(m: StartMethod) {
    let mut p = ctx(m)
        .process(daemon_child_of_daemon, (m.name().to_string(),))
        .with_daemon(true);
    assert!(p.daemon());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), (true, true));
    let mut q = ctx(m).process(am_i_daemon, ());
    assert!(!q.daemon());
    q.start().unwrap();
    assert!(!q.join().unwrap());
}

fn active_children_reaps(m: StartMethod) {
    let mut p = ctx(m).process(park_forever, ());
    p.start().unwrap();
    let pid = p.pid().unwrap();
    assert!(
        mp_spawn::active_children()
            .iter()
            .any(|c| c.pid == pid && c.name == p.name())
    );
    p.kill().unwrap();
    // Wait on the sentinel, then the next listing must have reaped it.
    let mut pfd = libc::pollfd {
        fd: p.sentinel().unwrap().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 60_000) }, 1);
    assert!(!mp_spawn::active_children().iter().any(|c| c.pid == pid));
    drop(p);
    // A dropped, finished child is reaped too: no zombie.
    let mut q = ctx(m).process(square, (1,));
    q.start().unwrap();
    let qpid = q.pid().unwrap();
    let sentinel = q.sentinel().unwrap().try_clone_to_owned().unwrap();
    drop(q);
    let mut pfd = libc::pollfd {
        fd: sentinel.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 60_000) }, 1);
    assert!(!mp_spawn::active_children().iter().any(|c| c.pid == qpid));
    let status = std::fs::read_to_string(format!("/proc/{qpid}/status")).unwrap_or_default();
    assert!(!status.contains("zombie"), "{status}");
}

fn read_stdin() -> usize {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).unwrap()
}

fn stdin_is_dev_null(m: StartMethod) {
    let mut p = ctx(m).process(read_stdin, ());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn start_methods_and_contexts() {
    assert_eq!(
        mp_spawn::get_all_start_methods()[0],
        mp_spawn::get_start_method().name()
    );
    let mut all = mp_spawn::get_all_start_methods();
    all.sort();
    assert_eq!(all, ["fork", "forkserver", "spawn"]);
    assert!(matches!(
        get_context("thread"),
        Err(mp_spawn::ContextError::UnknownMethod(_))
    ));
    assert!(matches!(
        mp_spawn::set_start_method("nope", false),
        Err(mp_spawn::ContextError::UnknownMethod(_))
    ));
    assert_eq!(
        get_context("spawn").unwrap().start_method(),
        StartMethod::Spawn
    );
}

/// Setting the default (to what it already is, so that other tests are unaffected): a second
/// time is an error unless forced.
#[test]
fn set_start_method_twice() {
    mp_spawn::set_start_method("forkserver", false).unwrap();
    assert_eq!(
        mp_spawn::set_start_method("forkserver", false),
        Err(mp_spawn::ContextError::AlreadySet)
    );
    mp_spawn::set_start_method("forkserver", true).unwrap();
    assert_eq!(mp_spawn::get_start_method(), StartMethod::Forkserver);
}

fn print_without_newline() {
    // `write!` rather than `print!`: under the test harness `print!` in a forked child goes to
    // the harness's in-memory capture, inherited from the test thread.
    std::io::stdout().write_all(b"no newline, ").unwrap();
    std::io::stderr().write_all(b"stderr too; ").unwrap();
}

/// A child's unflushed output is flushed when it ends, under every method.
#[test]
fn output_is_flushed_at_the_end() {
    let (mut reader, writer) = pipe();
    let mut p = get_context("fork").unwrap().process_closure(move || {
        // SAFETY: dup2 of a valid fd onto stdout and stderr, in this child only.
        unsafe {
            libc::dup2(writer.as_raw_fd(), 1);
            libc::dup2(writer.as_raw_fd(), 2);
        }
        drop(writer);
        for method in ["fork", "spawn", "forkserver"] {
            let mut inner = get_context(method)
                .unwrap()
                .process(print_without_newline, ());
            inner.start().unwrap();
            inner.join().unwrap();
        }
    });
    p.start().unwrap();
    p.join().unwrap();
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text.matches("no newline, ").count(), 3, "{text}");
    assert_eq!(text.matches("stderr too; ").count(), 3, "{text}");
}

#[test]
fn contexts_side_by_side() {
    let mut ps: Vec<_> = ["fork", "spawn", "forkserver", "spawn", "fork"]
        .iter()
        .enumerate()
        .map(|(i, m)| get_context(m).unwrap().process(square, (i as u64,)))
        .collect();
    ps.iter_mut().for_each(|p| p.start().unwrap());
    let got: Vec<u64> = ps.iter_mut().map(|p| p.join().unwrap()).collect();
    assert_eq!(got, [0, 1, 4, 9, 16]);
}

#[test]
fn cpu_counts() {
    let online = mp_spawn::cpu_count();
    let usable = mp_spawn::process_cpu_count();
    assert!(
        online >= 1 && usable >= 1 && usable <= online,
        "{online} {usable}"
    );
}

static PRELOADED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn preload() {
    PRELOADED.store(42, std::sync::atomic::Ordering::SeqCst);
}

fn read_preloaded() -> u32 {
    PRELOADED.load(std::sync::atomic::Ordering::SeqCst)
}

fn forkserver_pid_in_child() -> Option<u32> {
    mp_spawn::set_forkserver_preload(&[preload]);
    let mut p = get_context("forkserver")
        .unwrap()
        .process(read_preloaded, ());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 42);
    mp_spawn::forkserver_pid()
}

fn restarted_forkserver_runs(server: u32) -> u32 {
    // SAFETY: kill with a pid and a signal.
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    let mut p = get_context("forkserver")
        .unwrap()
        .process(read_preloaded, ());
    p.start().unwrap();
    let value = p.join().unwrap();
    assert_ne!(mp_spawn::forkserver_pid(), Some(server));
    value
}

/// Preload and restart, in a child of its own so that no other test shares its forkserver.
#[test]
fn forkserver_preload_and_restart() {
    let mut p = get_context("fork").unwrap().process_closure(|| {
        let server = forkserver_pid_in_child().expect("a forkserver runs");
        restarted_forkserver_runs(server)
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 42);
}

#[test]
fn panic_message_is_printed_with_the_process_name() {
    // The child's stderr is ours: redirect it into a pipe for the duration of a fork child.
    let (mut reader, writer) = pipe();
    let mut p = get_context("fork").unwrap().process_closure(move || {
        // SAFETY: dup2 of a valid fd onto stderr in the child only.
        unsafe { libc::dup2(writer.as_raw_fd(), 2) };
        drop(writer);
        let mut inner = get_context("spawn")
            .unwrap()
            .process(boom, ())
            .with_name("Boomer");
        inner.start().unwrap();
        let _ = inner.join();
    });
    p.start().unwrap();
    p.join().unwrap();
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert!(text.contains("Process Boomer:"), "{text}");
    assert!(text.contains("boom in the child"), "{text}");
}

fn echo_bigger(data: Vec<u8>) -> Vec<u8> {
    let mut out = data;
    out.extend(std::iter::repeat_n(7u8, 1 << 20));
    out
}

/// Far beyond a socket buffer both ways: the child blocks on its result until `join` drains it.
fn large_arguments_and_results(m: StartMethod) {
    let data: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    let mut p = ctx(m).process(echo_bigger, (data.clone(),));
    p.start().unwrap();
    let out = p.join().unwrap();
    assert_eq!(out.len(), 4 << 20);
    assert_eq!(&out[..data.len()], &data[..]);
    assert!(out[data.len()..].iter().all(|&b| b == 7));
}

fn sleep_300ms() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Returns at once, but its exit joins a child that runs 300 ms.
fn return_then_linger(method: String) -> u8 {
    let mut lingering = get_context(&method).unwrap().process(sleep_300ms, ());
    lingering.start().unwrap();
    std::mem::forget(lingering); // joined by this process's exit
    7
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The result arrives long before the exit: `join` must sleep until the exit, not poll in a
/// loop (a regression once made it spin, stealing a core from the exiting child).
fn join_waits_without_spinning(m: StartMethod) {
    let mut p = ctx(m).process(return_then_linger, (m.name().to_string(),));
    p.start().unwrap();
    let before = thread_cpu_time();
    assert_eq!(p.join().unwrap(), 7);
    let spent = thread_cpu_time() - before;
    assert!(
        spent < Duration::from_millis(100),
        "join used {spent:?} of CPU while waiting"
    );
}

fn my_start_method() -> String {
    mp_spawn::get_start_method().name().to_owned()
}

fn grandchild_start_method() -> String {
    let mut p = Process::new(my_start_method, ());
    p.start().unwrap();
    p.join().unwrap()
}

/// CPython's `_TestStartMethod.test_context` / `check_context`: a child's default start method
/// is the one that started it, whatever its parent's default is (and so its own children's).
fn child_start_method_is_its_own(m: StartMethod) {
    let mut p = ctx(m).process(my_start_method, ());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), m.name());
    let mut p = ctx(m).process(grandchild_start_method, ());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), m.name());
}

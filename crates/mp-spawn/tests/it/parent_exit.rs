//! Daemon children at their parent's end: terminated at a normal exit, an `exit(101)` (what a
//! panicking `main` does) or a panic in a child; killed when the parent is killed. Non-daemon
//! children are joined. Under every start method.
//!
//! This binary makes itself a child subreaper, so that orphans come back to it and it can wait
//! on their exact pids; its tests run one at a time, since reaping is process-wide.

use crate::common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use common::{park_forever, pipe};
use mp_spawn::reduction::Fd;
use mp_spawn::testing::wait_gone;
use mp_spawn::{ProcessError, StartMethod, get_context};

static SERIAL: Mutex<()> = Mutex::new(());

macro_rules! matrix {
    ($($name:ident),* $(,)?) => {
        mod fork { $( #[test] fn $name() { super::serial(|| super::$name(mp_spawn::StartMethod::Fork)) } )* }
        mod spawn { $( #[test] fn $name() { super::serial(|| super::$name(mp_spawn::StartMethod::Spawn)) } )* }
        mod forkserver { $( #[test] fn $name() { super::serial(|| super::$name(mp_spawn::StartMethod::Forkserver)) } )* }
    };
}

matrix!(
    daemon_dies_when_parent_is_killed,
    parent_exit_terminates_daemons_and_joins_others,
    parent_exit_101,
    parent_panic,
    child_sees_its_parent_die,
);

fn serial(test: impl FnOnce()) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    mp_spawn::testing::adopt_orphans();
    test();
}

fn finish_later(out: Fd) {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::File::from(out.into_inner())
        .write_all(b"done")
        .unwrap();
}

/// How many daemons the middle process starts: several, since they share their parent's
/// lifeline and a watch set on its shared open file description protected only the last one.
const DAEMONS: usize = 3;

/// Starts daemons that never end, reports (forkserver pid or 0, daemon pids...), then `then`.
fn middle(method: String, report: Fd, joined: Option<Fd>, then: u8) {
    let ctx = get_context(&method).unwrap();
    let mut daemons: Vec<_> = (0..DAEMONS)
        .map(|_| ctx.process(park_forever, ()).with_daemon(true))
        .collect();
    for daemon in &mut daemons {
        daemon.start().unwrap();
    }
    if let Some(out) = joined {
        let mut other = ctx.process(finish_later, (out,));
        other.start().unwrap();
        std::mem::forget(other); // not joined here: the exit must join it
    }
    let server = mp_spawn::forkserver_pid().unwrap_or(0);
    let mut pids = server.to_le_bytes().to_vec();
    for daemon in &daemons {
        pids.extend(daemon.pid().unwrap().to_le_bytes());
    }
    let mut report = std::fs::File::from(report.into_inner());
    report.write_all(&pids).unwrap();
    drop(report);
    std::mem::forget(daemons);
    match then {
        0 => park_forever(),
        1 => {}
        // std's exit on purpose: its cleanup (mp's at-exit) ends the daemons before the process.
        2 => std::process::exit(101),
        _ => panic!("the middle process panics"),
    }
}

/// Starts the middle process; returns it, its daemons' pids and its forkserver's pid (or 0).
fn start_middle(
    m: StartMethod,
    joined: Option<Fd>,
    then: u8,
) -> (mp_spawn::Process<()>, Vec<u32>, u32) {
    let (mut reader, writer) = pipe();
    let args = (
        m.name().to_string(),
        Fd::from(OwnedFd::from(writer)),
        joined,
        then,
    );
    let mut p = get_context(m.name()).unwrap().process(middle, args);
    p.start().unwrap();
    let mut buf = [0u8; 4 * (DAEMONS + 1)];
    reader.read_exact(&mut buf).unwrap();
    let mut pids: Vec<u32> = buf
        .chunks(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let server = pids.remove(0);
    (p, pids, server)
}

fn is_gone(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks existence.
    unsafe { libc::kill(pid as i32, 0) == -1 }
}

fn daemon_dies_when_parent_is_killed(m: StartMethod) {
    let (mut middle, daemons, server) = start_middle(m, None, 0);
    middle.kill().unwrap();
    assert!(matches!(
        middle.join(),
        Err(ProcessError::Killed { signal: 9 })
    ));
    if server != 0 {
        wait_gone(server);
    }
    for daemon in daemons {
        wait_gone(daemon);
        assert!(is_gone(daemon));
    }
}

fn parent_exit_terminates_daemons_and_joins_others(m: StartMethod) {
    let (mut reader, writer) = pipe();
    let (mut middle, daemons, _) = start_middle(m, Some(Fd::from(OwnedFd::from(writer))), 1);
    middle.join().unwrap();
    // The middle process terminated and reaped its daemons before it exited ...
    for daemon in daemons {
        assert!(is_gone(daemon), "daemon {daemon} outlived its parent");
    }
    // ... and joined the other child, whose output is therefore already there.
    let mut pfd = libc::pollfd {
        fd: reader.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    assert_eq!(ready, 1, "the non-daemon child was not joined");
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "done");
}

fn parent_exit_101(m: StartMethod) {
    let (mut middle, daemons, _) = start_middle(m, None, 2);
    assert!(matches!(
        middle.join(),
        Err(ProcessError::Exited { code: 101 })
    ));
    for daemon in daemons {
        assert!(is_gone(daemon), "daemon {daemon} outlived its parent");
    }
}

fn parent_panic(m: StartMethod) {
    let (mut middle, daemons, _) = start_middle(m, None, 3);
    assert!(matches!(middle.join(), Err(ProcessError::Panicked { .. })));
    for daemon in daemons {
        assert!(is_gone(daemon), "daemon {daemon} outlived its parent");
    }
}

/// Asks `is_alive` while its parent surely lives (the test kills the parent only once it has
/// read this child's first report), waits for the parent to die, then asks again.
fn outlive_parent(out: Fd) {
    let mut out = std::fs::File::from(out.into_inner());
    let parent = mp_spawn::parent_process().expect("a child has a parent");
    let was_alive = parent.is_alive();
    let mut first = std::process::id().to_le_bytes().to_vec();
    first.push(u8::from(was_alive));
    out.write_all(&first).unwrap();
    assert!(parent.join(None));
    out.write_all(&[u8::from(parent.is_alive())]).unwrap();
}

fn parent_of_survivor(method: String, out: Fd) {
    let mut child = get_context(&method)
        .unwrap()
        .process(outlive_parent, (out,));
    child.start().unwrap();
    std::mem::forget(child);
    park_forever();
}

fn child_sees_its_parent_die(m: StartMethod) {
    let (mut reader, writer) = pipe();
    let args = (m.name().to_string(), Fd::from(OwnedFd::from(writer)));
    let mut middle = get_context(m.name())
        .unwrap()
        .process(parent_of_survivor, args);
    middle.start().unwrap();
    let mut first = [0u8; 5];
    reader.read_exact(&mut first).unwrap();
    middle.kill().unwrap();
    let _ = middle.join();
    let mut after = [0u8; 1];
    reader.read_exact(&mut after).unwrap();
    assert_eq!(
        [first[4], after[0]],
        [1, 0],
        "alive before the parent died, dead after"
    );
    wait_gone(u32::from_le_bytes(first[..4].try_into().unwrap()));
}

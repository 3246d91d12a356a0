//! `ForkServer`: a fork helper forked once from the calling thread; every process started
//! through it is a fork of that snapshot, whichever thread starts it (issue #13, item 6).
//!
//! This binary makes itself a child subreaper, so that the orphans of a killed creator come
//! back to it and it can wait on their exact pids; the tests run one at a time.

use crate::common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use common::{park_forever, pipe};
use mp_spawn::reduction::Fd;
use mp_spawn::testing::wait_gone;
use mp_spawn::{ForkServer, ProcessError, StartMethod, get_context};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial(test: impl FnOnce()) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    mp_spawn::testing::adopt_orphans();
    test();
}

/// Whether the pid exists at all (a zombie does).
fn exists(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks the pid.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Needs about 4 MiB of stack: more than a spawned thread's default 2 MiB.
fn big_stack() -> u8 {
    let buf = std::hint::black_box([7u8; 4 << 20]);
    buf[(4 << 20) - 1]
}

static HELD: Mutex<u32> = Mutex::new(0);

fn take_lock() -> u32 {
    let mut n = HELD.lock().unwrap();
    *n += 1;
    *n
}

#[test]
fn children_have_the_creators_stack() {
    serial(|| {
        // Created on a thread with a large stack, as a program's main thread has...
        let server = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(|| ForkServer::start().unwrap())
            .unwrap()
            .join()
            .unwrap();
        // ...and used from a thread with the default 2 MiB stack.
        std::thread::spawn(move || {
            let mut p = server.process(big_stack, ());
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), 7);
            // The same fork from this thread itself gets its small stack: the test has teeth.
            let mut p = get_context("fork").unwrap().process(big_stack, ());
            p.start().unwrap();
            assert!(matches!(p.join(), Err(ProcessError::StackOverflow)));
        })
        .join()
        .unwrap();
    });
}

#[test]
fn children_miss_locks_taken_after_the_snapshot() {
    serial(|| {
        let server = ForkServer::start().unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let guard = HELD.lock().unwrap();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
            drop(guard);
        });
        held_rx.recv().unwrap();
        // Another thread holds the lock while the child is started.
        let mut p = server.process(take_lock, ());
        p.start().unwrap();
        let got = p.join_timeout(std::time::Duration::from_secs(60));
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(got.unwrap(), Some(1), "the child found the lock free");
    });
}

#[test]
fn the_helper_is_reaped_after_its_last_process() {
    serial(|| {
        let server = ForkServer::start().unwrap();
        let helper = server.pid();
        let mut p = server.process(park_forever, ()).with_name("parked");
        p.start().unwrap();
        assert_eq!(p.name(), "parked");
        assert!(p.is_alive().unwrap());
        // The process still needs the helper for its exit code.
        drop(server);
        assert!(exists(helper));
        p.kill().unwrap();
        assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 9 })));
        assert_eq!(p.exitcode().unwrap(), Some(-9));
        drop(p);
        assert!(!exists(helper), "the helper {helper} is left behind");
    });
}

#[test]
fn a_dead_helper_is_an_error_not_a_hang() {
    serial(|| {
        let server = ForkServer::start().unwrap();
        // SAFETY: kill(2) on our own child, which stays a zombie until the server reaps it.
        assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGKILL) }, 0);
        // SAFETY: pidfd_open with a pid and no flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, server.pid() as i32, 0) };
        assert!(fd >= 0);
        let mut pfd = libc::pollfd {
            fd: fd as i32,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd (hang guard: 60 s); then close the fd we opened.
        unsafe {
            assert_eq!(libc::poll(&mut pfd, 1, 60_000), 1);
            libc::close(fd as i32);
        }
        let mut p = server.process(take_lock, ());
        match p.start() {
            Err(ProcessError::Io(e)) => assert!(e.to_string().contains("fork helper"), "{e}"),
            other => panic!("{other:?}"),
        }
        let helper = server.pid();
        drop(p);
        drop(server);
        assert!(!exists(helper));
    });
}

#[test]
fn only_its_creator_may_use_it() {
    serial(|| {
        let server = ForkServer::start().unwrap();
        let copy = server.clone();
        let mut child = get_context("fork").unwrap().process_closure(move || {
            match copy.process(take_lock, ()).start() {
                Err(ProcessError::NotOurChild) => true,
                other => panic!("{other:?}"),
            }
        });
        child.start().unwrap();
        assert!(child.join().unwrap());
    });
}

/// Creates a fork helper, starts a daemon through it, reports (helper pid, daemon pid) and
/// waits to be killed.
fn creator(report: Fd) {
    let server = ForkServer::start().unwrap();
    let mut daemon = server.process(park_forever, ()).with_daemon(true);
    daemon.start().unwrap();
    let mut report = std::fs::File::from(report.into_inner());
    report
        .write_all(
            &[
                server.pid().to_le_bytes(),
                daemon.pid().unwrap().to_le_bytes(),
            ]
            .concat(),
        )
        .unwrap();
    drop(report);
    park_forever();
}

fn helper_dies_with_its_creator(m: StartMethod) {
    let (mut reader, writer) = pipe();
    let mut p = get_context(m.name())
        .unwrap()
        .process(creator, (Fd::from(OwnedFd::from(writer)),));
    p.start().unwrap();
    let mut buf = [0u8; 8];
    reader.read_exact(&mut buf).unwrap();
    let pid = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
    let (helper, daemon) = (pid(&buf[..4]), pid(&buf[4..]));
    p.kill().unwrap();
    assert!(matches!(p.join(), Err(ProcessError::Killed { signal: 9 })));
    wait_gone(helper);
    wait_gone(daemon);
}

macro_rules! matrix {
    ($($name:ident),* $(,)?) => {
        mod fork { $( #[test] fn $name() { super::serial(|| super::$name(mp_spawn::StartMethod::Fork)) } )* }
        mod spawn { $( #[test] fn $name() { super::serial(|| super::$name(mp_spawn::StartMethod::Spawn)) } )* }
        mod forkserver { $( #[test] fn $name() { super::serial(|| super::$name(mp_spawn::StartMethod::Forkserver)) } )* }
    };
}

matrix!(helper_dies_with_its_creator);

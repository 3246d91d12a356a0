//! Unit tests of the OS layer: the edges that the wrappers translate (exit codes, `ESRCH`,
//! limits, peers), each checked against the kernel.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::process::{Forked, exit_now, fork};
use crate::socket::{Kind, MAX_FDS_PER_MSG, recv_with_fds, send_with_fds, socketpair};
use crate::{creds, fd, pidfd, poll};

/// Forks a child that runs `body` and then `_exit`s with `code`; returns its pidfd.
fn child(code: i32, body: fn()) -> std::os::fd::OwnedFd {
    // SAFETY: the child only runs `body` (async-signal-safe calls in these tests) and `_exit`s.
    match unsafe { fork() }.unwrap() {
        Forked::Child => {
            body();
            exit_now(code)
        }
        Forked::Parent(pid) => pidfd::open(pid).unwrap(),
    }
}

fn wait_reap(pidfd: &std::os::fd::OwnedFd) -> i32 {
    poll::readable(&[pidfd.as_fd()], Some(Duration::from_secs(60))).unwrap();
    pidfd::reap(pidfd.as_fd())
        .unwrap()
        .expect("the child has ended")
}

#[test]
fn reap_reports_python_exit_codes() {
    assert_eq!(wait_reap(&child(7, || {})), 7);
    let killed = child(0, || crate::signal::kill_self(libc::SIGKILL));
    assert_eq!(wait_reap(&killed), -libc::SIGKILL);
}

#[test]
fn reap_of_a_running_child_is_none() {
    let (r, w) = fd::pipe().unwrap();
    // The child waits for the pipe to close: it runs until the parent says so.
    let running = {
        // SAFETY: the child only reads and `_exit`s.
        match unsafe { fork() }.unwrap() {
            Forked::Child => {
                drop(w);
                let _ = fd::read(r.as_fd(), &mut [0u8; 1]);
                exit_now(0)
            }
            Forked::Parent(pid) => pidfd::open(pid).unwrap(),
        }
    };
    assert_eq!(pidfd::reap(running.as_fd()).unwrap(), None);
    drop(w);
    assert_eq!(wait_reap(&running), 0);
}

#[test]
fn signalling_an_ended_process_is_not_an_error() {
    let ended = child(0, || {});
    wait_reap(&ended);
    pidfd::send_signal(ended.as_fd(), libc::SIGTERM).unwrap();
}

#[test]
fn bad_numbers_are_typed_errors() {
    let me = pidfd::open(std::process::id()).unwrap();
    let e = pidfd::send_signal(me.as_fd(), 12345).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        pidfd::open(0).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    assert_eq!(
        pidfd::open(u32::MAX).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn send_with_fds_checks_its_limits() {
    let (a, _b) = socketpair(Kind::Stream).unwrap();
    let (r, _w) = fd::pipe().unwrap();
    let too_many = vec![r.as_fd(); MAX_FDS_PER_MSG + 1];
    let e = send_with_fds(a.as_fd(), b"x", &too_many).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = send_with_fds(a.as_fd(), b"", &[r.as_fd()]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn the_most_fds_one_message_carries_arrive_as_new_descriptors() {
    let (a, b) = socketpair(Kind::Stream).unwrap();
    let (r, _w) = fd::pipe().unwrap();
    let all = vec![r.as_fd(); MAX_FDS_PER_MSG];
    send_with_fds(a.as_fd(), b"xyz", &all).unwrap();
    let mut fds = Vec::new();
    let mut buf = [0u8; 3];
    assert_eq!(recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap(), 3);
    assert_eq!(&buf, b"xyz");
    assert_eq!(fds.len(), MAX_FDS_PER_MSG);
    assert!(fds.iter().all(|f| f.as_raw_fd() != r.as_raw_fd()));
    // Close-on-exec, as MSG_CMSG_CLOEXEC asks.
    let flags = rustix::io::fcntl_getfd(&fds[0]).unwrap();
    assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
}

#[test]
fn read_append_reads_no_more_than_asked() {
    let (r, w) = fd::pipe().unwrap();
    fd::write_all(w.as_fd(), b"abcdef").unwrap();
    let mut buf = b"<".to_vec();
    assert_eq!(fd::read_append(r.as_fd(), &mut buf, 4).unwrap(), 4);
    assert_eq!(buf, b"<abcd");
    drop(w);
    assert_eq!(fd::read_append(r.as_fd(), &mut buf, 100).unwrap(), 2);
    assert_eq!(fd::read_append(r.as_fd(), &mut buf, 100).unwrap(), 0);
    assert_eq!(buf, b"<abcdef");
}

#[test]
fn peer_credentials_of_a_pipe_is_an_error() {
    let (r, _w) = fd::pipe().unwrap();
    assert!(creds::peer_credentials(r.as_fd()).is_err());
    let (a, _b) = socketpair(Kind::SeqPacket).unwrap();
    assert_eq!(
        creds::peer_credentials(a.as_fd()).unwrap(),
        (std::process::id(), creds::geteuid())
    );
}

#[test]
fn a_huge_timeout_waits_forever_rather_than_overflowing() {
    let (r, w) = fd::pipe().unwrap();
    drop(w);
    assert_eq!(
        poll::readable(&[r.as_fd()], Some(Duration::MAX)).unwrap(),
        [true]
    );
}

#[test]
fn shutdown_ends_the_stream_for_the_peer() {
    use crate::socket::{Shutdown, shutdown};
    let (a, b) = socketpair(Kind::Stream).unwrap();
    let _keep = a.try_clone().unwrap();
    shutdown(a.as_fd(), Shutdown::Both).unwrap();
    assert_eq!(fd::read(b.as_fd(), &mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn move_above_keeps_the_file_and_close_on_exec() {
    let (r, w) = fd::pipe().unwrap();
    let moved = fd::move_above(r, 200).unwrap();
    assert!(moved.as_raw_fd() >= 200);
    let flags = rustix::io::fcntl_getfd(&moved).unwrap();
    assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    fd::write_all(w.as_fd(), b"k").unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(fd::read(moved.as_fd(), &mut buf).unwrap(), 1);
    assert_eq!(&buf, b"k");
}

// Moved from mp-shm's synchronize/test.rs with the thread module.
#[test]
fn thread_id_is_stable_and_names_a_thread_of_this_process() {
    let me = crate::thread::id();
    assert_eq!(me, crate::thread::id());
    assert!(crate::thread::is_of_this_process(me));
    let other = std::thread::spawn(crate::thread::id).join().unwrap();
    assert_ne!(me, other);
}

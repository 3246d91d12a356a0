//! Unit tests of the OS layer: the edges that the wrappers translate (exit codes, `ESRCH`,
//! limits, peers), each checked against the kernel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::process::{Forked, exit_now, fork};
use crate::resource::{Limit, Resource};
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

#[test]
fn shm_open_refuses_names_that_are_no_single_component() {
    use crate::shm::shm_open;
    for name in [c"", c"/", c"/a/b", c"/.."] {
        let e = shm_open(name, true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{name:?}");
    }
    let long = std::ffi::CString::new(format!("/{}", "x".repeat(300))).unwrap();
    let e = shm_open(&long, true).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
}

/// As glibc's `shm_open`: a symlink in /dev/shm is not followed (O_NOFOLLOW).
#[test]
fn shm_open_does_not_follow_a_symlink() {
    let pid = std::process::id();
    let target = format!("/mp-sys-test-target-{pid}");
    let link = format!("/mp-sys-test-link-{pid}");
    let target_c = std::ffi::CString::new(target.clone()).unwrap();
    let link_c = std::ffi::CString::new(link.clone()).unwrap();
    let _fd = crate::shm::shm_open(&target_c, true).unwrap();
    std::os::unix::fs::symlink(format!("/dev/shm{target}"), format!("/dev/shm{link}")).unwrap();
    let opened = crate::shm::shm_open(&link_c, false);
    let _ = std::fs::remove_file(format!("/dev/shm{link}"));
    crate::shm::shm_unlink(&target_c).unwrap();
    assert_eq!(opened.unwrap_err().raw_os_error(), Some(libc::ELOOP));
}

#[test]
fn set_len_beyond_off_t_is_invalid_input() {
    let fd = crate::shm::memfd(c"test", 0).unwrap();
    let e = crate::shm::set_len(fd.as_fd(), u64::MAX).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(crate::shm::file_size(fd.as_fd()).unwrap(), 0);
}

#[test]
fn futex_wait_returns_on_a_changed_word_or_a_passed_deadline() {
    use std::sync::atomic::AtomicU32;
    let word = AtomicU32::new(1);
    crate::futex::wait(&word, 0, None);
    crate::futex::wait(&word, 1, Some(std::time::Instant::now()));
    crate::futex::wait(&word, 1, crate::deadline::after(Duration::from_millis(1)));
    crate::futex::wake(&word, i32::MAX);
}

#[test]
fn robust_mutex_reports_a_holder_that_died() {
    use crate::robust_mutex::{self, Locked, RawMutex};
    let memfd = crate::shm::memfd(c"test", 4096).unwrap();
    // SAFETY: a fresh memfd, reached only through the robust mutex below.
    let map = unsafe { crate::mmap::Mapping::new(memfd.as_fd(), 4096) }.unwrap();
    let m = map.ptr().cast::<RawMutex>();
    // SAFETY: a fresh, page-aligned mapping that outlives every call below; the child only
    // takes the mutex and `_exit`s.
    unsafe {
        robust_mutex::init(m).unwrap();
        assert_eq!(robust_mutex::owner(m), 0);
        let pid = match fork().unwrap() {
            Forked::Child => {
                let _ = robust_mutex::lock(m);
                exit_now(0)
            }
            Forked::Parent(pid) => pid,
        };
        crate::process::reap_pid_blocking(pid);
        assert_ne!(robust_mutex::owner(m), 0, "a dead holder's token stays");
        assert!(!crate::thread::is_ours(robust_mutex::owner(m)));
        assert_eq!(robust_mutex::lock(m).unwrap(), Locked::OwnerDied);
        assert_eq!(robust_mutex::owner(m), crate::thread::token());
        assert_eq!(robust_mutex::trylock(m).unwrap(), Locked::AlreadyHeld);
        robust_mutex::unlock(m).unwrap();
        assert_eq!(robust_mutex::owner(m), 0);
        assert!(robust_mutex::unlock(m).is_err());
    }
}

#[test]
fn send_byte_on_refuses_a_number_that_is_no_signal() {
    for signal in [0, -1, 65, 1000] {
        let (_r, w) = socketpair(Kind::Stream).unwrap();
        let e = crate::signal::send_byte_on(signal, w).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
    // One that cannot be caught: the error of sigaction, and nothing left marked.
    let (_r, w) = socketpair(Kind::Stream).unwrap();
    assert!(crate::signal::send_byte_on(libc::SIGKILL, w).is_err());
}

/// The disposition of `signal`, as the kernel reports it.
fn disposition_of(signal: i32) -> libc::sighandler_t {
    crate::signal::disposition(signal).unwrap()
}

#[test]
fn dropping_the_byte_handler_restores_the_default_and_frees_the_signal() {
    // SIGWINCH: no other test of this binary touches it.
    let signal = libc::SIGWINCH;
    for _ in 0..2 {
        let (r, w) = socketpair(Kind::Stream).unwrap();
        let handler = crate::signal::send_byte_on(signal, w).unwrap().unwrap();
        assert_eq!(handler.signal(), signal);
        assert_ne!(disposition_of(signal), libc::SIG_DFL);
        // A second one for the same signal is refused while the first lives.
        let (_r2, w2) = socketpair(Kind::Stream).unwrap();
        assert!(crate::signal::send_byte_on(signal, w2).unwrap().is_none());
        crate::signal::kill_self(signal);
        let mut byte = [0u8; 1];
        assert_eq!(fd::read(r.as_fd(), &mut byte).unwrap(), 1);
        drop(handler);
        assert_eq!(disposition_of(signal), libc::SIG_DFL);
        // The socket was closed with the handler.
        assert_eq!(fd::read(r.as_fd(), &mut byte).unwrap(), 0);
    }
}

#[test]
fn a_forked_child_does_not_inherit_the_byte_handler() {
    // SIGUSR1: no other test of this binary touches it; its default action ends a process.
    let signal = libc::SIGUSR1;
    let (r, w) = socketpair(Kind::Stream).unwrap();
    let handler = crate::signal::send_byte_on(signal, w).unwrap().unwrap();
    // SAFETY: the child only queries its disposition, signals itself and `_exit`s.
    let pidfd = match unsafe { fork() }.unwrap() {
        Forked::Child => {
            if disposition_of(signal) != libc::SIG_DFL {
                exit_now(3);
            }
            // The default action: the child ends here, and the parent's socket hears nothing.
            crate::signal::kill_self(signal);
            exit_now(4)
        }
        Forked::Parent(pid) => pidfd::open(pid).unwrap(),
    };
    assert_eq!(wait_reap(&pidfd), -signal);
    // The parent's handler is still there, and nothing was sent on its socket.
    assert_ne!(disposition_of(signal), libc::SIG_DFL);
    drop(handler);
    let mut byte = [0u8; 1];
    assert_eq!(fd::read(r.as_fd(), &mut byte).unwrap(), 0, "a byte came");
}

#[test]
fn send_byte_on_keeps_a_disposition_the_program_chose() {
    // SIGPWR: no other test of this binary touches it.
    let signal = libc::SIGPWR;
    crate::signal::set_ignored(signal, true);
    let (_r, w) = socketpair(Kind::Stream).unwrap();
    assert!(crate::signal::send_byte_on(signal, w).unwrap().is_none());
    assert_eq!(disposition_of(signal), libc::SIG_IGN);
    // One given while the guard lives is kept by the guard's drop.
    crate::signal::set_ignored(signal, false);
    let (_r, w) = socketpair(Kind::Stream).unwrap();
    let guard = crate::signal::send_byte_on(signal, w).unwrap().unwrap();
    crate::signal::set_ignored(signal, true);
    drop(guard);
    assert_eq!(disposition_of(signal), libc::SIG_IGN);
    crate::signal::set_ignored(signal, false);
}

#[test]
fn a_read_interrupted_by_a_handler_is_retried() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static HANDLED: AtomicBool = AtomicBool::new(false);
    extern "C" fn note(_: i32, _: &libc::siginfo_t, _: *mut libc::c_void) {
        HANDLED.store(true, Ordering::SeqCst);
    }
    // SIGXCPU: no other test of this binary touches it. `set_fault_handler` installs without
    // SA_RESTART, so the kernel ends the blocked read(2) with EINTR, which `fd::read` retries.
    let signal = libc::SIGXCPU;
    crate::signal::set_fault_handler(signal, note).unwrap();
    let (r, w) = fd::pipe().unwrap();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        tid_tx.send(crate::thread::id()).unwrap();
        fd::read(r.as_fd(), &mut [0u8; 1])
    });
    let tid = tid_rx.recv().unwrap();
    // Waits (on the kernel's word, not a clock) until the reader sleeps in read(2): a signal
    // that came earlier would only make the test vacuous.
    let in_read = || {
        let syscall = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"));
        syscall.is_ok_and(|s| s.split(' ').next() == Some(&libc::SYS_read.to_string()))
    };
    wait_until(in_read);
    // SAFETY: tgkill takes numbers only; the reader thread lives until the byte is written.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::c_long::from(crate::process::getpid_now()),
            libc::c_long::from(tid),
            libc::c_long::from(signal),
        )
    };
    assert_eq!(sent, 0);
    // The handler ran (so read(2) was interrupted), and the reader is back in read(2): only
    // `fd::read`'s retry brings it there (without it, the reader ends with EINTR).
    wait_until(|| reader.is_finished() || (HANDLED.load(Ordering::SeqCst) && in_read()));
    fd::write_all(w.as_fd(), b"x").unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), 1, "EINTR came out");
    crate::signal::set_ignored(signal, false);
}

/// Yields until `ready` holds (a hang guard of 60 s panics).
fn wait_until(mut ready: impl FnMut() -> bool) {
    let deadline = crate::deadline::after(Duration::from_secs(60));
    while !ready() {
        assert!(
            deadline.is_none_or(|d| std::time::Instant::now() < d),
            "still not ready after 60 s"
        );
        std::thread::yield_now();
    }
}

thread_local! {
    /// Allocations made by this thread (the global allocator of this test binary counts them).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's allocations, for the test below.
struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; counting touches only a
// thread-local `Cell` with no destructor, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn what_handlers_and_fork_children_call_allocates_nothing() {
    // The README's list, on their success paths; `exit_now` ends the process, so it is not
    // measured.
    let (_r, w) = fd::pipe().unwrap();
    let (a, _b) = socketpair(Kind::Stream).unwrap();
    let before = allocations();
    fd::write_all(w.as_fd(), b"x").unwrap();
    crate::socket::send_now(a.as_fd(), b"x");
    // SIGCHLD and SIGURG are ignored by default, and no test here handles them.
    crate::signal::kill_self(libc::SIGCHLD);
    crate::signal::set_ignored(libc::SIGURG, false);
    let _ = crate::process::getpid_now();
    let _ = crate::cgroup::join(w.as_fd());
    let cpu = crate::resource::limit(Resource::CpuSeconds);
    crate::resource::set_limit(Resource::CpuSeconds, cpu).unwrap();
    crate::resource::cpu_time().unwrap();
    crate::resource::data_size().unwrap();
    crate::resource::resident_size().unwrap();
    assert_eq!(allocations(), before);
    // It arms a SIGKILL for its caller once the lifeline's other end closes: in a child, which
    // keeps that end until it exits.
    let child = child(0, || {
        let Ok((lifeline, _kept)) = fd::pipe() else {
            exit_now(2)
        };
        let before = allocations();
        let armed = crate::process::kill_me_when_hung_up(lifeline.as_fd());
        let allocated = allocations() != before;
        exit_now(if armed.is_err() { 3 } else if allocated { 4 } else { 0 })
    });
    assert_eq!(wait_reap(&child), 0, "3: not armed, 4: it allocated");
}

#[test]
fn random_fill_fills() {
    crate::random::fill(&mut []).unwrap();
    let mut a = [0u8; 64];
    let mut b = [0u8; 64];
    crate::random::fill(&mut a).unwrap();
    crate::random::fill(&mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn cpu_time_counts_the_work_done() {
    let before = crate::resource::cpu_time().unwrap();
    let mut x = 0u64;
    while crate::resource::cpu_time().unwrap() < before + Duration::from_millis(20) {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
    assert!(crate::resource::cpu_time().unwrap() >= before + Duration::from_millis(20));
}

#[test]
fn data_size_and_resident_size_see_an_allocation() {
    // Absolute bounds: other tests allocate and free meanwhile.
    let block = vec![1u8; 64 << 20]; // touched: resident
    std::hint::black_box(&block);
    assert!(crate::resource::data_size().unwrap() >= 64 << 20);
    assert!(crate::resource::resident_size().unwrap() >= 64 << 20);
}

#[test]
fn a_data_limit_makes_a_larger_allocation_fail() {
    // In a child: the limit is the process's.
    let child = child(0, || {
        let cap = crate::resource::data_size().unwrap_or(0) + (16 << 20);
        let limit = Limit {
            soft: Some(cap),
            hard: Some(cap),
        };
        if crate::resource::set_limit(Resource::DataBytes, limit).is_err() {
            exit_now(2)
        }
        if crate::resource::limit(Resource::DataBytes) != limit {
            exit_now(3)
        }
        // Past the cap: refused (a mmap of private writable memory fails with ENOMEM).
        let mut big: Vec<u8> = Vec::new();
        if big.try_reserve_exact(64 << 20).is_ok() {
            exit_now(4)
        }
        // Under it: fine.
        let mut small: Vec<u8> = Vec::new();
        if small.try_reserve_exact(4 << 20).is_err() {
            exit_now(5)
        }
        // The hard limit cannot be raised again (without CAP_SYS_RESOURCE: root may).
        let raised = Limit {
            soft: Some(cap),
            hard: None,
        };
        let is_root = crate::creds::geteuid() == 0;
        if !is_root && crate::resource::set_limit(Resource::DataBytes, raised).is_ok() {
            exit_now(6)
        }
    });
    assert_eq!(
        wait_reap(&child),
        0,
        "2: not set, 3: not read back, 4: 64 MiB allowed, 5: 4 MiB refused, 6: hard raised"
    );
}

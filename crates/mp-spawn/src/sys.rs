//! The thin layer over the OS: every `unsafe` call of mp-spawn lives here.
//!
//! Why libc and not rustix or nix: the process layer needs `fork`, `posix_spawn` file actions,
//! `F_SETSIG`, `atexit` and pidfds together; rustix has no fork, posix_spawn or atexit, nix has no
//! pidfd. One small module in one style is easier to audit than two wrappers.

use std::ffi::{CStr, c_int};
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a call interrupted by a signal.
fn cvt_retry(mut f: impl FnMut() -> c_int) -> io::Result<c_int> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec Unix stream socket pair.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(crate) enum Forked {
    Child,
    Parent(u32),
}

/// `fork(2)`.
///
/// # Safety
/// In a multi-threaded program the child may only rely on state that no other thread could
/// have held at the moment of the fork (the caller holds mp's own locks across it).
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the post-fork contract above.
    match cvt(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Ends this process at once: no atexit handlers, no destructors (`_exit(2)`).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// This process's id, cached: every ownership check asks for it. A `pthread_atfork` child
/// handler clears the cache, so a fork by anyone (not only mp) is seen.
pub(crate) fn getpid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static PID: AtomicU32 = AtomicU32::new(0);
    static REGISTER: std::sync::Once = std::sync::Once::new();
    extern "C" fn forget_pid() {
        PID.store(0, Ordering::Relaxed);
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a plain extern "C" fn that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
    match PID.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() } as u32;
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

pub(crate) fn getppid() -> u32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() as u32 }
}

pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as c_int) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `signal` through a pidfd; a process that has already ended is not an error.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: c_int) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Python's exit code from a `siginfo_t` of `waitid`: n for exit(n), -N for signal N.
fn exitcode_of(info: &libc::siginfo_t) -> i32 {
    // SAFETY: waitid filled `info` for a child that changed state (si_pid != 0 was checked).
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => status,
        _ => -status,
    }
}

/// Reaps a child through its pidfd: `Some(exitcode)` once it has ended, `None` while it runs.
pub(crate) fn reap_pidfd(pidfd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: `info` is valid for writes; P_PIDFD with a pidfd of our own child.
    cvt_retry(|| unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            info.as_mut_ptr(),
            libc::WEXITED | libc::WNOHANG,
        )
    })?;
    // SAFETY: zero-initialised and possibly filled by waitid: valid either way.
    let info = unsafe { info.assume_init() };
    // SAFETY: reading si_pid of a siginfo filled (or zeroed) for SIGCHLD.
    if unsafe { info.si_pid() } == 0 {
        Ok(None)
    } else {
        Ok(Some(exitcode_of(&info)))
    }
}

/// Reaps `pid` if it is an ended child of this process; anything else (not ours, still
/// running, already reaped) is left alone.
pub(crate) fn reap_pid(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid on one pid with WNOHANG and a valid status pointer.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
}

/// Waits until one of `fds` is ready for reading (or hung up), or `timeout` passes.
/// Returns, per fd, whether it is ready. `None` waits forever.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    poll_readable_until(fds, crate::deadline::of(timeout))
}

/// As `poll_readable`, until a deadline (`None`: forever); a past deadline does not wait.
/// Shared with mp-ipc (hidden from the docs).
pub fn poll_readable_until(
    fds: &[BorrowedFd<'_>],
    deadline: Option<std::time::Instant>,
) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                // Round up so that a short timeout still waits rather than spins.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_int
            }
        };
        // SAFETY: `pfds` is a valid array of pollfd of the given length.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(pfds.iter().map(|p| p.revents != 0).collect());
    }
}

/// Most fds one `sendmsg` carries (the kernel's SCM_MAX_FD).
pub(crate) const MAX_FDS_PER_MSG: usize = 253;

/// Sends `data` with `fds` attached (SCM_RIGHTS) on a Unix stream socket; sends all of `data`.
pub(crate) fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS_PER_MSG && !data.is_empty());
    let mut sent = 0;
    if !fds.is_empty() {
        let space = cmsg_space(fds.len());
        let mut cbuf = vec![0u8; space];
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut _,
            iov_len: data.len(),
        };
        // SAFETY: an all-zero msghdr is a valid empty header.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points to `space` bytes, enough for one cmsg with fds.len() ints.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<c_int>(),
                fds.len(),
            );
        }
        // SAFETY: msg points to valid iovec and control buffers that outlive the call.
        sent = cvt_retry(|| unsafe {
            libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) as c_int
        })? as usize;
    }
    while sent < data.len() {
        let rest = &data[sent..];
        // SAFETY: `rest` is a valid readable buffer of the given length.
        let n = cvt_retry(|| unsafe {
            libc::send(
                sock.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            ) as c_int
        })?;
        sent += n as usize;
    }
    Ok(())
}

fn cmsg_space(nfds: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((nfds * mem::size_of::<c_int>()) as u32) as usize }
}

/// Receives into `buf`, appending any fds that arrive (SCM_RIGHTS) to `fds`, close-on-exec.
/// Returns the byte count; 0 means the peer closed.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let space = cmsg_space(MAX_FDS_PER_MSG);
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points to valid buffers that outlive the call.
    let n = cvt_retry(|| unsafe {
        libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) as c_int
    })?;
    // SAFETY: the kernel filled msg_control with well-formed cmsgs up to msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<c_int>();
                let len = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / mem::size_of::<c_int>();
                for i in 0..len {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("too many file descriptors in one message"));
    }
    Ok(n as usize)
}

/// Reads exactly `buf.len()` bytes, collecting attached fds; `UnexpectedEof` if the peer closes.
pub(crate) fn recv_exact_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = recv_with_fds(sock, &mut buf[got..], fds)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(())
}

pub(crate) fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: `data` is a valid readable buffer.
        let n = cvt_retry(|| unsafe {
            libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) as c_int
        })?;
        data = &data[n as usize..];
    }
    Ok(())
}

/// Ends both directions of a socket for every holder of it (`shutdown(2)`), not only for this
/// descriptor as `close` would.
pub(crate) fn shutdown(sock: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown on a valid socket descriptor; it closes nothing.
    cvt(unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_RDWR) })?;
    Ok(())
}

/// One read; 0 at end of file.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable buffer.
    cvt_retry(|| unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) as c_int })
        .map(|n| n as usize)
}

/// Starts `/proc/self/exe` (this very executable, even if its path was replaced) with `argv`,
/// stdin on /dev/null, and `fd_maps` `(from, to)` dup2'ed into the child (which clears
/// close-on-exec on `to` only in the child: no window where another thread's child inherits it).
pub(crate) fn spawn_self(argv: &[&CStr], fd_maps: &[(RawFd, RawFd)]) -> io::Result<u32> {
    unsafe extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let mut argv_ptrs: Vec<*mut libc::c_char> =
        argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    // SAFETY: initialises the actions object in place.
    let r = unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    let result = (|| {
        let devnull = c"/dev/null";
        // SAFETY: `actions` was initialised above; the path is a valid C string.
        let r = unsafe {
            libc::posix_spawn_file_actions_addopen(
                actions.as_mut_ptr(),
                0,
                devnull.as_ptr(),
                libc::O_RDONLY,
                0,
            )
        };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        for &(from, to) in fd_maps {
            // SAFETY: `actions` was initialised above.
            let r =
                unsafe { libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), from, to) };
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
        }
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid and NUL-terminated; `environ` is the process environment
        // (as for every posix_spawn caller, a concurrent setenv in another thread is the caller's race).
        let r = unsafe {
            libc::posix_spawn(
                &mut pid,
                c"/proc/self/exe".as_ptr(),
                actions.as_ptr(),
                std::ptr::null(),
                argv_ptrs.as_ptr(),
                environ.cast(),
            )
        };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(pid as u32)
    })();
    // SAFETY: `actions` was initialised above and is destroyed once.
    unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
    result
}

/// Arranges for SIGKILL to reach this process as soon as the write end of the `lifeline` pipe
/// closes everywhere, that is when the parent process dies however it dies. The kernel sends
/// the signal (O_ASYNC + F_SETSIG), so no watcher thread is needed.
///
/// Returns the descriptor to keep open for as long as the watch should last: a new open file
/// description of the same pipe. The owner and the signal that `F_SETOWN`/`F_SETSIG` set belong
/// to an open file description, not to a descriptor, and every child of one parent inherits
/// (fork) or receives (`SCM_RIGHTS`) the same description of the lifeline: set on it, each
/// child would take the signal over from the previous one, and only the last would be killed.
pub(crate) fn kill_me_when_hung_up(lifeline: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    const F_SETSIG: c_int = 10;
    let own = reopen_pipe_end(lifeline)?;
    let fd = own.as_raw_fd();
    // SAFETY: fcntl on an fd we own, with integer arguments.
    unsafe {
        cvt(libc::fcntl(fd, libc::F_SETOWN, libc::getpid()))?;
        cvt(libc::fcntl(fd, F_SETSIG, libc::SIGKILL))?;
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_ASYNC))?;
    }
    Ok(own)
}

/// Opens the read end of a pipe again, through `/proc/self/fd`: a new open file description
/// (close-on-exec, non-blocking, so that the open does not wait for a writer if the parent has
/// already gone). Allocates nothing: it runs in forked children.
fn reopen_pipe_end(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
    let prefix = b"/proc/self/fd/".len();
    let mut digits = [0u8; 10];
    let mut n = fd.as_raw_fd() as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, d) in digits[..len].iter().rev().enumerate() {
        path[prefix + i] = *d;
    }
    // SAFETY: `path` is NUL-terminated (at most 10 digits follow the prefix in a 26-byte buffer
    // of zeros); open returns a new fd or -1.
    let new = cvt_retry(|| unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    })?;
    // SAFETY: open succeeded: `new` is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// /dev/null, opened once per process (close-on-exec).
pub(crate) fn dev_null() -> io::Result<BorrowedFd<'static>> {
    static DEV_NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd.as_fd());
    }
    let file = std::fs::File::open("/dev/null")?;
    Ok(DEV_NULL.get_or_init(|| file.into()).as_fd())
}

/// Points fd 0 at /dev/null, as Python does for every child (`dev_null` opened beforehand, so
/// that a forked child makes one call).
pub(crate) fn stdin_to(dev_null: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: dup2 of a valid fd onto 0.
    cvt(unsafe { libc::dup2(dev_null.as_raw_fd(), 0) })?;
    Ok(())
}

/// Moves `fd` to the lowest number at or above `min`, close-on-exec; the old number is closed.
pub(crate) fn move_fd_above(fd: OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd that we then own.
    let new = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: `new` is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

pub(crate) fn register_atexit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain extern "C" fn that lives for the whole program.
    unsafe { libc::atexit(f) };
}

/// (device, inode) of the running executable: the same pair means the same program image.
pub(crate) fn exe_identity() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/self/exe")?;
    use std::os::unix::fs::MetadataExt;
    Ok((meta.dev(), meta.ino()))
}

/// How many threads this process runs (1 if /proc cannot tell).
pub(crate) fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |dir| dir.count())
}

/// The CPUs online (`os.cpu_count()`).
pub(crate) fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 { 1 } else { n as usize }
}

/// Sends `signal` to this very process.
pub(crate) fn kill_self(signal: c_int) {
    // SAFETY: kill with our own pid and a valid signal number.
    unsafe { libc::kill(libc::getpid(), signal) };
}

/// Sets a signal to its default action, or to be ignored.
pub(crate) fn set_signal_ignored(signal: c_int, ignored: bool) {
    let action = if ignored {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    // SAFETY: SIG_IGN and SIG_DFL are always valid dispositions.
    unsafe { libc::signal(signal, action) };
}

// --- Stack-overflow guard (see `stack_guard`): the raw calls, each async-signal-safe where the
// handler uses it.

/// The page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n < 1 { 4096 } else { n as usize }
}

/// This process's id, uncached: safe in a signal handler (no `Once`), and right after any fork.
pub(crate) fn getpid_now() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// The calling thread's stack: its lowest address (the guard area lies just below) and size.
pub(crate) fn current_stack() -> io::Result<(usize, usize)> {
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_getattr_np initialises `attr` on success (checked) for the calling thread.
    let ret = unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` was initialised above; addr and size are valid out-pointers.
    let ret = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) };
    // SAFETY: `attr` was initialised by pthread_getattr_np and is destroyed once.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok((addr as usize, size))
}

/// Gives the calling thread an alternate signal stack of `size` bytes, unless it has one of at
/// least `keep` bytes already (std's, in a forked child). The memory is leaked: a handler may
/// need it until the process ends.
pub(crate) fn ensure_alt_stack(keep: usize, size: usize) -> io::Result<()> {
    let mut old = MaybeUninit::<libc::stack_t>::uninit();
    // SAFETY: a null new stack only queries; `old` is a valid out-pointer.
    cvt(unsafe { libc::sigaltstack(std::ptr::null(), old.as_mut_ptr()) })?;
    // SAFETY: sigaltstack succeeded, so it filled `old`.
    let old = unsafe { old.assume_init() };
    if old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= keep {
        return Ok(());
    }
    let page = page_size();
    let len = size.div_ceil(page) * page + page;
    // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // A guard page below, so that a handler overflowing the alternate stack faults (and the
    // kernel then kills the process) instead of writing over whatever lies below.
    // SAFETY: the first page of the mapping made above.
    cvt(unsafe { libc::mprotect(base, page, libc::PROT_NONE) })?;
    let new = libc::stack_t {
        // SAFETY: `page` is inside the mapping of `len > page` bytes.
        ss_sp: unsafe { base.cast::<u8>().add(page) }.cast(),
        ss_flags: 0,
        ss_size: len - page,
    };
    // SAFETY: `new` describes leaked memory that stays mapped for the life of the process.
    cvt(unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) })?;
    Ok(())
}

/// A `SA_SIGINFO` handler of a fault signal. The kernel passes a valid `siginfo_t`.
pub(crate) type FaultHandler = extern "C" fn(c_int, &libc::siginfo_t, *mut libc::c_void);

/// The action of a signal before [`set_fault_handler`] replaced it, as the kernel reported it.
pub(crate) struct PreviousAction(libc::sigaction);

/// Installs `handler` for `signal`, run on the alternate signal stack; returns the action it
/// replaced.
pub(crate) fn set_fault_handler(
    signal: c_int,
    handler: FaultHandler,
) -> io::Result<PreviousAction> {
    // SAFETY: sigaction is plain data; all zeroes is a valid (empty) value.
    let mut new: libc::sigaction = unsafe { mem::zeroed() };
    new.sa_sigaction = handler as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `new.sa_mask` is a valid sigset_t to fill.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: `new` is a valid action whose handler has the SA_SIGINFO signature; `old` is a
    // valid out-pointer.
    cvt(unsafe { libc::sigaction(signal, &new, &mut old) })?;
    Ok(PreviousAction(old))
}

impl PreviousAction {
    /// Whether this is `handler` itself (installed by an earlier guard in this process or in
    /// the process it was forked from).
    pub(crate) fn is(&self, handler: FaultHandler) -> bool {
        self.0.sa_sigaction == handler as usize
    }

    /// Hands a signal on to this action, from within a handler. A default or ignored action
    /// is restored and the handler returns: a faulting instruction runs again and the fault
    /// ends the process as it would have without the handler; a signal that was sent (it
    /// does not repeat) is sent again, to take the default action once the handler returns.
    pub(crate) fn chain(&self, signal: c_int, info: &libc::siginfo_t, context: *mut libc::c_void) {
        let action = self.0.sa_sigaction;
        if action == libc::SIG_IGN {
            set_signal_ignored(signal, true);
        } else if action == libc::SIG_DFL {
            set_signal_ignored(signal, false);
            if info.si_code <= 0 {
                kill_self(signal);
            }
        } else if self.0.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the kernel reported this action with SA_SIGINFO, so `action` is the
            // address of a handler with the three-argument signature, called as the kernel
            // would call it.
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { mem::transmute(action) };
            f(signal, std::ptr::from_ref(info).cast_mut(), context);
        } else {
            // SAFETY: the kernel reported this action without SA_SIGINFO, so `action` is the
            // address of a one-argument handler.
            let f: extern "C" fn(c_int) = unsafe { mem::transmute(action) };
            f(signal);
        }
    }
}

/// The address of a fault; `None` for a signal sent by a process (`kill`, `raise`), whose
/// `si_code` is not positive and whose address field holds the sender's pid and uid.
pub(crate) fn fault_address(info: &libc::siginfo_t) -> Option<usize> {
    if info.si_code <= 0 {
        return None;
    }
    // SAFETY: `si_addr` reads plain integer bytes of an initialised siginfo_t; for a fault
    // (positive si_code) of SIGSEGV or SIGBUS the kernel stores the faulting address there.
    Some(unsafe { info.si_addr() as usize })
}

/// One non-blocking `send` of `bytes`, without SIGPIPE; safe in a signal handler. What was not
/// sent is lost.
pub(crate) fn send_now(sock: BorrowedFd<'_>, bytes: &[u8]) {
    // SAFETY: `bytes` is a valid readable buffer.
    unsafe {
        libc::send(
            sock.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

/// Whether this process runs in secure-execution mode (`AT_SECURE`: setuid, setgid or file
/// capabilities): its argv, environment and inherited descriptors come from a less trusted
/// caller.
pub(crate) fn is_secure_exec() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; an absent entry gives 0.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// This process's effective user id.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The pid and effective uid of the process that created the other end of the Unix socket
/// `sock` (`SO_PEERCRED`: for a socketpair, whoever called `socketpair`). Not a Unix socket:
/// an error.
pub(crate) fn peer_credentials(sock: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: ucred is plain integers; all zero is a valid value.
    let mut cred: libc::ucred = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    })?;
    if len as usize != mem::size_of::<libc::ucred>() || cred.pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the socket has no peer process",
        ));
    }
    Ok((cred.pid as u32, cred.uid))
}

/// (device, inode) of the executable that process `pid` runs (see [`exe_identity`]).
pub(crate) fn exe_identity_of(pid: u32) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    use std::os::unix::fs::MetadataExt;
    Ok((meta.dev(), meta.ino()))
}

/// Takes ownership of descriptor `fd`, named by this process's argv before `main`, if it is
/// open; made close-on-exec.
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor; it fails with EBADF if `fd` is not open.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: `fd` is open (checked above). Only the pre-`main` entry calls this, with the
    // number its parent dup2'ed into it for this use: nothing else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: F_SETFD with integer flags on an open descriptor.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    Ok(owned)
}

/// Whether `addr` lies in an executable segment of the main program (not in a library, not in
/// data): the bound for a preload hook's address, which, being any `fn()`, has no section of
/// its own.
pub(crate) fn in_program_code(addr: usize) -> bool {
    struct Query {
        addr: usize,
        found: bool,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> c_int {
        // SAFETY: glibc passes a valid `dl_phdr_info` whose `dlpi_phdr` holds `dlpi_phnum`
        // headers, and `data` is the `Query` that `in_program_code` lent it.
        let (info, query) = unsafe { (&*info, &mut *data.cast::<Query>()) };
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: `i` < dlpi_phnum (see above).
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                let start = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
                if (start..start.saturating_add(ph.p_memsz as usize)).contains(&query.addr) {
                    query.found = true;
                }
            }
        }
        // The first object glibc reports is the main program: stop there.
        1
    }
    let mut query = Query { addr, found: false };
    // SAFETY: `visit` matches the callback type and only reads what glibc hands it; `query`
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut query).cast()) };
    query.found
}

//! This process and its children: fork, spawn of this executable, exit, ids, atexit, and
//! what the process is (its executable, its threads).

use std::ffi::{CStr, c_int};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags};

use crate::cvt;

/// Which side of a [`fork`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The new process.
    Child,
    /// The caller, with the child's pid.
    Parent(u32),
}

/// `fork(2)` (on libc: rustix has no fork).
///
/// # Safety
/// In a multi-threaded program the child may only rely on state that no other thread could
/// have held at the moment of the fork (the caller holds its own locks across it).
///
/// ```
/// use mp_sys::process::{Forked, exit_now, fork};
/// // SAFETY: the child only calls `_exit`.
/// match unsafe { fork() }? {
///     Forked::Child => exit_now(0),
///     Forked::Parent(pid) => mp_sys::process::reap_pid_blocking(pid),
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the post-fork contract above.
    match cvt(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Ends this process at once: no atexit handlers, no destructors (`_exit(2)`).
///
/// ```no_run
/// mp_sys::process::exit_now(0);
/// ```
#[inline]
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// This process's id, cached: every ownership check asks for it. A child action of
/// [`fork`](crate::fork) clears the cache, so a fork by anyone (not only mp) is seen.
///
/// ```
/// assert_eq!(mp_sys::process::getpid(), std::process::id());
/// ```
#[inline]
pub fn getpid() -> u32 {
    use std::sync::atomic::Ordering;
    match PID.load(Ordering::Relaxed) {
        0 => {
            // Before the cache is filled: no fork may copy it without the action that clears
            // it.
            FORGET_PID.register();
            let pid = getpid_now();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Registered before the cache is first filled: a child's cached pid is its parent's.
pub(crate) static FORGET_PID: crate::fork::AtFork =
    crate::fork::AtFork::in_child(crate::fork::Rank::PID_CACHE, || {
        PID.store(0, std::sync::atomic::Ordering::Relaxed)
    });

/// This process's id, uncached: async-signal-safe (no `Once`), and right after any fork.
///
/// ```
/// assert_eq!(mp_sys::process::getpid_now(), std::process::id());
/// ```
#[inline]
pub fn getpid_now() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Names this process as `ps -o comm`, `top` and `pgrep` show it (the kernel's name of the
/// calling thread: call it on a process's only thread, as a new child does). The kernel keeps
/// 15 bytes: a longer name is cut on a character boundary; a NUL ends it. No allocation (a
/// forked child calls it).
///
/// ```
/// std::thread::spawn(|| {
///     mp_sys::process::set_name("mp-test-name");
///     let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
///     assert_eq!(comm.trim_end(), "mp-test-name");
/// })
/// .join()
/// .unwrap();
/// ```
pub fn set_name(name: &str) {
    let mut buf = [0u8; 16];
    let mut len = 0;
    for c in name.chars().take_while(|c| *c != '\0') {
        let mut utf8 = [0u8; 4];
        let bytes = c.encode_utf8(&mut utf8).as_bytes();
        if len + bytes.len() > 15 {
            break;
        }
        buf[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    }
    if let Ok(name) = std::ffi::CStr::from_bytes_until_nul(&buf) {
        // Only a cosmetic name: a failure changes nothing else.
        let _ = rustix::thread::set_name(name);
    }
}

/// The parent's pid (0 if there is none, as for a process in another pid namespace's root).
///
/// ```
/// assert_ne!(mp_sys::process::getppid(), 0);
/// ```
pub fn getppid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
}

/// Reaps `pid` if it is an ended child of this process; anything else (not ours, still
/// running, already reaped) is left alone.
///
/// ```
/// mp_sys::process::reap_pid(1);
/// ```
pub fn reap_pid(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
    }
}

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): an orphan among its
/// descendants is reparented here rather than to init, so this process can reap it.
/// Idempotent.
///
/// ```
/// mp_sys::process::become_subreaper()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn become_subreaper() -> io::Result<()> {
    // rustix takes the flag as an optional pid: any non-zero value sets it.
    rustix::process::set_child_subreaper(Some(rustix::process::Pid::INIT)).map_err(Into::into)
}

/// Waits for child `pid` to end and reaps it; errors (not a child) are ignored.
///
/// ```
/// let child = std::process::Command::new("true").spawn()?;
/// mp_sys::process::reap_pid_blocking(child.id());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn reap_pid_blocking(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = crate::retry(|| {
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        });
    }
}

/// Runs `f` at normal process exit (`atexit(3)`; on libc: rustix has none).
///
/// ```
/// extern "C" fn bye() {}
/// mp_sys::process::atexit(bye);
/// ```
pub fn atexit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain extern "C" fn that lives for the whole program.
    unsafe { libc::atexit(f) };
}

/// (device, inode) of the running executable: the same pair means the same program image.
///
/// ```
/// let (_dev, _ino) = mp_sys::process::exe_identity()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn exe_identity() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/self/exe")?;
    use std::os::unix::fs::MetadataExt;
    Ok((meta.dev(), meta.ino()))
}

/// This process's argv as the kernel keeps it (`/proc/self/cmdline`: each argument followed
/// by a NUL), if it is at most `max` bytes long; `None` if it is longer or cannot be read.
/// Works before `main`, where a C library that passes no argv to `.init_array` (musl) leaves
/// no other way to see it.
///
/// ```
/// let argv = mp_sys::process::own_cmdline(1 << 20).expect("readable");
/// assert!(argv.ends_with(&[0]));
/// assert_eq!(mp_sys::process::own_cmdline(0), None);
/// ```
pub fn own_cmdline(max: usize) -> Option<Vec<u8>> {
    let fd = rustix::fs::open(
        c"/proc/self/cmdline",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut out = Vec::new();
    loop {
        // One byte more than allowed tells a too-long argv from one of exactly `max` bytes.
        let room = (max + 1).saturating_sub(out.len());
        if room == 0 {
            return None;
        }
        match crate::fd::read_append(std::os::fd::AsFd::as_fd(&fd), &mut out, room.min(4096)) {
            Ok(0) => return (out.len() <= max).then_some(out),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// (device, inode) of the executable that process `pid` runs (see [`exe_identity`]).
///
/// ```
/// let me = mp_sys::process::exe_identity_of(std::process::id())?;
/// assert_eq!(me, mp_sys::process::exe_identity()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn exe_identity_of(pid: u32) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    use std::os::unix::fs::MetadataExt;
    Ok((meta.dev(), meta.ino()))
}

/// How many threads this process runs (1 if /proc cannot tell).
///
/// ```
/// assert!(mp_sys::process::thread_count() >= 1);
/// ```
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |dir| dir.count())
}

/// The CPUs online (`os.cpu_count()`; `sysconf` on libc: rustix has none).
///
/// ```
/// assert!(mp_sys::process::online_cpus() >= 1);
/// ```
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 { 1 } else { n as usize }
}

/// Starts `/proc/self/exe` (this very executable, even if its path was replaced) with `argv`,
/// stdin on /dev/null, and `fd_maps` `(from, to)` dup2'ed into the child (which clears
/// close-on-exec on `to` only in the child: no window where another thread's child inherits it).
/// On libc: rustix has no `posix_spawn`.
pub fn spawn_self(argv: &[&CStr], fd_maps: &[(BorrowedFd<'_>, RawFd)]) -> io::Result<u32> {
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
        for (from, to) in fd_maps {
            // SAFETY: `actions` was initialised above; `from` is borrowed, so open until the
            // spawn below has run the action.
            let r = unsafe {
                libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), from.as_raw_fd(), *to)
            };
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
/// the signal (O_ASYNC + F_SETSIG, on libc: rustix has neither), so no watcher thread is needed.
///
/// Returns the descriptor to keep open for as long as the watch should last: a new open file
/// description of the same pipe. The owner and the signal that `F_SETOWN`/`F_SETSIG` set belong
/// to an open file description, not to a descriptor, and every child of one parent inherits
/// (fork) or receives (`SCM_RIGHTS`) the same description of the lifeline: set on it, each
/// child would take the signal over from the previous one, and only the last would be killed.
pub fn kill_me_when_hung_up(lifeline: BorrowedFd<'_>) -> io::Result<OwnedFd> {
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
    // At most 10 digits follow the prefix in a 26-byte buffer of zeros: a NUL always ends it.
    let path = CStr::from_bytes_until_nul(&path).map_err(io::Error::other)?;
    crate::retry(|| {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
    })
}

/// Whether `addr` lies in an executable segment of the main program (not in a library, not in
/// data): the bound for a preload hook's address, which, being any `fn()`, has no section of
/// its own. On libc: rustix has no `dl_iterate_phdr`.
///
/// ```
/// fn here() {}
/// assert!(mp_sys::process::in_program_code(here as usize));
/// assert!(!mp_sys::process::in_program_code(0));
/// ```
pub fn in_program_code(addr: usize) -> bool {
    struct Query {
        addr: usize,
        found: bool,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> c_int {
        // SAFETY: the C library passes a valid `dl_phdr_info` whose `dlpi_phdr` holds `dlpi_phnum`
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
        // The first object reported is the main program (glibc and musl): stop there.
        1
    }
    let mut query = Query { addr, found: false };
    // SAFETY: `visit` matches the callback type and only reads what libc hands it; `query`
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut query).cast()) };
    query.found
}

/// Whether `addr` lies in the code of the program the kernel started, the one that
/// `/proc/self/exe` names: false when that program is another one that loaded this code (the
/// dynamic loader run as `ld.so ./app`, or a host program that loaded it as a shared library).
/// `None` when the kernel does not say (`start_code`/`end_code` of `/proc/self/stat`, hidden
/// from a process without ptrace access to itself).
///
/// ```
/// fn here() {}
/// assert_eq!(mp_sys::process::in_exe_code(here as usize), Some(true));
/// assert_eq!(mp_sys::process::in_exe_code(0), Some(false));
/// ```
pub fn in_exe_code(addr: usize) -> Option<bool> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, in parentheses, may hold spaces and parentheses: fields follow the last
    // ')'. The first of them is field 3 (state); start_code and end_code are fields 26 and 27.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(23);
    let start: usize = fields.next()?.parse().ok()?;
    let end: usize = fields.next()?.parse().ok()?;
    if start == 0 && end == 0 {
        return None;
    }
    Some((start..end).contains(&addr))
}

/// When process `pid` started (field 22 of `/proc/<pid>/stat`, in clock ticks since boot), or
/// `None` when it is gone or a zombie (it has ended: its memory is released). With the pid, it
/// names one process for good: a pid reused later has a later start time.
///
/// ```
/// let me = mp_sys::process::getpid();
/// assert!(mp_sys::process::start_time(me).is_some());
/// assert_eq!(mp_sys::process::start_time(me), mp_sys::process::start_time(me));
/// ```
pub fn start_time(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields follow the last ')' (the command name may hold any byte): state is field 3,
    // starttime field 22.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

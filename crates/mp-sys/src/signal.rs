//! Signal dispositions and the `sigaction` pieces a fault handler needs (on libc: rustix has no
//! `sigaction` outside its `runtime` feature, which is for libc-free programs).

use std::ffi::c_int;
use std::io;
use std::mem;

use crate::cvt;

/// Sets a signal to its default action, or to be ignored. Async-signal-safe.
///
/// ```
/// mp_sys::signal::set_ignored(libc::SIGPIPE, true);
/// ```
pub fn set_ignored(signal: c_int, ignored: bool) {
    let action = if ignored {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    // SAFETY: SIG_IGN and SIG_DFL are always valid dispositions.
    unsafe { libc::signal(signal, action) };
}

/// Sends `signal` to this very process; a number that names no signal is ignored.
/// Async-signal-safe.
///
/// ```no_run
/// mp_sys::signal::kill_self(libc::SIGKILL);
/// ```
pub fn kill_self(signal: c_int) {
    if let Some(signal) = rustix::process::Signal::from_named_raw(signal) {
        let _ = rustix::process::kill_process(rustix::process::getpid(), signal);
    }
}

/// A `SA_SIGINFO` handler of a fault signal. The kernel passes a valid `siginfo_t`.
pub type FaultHandler = extern "C" fn(c_int, &libc::siginfo_t, *mut libc::c_void);

/// The action of a signal before [`set_fault_handler`] replaced it, as the kernel reported it.
pub struct PreviousAction(libc::sigaction);

impl std::fmt::Debug for PreviousAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PreviousAction")
            .field(&self.0.sa_sigaction)
            .finish()
    }
}

/// Installs `handler` for `signal`, run on the alternate signal stack; returns the action it
/// replaced.
///
/// ```no_run
/// extern "C" fn on_fault(_: i32, _: &libc::siginfo_t, _: *mut libc::c_void) {}
/// let previous = mp_sys::signal::set_fault_handler(libc::SIGSEGV, on_fault)?;
/// assert!(!previous.is(on_fault));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_fault_handler(signal: c_int, handler: FaultHandler) -> io::Result<PreviousAction> {
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
    pub fn is(&self, handler: FaultHandler) -> bool {
        self.0.sa_sigaction == handler as usize
    }

    /// Hands a signal on to this action, from within a handler. A default or ignored action
    /// is restored and the handler returns: a faulting instruction runs again and the fault
    /// ends the process as it would have without the handler; a signal that was sent (it
    /// does not repeat) is sent again, to take the default action once the handler returns.
    pub fn chain(&self, signal: c_int, info: &libc::siginfo_t, context: *mut libc::c_void) {
        let action = self.0.sa_sigaction;
        if action == libc::SIG_IGN {
            set_ignored(signal, true);
        } else if action == libc::SIG_DFL {
            set_ignored(signal, false);
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
pub fn fault_address(info: &libc::siginfo_t) -> Option<usize> {
    if info.si_code <= 0 {
        return None;
    }
    // SAFETY: `si_addr` reads plain integer bytes of an initialised siginfo_t; for a fault
    // (positive si_code) of SIGSEGV or SIGBUS the kernel stores the faulting address there.
    Some(unsafe { info.si_addr() as usize })
}

/// Per signal number, the socket [`send_byte_on`]'s handler writes to (-1: none).
static WAKE_SOCKETS: [std::sync::atomic::AtomicI32; 65] =
    [const { std::sync::atomic::AtomicI32::new(-1) }; 65];

extern "C" fn send_wake_byte(signal: c_int) {
    let slot = usize::try_from(signal)
        .ok()
        .and_then(|s| WAKE_SOCKETS.get(s));
    let fd = slot.map_or(-1, |s| s.load(std::sync::atomic::Ordering::Relaxed));
    if fd >= 0 {
        // SAFETY: the fd was stored from a `BorrowedFd` whose owner keeps it open while the
        // handler is installed (the contract of `send_byte_on`); it is only borrowed for the
        // call.
        let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        // send(2) is async-signal-safe; a full socket drops the byte instead of blocking the
        // handler, which is fine, since one pending byte already wakes the reader.
        crate::socket::send_now(sock, &[1]);
    }
}

/// Installs a handler for `signal` that sends one byte to the socket `writer` (a self-pipe
/// trick: a thread reading the other end hears of the signal), if the signal still has its
/// default disposition. Returns whether it did (a program that handles the signal itself keeps
/// its handler, and a process that ignores it keeps ignoring it). `InvalidInput` for a number
/// that is no signal. On libc: rustix has no `sigaction` for programs that use libc.
///
/// The handler uses `writer` until the signal's disposition changes again (as
/// [`set_ignored`]): `writer` must stay open until then.
///
/// ```
/// use std::os::fd::AsFd;
/// let (reader, writer) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// if mp_sys::signal::send_byte_on(libc::SIGUSR2, writer.as_fd())? {
///     mp_sys::signal::kill_self(libc::SIGUSR2);
///     let mut byte = [0u8; 1];
///     assert_eq!(mp_sys::fd::read(reader.as_fd(), &mut byte)?, 1);
///     mp_sys::signal::set_ignored(libc::SIGUSR2, false);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn send_byte_on(signal: c_int, writer: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let slot = usize::try_from(signal)
        .ok()
        .filter(|&s| s > 0)
        .and_then(|s| WAKE_SOCKETS.get(s))
        .ok_or(io::ErrorKind::InvalidInput)?;
    slot.store(writer.as_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    // SAFETY: sigaction is plain data; all zeroes is a valid (empty) value.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: querying the disposition with a null new action only writes `old`.
    cvt(unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) })?;
    if old.sa_sigaction != libc::SIG_DFL {
        return Ok(false);
    }
    // SAFETY: as above.
    let mut new: libc::sigaction = unsafe { mem::zeroed() };
    new.sa_sigaction = send_wake_byte as extern "C" fn(c_int) as libc::sighandler_t;
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: the handler has the one-argument signature (no SA_SIGINFO) and only calls
    // send(2), which is async-signal-safe.
    cvt(unsafe { libc::sigaction(signal, &new, std::ptr::null_mut()) })?;
    Ok(true)
}

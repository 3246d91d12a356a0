//! Signal dispositions and the `sigaction` pieces a fault handler needs (on libc: rustix has no
//! `sigaction` outside its `runtime` feature, which is for libc-free programs).

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

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
    ///
    /// # Safety
    /// Call it only from a signal handler, with the `signal`, `info` and `context` the kernel
    /// gave that handler: a foreign handler this calls may read `context` as the kernel's
    /// `ucontext_t`.
    pub unsafe fn chain(&self, signal: c_int, info: &libc::siginfo_t, context: *mut libc::c_void) {
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
            // would call it (the caller's promise: these are the kernel's arguments).
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { mem::transmute(action) };
            f(signal, std::ptr::from_ref(info).cast_mut(), context);
            resend_if_default(signal, info);
        } else {
            // SAFETY: the kernel reported this action without SA_SIGINFO, so `action` is the
            // address of a one-argument handler.
            let f: extern "C" fn(c_int) = unsafe { mem::transmute(action) };
            f(signal);
            resend_if_default(signal, info);
        }
    }
}

/// After a foreign handler of a fault signal ran: one that restored the default action
/// expects the fault to happen again and kill the process (Rust's own stack-overflow handler
/// does), but a *sent* signal (`kill`, `raise`: `si_code` not positive) does not recur, and
/// would be lost. It is sent again, and now kills as the sender meant.
fn resend_if_default(signal: c_int, info: &libc::siginfo_t) {
    if info.si_code <= 0 && disposition(signal).is_ok_and(|d| d == libc::SIG_DFL) {
        kill_self(signal);
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

/// Per signal number, the socket [`send_byte_on`]'s handler writes to (-1: none; [`BUSY`]: a
/// handler being installed or removed, by the thread that claimed the slot). Claimed before
/// the disposition changes, so installs and removals of one signal never interleave; holds a
/// descriptor only once the handler is installed, owned by the [`ByteOnSignal`] that wrote it.
static WAKE_SOCKETS: [AtomicI32; 65] = [const { AtomicI32::new(-1) }; 65];
/// A slot claimed by a thread that is changing the signal's disposition.
const BUSY: i32 = -2;
/// The signals (bit n - 1: signal n) whose disposition may be [`send_wake_byte`]: a forked child
/// resets those (see [`forget_handlers_after_fork`]).
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// How many [`send_wake_byte`] calls are between reading a slot and the end of their send: a
/// guard waits for none before it closes the socket, whose number may then be reused.
static SENDING: AtomicU32 = AtomicU32::new(0);

extern "C" fn send_wake_byte(signal: c_int) {
    SENDING.fetch_add(1, Ordering::SeqCst);
    let slot = usize::try_from(signal)
        .ok()
        .and_then(|s| WAKE_SOCKETS.get(s));
    let fd = slot.map_or(-1, |s| s.load(Ordering::SeqCst));
    if fd >= 0 {
        // SAFETY: the slot holds the descriptor of a live `ByteOnSignal`, whose drop empties
        // the slot and then waits for `SENDING` to drop to zero before it closes it: the
        // descriptor stays open for this call.
        let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        // send(2) is async-signal-safe; a full socket drops the byte instead of blocking the
        // handler, which is fine, since one pending byte already wakes the reader.
        crate::socket::send_now(sock, &[1]);
    }
    SENDING.fetch_sub(1, Ordering::SeqCst);
}

/// The handler [`send_byte_on`] installed: it owns the socket the handler writes to.
/// Dropping it restores the default disposition (unless the signal was given another since)
/// and then closes the socket. In a forked child, whose copy of the handler was reset at the
/// fork, dropping it only closes the child's copy of the socket.
#[derive(Debug)]
pub struct ByteOnSignal {
    signal: c_int,
    writer: OwnedFd,
    /// The process that installed the handler.
    pid: u32,
}

impl ByteOnSignal {
    /// The signal it handles.
    pub fn signal(&self) -> c_int {
        self.signal
    }
}

impl Drop for ByteOnSignal {
    fn drop(&mut self) {
        if crate::process::getpid_now() != self.pid {
            return;
        }
        // Claimed first: no `send_byte_on` of this signal runs until the slot is free again,
        // so none sees the default disposition while the slot still looks taken.
        let slot = &WAKE_SOCKETS[self.signal as usize];
        let claimed = slot
            .compare_exchange(
                self.writer.as_raw_fd(),
                BUSY,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok();
        if disposition(self.signal).is_ok_and(|d| d == wake_handler()) {
            set_ignored(self.signal, false);
        }
        HANDLED.fetch_and(!(1u64 << (self.signal - 1)), Ordering::SeqCst);
        // A handler that read the slot before it was emptied still sends on the socket.
        while SENDING.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        if claimed {
            slot.store(-1, Ordering::SeqCst);
        }
    }
}

fn wake_handler() -> libc::sighandler_t {
    send_wake_byte as extern "C" fn(c_int) as libc::sighandler_t
}

/// The handler address (or `SIG_DFL`, `SIG_IGN`) of `signal`.
pub(crate) fn disposition(signal: c_int) -> io::Result<libc::sighandler_t> {
    // SAFETY: sigaction is plain data; all zeroes is a valid (empty) value.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: querying the disposition with a null new action only writes `old`.
    cvt(unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) })?;
    Ok(old.sa_sigaction)
}

/// Installs a handler for `signal` that sends one byte to the socket `writer` (a self-pipe
/// trick: a thread reading the other end hears of the signal), if the signal still has its
/// default disposition. Returns the handler, which owns `writer`, or `None` (and closes
/// `writer`) if it did not: a program that handles the signal itself keeps its handler, and a
/// process that ignores it keeps ignoring it. `InvalidInput` for a number that is no signal;
/// the error of `sigaction` for one that cannot be caught. On libc: rustix has no `sigaction`
/// for programs that use libc.
///
/// A forked child starts with the default disposition instead of the handler (its socket
/// would be the parent's): a child action of [`fork`](crate::fork) resets it, whoever forks.
///
/// ```
/// let (reader, writer) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// if let Some(handler) = mp_sys::signal::send_byte_on(libc::SIGUSR2, writer)? {
///     mp_sys::signal::kill_self(libc::SIGUSR2);
///     let mut byte = [0u8; 1];
///     assert_eq!(mp_sys::fd::read(std::os::fd::AsFd::as_fd(&reader), &mut byte)?, 1);
///     drop(handler); // SIGUSR2 has its default disposition again.
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn send_byte_on(signal: c_int, writer: OwnedFd) -> io::Result<Option<ByteOnSignal>> {
    let slot = usize::try_from(signal)
        .ok()
        .filter(|&s| s > 0)
        .and_then(|s| WAKE_SOCKETS.get(s))
        .ok_or(io::ErrorKind::InvalidInput)?;
    // The fork action that resets the disposition in a child, before the handler exists.
    FORGET_HANDLERS.register();
    // Claimed before the disposition is read or changed: another thread's install or removal
    // of this signal's handler owns it until it is done.
    if slot
        .compare_exchange(-1, BUSY, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Ok(None);
    }
    let installed = install_wake_handler(signal);
    // The descriptor only once the handler is installed: a slot written for a handler that
    // never was would name a descriptor nobody keeps open.
    let fd = match installed {
        Ok(true) => writer.as_raw_fd(),
        _ => -1,
    };
    slot.store(fd, Ordering::SeqCst);
    if !installed? {
        return Ok(None);
    }
    Ok(Some(ByteOnSignal {
        signal,
        writer,
        pid: crate::process::getpid_now(),
    }))
}

/// Installs [`send_wake_byte`] for `signal` if its disposition is the default; `false` if not.
/// The caller holds the signal's slot.
fn install_wake_handler(signal: c_int) -> io::Result<bool> {
    if disposition(signal)? != libc::SIG_DFL {
        return Ok(false);
    }
    // Marked before the handler exists, so that a fork from now on resets it.
    HANDLED.fetch_or(1u64 << (signal - 1), Ordering::SeqCst);
    // SAFETY: sigaction is plain data; all zeroes is a valid (empty) value.
    let mut new: libc::sigaction = unsafe { mem::zeroed() };
    new.sa_sigaction = wake_handler();
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: the handler has the one-argument signature (no SA_SIGINFO) and only touches
    // atomics and calls send(2), which is async-signal-safe.
    if let Err(e) = cvt(unsafe { libc::sigaction(signal, &new, std::ptr::null_mut()) }) {
        HANDLED.fetch_and(!(1u64 << (signal - 1)), Ordering::SeqCst);
        return Err(e);
    }
    Ok(true)
}

/// Registered before a handler is installed: see [`forget_handlers_after_fork`].
pub(crate) static FORGET_HANDLERS: crate::fork::AtFork =
    crate::fork::AtFork::in_child(crate::fork::Rank::SIGNAL_HANDLERS, forget_handlers_after_fork);

/// In a forked child (a child action of `fork`): every [`send_byte_on`] handler goes back to
/// the default disposition and forgets its socket, which is the parent's. Async-signal-safe:
/// atomics and `sigaction` only.
fn forget_handlers_after_fork() {
    let handled = HANDLED.swap(0, Ordering::SeqCst);
    for signal in 1..=64 {
        if handled & (1u64 << (signal - 1)) == 0 {
            continue;
        }
        if disposition(signal).is_ok_and(|d| d == wake_handler()) {
            set_ignored(signal, false);
        }
        WAKE_SOCKETS[signal as usize].store(-1, Ordering::SeqCst);
    }
    // A handler that ran in another thread of the parent at the fork never ends here.
    SENDING.store(0, Ordering::SeqCst);
}

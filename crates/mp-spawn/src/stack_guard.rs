//! Stack overflow in a child: Rust's message, SIGABRT, and an outcome that says so.
//!
//! Rust reports a stack overflow ("thread 'main' has overflowed its stack") from a SIGSEGV
//! handler that std's runtime installs before `main`. A spawn or forkserver child runs its
//! target from an `.init_array` entry, before `main`, so it never gets that handler and an
//! overflow was a silent SIGSEGV. [`install`] gives every child, whatever its start method,
//! its own handler, on an alternate signal stack, just before the target runs:
//!
//! - a fault within [`GUARD_PAGES`] pages below the low end of the stack of the thread that
//!   runs the target is an overflow: the handler writes a message prepared beforehand to fd 2
//!   (`Process <name>:` then Rust's two lines), sends a pre-encoded
//!   `Outcome::StackOverflow` frame on the result channel, and aborts (exit code -6, as
//!   Rust's own handler gives under fork);
//! - any other fault, and a SIGSEGV sent by a process, goes to the action it replaced (std's,
//!   in a forked child, which reports the overflow of another thread), or, with no handler
//!   before, ends the process with the same signal as without the guard.
//!
//! Not covered: other threads of a spawn or forkserver child (std gives them no alternate
//! stack, since its runtime init never ran), whose overflow stays a plain SIGSEGV.
//!
//! The handler only loads atomics and calls `getpid`, `write`, `send`, `sigaction`, `kill`
//! and `abort`: all async-signal-safe. Everything else (the message, the frame, the stack bounds) is computed
//! by `install` and leaked, so that the handler never allocates or locks.

use std::ffi::c_int;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::frame::Codec;
use crate::target::Outcome;
use mp_sys::fork::ForkOnce;

/// How far below the stack's low end a fault still counts as an overflow: the guard page of
/// a thread's stack, or the addresses just past the main thread's rlimit. Rust probes each
/// page of a large frame in turn, so an overflow faults within the first page or so.
const GUARD_PAGES: usize = 16;

/// The alternate signal stack made for a thread without one: room for the kernel's signal
/// frame (several KiB with large vector registers), the handler and the one it chains to.
const ALT_STACK: usize = 64 * 1024;
/// An alternate stack the thread already has is kept from this size on (std's is `SIGSTKSZ`).
const ALT_STACK_KEPT: usize = 8 * 1024;

/// What the handler needs, prepared by `install`.
struct Guard {
    /// The process that installed it: a process forked later (by the target, or a fork
    /// helper) inherits the handler but not the right to speak on this result channel.
    pid: u32,
    /// `[low - GUARD_PAGES pages, low)` of the target thread's stack.
    guard: (usize, usize),
    message: Box<[u8]>,
    frame: &'static [u8],
    control: OwnedFd,
}

static GUARD: AtomicPtr<Guard> = AtomicPtr::new(std::ptr::null_mut());
/// The actions replaced for SIGSEGV and SIGBUS, in that order.
static PREVIOUS: [AtomicPtr<mp_sys::signal::PreviousAction>; 2] = [
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
];
const SIGNALS: [c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The first stack measured in this process, `[low, high)`, inherited by its forks.
/// `pthread_getattr_np` reads `/proc/self/maps` for a main thread (tens of µs), so a server
/// that forks children measures its stack once, before the first fork ([`prepare_fork`]). A
/// `ForkOnce`: a forked child sets it if its parent had not.
static STACK: ForkOnce<(usize, usize)> = ForkOnce::new();

/// Prepares the calling thread for the children it is about to fork, which inherit both: its
/// stack measured, and an alternate signal stack (kept if it has one, as std's threads do).
pub(crate) fn prepare_fork() {
    let _ = stack_low_end();
    let _ = mp_sys::stack::ensure_alt_stack(ALT_STACK_KEPT, ALT_STACK);
    let _ = frame();
}

/// The low end of the calling thread's stack.
fn stack_low_end() -> std::io::Result<usize> {
    let here = std::hint::black_box(0u8);
    let here = std::ptr::from_ref(&here) as usize;
    if let Some((low, high)) = STACK.get() {
        if (*low..*high).contains(&here) {
            return Ok(*low);
        }
    }
    let (low, size) = mp_sys::stack::current_stack()?;
    let _ = STACK.set((low, low + size));
    Ok(low)
}

/// Guards the calling thread, which is about to run the target of the child `name`, whose
/// result channel is `control`. Best effort: without it, an overflow is a plain SIGSEGV.
pub(crate) fn install(name: &str, control: BorrowedFd<'_>) {
    let _ = try_install(name, control);
}

fn try_install(name: &str, control: BorrowedFd<'_>) -> std::io::Result<()> {
    let page = mp_sys::stack::page_size();
    let low = stack_low_end()?;
    // Our own copy, above the low numbers the target may use, so that the handler holds a
    // descriptor that nothing else closes.
    let control = mp_sys::fd::move_above(control.try_clone_to_owned()?, 10)?;
    // The target runs on the child's only thread: its thread id is the process id.
    let pid = mp_sys::process::getpid_now();
    let guard = Box::new(Guard {
        pid,
        guard: (low.saturating_sub(GUARD_PAGES * page), low),
        message: message(name, pid),
        frame: frame()?,
        control,
    });
    mp_sys::stack::ensure_alt_stack(ALT_STACK_KEPT, ALT_STACK)?;
    // Leaked: the handler may read it until the process ends. An older one (inherited from
    // the process this one was forked from) is leaked as well: a fault may be in flight on
    // no other thread here, but freeing it buys nothing.
    GUARD.store(Box::into_raw(guard), Ordering::Release);
    for (signal, previous) in SIGNALS.iter().zip(&PREVIOUS) {
        let replaced = mp_sys::signal::set_fault_handler(*signal, on_fault)?;
        // Installed again (a fork of a guarded child): keep what the first one replaced.
        if !replaced.is(on_fault) {
            previous.store(Box::into_raw(Box::new(replaced)), Ordering::Release);
        }
    }
    Ok(())
}

/// The message of an overflow, in Rust's words (std's handler, 1.9x), after the line Python
/// prints before a traceback. The child's only thread is its main thread, under every start
/// method. Built without `core::fmt`: its code would be faulted in by every forked child.
fn message(name: &str, tid: u32) -> Box<[u8]> {
    let mut text = Vec::with_capacity(128 + name.len());
    text.extend_from_slice(b"\nProcess ");
    text.extend_from_slice(name.as_bytes());
    text.extend_from_slice(b":\nthread 'main' (");
    let mut digits = [0u8; 10];
    let mut n = tid;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    text.extend_from_slice(&digits[at..]);
    text.extend_from_slice(
        b") has overflowed its stack\nfatal runtime error: stack overflow, aborting\n",
    );
    text.into_boxed_slice()
}

/// The result frame that says `Outcome::StackOverflow`: the same for every child, so encoded
/// once (by [`prepare_fork`] for forked children).
fn frame() -> std::io::Result<&'static [u8]> {
    // A `ForkOnce`: a forked child encodes it if its parent had not.
    static FRAME: ForkOnce<Box<[u8]>> = ForkOnce::new();
    let frame = FRAME.get_or_try_init(|| {
        let payload =
            postcard::to_stdvec(&Outcome::StackOverflow).map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(Codec::CHANNEL.encode(&payload).into_boxed_slice())
    })?;
    Ok(frame)
}

extern "C" fn on_fault(signal: c_int, info: &libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: GUARD holds null or a pointer from Box::into_raw that is never freed.
    let guard = unsafe { GUARD.load(Ordering::Acquire).as_ref() };
    if let (Some(guard), Some(addr)) = (guard, mp_sys::signal::fault_address(info)) {
        if guard.pid == mp_sys::process::getpid_now()
            && (guard.guard.0..guard.guard.1).contains(&addr)
        {
            let _ = mp_sys::fd::write_all(std::io::stderr().as_fd(), &guard.message);
            mp_sys::socket::send_now(guard.control.as_fd(), guard.frame);
            std::process::abort();
        }
    }
    let index = usize::from(signal == libc::SIGBUS);
    // SAFETY: PREVIOUS holds null or pointers from Box::into_raw that are never freed.
    match unsafe { PREVIOUS[index].load(Ordering::Acquire).as_ref() } {
        // SAFETY: this is the signal handler, passing on the kernel's own arguments.
        Some(previous) => unsafe { previous.chain(signal, info, context) },
        // Not reached: the replaced action is stored right after the handler is set, on the
        // only thread, which does not fault in between.
        None => mp_sys::signal::set_ignored(signal, false),
    }
}

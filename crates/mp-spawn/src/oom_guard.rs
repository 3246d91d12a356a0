//! An allocation that failed under a memory cap: an outcome that says so.
//!
//! Rust answers a failed allocation by printing "memory allocation of N bytes failed" and
//! aborting: a SIGABRT like any other abort, an explicit `abort()` or a double panic. What
//! tells them apart is `errno`: the allocator's `mmap` or `brk` failed with `ENOMEM` just
//! before, and nothing between it and the abort (a successful `write` of the message, `raise`)
//! changes it. So a child with a memory cap ([`Limits::memory`](crate::Limits::memory)) gets a
//! SIGABRT handler, installed just before its target runs, that sends a pre-encoded
//! `Outcome::OutOfMemory` frame on the result channel when `errno` is `ENOMEM`, then hands the
//! signal on (the abort goes on: exit code -6). The parent reads it as
//! [`ProcessError::MemoryLimit`](crate::ProcessError::MemoryLimit). An abort for another reason
//! whose thread happens to hold `ENOMEM` from an earlier failed call reads as one too: rare,
//! and said in `Limits::memory`.
//!
//! As `stack_guard`'s, the handler only loads atomics, reads `errno` and calls `getpid`,
//! `send`, `sigaction` and `kill`: all async-signal-safe; the frame and the descriptor are
//! prepared by [`install`] and leaked.

use std::ffi::c_int;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::frame::Codec;
use crate::target::Outcome;

/// What the handler needs, prepared by `install`.
struct Guard {
    /// The process that installed it (a process forked later inherits the handler, not the
    /// right to speak on this result channel).
    pid: u32,
    frame: Box<[u8]>,
    control: OwnedFd,
}

static GUARD: AtomicPtr<Guard> = AtomicPtr::new(std::ptr::null_mut());
/// The action replaced for SIGABRT.
static PREVIOUS: AtomicPtr<mp_sys::signal::PreviousAction> = AtomicPtr::new(std::ptr::null_mut());

/// Guards the calling process, whose target is about to run with a memory cap and whose
/// result channel is `control`. Best effort: without it, an allocation failure reads as a
/// plain SIGABRT.
pub(crate) fn install(control: BorrowedFd<'_>) {
    let _ = try_install(control);
}

fn try_install(control: BorrowedFd<'_>) -> std::io::Result<()> {
    let payload = postcard::to_stdvec(&Outcome::OutOfMemory).map_err(std::io::Error::other)?;
    let guard = Box::new(Guard {
        pid: mp_sys::process::getpid_now(),
        frame: Codec::CHANNEL.encode(&payload).into_boxed_slice(),
        // Our own copy, above the low numbers the target may use.
        control: mp_sys::fd::move_above(control.try_clone_to_owned()?, 10)?,
    });
    // Leaked: the handler may read it until the process ends.
    GUARD.store(Box::into_raw(guard), Ordering::Release);
    let replaced = mp_sys::signal::set_fault_handler(libc::SIGABRT, on_abort)?;
    if !replaced.is(on_abort) {
        PREVIOUS.store(Box::into_raw(Box::new(replaced)), Ordering::Release);
    }
    Ok(())
}

extern "C" fn on_abort(signal: c_int, info: &libc::siginfo_t, context: *mut libc::c_void) {
    let errno = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: GUARD holds null or a pointer from Box::into_raw that is never freed.
    if let Some(guard) = unsafe { GUARD.load(Ordering::Acquire).as_ref() } {
        if errno == Some(libc::ENOMEM) && guard.pid == mp_sys::process::getpid_now() {
            mp_sys::socket::send_now(guard.control.as_fd(), &guard.frame);
        }
    }
    // SAFETY: PREVIOUS holds null or a pointer from Box::into_raw that is never freed.
    match unsafe { PREVIOUS.load(Ordering::Acquire).as_ref() } {
        // SAFETY: this is the signal handler, passing on the kernel's own arguments.
        Some(previous) => unsafe { previous.chain(signal, info, context) },
        // Installed by a process this one was forked from, which kept its own record: the
        // default action, taken again when the handler returns (the signal is re-sent).
        None => {
            mp_sys::signal::set_ignored(signal, false);
            mp_sys::signal::kill_self(signal);
        }
    }
}

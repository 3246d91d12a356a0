//! The pre-`main` entry: the `.init_array` hook that catches a spawned child or a forkserver
//! before the program's `main` runs, and hands it to `bootstrap` or `forkserver` (see the
//! `bootstrap` module notes for whom it believes).

use std::ffi::{CStr, c_char, c_int};
use std::os::fd::{AsFd, OwnedFd};

use crate::bootstrap::{SERVER_MARK, SPAWN_MARK, authenticate_parent, child_main};
use crate::forkserver;
use crate::frame::{self, Codec, Stop};

fn spawned_child(control: OwnedFd) -> ! {
    crate::context::force_start_method(crate::context::StartMethod::Spawn);
    // Rust's runtime ignores SIGPIPE before `main`; a child that never reaches `main` does it here.
    mp_sys::signal::set_ignored(libc::SIGPIPE, true);
    if let Err(e) = authenticate_parent(control.as_fd()) {
        eprintln!("mp: a spawned child refuses its channel: {e}");
        mp_sys::process::exit_now(1)
    }
    // Keep the low fd numbers free for the target, as in a fresh program.
    let control =
        mp_sys::fd::move_above(control, 10).unwrap_or_else(|_| mp_sys::process::exit_now(1));
    match Codec::CHANNEL.recv(control.as_fd(), frame::LIMIT, Stop::NEVER) {
        Ok((payload, fds)) => child_main(&payload, fds, control),
        Err(e) => {
            eprintln!("mp: a spawned child could not read its bootstrap message: {e}");
            mp_sys::process::exit_now(1)
        }
    }
}

/// Called by the C runtime before `main` in every program that links mp-spawn; returns at once
/// unless this process is an mp child or forkserver.
///
/// A program in secure-execution mode (setuid, setgid, file capabilities: `AT_SECURE`) ignores
/// the marker and runs `main`: its caller, not its parent, chose the argv and the descriptors.
/// So mp's spawn and forkserver methods do not work in such programs; fork does.
extern "C" fn child_entry(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    // mp starts its children with exactly [argv0, mark, fd]; anything else is a normal run.
    if argc != 3 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes main's argc and argv to .init_array functions: argv holds argc
    // (here 3) pointers, each null or a valid NUL-terminated string.
    let (mark, fd) = unsafe { (*argv.add(1), *argv.add(2)) };
    if mark.is_null() || fd.is_null() {
        return;
    }
    // SAFETY: non-null entries of argv within argc are NUL-terminated strings (see above).
    let (mark, fd) = unsafe { (CStr::from_ptr(mark), CStr::from_ptr(fd)) };
    let is_spawn = mark == SPAWN_MARK;
    if (!is_spawn && mark != SERVER_MARK) || mp_sys::creds::is_secure_exec() {
        return;
    }
    let Some(fd) = parse_fd(fd.to_bytes()) else {
        return;
    };
    // The descriptor must be open before it is owned; the parent is authenticated through it
    // next (`authenticate_parent`), before anything read from it is believed.
    // SAFETY: only this pre-`main` entry adopts `fd`, the number its parent dup2'ed into this
    // process for this use: nothing else in the process owns it.
    let Ok(fd) = (unsafe { mp_sys::fd::adopt(fd) }) else {
        return;
    };
    if is_spawn {
        spawned_child(fd)
    } else {
        forkserver::serve(fd)
    }
}

/// A descriptor number as mp writes it: 1 to 10 decimal digits without a sign or a leading
/// zero, above stderr, and an `int`.
fn parse_fd(s: &[u8]) -> Option<c_int> {
    if s.is_empty() || s.len() > 10 || s[0] == b'0' || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let fd = s.iter().try_fold(0 as c_int, |n, d| {
        n.checked_mul(10)?.checked_add(c_int::from(d - b'0'))
    })?;
    (fd > 2).then_some(fd)
}

#[used]
#[unsafe(link_section = ".init_array")]
static CHILD_ENTRY: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = child_entry;

/// Keeps [`CHILD_ENTRY`] in every program that starts processes (the linker drops unreferenced
/// objects, and with them their `.init_array` entries).
pub(crate) fn ensure_linked() {
    std::hint::black_box(&CHILD_ENTRY);
}

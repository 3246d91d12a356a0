//! The pre-`main` entry, the program's only one: the `.init_array` hook that catches a
//! spawned child, a forkserver or a helper process (such as mp-shm's resource tracker) before
//! the program's `main` runs, and hands it to `bootstrap`, `forkserver` or its `helper` (see
//! the `bootstrap` module notes for whom it believes).

#[cfg(target_env = "gnu")]
use std::ffi::c_char;
use std::ffi::{CStr, c_int};
use std::os::fd::{AsFd, OwnedFd};

use crate::bootstrap::{HELPER_MARK, SERVER_MARK, SPAWN_MARK, authenticate_parent, child_main};
use crate::frame::{self, Codec, Stop};
use crate::{forkserver, helper};

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
#[cfg(target_env = "gnu")]
extern "C" fn child_entry(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    // While the program has one thread: mp's fork handler, for every fork from here on.
    mp_sys::fork::install();
    // mp starts its processes with exactly [argv0, mark, fd]; anything else is a normal run.
    if argc != 3 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes main's argc and argv to .init_array functions: argv holds argc
    // (here 3) pointers, each null or a valid NUL-terminated string.
    let (name, mark, fd) = unsafe { (*argv, *argv.add(1), *argv.add(2)) };
    if name.is_null() || mark.is_null() || fd.is_null() {
        return;
    }
    // SAFETY: non-null entries of argv within argc are NUL-terminated strings (see above).
    let (name, mark, fd) = unsafe {
        (
            CStr::from_ptr(name),
            CStr::from_ptr(mark),
            CStr::from_ptr(fd),
        )
    };
    dispatch(name, mark, fd)
}

/// As glibc's, but musl calls `.init_array` functions without arguments: the argv comes from
/// `/proc/self/cmdline` (the kernel's copy of it), read only if it is short enough to be mp's.
#[cfg(not(target_env = "gnu"))]
extern "C" fn child_entry() {
    // While the program has one thread: mp's fork handler, for every fork from here on.
    mp_sys::fork::install();
    let Some(cmdline) = mp_sys::process::own_cmdline(4 * 4096 + 32) else {
        return;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    // mp starts its processes with exactly [argv0, mark, fd]: three NUL-terminated strings.
    let [name, mark, fd, b""] = args[..] else {
        return;
    };
    let (Ok(name), Ok(mark), Ok(fd)) = (
        std::ffi::CString::new(name),
        std::ffi::CString::new(mark),
        std::ffi::CString::new(fd),
    ) else {
        return;
    };
    dispatch(&name, &mark, &fd)
}

/// Runs a spawned child, a server or a helper if `mark` says so (never returning then);
/// returns at once for a normal run.
fn dispatch(name: &CStr, mark: &CStr, fd: &CStr) {
    enum Role {
        Spawned,
        Server,
        Helper(fn(OwnedFd) -> !),
    }
    let role = if mark == SPAWN_MARK {
        Role::Spawned
    } else if mark == SERVER_MARK {
        Role::Server
    } else if mark == HELPER_MARK {
        match helper::find(name) {
            Some(helper) => Role::Helper(helper.run),
            None => return,
        }
    } else {
        return;
    };
    if mp_sys::creds::is_secure_exec() {
        return;
    }
    let Some(fd) = parse_fd(fd.to_bytes()) else {
        return;
    };
    // The descriptor must be open before it is owned; a spawned child or a server
    // authenticates its parent through it next (`authenticate_parent`), before anything read
    // from it is believed.
    // SAFETY: only this pre-`main` entry adopts `fd`, the number its parent dup2'ed into this
    // process for this use: nothing else in the process owns it.
    let Ok(fd) = (unsafe { mp_sys::fd::adopt(fd) }) else {
        return;
    };
    match role {
        Role::Spawned => spawned_child(fd),
        Role::Server => {
            mp_sys::process::set_name("mp-forkserver");
            forkserver::serve(fd)
        }
        Role::Helper(run) => {
            // The helper's name, not the executable's (`exe`, for `/proc/self/exe`).
            mp_sys::process::set_name(&name.to_string_lossy());
            // As Rust's runtime would before `main`: a write to a closed peer is an error.
            mp_sys::signal::set_ignored(libc::SIGPIPE, true);
            run(fd)
        }
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
#[cfg(target_env = "gnu")]
static CHILD_ENTRY: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = child_entry;

#[used]
#[unsafe(link_section = ".init_array")]
#[cfg(not(target_env = "gnu"))]
static CHILD_ENTRY: extern "C" fn() = child_entry;

/// Keeps [`CHILD_ENTRY`] in every program that starts processes (the linker drops unreferenced
/// objects, and with them their `.init_array` entries).
pub(crate) fn ensure_linked() {
    std::hint::black_box(&CHILD_ENTRY);
}

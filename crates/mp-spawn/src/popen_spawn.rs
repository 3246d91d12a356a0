//! The spawn start method: a fresh copy of the executable, which finds its target through the
//! bootstrap message (see `bootstrap`).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::bootstrap::{self, SPAWN_MARK};
use crate::child::{Child, ChildSpec};
use crate::context::StartMethod;
use crate::error::ProcessError;
use crate::frame::Codec;
use crate::launch::Recipe;
use mp_sys::fork::ForkOnce;

/// The parent's argv[0], so that `ps` shows the program's own name for its children.
pub(crate) fn argv0() -> CString {
    std::env::args_os()
        .next()
        .and_then(|a| CString::new(a.as_bytes()).ok())
        .unwrap_or_else(|| c"mp-child".to_owned())
}

/// What `/proc/self/exe` names when it is not the program that contains mp's code: the
/// dynamic loader (the program was started as `ld.so ./app`), or a host program that loaded mp
/// in a shared library. A fresh copy of it would not run mp's pre-`main` entry (ld.so would
/// take the marker for its own option), so spawn and forkserver refuse up front. Computed once:
/// the running image never changes, and a forked child keeps its parent's (a `ForkOnce`: a
/// forked child that starts children asks too).
fn foreign_exe() -> Option<&'static Path> {
    static FOREIGN: ForkOnce<Option<PathBuf>> = ForkOnce::new();
    FOREIGN
        .get_or_init(|| {
            // Any function of mp-spawn will do: they all lie in the same object.
            let ours = foreign_exe as fn() -> Option<&'static Path> as usize;
            // Inside the main program's code (not a shared library's) and inside the code of
            // the image the kernel started (not a program that ld.so loaded).
            let at_home = mp_sys::process::in_program_code(ours)
                && mp_sys::process::in_exe_code(ours) != Some(false);
            if at_home {
                return None;
            }
            let exe = std::fs::read_link("/proc/self/exe")
                .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
            Some(exe)
        })
        .as_deref()
}

/// [`ProcessError::ForeignExecutable`] when a fresh copy of the executable would not be
/// this program (see [`foreign_exe`]).
pub(crate) fn refuse_foreign_exe(method: StartMethod) -> Result<(), ProcessError> {
    match foreign_exe() {
        Some(exe) => Err(ProcessError::ForeignExecutable {
            method,
            exe: exe.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Starts `/proc/self/exe` with the argv `[argv0, mark, N]`, handing it `fd` as its channel
/// (descriptor `N`), for the pre-`main` entry to find; returns its pid.
pub(crate) fn spawn_with_channel(argv0: &CStr, mark: &CStr, fd: &OwnedFd) -> std::io::Result<u32> {
    // Callers with a `ProcessError` refuse earlier, with the start method; this covers the rest
    // (helper processes).
    if let Some(exe) = foreign_exe() {
        let why = format!(
            "cannot start a copy of this program: this process runs {}, which is not the \
             program that contains mp (started through ld.so, or mp inside a shared library)",
            exe.display()
        );
        return Err(std::io::Error::new(std::io::ErrorKind::Unsupported, why));
    }
    // Any number above stderr works; avoid dup2'ing an fd onto itself, which keeps close-on-exec.
    let target: RawFd = if fd.as_raw_fd() == 3 { 4 } else { 3 };
    let fd_arg = CString::new(target.to_string()).expect("digits have no NUL");
    mp_sys::process::spawn_self(&[argv0, mark, &fd_arg], &[(fd.as_fd(), target)])
}

pub(crate) fn start(
    spec: &ChildSpec<'_>,
    recipe: &Recipe,
) -> Result<(Child, OwnedFd), ProcessError> {
    refuse_foreign_exe(StartMethod::Spawn)?;
    let (boot, lifeline, shared) = bootstrap::message(spec, recipe)?;
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    let pid = spawn_with_channel(&argv0(), SPAWN_MARK, &theirs)?;
    drop(theirs);
    let pidfd = mp_sys::pidfd::open(pid)?;
    let child = Child::new(pid, spec.name.to_owned(), spec.daemon, pidfd, None);
    let mut fds = vec![lifeline.as_fd()];
    fds.extend(shared);
    fds.extend(recipe.args.fds.iter().map(AsFd::as_fd));
    match Codec::CHANNEL.send(ours.as_fd(), &boot, &fds) {
        // A child that died before reading is reported by `join`, with its exit code.
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let _ = mp_sys::pidfd::send_signal(child.pidfd(), libc::SIGKILL);
            return Err(e.into());
        }
    }
    Ok((child, ours))
}

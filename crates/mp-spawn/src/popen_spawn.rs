//! The spawn start method: a fresh copy of the executable, which finds its target through the
//! bootstrap message (see `bootstrap`).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::bootstrap::{self, SPAWN_MARK};
use crate::child::{Child, ChildSpec};
use crate::error::ProcessError;
use crate::frame::Codec;
use crate::target::Recipe;

/// The parent's argv[0], so that `ps` shows the program's own name for its children.
pub(crate) fn argv0() -> CString {
    std::env::args_os()
        .next()
        .and_then(|a| CString::new(a.as_bytes()).ok())
        .unwrap_or_else(|| c"mp-child".to_owned())
}

/// Starts `/proc/self/exe` with the argv `[argv0, mark, N]`, handing it `fd` as its channel
/// (descriptor `N`), for the pre-`main` entry to find; returns its pid.
pub(crate) fn spawn_with_channel(argv0: &CStr, mark: &CStr, fd: &OwnedFd) -> std::io::Result<u32> {
    // Any number above stderr works; avoid dup2'ing an fd onto itself, which keeps close-on-exec.
    let target: RawFd = if fd.as_raw_fd() == 3 { 4 } else { 3 };
    let fd_arg = CString::new(target.to_string()).expect("digits have no NUL");
    mp_sys::process::spawn_self(&[argv0, mark, &fd_arg], &[(fd.as_fd(), target)])
}

pub(crate) fn start(
    spec: &ChildSpec<'_>,
    recipe: &Recipe,
) -> Result<(Child, OwnedFd), ProcessError> {
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

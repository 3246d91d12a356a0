//! Helper processes: long-lived servers that a library starts as fresh copies of this very
//! executable, such as mp-shm's resource tracker (Python starts its resource tracker and
//! forkserver the same way).
//!
//! A library declares a [`Helper`] in [`HELPERS`] and starts it with [`start_helper`]; the new
//! process is caught by mp-spawn's pre-`main` entry (the program's only one: see `entry`),
//! which finds the helper by name and runs it, so the program's `main` never runs there.
//!
//! A helper runs with the rights of whoever runs the program, with a channel that anyone who
//! can run the program could have made: it must treat what it reads as untrusted input (the
//! entry does not authenticate its parent, which a helper may outlive by design).
//!
//! ```
//! use std::ffi::CStr;
//! use std::os::fd::{AsFd, OwnedFd};
//! use mp_spawn::helper::{HELPERS, Helper, start_helper};
//!
//! fn echo(channel: OwnedFd) -> ! {
//!     let mut buf = [0u8; 64];
//!     while let Ok(n @ 1..) = mp_sys::fd::read(channel.as_fd(), &mut buf) {
//!         let _ = mp_sys::fd::write_all(channel.as_fd(), &buf[..n]);
//!     }
//!     mp_sys::process::exit_now(0)
//! }
//!
//! #[linkme::distributed_slice(HELPERS)]
//! static ECHO: Helper = Helper { name: c"my-echo-server", run: echo };
//!
//! let (channel, pid) = start_helper(&ECHO)?;
//! mp_sys::fd::write_all(channel.as_fd(), b"hi")?;
//! let mut back = [0u8; 2];
//! assert_eq!(mp_sys::fd::read(channel.as_fd(), &mut back)?, 2);
//! drop(channel); // end-of-file: the helper exits
//! mp_sys::process::reap_pid_blocking(pid);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;

use crate::bootstrap::HELPER_MARK;
use crate::popen_spawn::spawn_with_channel;

/// A helper process's job (see the module docs).
#[derive(Debug)]
pub struct Helper {
    /// Finds the helper in the new process; also its `argv[0]`, the name `ps` shows. Unique in
    /// the program (the first of a name wins).
    pub name: &'static CStr,
    /// The helper's life: it gets its end of the channel and never returns.
    pub run: fn(OwnedFd) -> !,
}

/// Every [`Helper`] of the program, declared with `#[linkme::distributed_slice(HELPERS)]`.
#[linkme::distributed_slice]
pub static HELPERS: [Helper];

/// Starts `helper` in a new process; returns this side of a stream socket pair connected to
/// it, and the helper's pid. The helper lives as long as its `run` decides (usually until its
/// channel reaches end-of-file, when every process holding this side has exited). It is this
/// process's child but not a [`Process`](crate::Process): reap it
/// (`mp_sys::process::reap_pid`) if it may end before this process does, or leave it to
/// outlive this process, as the resource tracker does.
pub fn start_helper(helper: &'static Helper) -> io::Result<(OwnedFd, u32)> {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    let pid = spawn_with_channel(helper.name, HELPER_MARK, &theirs)?;
    Ok((ours, pid))
}

/// The helper called `name`, if the program has one.
pub(crate) fn find(name: &CStr) -> Option<&'static Helper> {
    HELPERS.iter().find(|h| h.name == name)
}

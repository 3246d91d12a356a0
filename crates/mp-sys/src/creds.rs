//! Credentials: who is at the other end of a socket, and whether this process runs for a
//! less trusted caller.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::cvt;

/// This process's effective user id.
///
/// ```
/// let _uid: u32 = mp_sys::creds::geteuid();
/// ```
pub fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether this process runs in secure-execution mode (`AT_SECURE`: setuid, setgid or file
/// capabilities): its argv, environment and inherited descriptors come from a less trusted
/// caller. (rustix exposes no `AT_SECURE`.)
///
/// ```
/// assert!(!mp_sys::creds::is_secure_exec());
/// ```
pub fn is_secure_exec() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; an absent entry gives 0.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The pid and effective uid of the process that created the other end of the Unix socket
/// `sock` (`SO_PEERCRED`: for a socketpair, whoever called `socketpair`). Not a Unix socket, or
/// no peer: an error.
///
/// On libc, not rustix: rustix's `UCred` holds a non-zero `Pid`, while the kernel reports pid 0
/// for a socket without a peer.
///
/// ```
/// use std::os::fd::AsFd;
/// let (a, _b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// let (pid, _uid) = mp_sys::creds::peer_credentials(a.as_fd())?;
/// assert_eq!(pid, std::process::id());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn peer_credentials(sock: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: ucred is plain integers; all zero is a valid value.
    let mut cred: libc::ucred = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    })?;
    if len as usize != mem::size_of::<libc::ucred>() || cred.pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the socket has no peer process",
        ));
    }
    Ok((cred.pid as u32, cred.uid))
}

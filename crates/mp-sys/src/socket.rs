//! Unix sockets: pairs, whole sends, and descriptors passed with `SCM_RIGHTS`.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::retry;

pub use std::net::Shutdown;

/// Most fds one `sendmsg` carries (the kernel's SCM_MAX_FD).
pub const MAX_FDS_PER_MSG: usize = 253;

/// The kind of a socket pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A byte stream (`SOCK_STREAM`).
    Stream,
    /// Messages kept whole, in order (`SOCK_SEQPACKET`).
    SeqPacket,
}

/// A close-on-exec Unix socket pair.
///
/// ```
/// let (a, b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn socketpair(kind: Kind) -> io::Result<(OwnedFd, OwnedFd)> {
    let kind = match kind {
        Kind::Stream => SocketType::STREAM,
        Kind::SeqPacket => SocketType::SEQPACKET,
    };
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        kind,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sends all of `data`, without `SIGPIPE` (a gone peer is `BrokenPipe`).
///
/// ```
/// use std::os::fd::AsFd;
/// let (a, _b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// mp_sys::socket::send_all(a.as_fd(), b"hello")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn send_all(sock: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = retry(|| rustix::net::send(sock, data, SendFlags::NOSIGNAL))?;
        data = &data[n..];
    }
    Ok(())
}

/// One non-blocking `send` of `bytes`, without SIGPIPE; async-signal-safe. What was not sent is
/// lost.
///
/// ```
/// use std::os::fd::AsFd;
/// let (a, _b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// mp_sys::socket::send_now(a.as_fd(), b"!");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn send_now(sock: BorrowedFd<'_>, bytes: &[u8]) {
    let _ = rustix::net::send(sock, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
}

/// Ends one or both directions of a socket for every holder of it (`shutdown(2)`), not only for
/// this descriptor as `close` would.
///
/// ```
/// use std::os::fd::AsFd;
/// use mp_sys::socket::{Kind, Shutdown, shutdown, socketpair};
/// let (a, _b) = socketpair(Kind::Stream)?;
/// shutdown(a.as_fd(), Shutdown::Write)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn shutdown(sock: BorrowedFd<'_>, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => rustix::net::Shutdown::Read,
        Shutdown::Write => rustix::net::Shutdown::Write,
        Shutdown::Both => rustix::net::Shutdown::Both,
    };
    Ok(rustix::net::shutdown(sock, how)?)
}

/// Room for one `SCM_RIGHTS` message of [`MAX_FDS_PER_MSG`] descriptors.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MSG));

/// Sends `data` with `fds` attached (SCM_RIGHTS) on a Unix stream socket; sends all of `data`.
/// At most [`MAX_FDS_PER_MSG`] descriptors and at least one byte (`InvalidInput` otherwise).
///
/// ```
/// use std::os::fd::AsFd;
/// use mp_sys::socket::{Kind, recv_with_fds, send_with_fds, socketpair};
/// let (a, b) = socketpair(Kind::Stream)?;
/// let (r, _w) = mp_sys::fd::pipe()?;
/// send_with_fds(a.as_fd(), b"x", &[r.as_fd()])?;
/// let mut fds = Vec::new();
/// assert_eq!(recv_with_fds(b.as_fd(), &mut [0u8; 1], &mut fds)?, 1);
/// assert_eq!(fds.len(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS_PER_MSG || data.is_empty() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut sent = 0;
    if !fds.is_empty() {
        let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        sent = retry(|| {
            rustix::net::sendmsg(
                sock,
                &[IoSlice::new(data)],
                &mut control,
                SendFlags::NOSIGNAL,
            )
        })?;
    }
    send_all(sock, &data[sent..])
}

/// Receives into `buf`, appending any fds that arrive (SCM_RIGHTS) to `fds`, close-on-exec.
/// Returns the byte count; 0 means the peer closed. More descriptors than one message can
/// carry: an error (those that did arrive are still appended).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = retry(|| {
        rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut *buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
    })?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other("too many file descriptors in one message"));
    }
    Ok(msg.bytes)
}

/// Reads exactly `buf.len()` bytes, collecting attached fds; `UnexpectedEof` if the peer closes.
///
/// ```
/// use std::os::fd::AsFd;
/// use mp_sys::socket::{Kind, recv_exact_with_fds, send_all, socketpair};
/// let (a, b) = socketpair(Kind::Stream)?;
/// send_all(a.as_fd(), b"abcd")?;
/// let mut buf = [0u8; 4];
/// recv_exact_with_fds(b.as_fd(), &mut buf, &mut Vec::new())?;
/// assert_eq!(&buf, b"abcd");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn recv_exact_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = recv_with_fds(sock, &mut buf[got..], fds)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(())
}

/// Where a connected socket leads (`getpeername`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A Unix socket bound at a path.
    Path(std::path::PathBuf),
    /// A Unix socket with an abstract name.
    Abstract(Vec<u8>),
    /// A TCP (or UDP) socket.
    Ip(std::net::SocketAddr),
}

/// The peer of `sock`; `None` for an unnamed peer (a socket pair's) or anything that is not a
/// connected Unix or IP socket.
///
/// ```
/// use std::os::fd::AsFd;
/// let (a, _b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// assert_eq!(mp_sys::socket::peer(a.as_fd()), None); // a pair's ends have no name
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn peer(sock: BorrowedFd<'_>) -> Option<Peer> {
    let addr = rustix::net::getpeername(sock).ok()??;
    if let Ok(ip) = std::net::SocketAddr::try_from(addr.clone()) {
        return Some(Peer::Ip(ip));
    }
    let unix = rustix::net::SocketAddrUnix::try_from(addr).ok()?;
    // An unnamed peer (a socket pair's, an accepted client's) may read as an empty abstract
    // name, which no listener has.
    if let Some(name) = unix.abstract_name() {
        return (!name.is_empty()).then(|| Peer::Abstract(name.to_vec()));
    }
    let path = unix.path_bytes()?;
    Some(Peer::Path(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path).into(),
    ))
}

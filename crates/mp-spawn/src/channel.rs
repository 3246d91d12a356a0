//! Framed messages with descriptors over a Unix stream socket: the wire under the bootstrap,
//! the result of a child, and the forkserver's requests.
//!
//! A frame is a 16-byte header (`MAGIC`, number of fds, payload length; little endian) followed
//! by the payload. The fds ride on the header's `sendmsg` (SCM_RIGHTS).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::sys;

const MAGIC: u32 = 0x6d70_0001; // "mp", version 1
const HEADER: usize = 16;
/// Small payloads go out in the same `sendmsg` as their header.
const INLINE: usize = 64 * 1024;

/// Sends one frame.
pub(crate) fn send(sock: BorrowedFd<'_>, payload: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > sys::MAX_FDS_PER_MSG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message can carry at most {} handles, not {}",
                sys::MAX_FDS_PER_MSG,
                fds.len()
            ),
        ));
    }
    let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut head = Vec::with_capacity(HEADER + payload.len().min(INLINE));
    head.extend_from_slice(&MAGIC.to_le_bytes());
    head.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    head.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    if payload.len() <= INLINE {
        head.extend_from_slice(payload);
        return sys::send_with_fds(sock, &head, &raw);
    }
    sys::send_with_fds(sock, &head, &raw)?;
    sys::write_all(sock, payload)
}

/// Receives one frame of at most `limit` payload bytes. A closed peer before the first byte is
/// `UnexpectedEof`; a malformed header or size is `InvalidData`.
pub(crate) fn recv(sock: BorrowedFd<'_>, limit: u64) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let mut head = [0u8; HEADER];
    sys::recv_exact_with_fds(sock, &mut head, &mut fds)?;
    let magic = u32::from_le_bytes(head[0..4].try_into().unwrap_or_default());
    let nfds = u32::from_le_bytes(head[4..8].try_into().unwrap_or_default()) as usize;
    let len = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
    if magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an mp frame (bad magic)",
        ));
    }
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {limit}"),
        ));
    }
    let mut payload = Vec::new();
    payload.try_reserve_exact(len as usize).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot allocate a frame of {len} bytes"),
        )
    })?;
    payload.resize(len as usize, 0);
    sys::recv_exact_with_fds(sock, &mut payload, &mut fds)?;
    if fds.len() != nfds {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame announced {nfds} handles, {} arrived", fds.len()),
        ));
    }
    Ok((payload, fds))
}

/// Largest frame mp accepts from its own children and forkserver.
pub(crate) const LIMIT: u64 = 1 << 40;

/// The bytes of a frame without descriptors, to be sent later in one `send` (the
/// stack-overflow handler cannot allocate).
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&MAGIC.to_le_bytes());
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

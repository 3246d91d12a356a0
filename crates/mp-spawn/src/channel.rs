//! Framed messages with descriptors over a Unix stream socket: the wire under the bootstrap,
//! the result of a child, and the forkserver's requests.
//!
//! A frame is a 16-byte header (`MAGIC`, number of fds, payload length; little endian) followed
//! by the payload. The fds ride on the header's `sendmsg` (SCM_RIGHTS).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

const MAGIC: u32 = 0x6d70_0001; // "mp", version 1
pub(crate) const HEADER: usize = 16;
/// Small payloads go out in the same `sendmsg` as their header.
const INLINE: usize = 64 * 1024;

/// The header of a frame of `len` bytes carrying `nfds` descriptors.
pub(crate) fn header(nfds: u32, len: u64) -> [u8; HEADER] {
    let mut head = [0u8; HEADER];
    head[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    head[4..8].copy_from_slice(&nfds.to_le_bytes());
    head[8..16].copy_from_slice(&len.to_le_bytes());
    head
}

/// Sends one frame.
pub(crate) fn send(sock: BorrowedFd<'_>, payload: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > mp_sys::socket::MAX_FDS_PER_MSG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message can carry at most {} handles, not {}",
                mp_sys::socket::MAX_FDS_PER_MSG,
                fds.len()
            ),
        ));
    }
    let mut head = Vec::with_capacity(HEADER + payload.len().min(INLINE));
    head.extend_from_slice(&header(fds.len() as u32, payload.len() as u64));
    if payload.len() <= INLINE {
        head.extend_from_slice(payload);
        return mp_sys::socket::send_with_fds(sock, &head, fds);
    }
    mp_sys::socket::send_with_fds(sock, &head, fds)?;
    mp_sys::fd::write_all(sock, payload)
}

/// Receives one frame of at most `limit` payload bytes. A peer that closes before the frame is
/// complete is `UnexpectedEof`; a malformed header or size is `InvalidData`.
pub(crate) fn recv(sock: BorrowedFd<'_>, limit: u64) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let mut head = [0u8; HEADER];
    mp_sys::socket::recv_exact_with_fds(sock, &mut head, &mut fds)?;
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
    // The buffer grows only as bytes arrive (doubling, from 64 KiB): a header that lies about
    // the length costs at most twice the bytes really sent, never the length it announces.
    let len = usize::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")))?;
    let mut payload = Vec::new();
    let mut filled = 0;
    while filled < len {
        if filled == payload.len() {
            let grow = (len - filled).min(filled.max(INLINE));
            payload.try_reserve_exact(grow).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("cannot allocate {grow} more bytes for a frame of {len}"),
                )
            })?;
            payload.resize(filled + grow, 0);
        }
        let n = mp_sys::socket::recv_with_fds(sock, &mut payload[filled..], &mut fds)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the peer closed after {filled} of the {len} bytes its frame announced"),
            ));
        }
        filled += n;
    }
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
    frame.extend_from_slice(&header(0, payload.len() as u64));
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod test;

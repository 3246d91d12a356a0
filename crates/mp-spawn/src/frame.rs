//! The one frame codec of mp: messages with descriptors over a Unix stream socket. It carries
//! the bootstrap, a child's result and the forkserver's requests (`Codec::CHANNEL`, private), and
//! mp-ipc's `Connection` ([`Codec::CONNECTION`]).
//!
//! A frame is a 16-byte header (the codec's magic, the number of fds, the payload length; all
//! little endian) followed by the payload. The fds ride on the header's `sendmsg`
//! (`SCM_RIGHTS`), and a payload of up to 64 KiB goes out in that same `sendmsg`.
//!
//! The reader never trusts the header: it grows its buffer only as bytes arrive (so a lying
//! length costs at most about twice what the peer really sent), checks the handle count, and
//! can give up at a deadline or when a cancel descriptor becomes readable ([`Stop`]).
//!
//! ```
//! use std::os::fd::AsFd;
//! use mp_spawn::frame::{Codec, Stop};
//! let (a, b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
//! let (r, _w) = mp_sys::fd::pipe()?;
//! Codec::CONNECTION.send(a.as_fd(), b"hello", &[r.as_fd()])?;
//! let (payload, fds) = Codec::CONNECTION.recv(b.as_fd(), 1 << 20, Stop::NEVER)?;
//! assert_eq!(payload, b"hello");
//! assert_eq!(fds.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

/// The size of a frame's header.
pub const HEADER: usize = 16;
/// Payloads up to this size leave in one `sendmsg` with their header.
pub(crate) const INLINE: usize = 64 * 1024;
/// The reader's first allocation, and its largest step while fewer bytes have arrived.
const READ_CHUNK: usize = 1 << 20;
/// Largest frame mp accepts from its own children and forkserver.
pub(crate) const LIMIT: u64 = 1 << 40;

/// A frame format: the framing above, told apart by its magic number so that a peer speaking
/// another mp protocol (or none) is refused at its first header.
///
/// `Copy`; the caller serialises concurrent senders (and receivers) on one socket.
///
/// ```
/// use mp_spawn::frame::{Codec, HEADER};
/// let head = Codec::CONNECTION.header(0, 3);
/// assert_eq!(head.len(), HEADER);
/// assert_eq!(&head[..4], &Codec::CONNECTION.magic().to_le_bytes());
/// assert_eq!(Codec::CONNECTION.encode(b"xyz")[HEADER..], *b"xyz");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    magic: u32,
}

impl Codec {
    /// mp-spawn's own frames: bootstrap, outcome, forkserver ("mp", version 1).
    pub(crate) const CHANNEL: Codec = Codec { magic: 0x6d70_0001 };
    /// mp-ipc's `Connection` frames ("mp", connection frames, version 1).
    pub const CONNECTION: Codec = Codec { magic: 0x6d70_0101 };

    /// The magic number that opens every header of this codec.
    ///
    /// ```
    /// assert_eq!(mp_spawn::frame::Codec::CONNECTION.magic(), 0x6d70_0101);
    /// ```
    pub const fn magic(self) -> u32 {
        self.magic
    }

    /// The header of a frame of `len` payload bytes carrying `nfds` descriptors.
    ///
    /// ```
    /// let head = mp_spawn::frame::Codec::CONNECTION.header(2, 5);
    /// assert_eq!(&head[4..8], &2u32.to_le_bytes());
    /// assert_eq!(&head[8..], &5u64.to_le_bytes());
    /// ```
    pub fn header(self, nfds: u32, len: u64) -> [u8; HEADER] {
        let mut head = Vec::with_capacity(HEADER);
        self.put_header(&mut head, nfds, len);
        let mut out = [0u8; HEADER];
        out.copy_from_slice(&head);
        out
    }

    /// Appends the header of a frame of `len` payload bytes carrying `nfds` descriptors.
    fn put_header(self, buf: &mut Vec<u8>, nfds: u32, len: u64) {
        mp_sys::le::Writer::new(buf)
            .u32(self.magic)
            .u32(nfds)
            .u64(len);
    }

    /// The fields of a header: its magic, the number of fds, the payload length.
    fn parse_header(head: &[u8; HEADER]) -> (u32, u32, u64) {
        let mut r = mp_sys::le::Reader::new(head);
        // Sixteen bytes hold these sixteen bytes of fields: the reads cannot come up short.
        let mut field = || r.u32().unwrap_or_default();
        let (magic, nfds) = (field(), field());
        (magic, nfds, r.u64().unwrap_or_default())
    }

    /// The bytes of a whole frame without descriptors, to be sent later in one write (the
    /// stack-overflow handler cannot allocate).
    ///
    /// ```
    /// let frame = mp_spawn::frame::Codec::CONNECTION.encode(b"ab");
    /// assert_eq!(frame.len(), mp_spawn::frame::HEADER + 2);
    /// ```
    pub fn encode(self, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        self.put_header(&mut frame, 0, payload.len() as u64);
        frame.extend_from_slice(payload);
        frame
    }

    /// Sends one frame: `payload` with `fds` attached to its header. Blocks until all of it is
    /// written; never raises `SIGPIPE` (a gone peer is `BrokenPipe`). More than
    /// [`MAX_FDS_PER_MSG`](mp_sys::socket::MAX_FDS_PER_MSG) descriptors is `InvalidInput`.
    ///
    /// Concurrent senders on one socket must be serialised by the caller, or their frames
    /// interleave.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use mp_spawn::frame::{Codec, Stop};
    /// let (a, b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    /// Codec::CONNECTION.send(a.as_fd(), b"", &[])?;
    /// assert!(Codec::CONNECTION.recv(b.as_fd(), 0, Stop::NEVER)?.0.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(
        self,
        sock: BorrowedFd<'_>,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        let max = mp_sys::socket::MAX_FDS_PER_MSG;
        if fds.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message can carry at most {max} handles, not {}",
                    fds.len()
                ),
            ));
        }
        let inline = payload.len() <= INLINE;
        let mut head = Vec::with_capacity(HEADER + if inline { payload.len() } else { 0 });
        // `fds.len() <= MAX_FDS_PER_MSG` fits in a u32.
        self.put_header(&mut head, fds.len() as u32, payload.len() as u64);
        if inline {
            head.extend_from_slice(payload);
        }
        mp_sys::socket::send_with_fds(sock, &head, fds)?;
        if !inline {
            mp_sys::socket::send_all(sock, payload)?;
        }
        Ok(())
    }

    /// Receives one frame of at most `limit` payload bytes, with the descriptors it carries
    /// (close-on-exec). `stop` can end the wait early ([`Stop::NEVER`]: it cannot).
    ///
    /// Every error but [`FrameError::Eof`] (and a `stop` before the first byte) leaves the
    /// stream at an unknown position: the caller should give the socket up.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use mp_spawn::frame::{Codec, FrameError, Stop};
    /// let (a, b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    /// Codec::CONNECTION.send(a.as_fd(), &[0; 100], &[])?;
    /// drop(a);
    /// let e = Codec::CONNECTION.recv(b.as_fd(), 10, Stop::NEVER).unwrap_err();
    /// assert!(matches!(e, FrameError::TooLarge { len: 100, limit: 10 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(
        self,
        sock: BorrowedFd<'_>,
        limit: u64,
        stop: Stop<'_>,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), FrameError> {
        let mut fds = Vec::new();
        let mut head = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            stop.wait(sock)?;
            match mp_sys::socket::recv_with_fds(sock, &mut head[got..], &mut fds)? {
                0 if got == 0 => return Err(FrameError::Eof),
                0 => {
                    return Err(FrameError::Truncated {
                        part: Part::Header,
                        got: got as u64,
                        len: HEADER as u64,
                    });
                }
                n => got += n,
            }
        }
        let (magic, announced, len) = Self::parse_header(&head);
        if magic != self.magic {
            return Err(FrameError::BadMagic { found: magic });
        }
        if len > limit {
            return Err(FrameError::TooLarge { len, limit });
        }
        // The fds ride on the header's first bytes: all of them have arrived by now.
        if announced as usize != fds.len() {
            return Err(FrameError::Handles {
                announced,
                arrived: fds.len(),
            });
        }
        let want = usize::try_from(len).map_err(|_| FrameError::TooLarge { len, limit })?;
        let mut payload = Vec::new();
        while payload.len() < want {
            // Grow only once the buffer is full, by at most what already arrived (or the first
            // chunk): a header that lies about the length costs at most about twice the bytes
            // really sent, never the length it announces.
            if payload.len() == payload.capacity() {
                let grow = (want - payload.len()).min(payload.len().max(READ_CHUNK));
                payload
                    .try_reserve_exact(grow)
                    .map_err(|_| FrameError::OutOfMemory { len })?;
            }
            let room = (payload.capacity() - payload.len()).min(want - payload.len());
            stop.wait(sock)?;
            let n = mp_sys::fd::read_append(sock, &mut payload, room).map_err(|e| {
                if e.kind() == io::ErrorKind::OutOfMemory {
                    FrameError::OutOfMemory { len }
                } else {
                    FrameError::Io(e)
                }
            })?;
            if n == 0 {
                return Err(FrameError::Truncated {
                    part: Part::Payload,
                    got: payload.len() as u64,
                    len,
                });
            }
        }
        Ok((payload, fds))
    }
}

/// When a [`Codec::recv`] gives up before its frame is complete.
///
/// ```
/// use std::os::fd::AsFd;
/// use mp_spawn::frame::{Codec, FrameError, Stop};
/// let (_a, b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// let stop = Stop { deadline: mp_sys::deadline::after(std::time::Duration::ZERO), cancel: None };
/// let e = Codec::CONNECTION.recv(b.as_fd(), 1 << 20, stop).unwrap_err();
/// assert!(matches!(e, FrameError::TimedOut));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Stop<'a> {
    /// The whole frame must have arrived by then (`None`: no deadline).
    pub deadline: Option<Instant>,
    /// Readable once the wait must end (e.g. a listener's close doorbell, an eventfd).
    pub cancel: Option<BorrowedFd<'a>>,
}

impl Stop<'_> {
    /// Never gives up: the read blocks until the frame, an error or the end of the stream.
    pub const NEVER: Stop<'static> = Stop {
        deadline: None,
        cancel: None,
    };

    /// Waits until `sock` is readable, so that the next read does not block past the deadline
    /// (a peer that drips one byte at a time still meets it). Nothing to do without a stop.
    fn wait(&self, sock: BorrowedFd<'_>) -> Result<(), FrameError> {
        if self.deadline.is_none() && self.cancel.is_none() {
            return Ok(());
        }
        let mut fds = vec![sock];
        fds.extend(self.cancel);
        loop {
            let ready = mp_sys::poll::readable_until(&fds, self.deadline)?;
            if ready.get(1) == Some(&true) {
                return Err(FrameError::Cancelled);
            }
            if ready[0] {
                return Ok(());
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(FrameError::TimedOut);
            }
            // Woken early (poll caps a far deadline at about 24 days): wait again.
        }
    }
}

/// Which part of a frame the stream ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The 16-byte header.
    Header,
    /// The payload.
    Payload,
}

/// Why [`Codec::recv`] returned no frame.
///
/// ```
/// use std::os::fd::AsFd;
/// use mp_spawn::frame::{Codec, FrameError, Stop};
/// let (a, b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
/// drop(a);
/// let e = Codec::CONNECTION.recv(b.as_fd(), 1 << 20, Stop::NEVER).unwrap_err();
/// assert!(matches!(e, FrameError::Eof));
/// assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::UnexpectedEof);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the stream cleanly, before the first byte of a frame.
    Eof,
    /// The stream ended inside a frame, after `got` of the `len` bytes of its `part`.
    Truncated {
        /// The header or the payload.
        part: Part,
        /// The bytes of that part that arrived.
        got: u64,
        /// The bytes it should have had (the header's size, or the announced length).
        len: u64,
    },
    /// The header does not start with this codec's magic: not a frame of this protocol.
    BadMagic {
        /// The first four bytes, little endian.
        found: u32,
    },
    /// The announced payload is longer than the caller's limit; nothing of it was read.
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The header announced another number of descriptors than arrived with it (those that
    /// arrived are closed).
    Handles {
        /// The number in the header.
        announced: u32,
        /// The number that arrived.
        arrived: usize,
    },
    /// The [`Stop::deadline`] passed.
    TimedOut,
    /// The [`Stop::cancel`] descriptor became readable.
    Cancelled,
    /// The buffer for the payload could not grow.
    OutOfMemory {
        /// The announced length.
        len: u64,
    },
    /// The OS refused.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Eof => write!(f, "the peer closed the stream"),
            FrameError::Truncated {
                part: Part::Header,
                got,
                len,
            } => write!(
                f,
                "the stream ended inside a header, after {got} of {len} bytes"
            ),
            FrameError::Truncated {
                part: Part::Payload,
                got,
                len,
            } => write!(f, "the stream ended after {got} of {len} payload bytes"),
            FrameError::BadMagic { found } => {
                write!(f, "not an mp frame of this kind (bad magic {found:#010x})")
            }
            FrameError::TooLarge { len, limit } => {
                write!(f, "a frame of {len} bytes exceeds the limit of {limit}")
            }
            FrameError::Handles { announced, arrived } => {
                write!(
                    f,
                    "the header announced {announced} handles, {arrived} arrived"
                )
            }
            FrameError::TimedOut => write!(f, "the frame did not arrive in time"),
            FrameError::Cancelled => write!(f, "the wait for the frame was cancelled"),
            FrameError::OutOfMemory { len } => {
                write!(f, "cannot allocate the buffer for a frame of {len} bytes")
            }
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

impl FrameError {
    /// The `io::ErrorKind` the error stands for.
    fn kind(&self) -> io::ErrorKind {
        match self {
            FrameError::Eof | FrameError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            FrameError::BadMagic { .. }
            | FrameError::TooLarge { .. }
            | FrameError::Handles { .. } => io::ErrorKind::InvalidData,
            FrameError::TimedOut => io::ErrorKind::TimedOut,
            // Not `Interrupted`: std's helpers retry that.
            FrameError::Cancelled => io::ErrorKind::ConnectionAborted,
            FrameError::OutOfMemory { .. } => io::ErrorKind::OutOfMemory,
            FrameError::Io(e) => e.kind(),
        }
    }
}

/// For the callers that speak `io::Result`: an end of stream is `UnexpectedEof`, a bad frame
/// `InvalidData`, a deadline `TimedOut`, a cancel `ConnectionAborted`, a failed allocation
/// `OutOfMemory`; an OS error stays itself.
impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => e,
            other => io::Error::new(other.kind(), other),
        }
    }
}

#[cfg(test)]
mod test;

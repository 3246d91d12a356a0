//! `Pipe` and `Connection`: message-framed byte streams between processes over Unix sockets,
//! as CPython's `multiprocessing.connection`.
//!
//! A message is one frame of mp's frame codec ([`mp_spawn::frame`], with its own magic,
//! [`Codec::CONNECTION`]): a 16-byte header (magic, number of handles, payload length; little
//! endian) and its payload. Handles (fds inside the value, see [`mp_spawn::reduction::Fd`])
//! ride on the header's `sendmsg`, so a Connection or a Queue can itself be sent through a
//! Connection. The reader never trusts the header: it grows its buffer only as bytes arrive,
//! so a lying length costs at most what the peer really sends, and
//! [`Connection::set_max_message_size`] caps it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use mp_spawn::frame::{Codec, FrameError, Stop};
use mp_spawn::reduction::{self, Fd};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{RecvError, SendError};

/// The frame format of connections.
const CODEC: Codec = Codec::CONNECTION;
/// The default cap on one message (Python has none; 1 TiB is "none" in practice).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1 << 40;

/// Creates a pair of connected [`Connection`]s, as Python's `Pipe(duplex)`.
///
/// With `duplex`, both ends send and receive. Without it, the first end only receives and the
/// second only sends (Python's `conn1, conn2 = Pipe(False)`); using the wrong end is an error.
///
/// ```
/// let (a, b) = mp_ipc::pipe(true)?;
/// a.send(&(42, None::<u8>, "hello".to_string()))?;
/// let got: (i32, Option<u8>, String) = b.recv()?;
/// assert_eq!(got, (42, None, "hello".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "Pipe")]
pub fn pipe(duplex: bool) -> io::Result<(Connection, Connection)> {
    let (a, b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    if duplex {
        Ok((
            Connection::new(a, true, true),
            Connection::new(b, true, true),
        ))
    } else {
        // Shut the unused directions so that the kernel, too, refuses the wrong end.
        mp_sys::socket::shutdown(a.as_fd(), mp_sys::socket::Shutdown::Write)?;
        mp_sys::socket::shutdown(b.as_fd(), mp_sys::socket::Shutdown::Read)?;
        Ok((
            Connection::new(a, true, false),
            Connection::new(b, false, true),
        ))
    }
}

/// One end of a [`pipe`], or a connection made by a [`Listener`](crate::Listener) or
/// [`client`](crate::client).
///
/// `Sync`: several threads may send and receive at once; sends are serialised with each other,
/// and so are receives, so messages never interleave. It travels to other processes as a
/// `Process` argument or inside a message; each process then holds its own handle on the same
/// socket, and the peer sees end-of-file only when every handle is closed (as in Python).
#[derive(Debug)]
pub struct Connection {
    fd: RwLock<Option<Fd>>,
    readable: bool,
    writable: bool,
    send_lock: Mutex<()>,
    recv_lock: Mutex<()>,
    broken: AtomicBool,
    max_message: AtomicU64,
}

impl Connection {
    pub(crate) fn new(fd: OwnedFd, readable: bool, writable: bool) -> Connection {
        Connection {
            fd: RwLock::new(Some(Fd::new(fd))),
            readable,
            writable,
            send_lock: Mutex::new(()),
            recv_lock: Mutex::new(()),
            broken: AtomicBool::new(false),
            max_message: AtomicU64::new(DEFAULT_MAX_MESSAGE_SIZE),
        }
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether [`close`](Self::close) was called.
    pub fn closed(&self) -> bool {
        self.handle().is_none()
    }

    /// The socket's descriptor, or `None` once closed.
    #[doc(alias = "as_raw_fd")]
    pub fn fileno(&self) -> Option<RawFd> {
        self.handle().as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Gives up the socket without closing it (Python's `detach()`): the descriptor, or `None`
    /// if the connection was closed. Waits for sends and receives in progress on other threads.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let (a, b) = mp_ipc::pipe(true)?;
    /// a.send_bytes(b"hi", 0, None)?;
    /// let mut raw = std::os::unix::net::UnixStream::from(b.detach().expect("open"));
    /// let mut frame = [0u8; 18]; // a 16-byte header, then the payload
    /// raw.read_exact(&mut frame)?;
    /// assert_eq!(&frame[16..], b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn detach(self) -> Option<OwnedFd> {
        let fd = self.fd.write().unwrap_or_else(|e| e.into_inner()).take();
        fd.map(Fd::into_inner)
    }

    /// Closes this process's handle. Waits for sends and receives in progress on other threads.
    /// Closing twice is fine.
    pub fn close(&self) {
        let mut fd = self.fd.write().unwrap_or_else(|e| e.into_inner());
        fd.take();
    }

    /// Caps the size of one incoming message (default [`DEFAULT_MAX_MESSAGE_SIZE`]). A larger
    /// message fails with [`RecvError::TooLarge`] before its payload is read.
    pub fn set_max_message_size(&self, limit: u64) {
        self.max_message.store(limit, Ordering::Relaxed);
    }

    fn handle(&self) -> RwLockReadGuard<'_, Option<Fd>> {
        self.fd.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a value (any serde type, with the handles inside it).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        // The message owns duplicates of its descriptors: a handle closed by another thread
        // after serialisation still sends the file it held.
        let dumped = reduction::dumps(value).map_err(SendError::Encode)?;
        let fds: Vec<BorrowedFd<'_>> = dumped.fds.iter().map(AsFd::as_fd).collect();
        self.send_frame(&dumped.bytes, &fds)
    }

    /// Sends `buf[offset..offset + size]` (all of the rest when `size` is `None`) as one
    /// message. An empty message is a message.
    pub fn send_bytes(
        &self,
        buf: &[u8],
        offset: usize,
        size: Option<usize>,
    ) -> Result<(), SendError> {
        let size = size.unwrap_or(buf.len().saturating_sub(offset));
        let range = offset
            .checked_add(size)
            .filter(|&end| end <= buf.len())
            .map(|end| offset..end)
            .ok_or(SendError::OutOfRange {
                len: buf.len(),
                offset,
                size,
            })?;
        self.send_frame(&buf[range], &[])
    }

    fn send_frame(&self, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        let guard = self.handle();
        let sock = guard.as_ref().ok_or(SendError::Closed)?.as_fd();
        let _sending = self.send_lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(CODEC.send(sock, payload, fds)?)
    }

    /// Receives a value sent by [`send`](Self::send). Blocks until one arrives;
    /// [`RecvError::Eof`] once the peer is closed and nothing is left.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        let limit = self.max_message.load(Ordering::Relaxed);
        let (bytes, fds) = self.recv_frame(limit, Stop::NEVER)?;
        reduction::loads(&bytes, fds).map_err(RecvError::Decode)
    }

    /// Receives one message's bytes. A message longer than `maxlength` is an error, after
    /// which the connection is unusable (as in Python).
    pub fn recv_bytes(&self, maxlength: Option<usize>) -> Result<Vec<u8>, RecvError> {
        let limit = self.max_message.load(Ordering::Relaxed);
        let limit = maxlength.map_or(limit, |m| limit.min(m as u64));
        Ok(self.recv_frame(limit, Stop::NEVER)?.0)
    }

    /// As [`recv_bytes`](Self::recv_bytes), for the listener's handshake: the whole message
    /// must arrive by `stop.deadline` (else `Io(TimedOut)`), and `stop.cancel` becoming
    /// readable ends the wait with [`RecvError::Closed`]. The connection is unusable after
    /// either.
    pub(crate) fn recv_bytes_until(
        &self,
        maxlength: usize,
        stop: Stop<'_>,
    ) -> Result<Vec<u8>, RecvError> {
        let limit = self.max_message.load(Ordering::Relaxed);
        Ok(self.recv_frame(limit.min(maxlength as u64), stop)?.0)
    }

    /// Receives one message into `buf[offset..]` and returns its length. When it does not fit,
    /// the error [`RecvError::BufferTooShort`] carries the whole message.
    pub fn recv_bytes_into(&self, buf: &mut [u8], offset: usize) -> Result<usize, RecvError> {
        if offset > buf.len() {
            return Err(RecvError::OffsetOutOfRange {
                len: buf.len(),
                offset,
            });
        }
        let limit = self.max_message.load(Ordering::Relaxed);
        let (bytes, _) = self.recv_frame(limit, Stop::NEVER)?;
        let room = &mut buf[offset..];
        if bytes.len() > room.len() {
            return Err(RecvError::BufferTooShort(bytes));
        }
        room[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// Whether a message (or end-of-file) can be read without blocking, waiting up to
    /// `timeout` for one (`None`: forever; Python's negative timeouts are `Duration::ZERO`).
    /// Never consumes anything.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, RecvError> {
        if !self.readable {
            return Err(RecvError::NotReadable);
        }
        let guard = self.handle();
        let sock = guard.as_ref().ok_or(RecvError::Closed)?.as_fd();
        let deadline = mp_sys::deadline::of(timeout);
        Ok(mp_sys::poll::readable_until(&[sock], deadline)?[0])
    }

    fn recv_frame(&self, limit: u64, stop: Stop<'_>) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
        if !self.readable {
            return Err(RecvError::NotReadable);
        }
        let guard = self.handle();
        let sock = guard.as_ref().ok_or(RecvError::Closed)?.as_fd();
        let _receiving = self.recv_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.broken.load(Ordering::Relaxed) {
            return Err(RecvError::Broken);
        }
        self.read_marking_broken(sock, limit, stop)
    }

    /// Reads a frame (the receive lock held); a failure that loses the stream's position
    /// breaks the connection for good.
    fn read_marking_broken(
        &self,
        sock: BorrowedFd<'_>,
        limit: u64,
        stop: Stop<'_>,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
        let result = read_frame(sock, limit, stop);
        if matches!(
            result,
            Err(RecvError::TooLarge { .. }
                | RecvError::Malformed(_)
                | RecvError::Io(_)
                | RecvError::Closed)
        ) {
            self.broken.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// The async calls (feature `async`): each waits for the socket's readiness through async-io's
/// reactor, under any executor (tokio, either flavour; smol; `futures::executor`), then does
/// the call. What is awaited is the start of a message (or room to write): a message that
/// arrives in pieces (over 64 KiB, sent in several calls) is read to its end as the peer sends
/// it, and a large send finishes as the peer reads, on the polling thread.
///
/// Cancel-safe: a receive takes a message only in the poll that returns it, and a send writes
/// only in the poll that returns, so a future dropped before it resolves has moved no byte.
#[cfg(feature = "async")]
impl Connection {
    /// As [`recv`](Connection::recv), awaiting the message.
    ///
    /// ```
    /// let (a, b) = mp_ipc::pipe(true)?;
    /// futures::executor::block_on(async {
    ///     a.send_async(&"hi").await?;
    ///     assert_eq!(b.recv_async::<String>().await?, "hi");
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn recv_async<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        let limit = self.max_message.load(Ordering::Relaxed);
        let (bytes, fds) = self.recv_frame_async(limit).await?;
        reduction::loads(&bytes, fds).map_err(RecvError::Decode)
    }

    /// As [`recv_bytes`](Connection::recv_bytes), awaiting the message.
    pub async fn recv_bytes_async(&self, maxlength: Option<usize>) -> Result<Vec<u8>, RecvError> {
        let limit = self.max_message.load(Ordering::Relaxed);
        let limit = maxlength.map_or(limit, |m| limit.min(m as u64));
        Ok(self.recv_frame_async(limit).await?.0)
    }

    /// As [`send`](Connection::send), awaiting room in the socket.
    pub async fn send_async<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        let dumped = reduction::dumps(value).map_err(SendError::Encode)?;
        let fds: Vec<BorrowedFd<'_>> = dumped.fds.iter().map(AsFd::as_fd).collect();
        self.send_frame_async(&dumped.bytes, &fds).await
    }

    /// As [`send_bytes`](Connection::send_bytes) of a whole buffer, awaiting room in the
    /// socket.
    pub async fn send_bytes_async(&self, buf: &[u8]) -> Result<(), SendError> {
        self.send_frame_async(buf, &[]).await
    }

    async fn recv_frame_async(&self, limit: u64) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
        if !self.readable {
            return Err(RecvError::NotReadable);
        }
        loop {
            if let Some(result) = self.try_recv_frame(limit)? {
                return result;
            }
            let ready = {
                let guard = self.handle();
                let sock = guard.as_ref().ok_or(RecvError::Closed)?.as_fd();
                mp_sys::aio::readable(&[sock])?
            };
            ready.await?;
        }
    }

    /// Receives a frame if one has begun to arrive and no other receiver is at work; `None`:
    /// wait for readability and try again.
    #[allow(clippy::type_complexity)]
    fn try_recv_frame(
        &self,
        limit: u64,
    ) -> Result<Option<Result<(Vec<u8>, Vec<OwnedFd>), RecvError>>, RecvError> {
        let guard = self.handle();
        let sock = guard.as_ref().ok_or(RecvError::Closed)?.as_fd();
        // Never wait for the lock: its holder may be a blocking `recv` waiting for a message
        // that is not coming, and this thread runs other tasks.
        let _receiving = match self.recv_lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        if self.broken.load(Ordering::Relaxed) {
            return Err(RecvError::Broken);
        }
        if !mp_sys::poll::readable(&[sock], Some(Duration::ZERO))?[0] {
            return Ok(None);
        }
        Ok(Some(self.read_marking_broken(sock, limit, Stop::NEVER)))
    }

    async fn send_frame_async(
        &self,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        loop {
            {
                let guard = self.handle();
                let sock = guard.as_ref().ok_or(SendError::Closed)?.as_fd();
                if mp_sys::poll::writable_now(sock)? {
                    // As above: never wait for the lock of a sender blocked on a full socket.
                    let sending = match self.send_lock.try_lock() {
                        Ok(g) => Some(g),
                        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                        Err(std::sync::TryLockError::WouldBlock) => None,
                    };
                    if let Some(_sending) = sending {
                        return Ok(CODEC.send(sock, payload, fds)?);
                    }
                }
            }
            let ready = {
                let guard = self.handle();
                let sock = guard.as_ref().ok_or(SendError::Closed)?.as_fd();
                mp_sys::aio::writable(sock)?
            };
            ready.await?;
        }
    }
}

/// Reads one frame. Every failure after the first byte leaves the stream position unknown.
fn read_frame(
    sock: BorrowedFd<'_>,
    limit: u64,
    stop: Stop<'_>,
) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
    CODEC.recv(sock, limit, stop).map_err(|e| match e {
        FrameError::Eof => RecvError::Eof,
        FrameError::TooLarge { len, limit } => RecvError::TooLarge { len, limit },
        // The listener's close doorbell.
        FrameError::Cancelled => RecvError::Closed,
        FrameError::TimedOut => RecvError::Io(io::ErrorKind::TimedOut.into()),
        FrameError::Io(e) => RecvError::Io(e),
        e @ FrameError::OutOfMemory { .. } => RecvError::Io(e.into()),
        // Truncated, BadMagic, Handles: the peer broke the framing.
        e => RecvError::Malformed(e.to_string()),
    })
}

#[derive(Serialize)]
struct WireRef<'a> {
    fd: &'a Fd,
    readable: bool,
    writable: bool,
}

#[derive(Deserialize)]
struct Wire {
    fd: Fd,
    readable: bool,
    writable: bool,
}

impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let guard = self.handle();
        let fd = guard
            .as_ref()
            .ok_or_else(|| S::Error::custom("cannot send a closed connection"))?;
        WireRef {
            fd,
            readable: self.readable,
            writable: self.writable,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(Connection::new(w.fd.into_inner(), w.readable, w.writable))
    }
}

impl Connection {
    /// For `wait`: the read guard that keeps the descriptor open while it is polled.
    pub(crate) fn poll_handle(&self) -> Option<RwLockReadGuard<'_, Option<Fd>>> {
        let guard = self.handle();
        (self.readable && guard.is_some()).then_some(guard)
    }
}

#[cfg(test)]
mod test;

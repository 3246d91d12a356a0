//! How values travel to another process: serde (postcard) for the data, and `SCM_RIGHTS` for
//! the OS handles inside it. CPython's `reduction` module plays the same part.
//!
//! A type that holds a file descriptor wraps it in [`Fd`]. While [`dumps`] serialises a value,
//! each `Fd` it meets records its descriptor beside the bytes and writes only its index; the
//! bytes and the descriptors then cross together (inherited under fork, `SCM_RIGHTS` under
//! spawn and forkserver), and [`loads`] hands each `Fd` its new descriptor back by index.
//! `mp-ipc` and `mp-shm` build their handle types (connection ends, shared-memory fds, locks)
//! on this, so they travel as ordinary arguments under every start method.
//!
//! ```
//! use mp_spawn::reduction::{dumps, loads, Fd};
//! use std::os::fd::AsRawFd;
//!
//! let file = std::fs::File::open("/dev/null").unwrap();
//! let value = (7u32, Fd::from(std::os::fd::OwnedFd::from(file)));
//! let packed = dumps(&value).unwrap();
//! assert_eq!(packed.fds.len(), 1);
//! // Another process would receive duplicates of `packed.fds`; here we duplicate them ourselves.
//! let fds = packed.fds.iter().map(|fd| fd.try_clone_to_owned().unwrap()).collect();
//! let (n, fd): (u32, Fd) = loads(&packed.bytes, fds).unwrap();
//! assert_eq!(n, 7);
//! assert_ne!(fd.as_raw_fd(), value.1.as_raw_fd());
//! ```

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::{fmt, io};

use serde::de::DeserializeOwned;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sys;

thread_local! {
    /// The message of the last custom decode error: postcard keeps only "custom error".
    static LAST_CUSTOM: RefCell<Option<String>> = const { RefCell::new(None) };
    static SINK: RefCell<Option<Vec<RawFd>>> = const { RefCell::new(None) };
    static SOURCE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// An owned file descriptor that can travel inside a serde value to another process.
#[derive(Debug)]
pub struct Fd(OwnedFd);

impl Fd {
    /// Wraps an owned descriptor.
    pub fn new(fd: OwnedFd) -> Self {
        Fd(fd)
    }

    /// The descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.0
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd(fd)
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = SINK.with(|sink| {
            sink.borrow_mut().as_mut().map(|fds| {
                fds.push(self.0.as_raw_fd());
                fds.len() - 1
            })
        });
        match index {
            Some(i) => serializer.serialize_u32(i as u32),
            None => Err(S::Error::custom(
                "an mp Fd can only be serialized by mp_spawn::reduction::dumps",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)? as usize;
        let fd = SOURCE.with(|source| {
            source
                .borrow_mut()
                .as_mut()
                .and_then(|fds| fds.get_mut(index).and_then(Option::take))
        });
        fd.map(Fd).ok_or_else(|| {
            custom_error(format_args!(
                "file descriptor #{index} is missing from the message"
            ))
        })
    }
}

/// A serialised value: its bytes, and the descriptors it refers to (borrowed from the value).
#[derive(Debug)]
pub struct Dumped<'a> {
    /// The serde (postcard) encoding.
    pub bytes: Vec<u8>,
    /// The descriptors of the value's [`Fd`]s, in index order.
    pub fds: Vec<BorrowedFd<'a>>,
}

/// A value could not be serialised (a serde error, or a type postcard does not support).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

/// Bytes could not be turned back into a value (malformed, truncated, or a descriptor missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot serialize value: {}", self.0)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot deserialize value: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}
impl std::error::Error for DecodeError {}

/// Serialises `value`, collecting the descriptors of its [`Fd`]s.
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> Result<Dumped<'_>, EncodeError> {
    let outer = SINK.with(|sink| sink.replace(Some(Vec::new())));
    let bytes = postcard::to_stdvec(value);
    let raw = SINK.with(|sink| sink.replace(outer)).unwrap_or_default();
    let bytes = bytes.map_err(|e| EncodeError(e.to_string()))?;
    let fds = raw
        .into_iter()
        // SAFETY: each fd belongs to an `Fd` inside `value`, which the returned borrow keeps alive.
        .map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .collect();
    Ok(Dumped { bytes, fds })
}

/// As [`dumps`], but appends the bytes to `buf` (reused by callers that serialise often) and
/// returns only the descriptors.
pub fn dumps_into<'a, T: Serialize + ?Sized>(
    value: &'a T,
    buf: &mut Vec<u8>,
) -> Result<Vec<BorrowedFd<'a>>, EncodeError> {
    let outer = SINK.with(|sink| sink.replace(Some(Vec::new())));
    let result = postcard::serialize_with_flavor(value, AppendFlavor(buf));
    let raw = SINK.with(|sink| sink.replace(outer)).unwrap_or_default();
    result.map_err(|e| EncodeError(e.to_string()))?;
    Ok(raw
        .into_iter()
        // SAFETY: each fd belongs to an `Fd` inside `value`, which the returned borrow keeps alive.
        .map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .collect())
}

/// Appends to a `Vec` with `push` and `extend_from_slice`: postcard's own `to_extend` goes
/// through `Extend` byte by byte, which made encoding the largest cost of a pool's `map`.
struct AppendFlavor<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendFlavor<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Varints come as slices of 1 to 10 bytes: a call to memcpy for each cost more than
        // the copy.
        if data.len() <= 16 {
            for &byte in data {
                self.0.push(byte);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A deserialisation error whose message survives to the [`DecodeError`] of [`loads`] (the
/// postcard format drops the text of `serde::de::Error::custom`). Types that check what they
/// receive (sizes, ranges) report through this.
pub fn custom_error<E: serde::de::Error>(msg: impl fmt::Display) -> E {
    let text = msg.to_string();
    let error = E::custom(&text);
    LAST_CUSTOM.with(|last| *last.borrow_mut() = Some(text));
    error
}

/// Deserialises a value from `bytes`, handing `fds` to its [`Fd`]s by index. Every byte must
/// belong to the value. Descriptors that no `Fd` claims are closed.
pub fn loads<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, DecodeError> {
    let outer = SOURCE.with(|source| source.replace(Some(fds.into_iter().map(Some).collect())));
    LAST_CUSTOM.with(|last| last.borrow_mut().take());
    let value = postcard::take_from_bytes(bytes);
    SOURCE.with(|source| source.replace(outer));
    let custom = LAST_CUSTOM.with(|last| last.borrow_mut().take());
    match value {
        Ok((value, [])) => Ok(value),
        // Left-over bytes mean the value was written as another type: say so, rather than
        // hand back a value built from a prefix of it.
        Ok((_, rest)) => Err(DecodeError(format!(
            "{} bytes left over: the message holds another type",
            rest.len()
        ))),
        Err(e) => Err(DecodeError(custom.unwrap_or_else(|| e.to_string()))),
    }
}

/// The most descriptors one message can carry.
pub const MAX_FDS_PER_MSG: usize = sys::MAX_FDS_PER_MSG;

/// Writes all of `data` on a Unix socket, with `fds` attached to its first bytes
/// (`SCM_RIGHTS`), as CPython's `reduction.sendfds` does. Blocks until everything is written.
///
/// Errors: `InvalidInput` for empty `data` or more than [`MAX_FDS_PER_MSG`] descriptors, and
/// the socket's own errors (`BrokenPipe` when the peer is gone; `SIGPIPE` is never raised).
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if data.is_empty() || fds.len() > MAX_FDS_PER_MSG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a message needs at least one byte and at most {MAX_FDS_PER_MSG} handles"),
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    sys::send_with_fds(sock, data, &raw)
}

/// Reads up to `buf.len()` bytes from a Unix socket, appending the descriptors that arrive
/// with them to `fds` (close-on-exec). Returns the number of bytes read; 0 means end of stream.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    sys::recv_with_fds(sock, buf, fds)
}

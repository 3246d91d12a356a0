//! The error types of mp-ipc: one small type per operation, as crossbeam's channels have.

use std::{fmt, io};

use mp_spawn::reduction::{DecodeError, EncodeError};

/// Why [`Connection::send`](crate::Connection::send) or `send_bytes` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// This end was closed (Python: `OSError: handle is closed`).
    Closed,
    /// This is the read end of a one-way pipe.
    NotWritable,
    /// `offset`/`size` do not lie inside the buffer given to `send_bytes`.
    OutOfRange {
        /// The buffer's length.
        len: usize,
        /// The requested offset.
        offset: usize,
        /// The requested size.
        size: usize,
    },
    /// The value could not be serialised; nothing was sent.
    Encode(EncodeError),
    /// The OS refused (`BrokenPipe`: the peer is gone).
    Io(io::Error),
}

/// Why [`Connection::recv`](crate::Connection::recv) and its siblings failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// This end was closed.
    Closed,
    /// This is the write end of a one-way pipe.
    NotReadable,
    /// The peer closed its end and every message was read (Python's `EOFError`).
    Eof,
    /// `recv_bytes_into`: the buffer is too short. The whole message is here (Python's
    /// `BufferTooShort`, whose `args[0]` is the message); the connection stays usable.
    BufferTooShort(Vec<u8>),
    /// `recv_bytes_into`: the offset lies past the buffer's end.
    OffsetOutOfRange {
        /// The buffer's length.
        len: usize,
        /// The requested offset.
        offset: usize,
    },
    /// A message is longer than the limit (`recv_bytes(maxlength)` or
    /// [`Connection::set_max_message_size`](crate::Connection::set_max_message_size)). As in
    /// Python, the connection is unusable afterwards: its stream position is lost.
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The peer sent something that is not an mp frame, or stopped in the middle of one.
    /// The connection is unusable afterwards.
    Malformed(String),
    /// The bytes arrived but are not a value of the requested type.
    Decode(DecodeError),
    /// An earlier error left the stream at an unknown position.
    Broken,
    /// The OS refused.
    Io(io::Error),
}

/// Why a queue's `put` failed. The item is not in the queue.
#[derive(Debug)]
#[non_exhaustive]
pub enum PutError {
    /// The queue stayed full until the timeout (Python's `queue.Full`).
    Full,
    /// `close` was called on this handle (Python: `ValueError: Queue is closed`).
    Closed,
    /// The item could not be serialised: reported here, at once, not dropped in a background
    /// thread as Python does.
    Encode(EncodeError),
    /// The serialised item is larger than a queue can hold (16 GiB).
    TooLarge {
        /// Its size in bytes.
        len: u64,
    },
    /// The OS refused.
    Io(io::Error),
}

/// Why a queue's `get` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// The queue stayed empty until the timeout (Python's `queue.Empty`).
    Empty,
    /// `close` was called on this handle.
    Closed,
    /// The item was taken off the queue but is not a value of the queue's type.
    Decode(DecodeError),
    /// The item was taken but the handles it carried were lost (a process was killed while
    /// taking them).
    HandlesLost,
    /// The shared memory does not hold a valid queue any more.
    Corrupt(String),
    /// The OS refused.
    Io(io::Error),
}

/// `task_done` was called more times than items were put (Python's `ValueError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDoneError;

/// The peer did not prove it knows the authkey, or refused ours (Python's
/// `AuthenticationError`). No data was exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationError(pub String);

/// Why a [`Listener`](crate::Listener) or [`client`](crate::client()) call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ListenerError {
    /// `accept` on a closed listener (Python: `OSError: listener is closed`).
    Closed,
    /// The authkey challenge failed.
    Authentication(AuthenticationError),
    /// `accept`: the client did not finish the authkey handshake within the listener's
    /// [handshake timeout](crate::Listener::set_handshake_timeout); it was dropped.
    /// [`client_timeout`](crate::client_timeout): the server did not finish it in time.
    HandshakeTimeout,
    /// The address is malformed, in use, or unreachable, or another OS error.
    Io(io::Error),
}

macro_rules! display {
    ($ty:ty, $self:ident, $f:ident, $body:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&$self, $f: &mut fmt::Formatter<'_>) -> fmt::Result {
                $body
            }
        }
        impl std::error::Error for $ty {}
    };
}

display!(
    SendError,
    self,
    f,
    match self {
        SendError::Closed => f.write_str("the connection is closed"),
        SendError::NotWritable => f.write_str("this end of the pipe is not writable"),
        SendError::OutOfRange { len, offset, size } => write!(
            f,
            "offset {offset} and size {size} do not fit in a buffer of {len} bytes"
        ),
        SendError::Encode(e) => e.fmt(f),
        SendError::Io(e) => e.fmt(f),
    }
);

display!(
    RecvError,
    self,
    f,
    match self {
        RecvError::Closed => f.write_str("the connection is closed"),
        RecvError::NotReadable => f.write_str("this end of the pipe is not readable"),
        RecvError::Eof => f.write_str("end of file: the peer closed the connection"),
        RecvError::BufferTooShort(m) => {
            write!(
                f,
                "the buffer is too short for a message of {} bytes",
                m.len()
            )
        }
        RecvError::OffsetOutOfRange { len, offset } => {
            write!(
                f,
                "offset {offset} is past the end of a buffer of {len} bytes"
            )
        }
        RecvError::TooLarge { len, limit } => {
            write!(f, "a message of {len} bytes exceeds the limit of {limit}")
        }
        RecvError::Malformed(m) => write!(f, "malformed message: {m}"),
        RecvError::Decode(e) => e.fmt(f),
        RecvError::Broken => f.write_str("the connection is unusable after an earlier error"),
        RecvError::Io(e) => e.fmt(f),
    }
);

display!(
    PutError,
    self,
    f,
    match self {
        PutError::Full => f.write_str("the queue is full"),
        PutError::Closed => f.write_str("the queue is closed"),
        PutError::Encode(e) => e.fmt(f),
        PutError::TooLarge { len } => write!(f, "an item of {len} bytes is too large for a queue"),
        PutError::Io(e) => e.fmt(f),
    }
);

display!(
    GetError,
    self,
    f,
    match self {
        GetError::Empty => f.write_str("the queue is empty"),
        GetError::Closed => f.write_str("the queue is closed"),
        GetError::Decode(e) => e.fmt(f),
        GetError::HandlesLost => f.write_str("the handles of an item were lost"),
        GetError::Corrupt(m) => write!(f, "the queue's shared memory is corrupt: {m}"),
        GetError::Io(e) => e.fmt(f),
    }
);

display!(
    TaskDoneError,
    self,
    f,
    f.write_str("task_done() called too many times")
);

display!(
    AuthenticationError,
    self,
    f,
    write!(f, "authentication failed: {}", self.0)
);

display!(
    ListenerError,
    self,
    f,
    match self {
        ListenerError::Closed => f.write_str("the listener is closed"),
        ListenerError::Authentication(e) => e.fmt(f),
        ListenerError::HandshakeTimeout => {
            f.write_str("the peer did not finish the authentication handshake in time")
        }
        ListenerError::Io(e) => e.fmt(f),
    }
);

impl From<io::Error> for SendError {
    fn from(e: io::Error) -> Self {
        SendError::Io(e)
    }
}

impl From<io::Error> for RecvError {
    fn from(e: io::Error) -> Self {
        RecvError::Io(e)
    }
}

impl From<io::Error> for ListenerError {
    fn from(e: io::Error) -> Self {
        ListenerError::Io(e)
    }
}

impl From<AuthenticationError> for ListenerError {
    fn from(e: AuthenticationError) -> Self {
        ListenerError::Authentication(e)
    }
}

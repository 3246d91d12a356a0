//! What can go wrong with a manager or a proxy call.

use std::fmt;

use mp_ipc::{ListenerError, RecvError, SendError};
use mp_spawn::ProcessError;
use serde::{Deserialize, Serialize};

/// The failure of a manager operation or a proxy call.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManagerError {
    /// The server process could not be started.
    Start(ProcessError),
    /// The server could not be reached (it is gone, or the address or authkey is wrong).
    Connect(ListenerError),
    /// The server is gone (shut down, or dead): the call did not complete.
    ServerGone,
    /// The call reached the server and failed there.
    Remote(RemoteError),
    /// A value could not be encoded for the server.
    Encode(String),
    /// The server's answer could not be decoded (a different build of the program?).
    Decode(String),
    /// The server could not listen at the address asked for (in use, not allowed, ...).
    Listen(String),
    /// A looked-up object is of another type than the proxy asked for.
    WrongType {
        /// The type asked for.
        expected: String,
        /// The object's type on the server.
        found: String,
    },
    /// A proxy to another server's object was given to this manager (to publish it).
    OtherServer,
}

/// An error raised by the server for one call, as Python re-raises the server's exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RemoteError {
    /// Python's `KeyError`: no such key (`pop` of a missing key).
    Key,
    /// Python's `IndexError`: an index out of range.
    Index {
        /// The index asked for.
        index: i64,
        /// The length at the time.
        len: u64,
    },
    /// Python's `ValueError`: no such item (`list.remove`, `list.index`).
    Value,
    /// The object the proxy refers to no longer exists on the server.
    NoSuchObject(u64),
    /// The server could not decode the call or create the object (a different build?).
    BadCall(String),
    /// Python's `AttributeError`: a namespace has no such name.
    Attribute(String),
    /// Nothing is published under this name on the server.
    NoSuchName(String),
    /// A connection asked to join a session the server does not know (it was restarted at the
    /// same address since): the client opens a new session.
    NoSuchSession(u64),
    /// Python's `RuntimeError` (and `ValueError` of a semaphore): releasing a lock not held,
    /// waiting on a condition without its lock, a semaphore released too many times,
    /// `task_done` called too many times.
    Runtime(String),
    /// Python's `queue.Full`: no room in the queue in time.
    Full,
    /// Python's `queue.Empty`: no item in the queue in time.
    Empty,
    /// Python's `BrokenBarrierError`.
    BrokenBarrier,
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start(e) => write!(f, "cannot start the manager's server: {e}"),
            Self::Connect(e) => write!(f, "cannot reach the manager's server: {e}"),
            Self::ServerGone => f.write_str("the manager's server is gone"),
            Self::Remote(e) => write!(f, "the manager's server refused the call: {e}"),
            Self::Encode(e) => write!(f, "cannot encode the call: {e}"),
            Self::Decode(e) => write!(f, "cannot decode the server's answer: {e}"),
            Self::Listen(e) => write!(f, "the manager's server cannot listen: {e}"),
            Self::WrongType { expected, found } => {
                write!(f, "the object is a {found}, not a {expected}")
            }
            Self::OtherServer => f.write_str("the proxy belongs to another server"),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key => f.write_str("KeyError: no such key"),
            Self::Index { index, len } => {
                write!(f, "IndexError: index {index} out of range for length {len}")
            }
            Self::Value => f.write_str("ValueError: no such item"),
            Self::NoSuchObject(id) => write!(f, "no object {id:#x} on the server"),
            Self::BadCall(e) => write!(f, "bad call: {e}"),
            Self::Attribute(name) => write!(f, "AttributeError: no attribute {name:?}"),
            Self::NoSuchName(name) => write!(f, "nothing is published as {name:?}"),
            Self::NoSuchSession(id) => write!(f, "no session {id}"),
            Self::Runtime(e) => write!(f, "RuntimeError: {e}"),
            Self::Full => f.write_str("queue.Full: no room in the queue"),
            Self::Empty => f.write_str("queue.Empty: no item in the queue"),
            Self::BrokenBarrier => f.write_str("BrokenBarrierError: the barrier is broken"),
        }
    }
}

impl std::error::Error for ManagerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Start(e) => Some(e),
            Self::Connect(e) => Some(e),
            Self::Remote(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for RemoteError {}

impl From<SendError> for ManagerError {
    fn from(e: SendError) -> ManagerError {
        match e {
            SendError::Encode(e) => ManagerError::Encode(e.to_string()),
            _ => ManagerError::ServerGone,
        }
    }
}

impl From<RecvError> for ManagerError {
    fn from(e: RecvError) -> ManagerError {
        match e {
            RecvError::Decode(e) => ManagerError::Decode(e.to_string()),
            _ => ManagerError::ServerGone,
        }
    }
}

/// A reply of another kind than the call expects (a different build of the program?).
pub(crate) fn unexpected<T>() -> Result<T, ManagerError> {
    Err(ManagerError::Decode("unexpected reply".to_owned()))
}

//! What a client and a server say to each other.
//!
//! A connection starts with the authkey handshake of `mp_ipc::Listener`, then a [`Hello`]
//! naming the client's session and build. The invariants the server keeps:
//!
//! - **Sessions.** A client process talks to a server through one session: its first
//!   connection (the *anchor*, kept until the process ends or sees the server gone; a forked
//!   child's copies are closed) opens it, and every
//!   other connection of the process (one per thread that calls) joins it. Every reference the
//!   process holds is the session's, whichever connection took it, so a proxy made in one
//!   thread may be dropped in another. A session ends, and its references are dropped, when
//!   all its connections have ended: the process is gone, however it died.
//! - **Transit.** A proxy on its way to another process holds a reference (`Transit`) that
//!   the *sending* session keeps under a token, which the receiver's `Adopt` moves into its
//!   own session: the object cannot be freed in between (cpython #119937). A proxy that is
//!   never received (a full `put_nowait`, a child killed before it read its arguments) costs
//!   its reference until the sending session ends, never for the server's life.
//! - **Names.** A published name holds one reference of the server's own, until it is
//!   published again or the server ends.
//! - **Builds.** Types are named by code offsets (see `servant`), which mean the same only in
//!   the same build: a client whose build differs from the server's may call and look up
//!   objects, but not create them.
//! - **Callers.** Each connection is one caller (a thread of a client). When it ends, the
//!   objects it held as a caller (a managed lock it had acquired) are let go.

use mp_ipc::Queue;
use mp_spawn::identity::{self, FileId};
use serde::{Deserialize, Serialize};

use crate::error::RemoteError;

/// The first message on a connection, after the authkey handshake.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Hello {
    /// The client's build.
    pub(crate) build: Build,
    /// `None`: open a session (this is the process's anchor). `Some`: join that session.
    pub(crate) session: Option<u64>,
}

/// A client's request.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Request {
    /// Creates an object of the type `type_ref` names (see `servant`); `type_name` is what
    /// a lookup checks.
    Create {
        type_ref: mp_spawn::code::RawCodeRef,
        type_name: String,
        args: Vec<u8>,
    },
    /// Calls an object.
    Call { id: u64, call: Vec<u8> },
    /// One more reference, the session's (a proxy cloned or first used in this process).
    IncRef { id: u64 },
    /// One reference less, of those the session holds (a proxy dropped).
    DecRef { id: u64 },
    /// One more reference, held by this session under a token (the reply's `Count`) while a
    /// proxy is on its way to another process.
    Transit { id: u64 },
    /// Moves the transit reference `token` into this session (the proxy arrived).
    Adopt { id: u64, token: u64 },
    /// Gives object `id` the name `name` (Python's registered typeids of a remote manager).
    Publish { name: String, id: u64 },
    /// The object named `name`, with one more reference, the session's.
    Lookup { name: String },
    /// How many objects the server holds (for tests and `Manager::object_count`).
    Count,
    /// From now on, requests come on `requests` and replies go on `replies` (shared-memory
    /// rings: a round trip without a socket wake-up); the socket only tells that the client is
    /// gone (end-of-file). Only on a connection of the same host.
    Upgrade {
        requests: Queue<Request>,
        replies: Queue<Reply>,
    },
    /// Ends the server.
    Shutdown,
}

/// The server's answer.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Reply {
    /// The session a connection belongs to (the answer to a [`Hello`]).
    Session(u64),
    Created(u64),
    /// A looked-up object and its type's name.
    Found {
        id: u64,
        type_name: String,
    },
    Value(Vec<u8>),
    Count(u64),
    Done,
    Error(RemoteError),
}

/// Which executable a process runs (`mp_spawn::identity`): on one host the file itself,
/// across hosts its contents.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// The executable's device and inode (a client on the same host).
    File(u64, u64),
    /// A 64-bit digest an earlier mp sent over TCP: never this build's (this one sends
    /// `Sha256`), but still decoded, so that such a client is told "another build" rather
    /// than dropped. Also the build of a process that cannot read its executable.
    Digest(u64),
    /// The SHA-256 of the executable's bytes (a client over TCP, maybe on another host).
    Sha256([u8; 32]),
}

impl Build {
    /// This process's build, of the kind a client at `address` sends.
    pub(crate) fn of_this_process(remote: bool) -> Build {
        let digest = || identity::digest().map_or(Build::Digest(0), |d| Build::Sha256(d.0));
        if remote {
            return digest();
        }
        match identity::file() {
            Ok(FileId { dev, ino }) => Build::File(dev, ino),
            Err(_) => digest(),
        }
    }

    /// Whether a client of build `self` runs the same executable as this process.
    pub(crate) fn is_ours(self) -> bool {
        match self {
            Build::File(dev, ino) => identity::file().is_ok_and(|f| f == FileId { dev, ino }),
            Build::Digest(_) => false,
            Build::Sha256(d) => identity::digest().is_ok_and(|ours| ours.0 == d),
        }
    }
}

#[cfg(test)]
mod test;

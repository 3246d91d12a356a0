//! The shared-memory core of every queue: a growable byte ring in a memfd, with one robust
//! lock for producers and one for consumers (a two-lock queue), futex waits, an eventfd
//! doorbell for `wait`, and a side socket for the handles (fds) that items carry.
//!
//! Why this shape (measurements in `docs/DESIGN.md`):
//! - Items live in shared memory, not in a pipe, so `put` never waits for a reader and a
//!   process that put items can exit at once (Python's feeder-thread deadlock, gh-73983, cannot
//!   happen), and one item costs two uncontended lock round trips, not two syscalls.
//! - An item becomes visible by a single store of `tail` after it is fully written, and is
//!   removed by a single store of `head` after it is fully read. A process killed inside `put`
//!   or `get` therefore leaves the ring consistent: the robust lock reports the death to the
//!   next taker, which simply goes on (a half-written item was never published; a half-read
//!   one is read again).
//! - Unbounded queues never block in `put`: when the ring is full it grows (doubling, into a
//!   fresh region of a sparse reservation, so no process has to remap), and the old region's
//!   pages are given back. `maxsize` bounds the number of items, as in Python.
//!
//! One concept per file: [`layout`] (the header in shared memory and the checks of every
//! offset and size read from it), [`handle`] (the mapped ring a process holds, attaching, raw
//! access, locks) and [`protocol`] (put, get, growth, waiting). The invariants are in
//! `README.md` beside this file.

use std::io;

mod handle;
mod layout;
mod protocol;
#[cfg(test)]
mod test;

pub(crate) use handle::Ring;

/// Why a ring operation failed.
#[derive(Debug)]
pub(crate) enum RingError {
    /// A bounded queue stayed full until the deadline.
    Full,
    /// The queue stayed empty until the deadline.
    Empty,
    /// An item is larger than the largest ring.
    TooLarge(u64),
    /// The handles of an item were lost (its handle message is missing).
    HandlesLost,
    /// The shared memory does not hold a valid queue.
    Corrupt(&'static str),
    Io(io::Error),
}

impl From<io::Error> for RingError {
    fn from(e: io::Error) -> Self {
        RingError::Io(e)
    }
}

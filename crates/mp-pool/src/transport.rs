//! Pools whose workers are elsewhere: a [`Transport`] carries the pool's task frames to remote
//! workers (the ranks of an MPI job, in mp-mpi) and hands their answers back. Everything else
//! is the one pool core, as for local worker processes: chunking, `imap`'s window, ordered and
//! unordered delivery, `AsyncResult`, callbacks, progress, timeouts, `ProcessPoolExecutor`.
//!
//! The two sides:
//! - here, [`PoolBuilder::build_with`](crate::PoolBuilder::build_with) makes a [`Pool`](crate::Pool) over a
//!   transport; the pool calls [`Transport::send`] with each chunk's frame for a worker, and
//!   the transport calls [`Sink::deliver`] with each answer (the pool watches the timeouts
//!   itself);
//! - on a remote worker, [`Pool::relay`](crate::Pool::relay) (`unsafe`: the frame names code
//!   by offset, so it must come from a trusted process of the same image) runs each frame received in that worker's own local
//!   pool (a task that segfaults kills a process there, not the worker) and gives the answer
//!   to send back.
//!
//! Frames are bytes only (no descriptors travel), and a frame names code by its registered
//! reference, so both sides must run the same executable: the transport checks that (mp-mpi
//! compares the executables' SHA-256 at its handshake). An answer that does not decode fails
//! a chunk with [`PoolError::BadFrame`], never a panic.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use mp_pool::transport::{Sink, Transport};
//! use mp_pool::Pool;
//!
//! /// One "remote" worker that is a local pool, reached through the transport API (a real
//! /// transport sends the bytes to another host, whose worker calls `relay` there).
//! #[derive(Debug)]
//! struct Loopback {
//!     remote: Pool,
//!     sink: Mutex<Option<Sink>>,
//! }
//!
//! impl Transport for Loopback {
//!     fn workers(&self) -> usize { 1 }
//!     fn rank(&self, _: usize) -> u32 { 1 }
//!     fn start(&self, sink: Sink) -> std::io::Result<()> {
//!         *self.sink.lock().unwrap() = Some(sink);
//!         Ok(())
//!     }
//!     fn send(&self, worker: usize, frame: &[u8]) -> std::io::Result<()> {
//!         let sink = self.sink.lock().unwrap().clone().expect("started");
//!         // SAFETY: the frame comes from the pool of this very process.
//!         unsafe { self.remote.relay(frame, usize::MAX, move |answer| { sink.deliver(worker, answer); }) };
//!         Ok(())
//!     }
//!     fn shutdown(&self) {}
//! }
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! let transport = Loopback { remote: Pool::new(2)?, sink: Mutex::new(None) };
//! let pool = Pool::builder().build_with(Arc::new(transport))?;
//! assert_eq!(pool.map(square, 0..10)?, (0..10).map(square).collect::<Vec<_>>());
//! # Ok::<(), mp_pool::PoolError>(())
//! ```

use std::fmt;
use std::io;
use std::sync::{Arc, Weak};

use crate::error::PoolError;
use crate::wire::{self, Failure, Outcome};

/// Carries a pool's task frames to remote workers and their answers back (see the module
/// docs). The pool calls it from any thread, under no lock of its own that `send` could wait
/// for: a transport that must make its calls on one thread (MPI) queues them for it.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// How many workers it reaches, numbered `0..workers()` (fixed for the pool's life).
    fn workers(&self) -> usize;

    /// The number users know `worker` by (an MPI rank), in [`PoolError::Remote`].
    fn rank(&self, worker: usize) -> u32;

    /// How many chunks `worker` runs at once (its local processes): the pool gives it no more
    /// than that, so that a chunk never waits there where no other worker could take it.
    fn parallel(&self, worker: usize) -> usize {
        let _ = worker;
        1
    }

    /// Starts carrying: from now on, hand every answer to `sink`. Called once, before any
    /// `send`.
    fn start(&self, sink: Sink) -> io::Result<()>;

    /// Sends a chunk's task frame to `worker`. It must not block for long (the pool may hold
    /// its lock): queue the frame if the way is busy. An error fails the chunk.
    fn send(&self, worker: usize, frame: &[u8]) -> io::Result<()>;

    /// The pool is done (closed and drained, or terminated): let the workers go once they
    /// have answered what they hold, and return when that is done. Called once.
    fn shutdown(&self);
}

/// What a pool does with its remote workers' answers (the engine's side of a [`Sink`]; a
/// trait, so that this module needs nothing from the engine's).
pub(crate) trait Answers: Send + Sync {
    /// An answer from `worker`.
    fn on_answer(&self, worker: usize, answer: Vec<u8>);
}

/// Where a [`Transport`] hands the workers' answers: to the pool that started it.
#[derive(Clone)]
pub struct Sink {
    inner: Weak<dyn Answers>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("pool_alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl Sink {
    pub(crate) fn new(inner: Weak<dyn Answers>) -> Sink {
        Sink { inner }
    }

    /// What `worker` sent back: an answer [`Pool::relay`](crate::Pool::relay) gave it, or anything else (which
    /// fails the oldest chunk the worker holds with [`PoolError::BadFrame`]). `false` once
    /// the pool is gone.
    pub fn deliver(&self, worker: usize, answer: Vec<u8>) -> bool {
        match self.inner.upgrade() {
            Some(inner) => {
                inner.on_answer(worker, answer);
                true
            }
            None => false,
        }
    }
}

/// The answer that fails the chunk of the task frame `frame` with `error`, for a remote worker
/// that cannot run it (its own pool did not start, say): its sender's pool gets `error` as
/// [`PoolError::Remote`]. A frame too short to name its chunk gets an answer to no chunk,
/// which fails the oldest chunk the worker holds there with [`PoolError::BadFrame`].
///
/// ```
/// use mp_pool::PoolError;
///
/// let answer = mp_pool::transport::refuse(b"not a task", &PoolError::NotRunning);
/// assert!(!answer.is_empty());
/// ```
pub fn refuse(frame: &[u8], error: &PoolError) -> Vec<u8> {
    failure_answer(wire::get_u64(frame, 1).unwrap_or(u64::MAX), error)
}

/// The answer that fails chunk `id` there with `error`.
pub(crate) fn failure_answer(id: u64, error: &PoolError) -> Vec<u8> {
    let mut frame = Vec::new();
    wire::result_header(&mut frame, 0, id);
    wire::set_outcome(&mut frame, Outcome::Remote);
    // A `Failure` holds strings and integers only: postcard cannot fail on it.
    frame.extend_from_slice(&postcard::to_stdvec(&Failure::of(error)).unwrap_or_default());
    frame
}

/// A remote worker, as the scheduler reaches it.
pub(crate) struct Remote {
    pub(crate) worker: usize,
    pub(crate) rank: u32,
    pub(crate) transport: Arc<dyn Transport>,
}

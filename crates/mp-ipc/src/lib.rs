//! Pipes, queues and listeners between processes: the messaging floor of
//! [mp](https://docs.rs/mp-rs), Python's `multiprocessing` for Rust.
//!
//! | Python | here |
//! |---|---|
//! | `Pipe(duplex)` | [`pipe`] → two [`Connection`]s |
//! | `Queue(maxsize)` | [`Queue<T>`](Queue) |
//! | `JoinableQueue`, `SimpleQueue` | [`JoinableQueue<T>`](JoinableQueue), [`SimpleQueue<T>`](SimpleQueue) |
//! | `connection.wait` | [`wait`] |
//! | `Listener`, `Client` | [`Listener`], [`client`] |
//!
//! Every one of them travels to a child as an ordinary `Process` argument under each start
//! method, and inside a message on a Connection or a Queue.
//!
//! ```
//! use mp_ipc::{Process, Queue};
//!
//! fn worker(q: Queue<u64>, n: u64) {
//!     q.put(n * n).unwrap();
//! }
//!
//! let q = Queue::new()?;
//! let mut p = Process::new(worker, (q.clone(), 7));
//! p.start()?;
//! assert_eq!(q.get()?, 49);
//! p.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # When a process dies
//! - Connection: its peer reads the messages sent before, then [`RecvError::Eof`]; if it died
//!   in the middle of a message, [`RecvError::Malformed`]. Nothing blocks forever.
//! - Queue: the others go on. Items are written into shared memory under robust locks, and an
//!   item becomes visible (or is removed) by one store, so a process killed inside `put` or
//!   `get`, even while holding the queue's lock, loses at most its own item.
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connection;
mod error;
mod listener;
mod queues;
mod ring;
mod wait;

pub use connection::{Connection, DEFAULT_MAX_MESSAGE_SIZE, pipe};
pub use error::{
    AuthenticationError, GetError, ListenerError, PutError, RecvError, SendError, TaskDoneError,
};
pub use listener::{
    Address, DEFAULT_HANDSHAKE_TIMEOUT, Listener, Unauthenticated, client, client_timeout,
};
/// Processes, re-exported from mp-spawn so that this crate's examples need no other name.
#[doc(no_inline)]
pub use mp_spawn::{Process, get_context};
pub use queues::{Doorbell, JoinableQueue, Queue, SimpleQueue};
pub use wait::{Waitable, wait};

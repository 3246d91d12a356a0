//! `Manager::lock`, `rlock`, `semaphore`, `bounded_semaphore`, `event`, `condition` and
//! `barrier`: Python's `threading` primitives held by the server, so that processes with no
//! shared memory between them (on other hosts, say) can synchronise.
//!
//! Their calls block in the server, each in its caller's own connection (a thread of the
//! client: see `link`), without holding up other callers. Beyond Python: a lock held by a
//! client that dies (or whose thread ends) is released, instead of staying locked forever, and
//! a barrier a dead client was waiting at is broken, instead of hanging the others.

mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;
mod wait;

pub use barrier::Barrier;
pub use condition::Condition;
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock};
pub use semaphore::{BoundedSemaphore, Semaphore};

pub(crate) use wait::Cell;

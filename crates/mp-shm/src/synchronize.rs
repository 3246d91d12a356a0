//! Process-shared locks and their relatives, as Python's `multiprocessing.synchronize`.
//!
//! Each object is a small anonymous shared block (see `heap`), so it travels to children as
//! an ordinary argument under every start method and leaves nothing behind in /dev/shm.
//! `Lock` and `RLock` are robust pthread mutexes: a holder that dies is noticed by the next
//! acquirer ([`SyncError::OwnerDied`]) instead of deadlocking it. The rest are futex words,
//! and every sleep on one goes through [`mp_sys::parker`].
//!
//! One file per concept, layered (each may use only those above it):
//!
//! | file | what |
//! |---|---|
//! | `rules` | the pure rules mp-managers' server-held primitives share (semaphore bounds, event wake-ups) |
//! | `mutex` | the robust mutex block under `Lock`, `RLock`, `Value` and `Array` |
//! | `words` | a shared block of atomics: the state of every futex-word object |
//! | `lock`, `rlock` | `Lock`, `RLock` over `mutex` |
//! | `semaphore`, `event` | `Semaphore`/`BoundedSemaphore`, `Event` over `words` + `mp_sys::parker` |
//! | `condition` | `Condition` over a lock + `words` + `mp_sys::parker` (its protocol: `README.md`) |
//! | `barrier` | `Barrier` over `condition` |
//!
//! [`SyncError::OwnerDied`]: crate::SyncError::OwnerDied

mod barrier;
mod condition;
mod event;
mod lock;
mod mutex;
mod rlock;
pub mod rules;
mod semaphore;
mod words;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard, ConditionLock};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub(crate) use mutex::{DATA_OFFSET, MutexBlock};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};

// What the unit tests beside this file reach for.
#[cfg(test)]
use mutex::held_here;

#[cfg(test)]
mod test;

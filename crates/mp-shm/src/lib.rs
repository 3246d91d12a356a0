//! Shared state and locks between processes: the part of [mp](https://docs.rs/mp-rs) that mirrors
//! Python's `sharedctypes`, `shared_memory` and `synchronize`.
//!
//! | you want | use | Python |
//! |---|---|---|
//! | one number or struct, shared | [`Value`] (locked), [`RawValue`] | `Value`, `RawValue` |
//! | a fixed array, shared | [`Array`] (locked), [`RawArray`] | `Array`, `RawArray` |
//! | a large array, by descriptor: read-only, or filled in chunks by many processes | [`SharedArray`], [`SharedArrayMut`], [`Chunks`] | joblib's memmapping, `np.ndarray(buffer=shm.buf)` |
//! | bytes any process can attach by name | [`SharedMemory`] | `shared_memory.SharedMemory` |
//! | a list of mixed items by name | [`ShareableList`] | `shared_memory.ShareableList` |
//! | a dict of serde keys and values, shared, no server | [`SharedDict`] | `Manager().dict()` |
//! | mutual exclusion | [`Lock`], [`RLock`] | `Lock`, `RLock` |
//! | counting, signalling, meeting | [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`], [`Barrier`] | the same |
//!
//! ```
//! use mp_shm::{Value, get_context};
//!
//! fn add_fifty(counter: Value<i32>) {
//!     for _ in 0..50 {
//!         counter.update(|v| *v += 1).unwrap();
//!     }
//! }
//!
//! let counter = Value::new(0i32)?;
//! let mut children: Vec<_> = (0..3)
//!     .map(|_| get_context("forkserver").unwrap().process(add_fifty, (counter.clone(),)))
//!     .collect();
//! for c in &mut children {
//!     c.start()?;
//! }
//! for c in &mut children {
//!     c.join()?;
//! }
//! assert_eq!(counter.value()?, 150);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # When a process dies
//! - **Holding a lock**: `Lock`, `RLock` and the locks of `Value` and `Array` are robust mutexes.
//!   The next acquirer gets [`SyncError::OwnerDied`] (a guard still comes with
//!   [`LockError::OwnerDied`]), repairs the data, and calls `clear_owner_died`. Python
//!   deadlocks there.
//!   A [`SharedDict`] needs no repair by hand: every change is one final store, so the next
//!   call checks it, returns [`DictError::Sync`] with `OwnerDied` once, and the map goes on.
//! - **Holding a chunk** of a split [`SharedArrayMut`]: the chunk is released (what was
//!   written stays, the other chunks are intact), and [`Chunks::join`] succeeds once the
//!   holder is gone; a chunk is never attached in two places at once ([`ShmError::ChunkBusy`]).
//! - **Leaks**: `Value`, `Array` and the locks live in anonymous memory (memfd) that the kernel
//!   frees with its last user; nothing of theirs is ever in /dev/shm (nor of a
//!   [`SharedArray`]'s, unless made `named` for numpy). A named
//!   [`SharedMemory`] that its creator's process tree did not unlink is unlinked by the
//!   resource tracker when the tree is gone, after SIGKILL too; one registered with a
//!   [`ResourceTracker`] of one's own, when that tracker's holder is gone. Attaching never
//!   unlinks.
//!
//! Every object here is `Serialize + Deserialize` through `mp_spawn::reduction`: pass it as a
//! process argument, or through a `Queue` or `Connection`, under any start method.
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod atomic_copy;
mod error;
mod heap;
mod resource_tracker;
mod shareable_list;
mod shared_array;
mod shared_dict;
mod shared_memory;
mod sharedctypes;
mod synchronize;

/// The `bytemuck` crate, so that `#[derive(Pod, Zeroable)]` needs no dependency of your own:
/// name it with `#[bytemuck(crate = "mp_shm::bytemuck")]` (or `"mp::bytemuck"` through the
/// facade).
///
/// ```
/// use mp_shm::{Pod, Zeroable, Value};
///
/// #[derive(Clone, Copy, Pod, Zeroable)]
/// #[bytemuck(crate = "mp_shm::bytemuck")]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// let p = Value::new(Point { x: 1.0, y: 2.0 })?;
/// p.update(|p| p.x += 1.0)?;
/// assert_eq!(p.value()?.x, 2.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use bytemuck;
pub use bytemuck::{Pod, Zeroable};
pub use error::{
    ArrayError, DictError, IndexError, ListError, LockError, LockResult, ShmError, SyncError,
};
/// Processes, re-exported from mp-spawn so that this crate's examples need no other name.
#[doc(no_inline)]
pub use mp_spawn::{Process, get_context};
pub use resource_tracker::ResourceTracker;
pub use shareable_list::{Item, ShareableList};
#[cfg(feature = "ndarray")]
pub use shared_array::SharedNdArray;
#[cfg(feature = "unstable-test-hooks")]
#[doc(hidden)]
pub use shared_array::mapped_arrays;
pub use shared_array::{Chunk, Chunks, JoinError, SharedArray, SharedArrayMut};
pub use shared_array::{release_lingering, set_lingering};
pub use shared_dict::SharedDict;
#[cfg(feature = "unstable-test-hooks")]
#[doc(hidden)]
pub use shared_dict::Stall;
pub use shared_memory::{MAX_NAME_LEN, SharedMemory, ShmOptions, random_name};
pub use sharedctypes::{Array, ArrayGuard, RawArray, RawValue, Value, ValueGuard};
/// The rules of Python's sync primitives as pure state machines (a semaphore's counts, an
/// event's wake-ups, a barrier's rounds), which this crate's shared-memory primitives and
/// mp-managers' server-held ones both run: one set of semantics, tested once.
pub use synchronize::rules as sync_rules;
pub use synchronize::{
    Barrier, BoundedSemaphore, Condition, ConditionGuard, ConditionLock, Event, Lock, LockGuard,
    RLock, RLockGuard, Semaphore,
};

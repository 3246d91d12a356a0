//! **mp**: Python's `multiprocessing` for Rust.
//!
//! Processes instead of threads where you need isolation: a crash, an abort or a leak in one
//! task does not take the program down. The names and semantics are Python's.
//!
//! ```
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! let mut p = mp::Process::new(square, (7,));
//! p.start()?;
//! assert_eq!(p.join()?, 49);
//! # Ok::<(), mp::ProcessError>(())
//! ```
//!
//! # Crates
//! - [`spawn`]: processes, start methods (fork, spawn, forkserver), contexts.
//! - [`ipc`]: Pipe/Connection, Queue, JoinableQueue, SimpleQueue, wait, Listener/client.
//! - [`shm`]: Value, Array, SharedMemory, ShareableList, SharedArray (big data, zero-copy), SharedDict,
//!   and robust process-shared locks.
//! - [`pool`]: Pool, AsyncResult, lazy imap, and a joblib-style Parallel.
//! - [`log`]: `log_to_stderr`, `get_logger`, and children's `tracing` events re-emitted in
//!   the parent (`log::forward_children`).
//! - [`managers`]: Manager, and proxies to the dicts, lists, sets, arrays, values, namespaces,
//!   locks, events, queues and user types its server holds; remote managers over TCP.
//!
//! # Async
//! With the feature `async`, mp can be awaited under any executor (tokio, either flavour;
//! smol; `futures::executor`): [`AsyncResult`] is a `Future`, [`IMap`] a `Stream`,
//! `Process::join_async`, `Queue::get_async`/`put_async`,
//! `Connection::recv_async`/`send_async`. They wait on descriptor readiness
//! (pidfd, eventfd, socket) or on a waker the pool's thread calls, never by polling in a loop.
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use mp_ipc as ipc;
#[doc(inline)]
pub use mp_log as log;
#[doc(inline)]
pub use mp_managers as managers;
#[doc(inline)]
pub use mp_pool as pool;
#[doc(inline)]
pub use mp_shm as shm;
#[doc(inline)]
pub use mp_spawn as spawn;

pub use mp_spawn::AnyProcess;
pub use mp_spawn::{
    ActiveChild, Context, ContextError, CurrentProcess, LimitHit, Limits, ParentProcess, Process,
    ProcessError, StartMethod, active_children, cpu_count, current_process, get_all_start_methods,
    get_context, get_start_method, parent_process, process_cpu_count, set_forkserver_preload,
    set_start_method,
};

pub use mp_ipc::{
    Address, Connection, GetError, JoinableQueue, Listener, ListenerError, PutError, Queue,
    RecvError, SendError, SimpleQueue, Waitable, client, pipe, wait,
};

pub use mp_shm::{
    Array, Barrier, BoundedSemaphore, Condition, Event, Item, Lock, LockError, RLock, RawArray,
    RawValue, Semaphore, ShareableList, SharedMemory, ShmError, SyncError, Value,
};

/// bytemuck's traits, glob-imported so that the derives below take the macro names (an
/// explicit import shadows a glob one): `mp::Pod` is the trait in bounds and the derive in
/// `#[derive(..)]`, whatever bytemuck's own features.
mod pod_traits {
    pub use mp_shm::{Pod, Zeroable};
}
pub use pod_traits::*;

/// `#[derive(mp::Pod, mp::Zeroable)]` for a plain-data type to keep in shared memory (a
/// `Value`, an `Array`, a `SharedArray`), with no `bytemuck` dependency of your own: the
/// derives name mp's re-export ([`mp-derive`](mp_derive)).
///
/// ```
/// #[derive(Clone, Copy, mp::Pod, mp::Zeroable)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// fn shift(p: mp::Value<Point>) {
///     p.update(|p| p.x += 1.0).unwrap();
/// }
///
/// let p = mp::Value::new(Point { x: 1.0, y: 2.0 })?;
/// let mut child = mp::Process::new(shift, (p.clone(),));
/// child.start()?;
/// child.join()?;
/// assert_eq!(p.value()?.x, 2.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Padding is refused when the program is built, as bytemuck refuses it:
///
/// ```compile_fail
/// #[derive(Clone, Copy, mp::Pod, mp::Zeroable)]
/// #[repr(C)]
/// struct Padded {
///     a: u8,
///     b: u64,
/// }
/// ```
///
/// So is a struct whose layout Rust may choose (no `#[repr(C)]`), and a field that is not
/// plain data:
///
/// ```compile_fail
/// #[derive(Clone, Copy, mp::Pod, mp::Zeroable)]
/// struct Unordered {
///     a: u64,
///     b: u64,
/// }
/// ```
///
/// ```compile_fail
/// #[derive(Clone, Copy, mp::Pod, mp::Zeroable)]
/// #[repr(C)]
/// struct Pointer {
///     p: &'static u64,
/// }
/// ```
pub use mp_derive::{Pod, Zeroable};
pub use mp_shm::{Chunk, Chunks, JoinError, SharedArray, SharedArrayMut};
pub use mp_shm::{DictError, SharedDict};

#[cfg(feature = "async")]
pub use mp_pool::IMapStream;
pub use mp_pool::{
    AsyncResult, Cancel, IMap, Parallel, Pool, PoolBuilder, PoolError, ProcessPoolExecutor, Retry,
    RetryOn, as_completed,
};

pub use mp_managers::{Manager, ManagerError};

pub use mp_log::{get_logger, log_to_stderr};

/// The `bytemuck` crate, for `#[derive(Pod, Zeroable)]` with `#[bytemuck(crate =
/// "mp::bytemuck")]` and no dependency of your own (see [`shm::bytemuck`]).
pub use mp_shm::bytemuck;

/// The README and the guide's pages: their Rust code blocks run as this crate's doctests, so
/// that every example a reader copies compiles and works.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/guide/processes.md")]
    struct Processes;
    #[doc = include_str!("../docs/guide/messages.md")]
    struct Messages;
    #[doc = include_str!("../docs/guide/shared-state.md")]
    struct SharedState;
    #[doc = include_str!("../docs/guide/pools.md")]
    struct Pools;
    #[doc = include_str!("../docs/guide/logging.md")]
    struct Logging;
    #[cfg(feature = "async")]
    #[doc = include_str!("../docs/guide/async.md")]
    struct Async;
}

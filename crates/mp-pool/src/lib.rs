//! Worker pools: the `Pool` of [mp](https://docs.rs/mp-rs), Python's `multiprocessing` for Rust,
//! and a joblib-style [`Parallel`].
//!
//! ```
//! use mp_pool::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let pool = Pool::new(2)?;
//! assert_eq!(pool.map(square, [1, 2, 3])?, [1, 4, 9]);
//! let lazy: Vec<u64> = pool.imap(square, 0..).take(3).collect::<Result<_, _>>()?;
//! assert_eq!(lazy, [0, 1, 4]);
//! assert_eq!(pool.apply_async(square, (7,))?.get()?, 49);
//! # Ok::<(), mp_pool::PoolError>(())
//! ```
//!
//! | Python | here |
//! |---|---|
//! | `Pool(processes, initializer, initargs, maxtasksperchild, context)` | [`Pool::new`], [`Pool::builder`] |
//! | `map`, `map_async`, `starmap`, `starmap_async` | [`Pool::map`], [`Pool::map_async`], [`Pool::starmap`], [`Pool::starmap_async`] |
//! | `imap`, `imap_unordered` (lazy here) | [`Pool::imap`], [`Pool::imap_unordered`] → [`IMap`] |
//! | `apply`, `apply_async` → `AsyncResult` | [`Pool::apply`], [`Pool::apply_async`] → [`AsyncResult`] |
//! | `chunksize=` | [`Pool::chunksize`]`(n).map(...)` |
//! | tqdm's `process_map(f, xs)` | `pool.progress(true).map(f, xs)` (feature `progress`: a bar counted per item, not per chunk) |
//! | `close`, `terminate`, `join`, `with` | [`Pool::close`], [`Pool::terminate`], [`Pool::join`], drop |
//! | joblib `Parallel(n_jobs)(delayed(f)(x) for x in xs)` | [`Parallel::new`]`(n_jobs).run(f, xs)` |
//! | `concurrent.futures.ProcessPoolExecutor`, `as_completed` | [`ProcessPoolExecutor`], [`as_completed`] |
//!
//! # Big arguments: pass a `SharedArray`
//! A task's arguments are serialised into the pool's queue for every task, as Python pickles
//! them. For a big array that many tasks read (joblib's memmapping case), pass an
//! `mp_shm::SharedArray` instead: it travels as a descriptor, a worker maps it once (and keeps
//! the one it received last mapped between back-to-back tasks and calls, letting go of it
//! after 100 ms idle), and a task reads it as `&[T]`. This is explicit rather than joblib's
//! automatic `max_nbytes` threshold: the type says what is shared, nothing is copied per call
//! (joblib dumps the array to /dev/shm on each `Parallel` call), and the workers cannot write
//! it (a sealed memfd). To fill one output array in parallel, send its `Chunk`s
//! (`SharedArrayMut::split`), one per task; a result can be a `SharedArray` too.
//!
//! # What does not hang here
//! - A worker that dies (SIGKILL, OOM, abort, segfault) fails the one chunk it was running
//!   with [`PoolError::WorkerDied`]; a new worker takes its place (Python hangs, gh-66587).
//!   Idle workers killed are replaced however often; workers that keep dying as they start
//!   (a crashing initializer) stop the pool with [`PoolError::Initializer`] or
//!   [`PoolError::StartFailed`] rather than be restarted forever, as Python's are.
//! - A panic comes back as [`PoolError::Panicked`] with its message and location.
//! - Ctrl-C during a wait returns [`PoolError::Interrupted`] and stops the workers, which
//!   print nothing (bpo-8296).
//! - `imap` reads its input lazily (gh-84291), and a pool works inside a pool worker. An
//!   input that panics ends the output with [`PoolError::InputPanicked`].
//! - Callbacks have run by the time a result is ready, as Python's; one that panics is
//!   reported and goes no further.
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod control;
mod core;
mod error;
mod executor;
pub mod feature;
mod imap;
mod interrupt;
mod monitor;
mod parallel;
mod plain;
mod pool;
mod progress;
#[cfg(feature = "progress")]
mod progress_bar;
mod relay;
mod result;
mod retry;
mod scheduler;
mod spin;
mod submit;
mod task;
pub mod transport;
mod wire;
mod worker;

pub use builder::PoolBuilder;
pub use control::Cancel;
pub use error::PoolError;
pub use executor::{AsCompleted, ProcessPoolExecutor, as_completed, as_completed_timeout};
pub use imap::IMap;
#[cfg(feature = "async")]
pub use imap::IMapStream;
pub use parallel::Parallel;
pub use pool::Pool;
pub use result::AsyncResult;
pub use retry::{Retry, RetryOn};
pub use submit::Submit;

// Which public types may cross threads (as tokio's `_assert_kinds`), checked at compile time.
// - `Pool`, `PoolBuilder`, `Submit`, `Parallel`, `PoolError`: `Send + Sync`: a pool can be
//   shared by threads (`&Pool` or `Arc<Pool>`), each submitting work.
// - `AsyncResult<T>`: `Send + Sync` whatever `T` (it holds no `T`, only the encoded result),
//   so one thread may wait while another polls.
// - `IMap<I, R>`: `Send` when its input `I` and its values `R` are (it buffers values of a
//   finished chunk), `Sync` when they are `Sync`. Deliberately not `Send` otherwise: the
//   input is read, and the values decoded, on the thread that calls `next`, so an input
//   that must stay on its thread (an `Rc`-based iterator) works (see `IMap`'s docs).
#[allow(dead_code)]
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send_sync::<Pool>();
    send_sync::<PoolBuilder>();
    send_sync::<Submit<'static>>();
    send_sync::<Parallel>();
    send_sync::<PoolError>();
    send_sync::<ProcessPoolExecutor>();
    send_sync::<AsyncResult<u64>>();
    send_sync::<AsyncResult<std::rc::Rc<u64>>>();
    send_sync::<AsyncResult<std::cell::Cell<u64>>>();
    send::<IMap<'static, std::ops::Range<u64>, u64>>();
    sync::<IMap<'static, std::ops::Range<u64>, u64>>();
};

//! The Pool API of [mp](https://docs.rs/mp-rs) over the ranks of an MPI job: Python's
//! `mpi4py.futures` static mode (`mpiexec -n N python -m mpi4py.futures app.py`) for Rust.
//!
//! `mpirun -n N ./app` runs rank 0 as the master (the user's `main`) and ranks 1.. as workers;
//! the one line that makes the pool turns the worker ranks into servers:
//!
#![cfg_attr(feature = "mpi", doc = "```no_run")]
#![cfg_attr(not(feature = "mpi"), doc = "```ignore")]
//! // mpirun --oversubscribe -n 4 target/release/app
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), mp_mpi::MpiError> {
//!     let pool = mp_mpi::MpiPool::init()?; // instead of `mp::Pool::new(n)?`
//!     assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
//!     Ok(())
//! }
//! ```
//!
//! - `MpiPool` is an [`mp_pool::Pool`] (it derefs to one) whose transport
//!   (`mp_pool::transport`) is the job's ranks: the one pool engine schedules the chunks, so
//!   every call, option and feature of a local pool works the same here (`chunksize`,
//!   `timeout`, `imap`'s window, callbacks, progress, `ProcessPoolExecutor`), with the same
//!   errors. Code written for a `&Pool` runs on either.
//! - Feature `mpi` (off by default) builds `MpiPool` on rsmpi, which needs a system MPI
//!   (Debian: `libopenmpi-dev openmpi-bin libclang-dev pkg-config`). docs.rs has none, so
//!   its pages of this crate show only what builds without it; `cargo doc -p mp-mpi
//!   --features mpi --open` shows `MpiPool` and its builder.
//! - Tasks are fn items, named by registered code references as in `mp_pool`; every rank
//!   checks, at start, that it runs the same executable (a SHA-256 of its bytes), and the
//!   master refuses a mismatch with [`MpiError::IdentityMismatch`].
//! - Each worker rank runs its chunks in a node-local `mp_pool::Pool` (ranks x local
//!   processes, one chunk per local process at a time): a task that segfaults, aborts or is
//!   OOM-killed fails with `PoolError::WorkerDied` inside `PoolError::Remote` (naming the
//!   rank), and the rank goes on. A rank killed whole ends the job (Open MPI 4 has no fault
//!   tolerance): `mpirun` aborts every rank and exits non-zero within about a second; a rank
//!   alive but silent past the call's `timeout` fails its chunk with `PoolError::TaskTimeout`
//!   and gets no more work until it answers.
//! - Without `mpirun`, `MpiPool::init` fails with [`MpiError::NoWorkers`] (it does not run
//!   the tasks locally behind the user's back: use `mp_pool::Pool` for that).
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
#[cfg(feature = "mpi")]
mod backoff;
mod error;
#[cfg(feature = "mpi")]
mod master;
#[cfg(feature = "mpi")]
mod pool;
#[cfg(feature = "mpi")]
mod sending;
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod wire;
#[cfg(feature = "mpi")]
mod worker;

#[allow(deprecated)]
pub use api::{Pending, PoolApi};
pub use error::MpiError;
#[cfg(feature = "mpi")]
pub use master::RankInfo;
#[cfg(feature = "mpi")]
pub use pool::{MpiPool, MpiPoolBuilder};

/// The result of an `apply_async` on an `MpiPool`: the pool's own.
#[deprecated(note = "an MpiPool is an mp_pool::Pool: use mp_pool::AsyncResult")]
pub type MpiAsyncResult<T> = mp_pool::AsyncResult<T>;
/// The options of one call on an `MpiPool`: the pool's own.
#[deprecated(note = "an MpiPool is an mp_pool::Pool: use mp_pool::Submit")]
pub type MpiSubmit<'p> = mp_pool::Submit<'p>;
/// The lazy map of an `MpiPool`: the pool's own.
#[deprecated(note = "an MpiPool is an mp_pool::Pool: use mp_pool::IMap")]
pub type MpiIMap<'p, I, R> = mp_pool::IMap<'p, I, R>;

/// The guide's MPI page: its code compiles as a doctest (with the `mpi` feature).
#[cfg(all(doctest, feature = "mpi"))]
#[doc = include_str!("../../../docs/guide/mpi.md")]
struct GuideMpi;

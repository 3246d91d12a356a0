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
//! - Feature `mpi` (off by default) builds `MpiPool` on rsmpi, which needs a system MPI
//!   (Debian: `libopenmpi-dev openmpi-bin libclang-dev pkg-config`). Without it this crate
//!   holds [`PoolApi`] only, the trait `mp_pool::Pool` and `MpiPool` both implement, so that
//!   generic code switches between them by one line.
//! - Tasks are fn items, named by code offsets as in `mp_pool`; every rank checks, at start,
//!   that it runs the same executable (a SHA-256 of its bytes), and the master refuses a
//!   mismatch with [`MpiError::IdentityMismatch`].
//! - Each worker rank runs its chunks in a node-local `mp_pool::Pool` (ranks x local
//!   processes): a task that segfaults, aborts or is OOM-killed fails with
//!   `PoolError::WorkerDied` inside [`MpiError::Task`], and the rank goes on. A rank killed
//!   whole ends the job (Open MPI 4 has no fault tolerance): `mpirun` aborts every rank and
//!   exits non-zero within about a second; a rank alive but silent past
//!   `MpiPoolBuilder::deadline` fails its chunk with [`MpiError::RankTimeout`].
//! - Without `mpirun`, `MpiPool::init` fails with [`MpiError::NoWorkers`] (it does not run
//!   the tasks locally behind the user's back: use `mp_pool::Pool` for that).

mod api;
// The worker side and the frames are used by `MpiPool` (and unit-tested without MPI).
#[cfg(feature = "mpi")]
mod backoff;
#[cfg(feature = "mpi")]
mod calls;
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod entry;
mod error;
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
#[cfg(feature = "mpi")]
mod pool;
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod wire;
#[cfg(feature = "mpi")]
mod worker;

pub use api::{Pending, PoolApi};
#[cfg(feature = "mpi")]
pub use calls::{MpiAsyncResult, MpiIMap, MpiSubmit};
pub use error::MpiError;
#[cfg(feature = "mpi")]
pub use pool::{MpiPool, MpiPoolBuilder, RankInfo};

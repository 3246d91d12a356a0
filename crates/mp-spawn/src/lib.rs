//! Processes and start methods: the ground floor of [mp](https://docs.rs/mp), Python's
//! `multiprocessing` for Rust.
//!
//! ```
//! use mp_spawn::Process;
//!
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! let mut p = Process::new(square, (7,));
//! p.start()?;
//! assert_eq!(p.join()?, 49);
//! # Ok::<(), mp_spawn::ProcessError>(())
//! ```
//!
//! # The three start methods
//! - **forkserver** (the default, as in Python 3.14 on Linux): a single-threaded server forks
//!   the children, so a multi-threaded parent (tokio, rayon, the test harness) is safe.
//! - **fork**: the child is a copy of the caller; the only method that runs capturing
//!   closures ([`Context::process_closure`]).
//! - **spawn**: a fresh copy of the executable.
//!
//! Choose with [`get_context`] or [`set_start_method`]. Nothing is needed in `main`: a spawned
//! child is caught before `main` runs (see the `bootstrap` notes in `docs/DESIGN.md`).
//!
//! # Arguments and results
//! Arguments are a tuple of serde types, as Python's `args`; the target's return value comes
//! back from [`Process::join`]. OS handles travel inside them through [`reduction::Fd`].
//!
//! # Platform
//! Linux with glibc (pidfds, `.init_array` with `argv`).

#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod atfork;
mod bootstrap;
mod channel;
mod context;
#[doc(hidden)]
pub use mp_sys::deadline;
mod error;
mod fork_helper;
mod forkserver;
mod popen_fork;
mod popen_spawn;
mod process;
pub mod reduction;
pub mod resources;
mod stack_guard;
#[doc(hidden)]
pub mod testing;

pub use atfork::set_fork_warning;
#[doc(hidden)]
pub use atfork::{Hold, hold_across_fork};
#[doc(hidden)]
pub use bootstrap::install_panic_hook;
pub use context::{
    Context, IntoStartMethod, StartMethod, get_all_start_methods, get_context, get_start_method,
    set_start_method,
};
pub use error::{ContextError, ProcessError};
#[doc(hidden)]
pub use fork_helper::ForkServer;
#[doc(hidden)]
pub use forkserver::forkserver_pid;
pub use forkserver::set_forkserver_preload;
#[doc(hidden)]
pub use mp_sys::poll::readable_until as poll_readable_until;
pub use process::{
    ActiveChild, CurrentProcess, ParentProcess, Portable, Process, Target, active_children,
    cpu_count, current_process, parent_process, process_cpu_count,
};

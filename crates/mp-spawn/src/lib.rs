//! Processes and start methods: the ground floor of [mp](https://docs.rs/mp-rs), Python's
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
//! # Caps on memory and CPU time
//! [`Process::with_limits`] caps a child with [`Limits`] (`RLIMIT_DATA`, a cgroup's
//! `memory.max` where one can be made, `RLIMIT_CPU`) before its target runs; a child that dies
//! of a cap gives [`ProcessError::MemoryLimit`] or [`ProcessError::CpuLimit`]. See [`limits`].
//!
//! # Platform
//! Linux, with glibc or musl (pidfds, `/proc/self/exe`, an `.init_array` entry).
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

// Module map: layers, lowest first. A module uses only modules of lower layers (or its own);
// no module names one above it, so there are no cycles.
//  0. `sync` (the lock rule), `target` (sealed `Target`, `Portable`, `Outcome`), `frame` (the
//     frame codec), `reduction`, `resources`, `identity` (the executable's),
//     `context` (start methods, `ContextError`); `error` (uses `context`, `reduction`)
//  1. `code` (registered code references; `locate`/`recreate` of fn-pointer targets),
//     `launch` (`Launch`/`Recipe`), `atfork`, `limits` (`Limits`, `LimitHit`: a child's caps,
//     made ready in the parent and applied in the child; uses `error`)
//  2. `child` (a child as its parent tracks it), `stack_guard` (uses `target::Outcome`)
//  3. `registry` (this process's own state, its children, `finish_children`, at-exit hook),
//     `current` (`current_process`, `parent_process`, `active_children`, CPU counts)
//  4. `bootstrap` (the bootstrap message; the child's side: find, run, report, exit)
//  5. start methods, each using only the ones before it: `popen_spawn`, `forkserver`
//     (registers its shutdown with `registry` as a callback), `popen_fork`, `fork_helper`
//     `helper` (long-lived helper processes a library starts, e.g. the resource tracker)
//  6. `entry` (the program's one pre-`main` hook: hands a spawned child to `bootstrap`, a
//     server to `forkserver`, a helper to its `run`)
//  7. `process` (`Process`; also `Context::process` and `ForkServer::process`, so that the
//     layers below never name `Process`); `testing` uses only the public API.

mod any_process;
mod atfork;
mod bootstrap;
mod child;
pub mod code;
mod context;
mod current;
mod entry;
mod error;
mod fork_helper;
mod forkserver;
pub mod frame;
pub mod helper;
pub mod identity;
mod launch;
pub mod limits;
mod oom_guard;
mod popen_fork;
mod popen_spawn;
mod process;
pub mod reduction;
mod registry;
pub mod resources;
mod stack_guard;
mod sync;
mod target;
/// Helpers for the test suites of the mp crates (feature `unstable-test-hooks`; not covered
/// by semver).
#[cfg(feature = "unstable-test-hooks")]
pub mod testing;

pub use any_process::AnyProcess;
pub use atfork::set_fork_warning;
pub use atfork::{Hold, hold_across_fork};
/// Installs mp-spawn's panic hook now (it prints `Process <name>:` before a child's panic; mp
/// installs it on its first start), so that a hook a program installs after it wraps it (as
/// mp-pool's, which keeps its workers' panics for the caller, does).
///
/// ```
/// mp_spawn::install_panic_hook();
/// let previous = std::panic::take_hook();
/// std::panic::set_hook(Box::new(move |info| previous(info)));
/// ```
pub fn install_panic_hook() {
    bootstrap::install_panic_hook()
}
pub use context::{
    Context, IntoStartMethod, StartMethod, get_all_start_methods, get_context, get_start_method,
    set_start_method,
};
pub use current::{
    ActiveChild, CurrentProcess, ParentProcess, active_children, cpu_count, current_process,
    parent_process, process_cpu_count,
};
pub use error::{ContextError, ProcessError};
pub use fork_helper::ForkServer;
#[cfg(feature = "unstable-test-hooks")]
#[doc(hidden)]
pub use forkserver::forkserver_pid;
pub use forkserver::set_forkserver_preload;
pub use limits::{LimitHit, Limits};
pub use process::Process;
pub use target::{Portable, Target};

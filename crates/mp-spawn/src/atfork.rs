//! The fork start method's warning, and [`hold_across_fork`] for code outside mp. What a
//! fork holds and resets is `mp_sys::fork`'s: every lock mp's child path takes is held across
//! the `fork()` call in the one order of its rank table (std's stdout and stderr, then
//! mp-spawn's forkserver, process state and shared resources, then the other crates' ranks,
//! then the locks registered here, in registration order).

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};

/// Takes a lock of a static and returns its guard, type-erased (`Box::new(M.lock())`); see
/// [`hold_across_fork`].
pub type Hold = fn() -> Box<dyn Any>;

/// Registers a lock that every fork made by mp holds across the `fork()` call, as Python's
/// `multiprocessing.util.register_after_fork` lets a library keep its state usable in a forked
/// child: a lock another thread held at the fork would stay locked for ever in the child, and a
/// child that takes it (in its target, or in the library's code the target calls) would hang.
/// `hold` takes the lock and returns its guard; mp takes every registered lock, in registration
/// order and after its own (`mp_sys::fork::hold_unranked`), forks, and releases them on both
/// sides. Registering the same function twice registers it once.
///
/// ```
/// use std::sync::Mutex;
///
/// static CACHE: Mutex<Vec<u64>> = Mutex::new(Vec::new());
///
/// fn hold_cache() -> Box<dyn std::any::Any> {
///     Box::new(CACHE.lock())
/// }
///
/// mp_spawn::hold_across_fork(hold_cache);
/// // Every fork mp makes from now on (fork children, fork helpers) holds CACHE's lock across
/// // the fork, so a forked child never finds it locked by a thread it does not have.
/// ```
pub fn hold_across_fork(hold: Hold) {
    mp_sys::fork::hold_unranked(hold);
}

static WARN: AtomicBool = AtomicBool::new(true);

/// Whether mp prints a warning when it forks a process that runs other threads (on by
/// default, printed once per process; Python 3.12 warns at every such fork).
///
/// A child forked from a multi-threaded parent has only the forking thread: a lock another
/// thread held at that moment (a logger's, a thread pool's, a C library's) is held forever
/// in the child. mp's own state is safe across the fork; other crates' may not be. The
/// forkserver (the default) and spawn start methods do not have the problem.
///
/// ```
/// mp_spawn::set_fork_warning(false); // I know my threads hold nothing the child needs
/// ```
pub fn set_fork_warning(on: bool) {
    WARN.store(on, Ordering::Relaxed);
}

/// Prints the warning once if this process runs other threads (call before taking the locks).
pub(crate) fn warn_if_threaded() {
    if !WARN.load(Ordering::Relaxed) {
        return;
    }
    let threads = mp_sys::process::thread_count();
    if threads > 1 && WARN.swap(false, Ordering::Relaxed) {
        eprintln!(
            "mp: warning: this process runs {threads} threads and forks a child (start method \
             fork): a lock that another thread holds at that moment stays locked in the child, \
             which may hang (mp's own state is safe). Use the forkserver or spawn start method, \
             or mp::set_fork_warning(false) to silence this."
        );
    }
}

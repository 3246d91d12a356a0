//! What every fork that mp makes holds across the `fork()` call, so that the child finds mp's
//! state consistent whatever other threads were doing.
//!
//! A forked child has one thread: a lock that another thread of the parent held at the moment
//! of the fork stays locked in the child forever. mp's child path (bootstrap, result, exit)
//! takes its own locks and std's stdout and stderr, so the forking thread takes all of them
//! first, in one fixed order, and each side releases them after the fork. Other crates of mp
//! register the locks of their own statics with [`hold_across_fork`].
//!
//! The order: stdout, stderr, then mp-spawn's (forkserver, process state, shared resources),
//! then the registered ones in registration order. mp never prints while it holds one of its
//! own locks, and never takes them in another order, so the order cannot deadlock.

use std::any::Any;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sync::lock;

/// Takes a lock of a static and returns its guard, type-erased (`Box::new(M.lock())`); see
/// [`hold_across_fork`].
pub type Hold = fn() -> Box<dyn Any>;

static HOLDS: Mutex<Vec<Hold>> = Mutex::new(Vec::new());

/// Registers a lock that every fork made by mp holds across the `fork()` call, as Python's
/// `multiprocessing.util.register_after_fork` lets a library keep its state usable in a forked
/// child: a lock another thread held at the fork would stay locked for ever in the child, and a
/// child that takes it (in its target, or in the library's code the target calls) would hang.
/// `hold` takes the lock and returns its guard; mp takes every registered lock, in registration
/// order and after its own, forks, and releases them on both sides. Registering the same
/// function twice registers it once.
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
    let mut holds = lock(&HOLDS);
    if !holds.iter().any(|h| std::ptr::fn_addr_eq(*h, hold)) {
        holds.push(hold);
    }
}

/// Everything held across one fork; dropped on each side after it.
pub(crate) struct Held {
    // Field order is drop order: the reverse of the order they were taken in.
    registered: Vec<Box<dyn Any>>,
    holds: std::sync::MutexGuard<'static, Vec<Hold>>,
    _stderr: std::io::StderrLock<'static>,
    _stdout: std::io::StdoutLock<'static>,
}

impl Held {
    /// Takes the io locks and the registered ones; mp-spawn's own are taken by the caller
    /// right after, in the order the module docs give.
    pub(crate) fn take() -> Held {
        let mut stdout = std::io::stdout().lock();
        // Unflushed output would be printed twice, once by each process.
        let _ = stdout.flush();
        let stderr = std::io::stderr().lock();
        let holds = lock(&HOLDS);
        let registered = Vec::new();
        Held {
            registered,
            holds,
            _stderr: stderr,
            _stdout: stdout,
        }
    }

    /// Takes the registered locks (after mp-spawn's own).
    pub(crate) fn take_registered(&mut self) {
        self.registered = self.holds.iter().map(|hold| hold()).collect();
    }
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

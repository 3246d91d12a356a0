//! What every process knows about itself and its relatives: `current_process`,
//! `parent_process`, `active_children`, and the CPU counts.

use std::os::fd::AsFd;
use std::time::Duration;

use crate::registry::global;

/// The calling process, as Python's `current_process()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    /// `MainProcess` in the main process, else the name its parent gave it.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it is a daemon.
    pub daemon: bool,
}

/// The calling process: its name, pid and daemon flag.
///
/// ```
/// assert_eq!(mp_spawn::current_process().name, "MainProcess");
/// ```
pub fn current_process() -> CurrentProcess {
    let g = global();
    CurrentProcess {
        name: g.name.to_string(),
        pid: mp_sys::process::getpid(),
        daemon: g.daemon,
    }
}

/// The parent of a child process, as Python's `parent_process()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProcess {
    /// The parent's name.
    pub name: String,
    /// The parent's process id.
    pub pid: u32,
}

impl ParentProcess {
    /// Whether the parent is still running (false as soon as it has died, however it died).
    pub fn is_alive(&self) -> bool {
        !self.join(Some(Duration::ZERO))
    }

    /// Waits up to `timeout` (`None`: forever) for the parent to end; true once it has.
    ///
    /// ```
    /// // In the main process there is no parent to wait for.
    /// assert!(mp_spawn::parent_process().is_none());
    /// ```
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        // A duplicate, so that the wait does not hold the global state's lock.
        let lifeline = global()
            .parent
            .as_ref()
            .and_then(|p| p.lifeline.as_ref()?.try_clone().ok());
        match lifeline {
            Some(fd) => mp_sys::poll::readable(&[fd.as_fd()], timeout)
                .map(|r| r[0])
                .unwrap_or(true),
            None => mp_sys::process::getppid() != self.pid,
        }
    }
}

/// The parent process, or `None` in the main process.
pub fn parent_process() -> Option<ParentProcess> {
    global().parent.as_ref().map(|p| ParentProcess {
        name: p.name.clone(),
        pid: p.pid,
    })
}

/// A running child, as listed by [`active_children`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveChild {
    /// Its name.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it is a daemon.
    pub daemon: bool,
}

/// The children of this process that are still running; finished ones are reaped on the way.
pub fn active_children() -> Vec<ActiveChild> {
    let mut g = global();
    g.reap_finished();
    g.children
        .iter()
        .filter(|c| c.is_ours())
        .map(|c| ActiveChild {
            name: c.name.clone(),
            pid: c.pid,
            daemon: c.daemon,
        })
        .collect()
}

/// The number of CPUs online, as Python's `cpu_count()` (it ignores affinity and quotas).
pub fn cpu_count() -> usize {
    mp_sys::process::online_cpus()
}

/// The number of CPUs this process may use: the affinity mask and the cgroup CPU quota taken
/// into account (Python 3.13's `os.process_cpu_count()`, plus quotas as loky does).
pub fn process_cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

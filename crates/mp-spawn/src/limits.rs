//! Per-process caps on memory and CPU time ([`Limits`]), applied in the child before its target
//! runs, and how a process that died of one is told apart ([`LimitHit`]).
//!
//! **Memory** is capped by `RLIMIT_DATA`, always, and by a cgroup of its own for the child
//! when this process may make one with the memory controller ([`cgroup_memory`]). The rlimit
//! counts private writable memory (`VmData`), not the address space: shared mappings (mp's
//! queue rings, shared arrays), the address space malloc reserves per thread and code do not
//! count, so a cap can be set tight without breaking them (see `docs/DESIGN.md`, "Limits").
//! It is set to what the child has when the cap is applied plus the cap, soft and hard: a
//! forked child's copy of its parent's heap, shared until written, is not charged to it, and a
//! cap means the same under all three start methods. An allocation past it fails, and Rust
//! aborts on a failed allocation (SIGABRT). A cgroup's `memory.max` counts the pages the
//! child touches; the kernel kills it at the cap (SIGKILL), and the cgroup's `oom_kill` counter
//! tells that kill apart.
//!
//! **CPU time** is capped by `RLIMIT_CPU`, whose unit is the whole second: the soft limit is
//! set to the CPU time already used plus the budget, rounded up, so that the target gets at
//! least the budget and less than one second more. At the soft limit the kernel sends SIGXCPU,
//! which ends the process (exit code -24). The hard limit is left as it is: lowering it could
//! not be undone without privileges, and [`cpu_budget_from_now`] must be able to move the soft
//! limit past it again for the next task of a long-lived worker. A process that handles or
//! ignores SIGXCPU gets it once more every second, and SIGKILL only at the hard limit, if any.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use mp_sys::resource::{Limit, Resource};
use serde::{Deserialize, Serialize};

use crate::error::ProcessError;

mod cgroup;

pub(crate) use cgroup::ChildCgroup;
pub use cgroup::cgroup_memory;

/// Caps on a process's memory and CPU time, set with
/// [`Process::with_limits`](crate::Process::with_limits) and applied in the child before its
/// target runs, under every start method. A child that dies of one gives
/// [`ProcessError::MemoryLimit`] or [`ProcessError::CpuLimit`] from `join`. What each cap
/// counts and how it is enforced is in the [module docs](crate::limits).
///
/// ```
/// use mp_spawn::{Limits, Process, ProcessError};
///
/// fn leak(mib: usize) -> usize {
///     let mut blocks = Vec::new();
///     for _ in 0..mib {
///         blocks.push(vec![1u8; 1 << 20]); // touched: non-zero
///     }
///     blocks.len()
/// }
///
/// let mut p = Process::new(leak, (1024,)).with_limits(Limits::new().memory(64 << 20));
/// p.start()?;
/// assert!(matches!(p.join(), Err(ProcessError::MemoryLimit { limit }) if limit == 64 << 20));
///
/// let mut q = Process::new(leak, (8,)).with_limits(Limits::new().memory(64 << 20));
/// q.start()?;
/// assert_eq!(q.join()?, 8);
/// # Ok::<(), ProcessError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    memory: Option<u64>,
    cpu_time: Option<Duration>,
}

impl Limits {
    /// No caps.
    ///
    /// ```
    /// let limits = mp_spawn::Limits::new();
    /// assert_eq!(limits.memory_limit(), None);
    /// assert_eq!(limits.cpu_time_limit(), None);
    /// ```
    pub fn new() -> Limits {
        Limits::default()
    }

    /// Caps the memory the child may take, in bytes, beyond what it has when it starts (see
    /// the [module docs](crate::limits)).
    ///
    /// ```
    /// let limits = mp_spawn::Limits::new().memory(512 << 20);
    /// assert_eq!(limits.memory_limit(), Some(512 << 20));
    /// ```
    pub fn memory(mut self, bytes: u64) -> Limits {
        self.memory = Some(bytes);
        self
    }

    /// Caps the CPU time (user and system, all threads) the child may use: at least `budget`,
    /// less than a second more (`RLIMIT_CPU` counts whole seconds).
    ///
    /// ```
    /// use std::time::Duration;
    /// let limits = mp_spawn::Limits::new().cpu_time(Duration::from_secs(30));
    /// assert_eq!(limits.cpu_time_limit(), Some(Duration::from_secs(30)));
    /// ```
    pub fn cpu_time(mut self, budget: Duration) -> Limits {
        self.cpu_time = Some(budget);
        self
    }

    /// The memory cap, in bytes.
    ///
    /// ```
    /// assert_eq!(mp_spawn::Limits::new().memory(1 << 30).memory_limit(), Some(1 << 30));
    /// ```
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory
    }

    /// The CPU time cap.
    ///
    /// ```
    /// use std::time::Duration;
    /// let limits = mp_spawn::Limits::new().cpu_time(Duration::from_millis(1500));
    /// assert_eq!(limits.cpu_time_limit(), Some(Duration::from_millis(1500)));
    /// ```
    pub fn cpu_time_limit(&self) -> Option<Duration> {
        self.cpu_time
    }

    /// Which cap a process under these limits died of, from its exit code alone (for code that
    /// reaps processes by exit code): -24 (SIGXCPU) under a CPU cap is [`LimitHit::Cpu`]
    /// (nothing else sends it, unless a program does). A memory cap cannot be read from an
    /// exit code: Rust aborts (-6) when an allocation fails, as on any abort, and a cgroup's
    /// OOM kill is a SIGKILL like `kill -9`; [`Process::limit_hit`](crate::Process::limit_hit)
    /// reads the child's own report of a failed allocation, and the cgroup's OOM kills.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_spawn::{LimitHit, Limits};
    ///
    /// let limits = Limits::new().memory(64 << 20).cpu_time(Duration::from_secs(2));
    /// assert_eq!(limits.cause(-24), Some(LimitHit::Cpu { limit: Duration::from_secs(2) }));
    /// assert_eq!(limits.cause(-6), None);
    /// assert_eq!(limits.cause(-9), None);
    /// assert_eq!(limits.cause(0), None);
    /// assert_eq!(Limits::new().cause(-24), None);
    /// ```
    pub fn cause(&self, exitcode: i32) -> Option<LimitHit> {
        match exitcode.checked_neg()? {
            libc::SIGXCPU => self.cpu_time.map(|limit| LimitHit::Cpu { limit }),
            _ => None,
        }
    }
}

/// The cap a process died of: from [`Limits::cause`] or
/// [`Process::limit_hit`](crate::Process::limit_hit); it converts into the matching
/// [`ProcessError`].
///
/// ```
/// use mp_spawn::{LimitHit, ProcessError};
///
/// let hit = LimitHit::Memory { limit: 64 << 20 };
/// assert!(matches!(ProcessError::from(hit), ProcessError::MemoryLimit { limit } if limit == 64 << 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// The memory cap ([`Limits::memory`]).
    Memory {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The CPU time cap ([`Limits::cpu_time`]).
    Cpu {
        /// The cap.
        limit: Duration,
    },
}

impl From<LimitHit> for ProcessError {
    fn from(hit: LimitHit) -> ProcessError {
        match hit {
            LimitHit::Memory { limit } => ProcessError::MemoryLimit { limit },
            LimitHit::Cpu { limit } => ProcessError::CpuLimit { limit },
        }
    }
}

/// Sets this process's CPU budget anew: the soft `RLIMIT_CPU` becomes the CPU time used so far
/// plus `budget`, rounded up to the second (so at least `budget` is left, and less than a
/// second more); the hard limit stays, and caps the soft one. A long-lived worker calls it
/// before each task to give every task its own budget. Cheap: `getrusage`, `getrlimit` and
/// `setrlimit`, no allocation.
///
/// ```
/// use std::time::Duration;
/// mp_spawn::limits::cpu_budget_from_now(Duration::from_secs(3600))?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn cpu_budget_from_now(budget: Duration) -> io::Result<()> {
    let used = mp_sys::resource::cpu_time()?;
    let hard = mp_sys::resource::limit(Resource::CpuSeconds).hard;
    let soft = whole_seconds_up(used.saturating_add(budget));
    let soft = hard.map_or(soft, |hard| soft.min(hard));
    mp_sys::resource::set_limit(
        Resource::CpuSeconds,
        Limit {
            soft: Some(soft),
            hard,
        },
    )
}

/// The calling process's resident set size in bytes (its pages in RAM now, shared ones
/// included), for a leak guard that retires a worker grown too large. Reads
/// `/proc/self/statm` into a stack buffer: no allocation.
///
/// ```
/// let block = vec![1u8; 32 << 20]; // touched: resident
/// assert!(mp_spawn::limits::rss()? >= 32 << 20);
/// # drop(block);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn rss() -> io::Result<u64> {
    mp_sys::resource::resident_size()
}

/// `d` in whole seconds, rounded up (`RLIMIT_CPU`'s unit).
pub(crate) fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// The limits of one child, made ready by its parent before the child starts: its cgroup (if
/// one is used) made and configured, and its `cgroup.procs` open for a forked child.
#[derive(Debug)]
pub(crate) struct Armed {
    limits: Limits,
    cgroup: Option<ChildCgroup>,
    procs: Option<OwnedFd>,
}

impl Armed {
    /// Prepares `limits` for a child about to start (in the parent).
    pub(crate) fn prepare(limits: &Limits) -> io::Result<Armed> {
        let cgroup = match limits.memory {
            Some(bytes) => ChildCgroup::make(bytes)?,
            None => None,
        };
        let procs = cgroup.as_ref().map(ChildCgroup::procs).transpose()?;
        Ok(Armed {
            limits: limits.clone(),
            cgroup,
            procs,
        })
    }

    /// Applies the limits to the calling process, a child just forked: raw system calls only
    /// (no allocation, no lock), on values prepared before the fork.
    pub(crate) fn apply_forked(&self) -> io::Result<()> {
        apply(&self.limits, self.procs.as_ref().map(AsFd::as_fd))
    }

    /// What a spawn or forkserver child needs to apply them after `exec`.
    pub(crate) fn wire(&self) -> Wire {
        Wire {
            limits: self.limits.clone(),
            cgroup: self.cgroup.as_ref().map(ChildCgroup::wire_path),
        }
    }

    /// The child's cgroup, for the `Child` that removes it once the child is reaped.
    pub(crate) fn take_cgroup(&mut self) -> Option<ChildCgroup> {
        self.cgroup.take()
    }
}

/// The limits in a bootstrap message: the caps, and the directory of the child's cgroup.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    limits: Limits,
    cgroup: Option<Vec<u8>>,
}

impl Wire {
    /// Applies the limits to the calling process, a spawn or forkserver child.
    pub(crate) fn apply(&self) -> io::Result<()> {
        let procs = self.cgroup.as_deref().map(cgroup::open_procs).transpose()?;
        apply(&self.limits, procs.as_ref().map(AsFd::as_fd))
    }
}

/// Joins the cgroup (if any), then sets the rlimits. Allocates nothing: a forked child calls it.
fn apply(limits: &Limits, procs: Option<BorrowedFd<'_>>) -> io::Result<()> {
    if let Some(procs) = procs {
        mp_sys::cgroup::join(procs)?;
    }
    if let Some(bytes) = limits.memory {
        MEMORY_CAPPED.store(true, std::sync::atomic::Ordering::Relaxed);
        let cap = mp_sys::resource::data_size()?.saturating_add(bytes);
        let hard = mp_sys::resource::limit(Resource::DataBytes).hard;
        let cap = hard.map_or(cap, |hard| cap.min(hard));
        let cap = Some(cap);
        mp_sys::resource::set_limit(
            Resource::DataBytes,
            Limit {
                soft: cap,
                hard: cap,
            },
        )?;
    }
    if let Some(budget) = limits.cpu_time {
        cpu_budget_from_now(budget)?;
    }
    Ok(())
}

/// This process runs under a memory cap (set by `apply`): its target gets the `oom_guard`.
static MEMORY_CAPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process runs under a memory cap of its [`Limits`].
pub(crate) fn memory_capped() -> bool {
    MEMORY_CAPPED.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod test;

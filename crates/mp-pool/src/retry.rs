//! Retry and crash budgets: which failed tasks run again, and how often at most.
//!
//! A task runs once unless retries were asked for ([`Submit::retries`](crate::Submit::retries),
//! [`PoolBuilder::retries`](crate::PoolBuilder::retries)). Only a task whose *worker ended*
//! under it is retried (a panic is the task's own answer, and is not): a crash (a signal, an
//! `exit`, the OOM killer), a cap ([`PoolError::MemoryLimit`](crate::PoolError::MemoryLimit),
//! [`PoolError::CpuLimit`](crate::PoolError::CpuLimit)) or its timeout, as [`RetryOn`] says.
//! The crash budget ([`Retry::crash_limit`]) bounds how many workers one task may kill,
//! whatever its retries: a poison task cannot crash-loop the pool.
//!
//! The unit is the chunk: under `map` with a chunksize above 1, a retried chunk runs all its
//! items again, those that had finished before the crash too. Use chunksize 1 (the default
//! of `apply`, `imap` and the executor) when no item may run twice.

use std::fmt;
use std::ops::BitOr;

/// The reasons a task's worker ended that make the task run again (a set: combine with `|`).
///
/// ```
/// use mp_pool::RetryOn;
///
/// let on = RetryOn::CRASH | RetryOn::MEMORY;
/// assert!(on.contains(RetryOn::CRASH));
/// assert!(!on.contains(RetryOn::TIMEOUT));
/// assert_eq!(RetryOn::default(), RetryOn::ALL);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryOn(u8);

impl RetryOn {
    /// The worker died under the task: a signal (a segfault, SIGKILL), an abort, an `exit`.
    pub const CRASH: RetryOn = RetryOn(1);
    /// The task ran past its timeout and its worker was killed.
    pub const TIMEOUT: RetryOn = RetryOn(2);
    /// The worker died of its memory cap.
    pub const MEMORY: RetryOn = RetryOn(4);
    /// The worker died of its CPU-time cap.
    pub const CPU: RetryOn = RetryOn(8);
    /// Every reason (the default).
    pub const ALL: RetryOn = RetryOn(15);
    /// None: retries never happen.
    pub const NONE: RetryOn = RetryOn(0);

    /// Whether every reason in `other` is in `self`.
    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0
    }
}

impl Default for RetryOn {
    fn default() -> Self {
        RetryOn::ALL
    }
}

impl BitOr for RetryOn {
    type Output = RetryOn;
    fn bitor(self, rhs: RetryOn) -> RetryOn {
        RetryOn(self.0 | rhs.0)
    }
}

impl fmt::Debug for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [(Self::CRASH, "CRASH"), (Self::TIMEOUT, "TIMEOUT")]
            .into_iter()
            .chain([(Self::MEMORY, "MEMORY"), (Self::CPU, "CPU")])
            .filter(|(r, _)| self.contains(*r))
            .map(|(_, n)| n)
            .collect::<Vec<_>>();
        if names.is_empty() {
            f.write_str("RetryOn::NONE")
        } else {
            write!(f, "RetryOn({})", names.join(" | "))
        }
    }
}

/// The retry policy of a call: how many times a task may run again, on which endings, and
/// how many workers it may kill at most.
///
/// ```
/// use mp_pool::{Retry, RetryOn};
///
/// let retry = Retry::new(3).on(RetryOn::CRASH).crash_limit(2);
/// assert_eq!(retry.retries(), 3);
/// assert_eq!(retry.max_crashes(), Some(2));
/// assert_eq!(Retry::default().retries(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retry {
    retries: u32,
    on: RetryOn,
    crash_limit: Option<u32>,
}

impl Retry {
    /// Up to `retries` more runs of a task whose worker ended under it (on every reason;
    /// see [`on`](Retry::on)).
    pub fn new(retries: u32) -> Retry {
        Retry {
            retries,
            ..Retry::default()
        }
    }

    /// This policy with `retries` instead of its own count (the endings and the crash budget
    /// kept).
    pub(crate) fn with_retries(self, retries: u32) -> Retry {
        Retry { retries, ..self }
    }

    /// Only these endings are retried.
    pub fn on(self, on: RetryOn) -> Retry {
        Retry { on, ..self }
    }

    /// A task that has killed `crashes` workers (crashes and caps; not its timeouts) is failed
    /// and never runs again, whatever retries are left (HyperQueue's crash limit).
    pub fn crash_limit(self, crashes: u32) -> Retry {
        Retry {
            crash_limit: Some(crashes.max(1)),
            ..self
        }
    }

    /// How many more runs a task may have.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The endings that are retried.
    pub fn retried_on(&self) -> RetryOn {
        self.on
    }

    /// The crash budget, if one was set.
    pub fn max_crashes(&self) -> Option<u32> {
        self.crash_limit
    }

    /// Whether a task that ran `runs` times and killed `crashes` workers, and just ended with
    /// `ending`, runs again.
    pub(crate) fn again(&self, runs: u32, crashes: u32, ending: RetryOn) -> bool {
        self.on.contains(ending)
            && runs <= self.retries
            && self.crash_limit.is_none_or(|limit| crashes < limit)
    }
}

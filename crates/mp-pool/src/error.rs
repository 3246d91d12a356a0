//! What can go wrong with a pool or one of its tasks: one small error type, as crossbeam's.

use std::fmt;
use std::io;
use std::time::Duration;

use mp_spawn::ProcessError;

/// Why a pool call, or one of its tasks, did not produce a value.
///
/// Task failures name the task by the index of its input (for `map`, the item's position;
/// for `apply`, 0), so that a failure can be traced to the data that caused it.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// The task panicked in its worker. The worker survives and takes the next task.
    Panicked {
        /// The index of the input item whose call panicked.
        index: usize,
        /// The panic message, with its location (`panicked at src/x.rs:3:5: ...`).
        message: String,
    },
    /// The worker running the task died (SIGKILL, the OOM killer, abort, a segfault, or an
    /// `exit` inside the task). A new worker took its place; the other tasks went on.
    WorkerDied {
        /// The index of the first input item of the task (a chunk under `map`).
        index: usize,
        /// How many input items the task held.
        len: usize,
        /// The worker's pid.
        pid: u32,
        /// Its exit code: `-signal` when a signal killed it, as Python's `exitcode`.
        exitcode: i32,
    },
    /// The pool's initializer panicked in a worker, or workers died in it several times in a
    /// row (before they were ready for tasks); the pool stops taking tasks, since every new
    /// worker would fail the same way (Python restarts them forever).
    Initializer {
        /// The panic message.
        message: String,
    },
    /// Workers died before they took a task (as they started, or once up with work queued
    /// for them), `2 × processes + 2` in a row with no result between; the pool stops taking
    /// tasks rather than start workers forever. (Workers killed while idle are replaced,
    /// however many.)
    StartFailed {
        /// How many died, and how the last one ended.
        message: String,
    },
    /// The input iterator of an `imap` panicked (on the caller's thread, while the pool read
    /// it): the values of the items before come first, then this, then the end.
    InputPanicked {
        /// The index of the item it was producing.
        index: usize,
        /// The panic message.
        message: String,
    },
    /// `get` or `next` waited the whole timeout (Python's `multiprocessing.TimeoutError`).
    Timeout,
    /// SIGINT (Ctrl-C) arrived while the caller waited; the pool was terminated.
    Interrupted,
    /// The pool was terminated (or dropped) before the task finished.
    Terminated,
    /// The task was cancelled ([`AsyncResult::cancel`](crate::AsyncResult::cancel), or
    /// `ProcessPoolExecutor::shutdown` with `cancel_futures`; Python's `CancelledError`):
    /// it never ran, or its worker was killed.
    Cancelled,
    /// The pool no longer takes tasks: it was closed or terminated (Python: `ValueError('Pool
    /// not running')`).
    NotRunning,
    /// `join` was called before `close` or `terminate` (Python: `ValueError('Pool is still
    /// running')`).
    StillRunning,
    /// A bad setting: no processes, a zero `maxtasksperchild`, a zero chunksize.
    InvalidArgument(&'static str),
    /// An argument could not be serialised (reported at submission, nothing was sent).
    Encode(String),
    /// A value could not be deserialised (an argument in the worker, or a result here).
    Decode(String),
    /// A worker could not be started.
    Process(ProcessError),
    /// An operating-system call failed.
    Io(io::Error),
    /// The task ran longer than the call's [`timeout`](crate::Submit::timeout): its worker
    /// was killed (a local pool replaces it), or, on a worker the pool cannot kill (an MPI
    /// rank), gets no more work until it answers.
    TaskTimeout {
        /// The index of the first input item of the task (a chunk under `map`).
        index: usize,
        /// The timeout it ran past.
        timeout: Duration,
    },
    /// The encoded result of a task was larger than the call's
    /// [`max_result_bytes`](crate::Submit::max_result_bytes); the worker dropped it instead
    /// of sending it.
    ResultTooLarge {
        /// The index of the first input item of the task.
        index: usize,
        /// The encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A task failed on a remote worker (an MPI rank, see [`transport`](crate::transport)):
    /// `error` is the failure as that worker's own pool reported it, indices counted from
    /// the start of the call's input.
    Remote {
        /// The number users know the worker by (an MPI rank).
        rank: u32,
        /// The failure.
        error: Box<PoolError>,
    },
    /// A frame from a remote worker did not decode (truncated, or not a pool frame): the
    /// task it answered, or the oldest one it held, fails with this.
    BadFrame(String),
    /// The worker running the task died of its memory cap
    /// ([`PoolBuilder::max_memory_per_worker`](crate::PoolBuilder::max_memory_per_worker)).
    /// A new worker took its place.
    MemoryLimit {
        /// The index of the first input item of the task.
        index: usize,
        /// How many input items the task held.
        len: usize,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The task used more CPU time than its cap
    /// ([`PoolBuilder::max_cpu_time_per_task`](crate::PoolBuilder::max_cpu_time_per_task));
    /// its worker was killed (SIGXCPU) and replaced.
    CpuLimit {
        /// The index of the first input item of the task.
        index: usize,
        /// How many input items the task held.
        len: usize,
        /// The cap.
        limit: Duration,
    },
    /// The task ran `attempts` times (its retries, see [`Retry`](crate::Retry)) and failed
    /// each time; `error` is how the last attempt ended.
    ///
    /// ```
    /// use mp_pool::PoolError;
    ///
    /// let e = PoolError::GaveUp {
    ///     attempts: 3,
    ///     error: Box::new(PoolError::WorkerDied { index: 0, len: 1, pid: 7, exitcode: -11 }),
    /// };
    /// assert!(e.to_string().starts_with("task 0 failed 3 times"));
    /// assert!(matches!(e.cause(), PoolError::WorkerDied { .. }));
    /// ```
    GaveUp {
        /// How many times the task ran.
        attempts: u32,
        /// The last attempt's failure.
        error: Box<PoolError>,
    },
}

impl PoolError {
    /// Whether this is a failure of the task itself (a panic or its worker's death), as
    /// opposed to a failure of the pool or of the call.
    pub fn is_task_failure(&self) -> bool {
        match self {
            Self::Panicked { .. }
            | Self::WorkerDied { .. }
            | Self::TaskTimeout { .. }
            | Self::MemoryLimit { .. }
            | Self::CpuLimit { .. }
            | Self::Cancelled => true,
            Self::Remote { error, .. } | Self::GaveUp { error, .. } => error.is_task_failure(),
            _ => false,
        }
    }

    /// The failure itself, for a task that failed on a remote worker (see
    /// [`PoolError::Remote`]); `self` otherwise.
    ///
    /// ```
    /// use mp_pool::PoolError;
    ///
    /// let e = PoolError::Remote { rank: 2, error: Box::new(PoolError::Cancelled) };
    /// assert!(matches!(e.local(), PoolError::Cancelled));
    /// assert!(matches!(PoolError::Timeout.local(), PoolError::Timeout));
    /// ```
    pub fn local(&self) -> &PoolError {
        match self {
            Self::Remote { error, .. } => error.local(),
            other => other,
        }
    }

    /// What ended the task, under the wrappers that say where and how often: a remote
    /// worker's failure ([`Remote`](PoolError::Remote)), the last of several attempts
    /// ([`GaveUp`](PoolError::GaveUp)).
    ///
    /// ```
    /// use mp_pool::PoolError;
    ///
    /// let e = PoolError::GaveUp { attempts: 2, error: Box::new(PoolError::Cancelled) };
    /// assert!(matches!(e.cause(), PoolError::Cancelled));
    /// ```
    pub fn cause(&self) -> &PoolError {
        match self {
            Self::Remote { error, .. } | Self::GaveUp { error, .. } => error.cause(),
            other => other,
        }
    }

    /// The index of the input item a task failure names, if it names one.
    pub(crate) fn index(&self) -> Option<usize> {
        match self {
            Self::Panicked { index, .. }
            | Self::WorkerDied { index, .. }
            | Self::TaskTimeout { index, .. }
            | Self::ResultTooLarge { index, .. }
            | Self::MemoryLimit { index, .. }
            | Self::CpuLimit { index, .. } => Some(*index),
            Self::Remote { error, .. } | Self::GaveUp { error, .. } => error.index(),
            _ => None,
        }
    }

    /// A copy for a second reader of the same failure (`get` may be called again).
    pub(crate) fn duplicate(&self) -> PoolError {
        match self {
            Self::Panicked { index, message } => Self::Panicked {
                index: *index,
                message: message.clone(),
            },
            Self::WorkerDied {
                index,
                len,
                pid,
                exitcode,
            } => Self::WorkerDied {
                index: *index,
                len: *len,
                pid: *pid,
                exitcode: *exitcode,
            },
            Self::Initializer { message } => Self::Initializer {
                message: message.clone(),
            },
            Self::StartFailed { message } => Self::StartFailed {
                message: message.clone(),
            },
            Self::InputPanicked { index, message } => Self::InputPanicked {
                index: *index,
                message: message.clone(),
            },
            Self::Timeout => Self::Timeout,
            Self::Interrupted => Self::Interrupted,
            Self::Terminated => Self::Terminated,
            Self::Cancelled => Self::Cancelled,
            Self::NotRunning => Self::NotRunning,
            Self::StillRunning => Self::StillRunning,
            Self::InvalidArgument(m) => Self::InvalidArgument(m),
            Self::Encode(m) => Self::Encode(m.clone()),
            Self::Decode(m) => Self::Decode(m.clone()),
            Self::Process(e) => Self::Io(io::Error::other(e.to_string())),
            Self::Io(e) => Self::Io(io::Error::new(e.kind(), e.to_string())),
            Self::TaskTimeout { index, timeout } => Self::TaskTimeout {
                index: *index,
                timeout: *timeout,
            },
            Self::ResultTooLarge { index, len, limit } => Self::ResultTooLarge {
                index: *index,
                len: *len,
                limit: *limit,
            },
            Self::Remote { rank, error } => Self::Remote {
                rank: *rank,
                error: Box::new(error.duplicate()),
            },
            Self::BadFrame(m) => Self::BadFrame(m.clone()),
            Self::MemoryLimit { index, len, limit } => Self::MemoryLimit {
                index: *index,
                len: *len,
                limit: *limit,
            },
            Self::CpuLimit { index, len, limit } => Self::CpuLimit {
                index: *index,
                len: *len,
                limit: *limit,
            },
            Self::GaveUp { attempts, error } => Self::GaveUp {
                attempts: *attempts,
                error: Box::new(error.duplicate()),
            },
        }
    }
}

/// The name of a signal that kills workers, for messages.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGXCPU => "SIGXCPU",
        _ => return None,
    })
}

/// "task 4", or "task 4 (items 4..8)" for a chunk.
fn task_name(index: usize, len: usize) -> String {
    if len > 1 {
        format!("task {index} (items {index}..{})", index + len)
    } else {
        format!("task {index}")
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked { index, message } => write!(f, "task {index} {message}"),
            Self::WorkerDied {
                index,
                len,
                pid,
                exitcode,
            } => {
                let task = task_name(*index, *len);
                write!(f, "the worker (pid {pid}) running {task} ")?;
                match (*exitcode < 0).then(|| signal_name(-exitcode)) {
                    Some(Some(name)) => write!(f, "was killed by {name} (exit code {exitcode})"),
                    Some(None) => write!(
                        f,
                        "was killed by signal {} (exit code {exitcode})",
                        -exitcode
                    ),
                    None => write!(f, "exited with code {exitcode}"),
                }
            }
            Self::Initializer { message } => write!(f, "the pool's initializer {message}"),
            Self::StartFailed { message } => write!(f, "workers die as they start: {message}"),
            Self::InputPanicked { index, message } => {
                write!(f, "the input iterator, reading item {index}, {message}")
            }
            Self::Timeout => f.write_str("timed out waiting for the result"),
            Self::Interrupted => f.write_str("interrupted (SIGINT); the pool was terminated"),
            Self::Terminated => f.write_str("the pool was terminated before the task finished"),
            Self::Cancelled => f.write_str("the task was cancelled"),
            Self::NotRunning => f.write_str("the pool is not running"),
            Self::StillRunning => {
                f.write_str("the pool is still running: close or terminate it first")
            }
            Self::InvalidArgument(m) => f.write_str(m),
            Self::Encode(m) => write!(f, "cannot serialize an argument: {m}"),
            Self::Decode(m) => write!(f, "cannot deserialize a value: {m}"),
            Self::Process(e) => write!(f, "cannot start a worker: {e}"),
            Self::Io(e) => e.fmt(f),
            Self::TaskTimeout { index, timeout } => {
                write!(f, "task {index} ran past its timeout of {timeout:?}")
            }
            Self::ResultTooLarge { index, len, limit } => write!(
                f,
                "the result of task {index} is {len} bytes, over the limit of {limit}"
            ),
            Self::Remote { rank, error } => write!(f, "on worker rank {rank}: {error}"),
            Self::BadFrame(m) => write!(f, "a frame from a worker does not decode: {m}"),
            Self::MemoryLimit { index, len, limit } => write!(
                f,
                "the worker running {} died of its memory cap of {limit} bytes",
                task_name(*index, *len)
            ),
            Self::CpuLimit { index, len, limit } => write!(
                f,
                "{} used more than its CPU time cap of {limit:?}; its worker was killed",
                task_name(*index, *len)
            ),
            Self::GaveUp { attempts, error } => {
                let index = error.index().unwrap_or(0);
                write!(
                    f,
                    "task {index} failed {attempts} times; the last time: {error}"
                )
            }
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Process(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Remote { error, .. } | Self::GaveUp { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

impl From<io::Error> for PoolError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<ProcessError> for PoolError {
    fn from(e: ProcessError) -> Self {
        Self::Process(e)
    }
}

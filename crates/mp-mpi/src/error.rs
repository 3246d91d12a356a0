//! What can go wrong with an `MpiPool` call: the local pool's failures, as they came back
//! from a worker rank, and the failures of the MPI layer itself.

use std::fmt;
use std::time::Duration;

use mp_pool::PoolError;

/// Why an `MpiPool` call, or one of its tasks, did not produce a value.
///
/// ```
/// use mp_mpi::MpiError;
/// use mp_pool::PoolError;
///
/// fn explain(e: &MpiError) -> String {
///     match e {
///         MpiError::Task { rank, error: PoolError::WorkerDied { index, exitcode, .. } } => {
///             format!("item {index} killed its process on rank {rank} ({exitcode})")
///         }
///         MpiError::RankTimeout { rank, .. } => format!("rank {rank} is silent"),
///         other => other.to_string(),
///     }
/// }
/// assert_eq!(explain(&MpiError::NoWorkers).contains("mpirun"), true);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MpiError {
    /// A task failed in the node-local pool of worker rank `rank`, exactly as it fails in a
    /// local [`mp_pool::Pool`]: [`PoolError::Panicked`], or [`PoolError::WorkerDied`] for a
    /// task that segfaulted, aborted or was killed (the rank and the job go on). Indices
    /// count from the start of the call's input, as locally.
    Task {
        /// The worker rank whose local pool ran the task.
        rank: i32,
        /// The failure, as the local pool reported it.
        error: PoolError,
    },
    /// A chunk's encoded result exceeded the configured limit
    /// (`MpiPoolBuilder::max_result_bytes`); the
    /// worker rank dropped it instead of sending it.
    ResultTooLarge {
        /// The worker rank.
        rank: i32,
        /// The index of the chunk's first item.
        index: usize,
        /// The encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A worker rank did not answer within the configured deadline
    /// (`MpiPoolBuilder::deadline`); its chunk fails and
    /// the rank gets no more work until it answers.
    RankTimeout {
        /// The silent worker rank (0 when every rank is silent and nothing can run).
        rank: i32,
        /// The index of the chunk's first item.
        index: usize,
        /// The deadline it missed.
        timeout: Duration,
    },
    /// A worker rank runs another executable than the master (its SHA-256 differs): task
    /// offsets would name other code there, so the pool refuses to start.
    IdentityMismatch {
        /// The worker rank.
        rank: i32,
        /// Its host and pid.
        host: String,
        /// The master's executable hash (hex).
        expected: String,
        /// The worker's executable hash (hex).
        found: String,
    },
    /// Run without `mpirun` (or with `-n 1`): there is no worker rank to run tasks.
    NoWorkers,
    /// A frame from a worker rank did not decode (truncated, or not an mp-mpi frame).
    BadFrame {
        /// The rank that sent it.
        rank: i32,
        /// What was wrong.
        reason: String,
    },
    /// An argument could not be serialised (nothing was sent).
    Encode(String),
    /// A value could not be deserialised (arguments on a worker rank, or a result here).
    Decode(String),
    /// A bad setting or a task a worker cannot find (a closure that captures state).
    InvalidArgument(&'static str),
    /// MPI could not be initialised (already initialised in this process).
    Init(String),
}

impl MpiError {
    /// Whether this is a failure of the task itself (a panic or its process's death), as
    /// [`PoolError::is_task_failure`].
    pub fn is_task_failure(&self) -> bool {
        matches!(self, Self::Task { error, .. } if error.is_task_failure())
    }

    /// The local pool's error, for a task failure.
    pub fn pool_error(&self) -> Option<&PoolError> {
        match self {
            Self::Task { error, .. } => Some(error),
            _ => None,
        }
    }

    /// A copy for a second reader of the same failure (`get` may be called again).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn duplicate(&self) -> MpiError {
        match self {
            Self::Task { rank, error } => Self::Task {
                rank: *rank,
                error: duplicate_pool_error(error),
            },
            Self::ResultTooLarge {
                rank,
                index,
                len,
                limit,
            } => Self::ResultTooLarge {
                rank: *rank,
                index: *index,
                len: *len,
                limit: *limit,
            },
            Self::RankTimeout {
                rank,
                index,
                timeout,
            } => Self::RankTimeout {
                rank: *rank,
                index: *index,
                timeout: *timeout,
            },
            Self::IdentityMismatch {
                rank,
                host,
                expected,
                found,
            } => Self::IdentityMismatch {
                rank: *rank,
                host: host.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            Self::NoWorkers => Self::NoWorkers,
            Self::BadFrame { rank, reason } => Self::BadFrame {
                rank: *rank,
                reason: reason.clone(),
            },
            Self::Encode(m) => Self::Encode(m.clone()),
            Self::Decode(m) => Self::Decode(m.clone()),
            Self::InvalidArgument(m) => Self::InvalidArgument(m),
            Self::Init(m) => Self::Init(m.clone()),
        }
    }
}

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
fn duplicate_pool_error(error: &PoolError) -> PoolError {
    match error {
        PoolError::Panicked { index, message } => PoolError::Panicked {
            index: *index,
            message: message.clone(),
        },
        PoolError::WorkerDied {
            index,
            len,
            pid,
            exitcode,
        } => PoolError::WorkerDied {
            index: *index,
            len: *len,
            pid: *pid,
            exitcode: *exitcode,
        },
        other => PoolError::Decode(other.to_string()),
    }
}

impl fmt::Display for MpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Task { rank, error } => write!(f, "on worker rank {rank}: {error}"),
            Self::ResultTooLarge {
                rank,
                index,
                len,
                limit,
            } => write!(
                f,
                "the result of the chunk at item {index} on worker rank {rank} is {len} bytes, \
                 over the limit of {limit}"
            ),
            Self::RankTimeout {
                rank: 0,
                index,
                timeout,
            } => write!(
                f,
                "every worker rank is silent past the deadline of {timeout:?}; the chunk at \
                 item {index} cannot run"
            ),
            Self::RankTimeout {
                rank,
                index,
                timeout,
            } => write!(
                f,
                "worker rank {rank} did not answer within {timeout:?} (the chunk at item {index})"
            ),
            Self::IdentityMismatch {
                rank,
                host,
                expected,
                found,
            } => write!(
                f,
                "worker rank {rank} ({host}) runs another executable (SHA-256 {found}) than the \
                 master ({expected}): run the same build on every node"
            ),
            Self::NoWorkers => f.write_str(
                "no worker ranks: run the program under `mpirun -n N` with N >= 2 (rank 0 is \
                 the master, ranks 1.. the workers)",
            ),
            Self::BadFrame { rank, reason } => {
                write!(f, "a frame from rank {rank} does not decode: {reason}")
            }
            Self::Encode(m) => write!(f, "cannot encode an argument: {m}"),
            Self::Decode(m) => write!(f, "cannot decode a value: {m}"),
            Self::InvalidArgument(m) => f.write_str(m),
            Self::Init(m) => write!(f, "cannot initialise MPI: {m}"),
        }
    }
}

impl std::error::Error for MpiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Task { error, .. } => Some(error),
            _ => None,
        }
    }
}

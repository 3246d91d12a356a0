//! What can go wrong when an MPI job becomes a pool. (Once it is one, its calls fail as any
//! pool's do, with [`PoolError`]: a task's failure on a worker rank is
//! [`PoolError::Remote`], naming the rank.)

use std::fmt;

use mp_pool::PoolError;

/// Why `MpiPool::init` did not make a pool.
///
/// ```
/// use mp_mpi::MpiError;
///
/// fn explain(e: &MpiError) -> String {
///     match e {
///         MpiError::IdentityMismatch { rank, .. } => format!("rank {rank} runs another build"),
///         other => other.to_string(),
///     }
/// }
/// assert!(explain(&MpiError::NoWorkers).contains("mpirun"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MpiError {
    /// A worker rank runs another executable than the master (its SHA-256 differs): task
    /// references would name other code there, so the pool refuses to start.
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
    /// A worker rank's hello did not decode (not an mp-mpi program, or another version).
    BadFrame {
        /// The rank that sent it.
        rank: i32,
        /// What was wrong.
        reason: String,
    },
    /// MPI could not be initialised (already initialised in this process).
    Init(String),
    /// The pool over the ranks could not be made, or (through `?` in a program whose `main`
    /// returns `MpiError`) one of its calls failed.
    Pool(PoolError),
}

impl From<PoolError> for MpiError {
    fn from(e: PoolError) -> Self {
        MpiError::Pool(e)
    }
}

impl fmt::Display for MpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            Self::Init(m) => write!(f, "cannot initialise MPI: {m}"),
            Self::Pool(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MpiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pool(e) => Some(e),
            _ => None,
        }
    }
}

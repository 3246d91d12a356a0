//! `MpiPool`: an mp [`Pool`] whose workers are the ranks of an MPI job (its transport is in
//! `master`), with the handshake's settings and the ranks it found.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use mp_pool::{Pool, Submit};

use crate::error::MpiError;
use crate::master::{self, RankInfo, Settings};
use crate::wire::MAX_VALUES;

/// The settings of an [`MpiPool`], made on every rank; only the master's count.
///
/// ```no_run
/// use std::time::Duration;
///
/// let pool = mp_mpi::MpiPool::builder()
///     .local_processes(4)
///     .deadline(Some(Duration::from_secs(600)))
///     .max_result_bytes(64 << 20)
///     .init()?;
/// # Ok::<(), mp_mpi::MpiError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MpiPoolBuilder {
    local_processes: usize,
    deadline: Option<Duration>,
    max_result_bytes: usize,
    max_memory: Option<u64>,
    max_cpu: Option<Duration>,
    leak_guard: Option<u64>,
}

impl Default for MpiPoolBuilder {
    fn default() -> Self {
        MpiPoolBuilder {
            local_processes: 1,
            deadline: None,
            max_result_bytes: MAX_VALUES,
            max_memory: None,
            max_cpu: None,
            leak_guard: None,
        }
    }
}

impl MpiPoolBuilder {
    /// How many processes each worker rank's local pool has (default 1; at least 1). With
    /// one rank per node, the node's core count: the ranks x processes layout.
    pub fn local_processes(mut self, n: usize) -> Self {
        self.local_processes = n.max(1);
        self
    }

    /// How long a worker rank may take to answer one chunk (default `None`: forever), the
    /// pool's default [`timeout`](mp_pool::Submit::timeout). Past it, the chunk fails with
    /// [`PoolError::TaskTimeout`](mp_pool::PoolError::TaskTimeout) (inside
    /// [`PoolError::Remote`](mp_pool::PoolError::Remote)) and the rank gets no more work until
    /// it answers. Also the longest `init` waits for the ranks' hellos, and the pool's drop
    /// for their last answers, before it aborts the job.
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The largest encoded result of one chunk a worker rank sends (default and at most
    /// about `i32::MAX`, MPI's limit), the pool's default
    /// [`max_result_bytes`](mp_pool::Submit::max_result_bytes); a larger one fails with
    /// [`PoolError::ResultTooLarge`](mp_pool::PoolError::ResultTooLarge).
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = bytes.min(MAX_VALUES);
        self
    }

    /// Caps what each local worker of every rank may allocate (see
    /// [`PoolBuilder::max_memory_per_worker`](mp_pool::PoolBuilder::max_memory_per_worker)):
    /// a task past it fails with `MemoryLimit` (inside `Remote`), and retries apply.
    pub fn max_memory_per_worker(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Caps the CPU time of each task in the ranks' local workers (see
    /// [`PoolBuilder::max_cpu_time_per_task`](mp_pool::PoolBuilder::max_cpu_time_per_task)).
    pub fn max_cpu_time_per_task(mut self, cpu: Duration) -> Self {
        self.max_cpu = Some(cpu);
        self
    }

    /// The ranks' local workers retire above this resident size after a task (see
    /// [`PoolBuilder::leak_guard`](mp_pool::PoolBuilder::leak_guard)).
    pub fn leak_guard(mut self, bytes: u64) -> Self {
        self.leak_guard = Some(bytes);
        self
    }

    /// Initialises MPI (on a thread of its own, which makes every MPI call of the process).
    /// On rank 0, returns the pool; on every other rank, serves tasks until the master's pool
    /// is dropped, then exits the process (status 0) without returning. Without `mpirun`, or
    /// with `-n 1`: [`MpiError::NoWorkers`].
    pub fn init(self) -> Result<MpiPool, MpiError> {
        let settings = Settings {
            local_processes: self.local_processes,
            max_memory: self.max_memory,
            max_cpu: self.max_cpu,
            leak_guard: self.leak_guard,
            deadline: self.deadline,
        };
        let (transport, workers) = master::start(settings)?;
        let mut builder = Pool::builder().max_result_bytes(self.max_result_bytes);
        if let Some(deadline) = self.deadline {
            builder = builder.task_timeout(deadline);
        }
        let pool = builder.build_with(Arc::new(transport))?;
        Ok(MpiPool { pool, workers })
    }
}

/// An mp [`Pool`] over the ranks of an MPI job: rank 0 (the user's `main`) is the master, the
/// other ranks are workers, each running its tasks in a node-local mp `Pool` (so a task that
/// segfaults fails with `WorkerDied`, and the rank goes on). It derefs to the `Pool`: every
/// call, option and feature of a local pool is there (`map`, `imap`, `apply_async`,
/// callbacks, `chunksize`, `timeout`, progress, [`ProcessPoolExecutor`](mp_pool::ProcessPoolExecutor)
/// through [`into_pool`](MpiPool::into_pool)), with the same errors; a task's failure on a
/// rank is [`PoolError::Remote`](mp_pool::PoolError::Remote), naming the rank.
///
/// ```no_run
/// // mpirun -n 4 ./app   (1 master + 3 worker ranks)
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), mp_mpi::MpiError> {
///     let pool = mp_mpi::MpiPool::init()?; // worker ranks serve here, and exit
///     assert_eq!(pool.map(square, [1, 2, 3])?, [1, 4, 9]);
///     let lazy: Vec<u64> = pool.imap(square, 0..).take(3).collect::<Result<_, _>>()?;
///     assert_eq!(lazy, [0, 1, 4]);
///     assert_eq!(pool.apply_async(square, (7,))?.get()?, 49);
///     Ok(())
/// }
/// ```
///
/// Without `mpirun` (a singleton), [`init`](MpiPool::init) fails with
/// [`MpiError::NoWorkers`]: the program says so rather than silently running elsewhere.
/// A rank killed whole (not a task in it) ends the job: Open MPI 4 aborts every rank, and
/// `mpirun` exits non-zero within about a second.
#[derive(Debug)]
pub struct MpiPool {
    pool: Pool,
    workers: Vec<RankInfo>,
}

impl MpiPool {
    /// Initialises MPI with the default settings: see [`MpiPoolBuilder::init`].
    pub fn init() -> Result<MpiPool, MpiError> {
        MpiPoolBuilder::default().init()
    }

    /// Settings: local processes per rank, a deadline per chunk, a result size limit.
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder::default()
    }

    /// The worker ranks.
    pub fn workers(&self) -> &[RankInfo] {
        &self.workers
    }

    /// The pool itself (for a [`ProcessPoolExecutor`](mp_pool::ProcessPoolExecutor), say).
    /// Dropping it ends the job's pool, as dropping the `MpiPool` does.
    pub fn into_pool(self) -> Pool {
        self.pool
    }

    /// The options of one call: its timeout per chunk (`None`: none).
    #[deprecated(note = "use `pool.timeout(d)` (mp_pool::Submit::timeout), as on every pool")]
    pub fn deadline(&self, deadline: Option<Duration>) -> Submit<'_> {
        self.pool.timeout(deadline.unwrap_or(Duration::MAX))
    }
}

impl Deref for MpiPool {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.pool
    }
}

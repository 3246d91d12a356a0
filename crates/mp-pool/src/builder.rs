//! [`PoolBuilder`]: the settings of a pool, checked into a [`Config`]. (Its `build` and
//! `build_with`, which start the pool, are with [`Pool`](crate::Pool).)

use std::time::Duration;

use mp_spawn::reduction;
use mp_spawn::{Context, StartMethod, Target};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::PoolError;
use crate::retry::Retry;
use crate::task;
use crate::task::InitSpec;

/// Settings of a [`Pool`](crate::Pool) (Python's `Pool(processes, initializer, initargs,
/// maxtasksperchild, context)`).
///
/// ```
/// use mp_pool::Pool;
///
/// fn setup(greeting: String) {
///     assert_eq!(greeting, "hi");
/// }
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = Pool::builder()
///     .processes(2)
///     .initializer(setup, ("hi".to_string(),))
///     .maxtasksperchild(100)
///     .context(mp_spawn::get_context("spawn").unwrap())
///     .build()?;
/// assert_eq!(pool.map(square, [1, 2, 3])?, [1, 4, 9]);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
#[derive(Debug, Default)]
pub struct PoolBuilder {
    processes: Option<usize>,
    init: Option<Result<InitSpec, PoolError>>,
    maxtasks: Option<usize>,
    context: Option<Context>,
    timeout: Option<Duration>,
    max_result_bytes: Option<usize>,
    retry: Retry,
    kill_grace: Option<Duration>,
    caps: Caps,
}

/// The caps of each worker of a pool.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caps {
    /// Bytes a worker may allocate (`mp_spawn::Limits::memory`).
    pub(crate) memory: Option<u64>,
    /// CPU time one task may use.
    pub(crate) cpu_per_task: Option<Duration>,
    /// A worker whose resident set is above this after a task exits (and is replaced).
    pub(crate) leak_guard: Option<u64>,
}

impl Caps {
    fn any(&self) -> bool {
        self.memory.is_some() || self.cpu_per_task.is_some() || self.leak_guard.is_some()
    }

    /// The limits of a worker process, if it has some.
    pub(crate) fn limits(&self) -> Option<mp_spawn::Limits> {
        let mut limits = mp_spawn::Limits::new();
        if let Some(bytes) = self.memory {
            limits = limits.memory(bytes);
        }
        if let Some(cpu) = self.cpu_per_task {
            limits = limits.cpu_time(cpu);
        }
        (self.memory.is_some() || self.cpu_per_task.is_some()).then_some(limits)
    }
}

impl PoolBuilder {
    /// The number of workers; by default the CPUs this process may use
    /// ([`process_cpu_count`](mp_spawn::process_cpu_count), as Python 3.13).
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// A function each worker calls once, before its first task (Python's `initializer`
    /// and `initargs`). Like a task, it must be a fn item or a non-capturing closure; its
    /// arguments may carry handles (a `Queue`, a `Lock`...). If it panics, the pool stops
    /// taking tasks and they fail with [`PoolError::Initializer`].
    pub fn initializer<F, A>(mut self, initializer: F, args: A) -> Self
    where
        F: Target<A, Output = ()> + Copy,
        A: Serialize + DeserializeOwned,
    {
        let spec = task::init_fn::<F, A>(&initializer)
            .map_err(PoolError::InvalidArgument)
            .and_then(|task| {
                let dumped = reduction::dumps(&args).map_err(|e| PoolError::Encode(e.0))?;
                Ok(InitSpec {
                    task,
                    args: dumped.bytes,
                    fds: dumped.fds.into_iter().map(reduction::Fd::new).collect(),
                })
            });
        self.init = Some(spec);
        self
    }

    /// Replaces each worker after it has run this many tasks (chunks), to bound what a leaky
    /// task can hold (Python's `maxtasksperchild`). By default workers live as long as the pool.
    pub fn maxtasksperchild(mut self, tasks: usize) -> Self {
        self.maxtasks = Some(tasks);
        self
    }

    /// The start method of the workers (by default, the one `set_start_method` chose).
    pub fn context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// How long one task (a chunk) of every call may run, unless the call says otherwise
    /// ([`Submit::timeout`](crate::Submit::timeout)). By default, forever.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The largest encoded result of one task (a chunk) of every call, unless the call says
    /// otherwise ([`Submit::max_result_bytes`](crate::Submit::max_result_bytes)). By default,
    /// no limit.
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = Some(bytes);
        self
    }

    /// Runs a task again, up to `retries` more times, when its worker ended under it (a
    /// crash, a cap, its timeout), unless the call says otherwise
    /// ([`Submit::retries`](crate::Submit::retries)); by default a task runs once. See
    /// [`Retry`] for which endings and for a crash budget, and [`retry`](Self::retry).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let pool = mp_pool::Pool::builder().processes(2).retries(2).build()?;
    /// assert_eq!(pool.map(square, [1, 2, 3])?, [1, 4, 9]);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        self.retry = self.retry.with_retries(retries);
        self
    }

    /// The retry policy of every call, unless the call says otherwise
    /// ([`Submit::retry`](crate::Submit::retry)).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// How a worker is stopped when a task of it runs past its timeout or is cancelled:
    /// SIGTERM, then SIGKILL if it still lives `grace` later (for a task that must clean up,
    /// with its own SIGTERM handler). By default SIGKILL at once. `terminate` is not
    /// affected.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = Some(grace);
        self
    }

    /// Caps what each worker may allocate: `bytes` more than it holds when it starts
    /// (`RLIMIT_DATA`; with a cgroup v2 memory controller this process may delegate, also a
    /// cgroup of its own with `memory.max`: see `mp_spawn::Limits::memory`). A task that
    /// allocates past it fails with [`PoolError::MemoryLimit`], its worker is replaced, and the
    /// other tasks go on. (An explicit `abort()` in a task stays `WorkerDied`: the worker
    /// reports a failed allocation before it aborts.)
    ///
    /// ```
    /// fn hog(mib: usize) -> usize {
    ///     let mut held = Vec::new();
    ///     for _ in 0..mib {
    ///         held.push(vec![1u8; 1 << 20]);
    ///     }
    ///     held.len()
    /// }
    ///
    /// let pool = mp_pool::Pool::builder()
    ///     .processes(1)
    ///     .max_memory_per_worker(64 << 20)
    ///     .build()?;
    /// assert_eq!(pool.apply(hog, (8,))?, 8);
    /// let e = pool.apply(hog, (1024,)).unwrap_err();
    /// assert!(matches!(e, mp_pool::PoolError::MemoryLimit { limit, .. } if limit == 64 << 20));
    /// assert_eq!(pool.apply(hog, (8,))?, 8);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn max_memory_per_worker(mut self, bytes: u64) -> Self {
        self.caps.memory = Some(bytes);
        self
    }

    /// Caps the CPU time of each task (`RLIMIT_CPU`, re-armed before each task; whole seconds,
    /// rounded up). A task past it fails with [`PoolError::CpuLimit`] and its worker (killed by
    /// SIGXCPU) is replaced. Unlike a timeout, time spent waiting does not count.
    pub fn max_cpu_time_per_task(mut self, cpu: Duration) -> Self {
        self.caps.cpu_per_task = Some(cpu);
        self
    }

    /// A leak guard (loky's memory-leak threshold): a worker whose resident set is above
    /// `bytes` after a task exits before its next task, and a new worker takes its place. No
    /// task fails for it.
    pub fn leak_guard(mut self, bytes: u64) -> Self {
        self.caps.leak_guard = Some(bytes);
        self
    }

    /// The checked settings.
    pub(crate) fn config(self) -> Result<Config, PoolError> {
        let processes = self.processes.unwrap_or_else(mp_spawn::process_cpu_count);
        if processes == 0 {
            return Err(PoolError::InvalidArgument(
                "Number of processes must be at least 1",
            ));
        }
        if self.maxtasks == Some(0) {
            return Err(PoolError::InvalidArgument(
                "maxtasksperchild must be a positive number",
            ));
        }
        let ctx = self.context.unwrap_or_default();
        Ok(Config {
            timeout: self.timeout,
            max_result_bytes: self.max_result_bytes,
            retry: self.retry,
            kill_grace: self.kill_grace,
            caps: self.caps,
            prefix: match ctx.start_method() {
                StartMethod::Fork => "ForkPoolWorker",
                StartMethod::Spawn => "SpawnPoolWorker",
                StartMethod::Forkserver => "ForkServerPoolWorker",
            },
            ctx,
            processes,
            init: self.init.transpose()?,
            maxtasks: self.maxtasks.map(|m| m as u64),
        })
    }

    /// The checked settings of a pool over a transport's `workers` (which starts them).
    pub(crate) fn remote_config(self, workers: usize) -> Result<Config, PoolError> {
        if self.processes.is_some()
            || self.init.is_some()
            || self.maxtasks.is_some()
            || self.context.is_some()
            || self.kill_grace.is_some()
            || self.caps.any()
        {
            return Err(PoolError::InvalidArgument(
                "a pool over a transport has the transport's workers: processes, \
                 initializer, maxtasksperchild, context, kill_grace and the workers' caps are \
                 the transport's settings",
            ));
        }
        Ok(Config {
            ctx: Context::default(),
            prefix: "RemoteWorker",
            processes: workers,
            init: None,
            maxtasks: None,
            timeout: self.timeout,
            max_result_bytes: self.max_result_bytes,
            retry: self.retry,
            kill_grace: None,
            caps: Caps::default(),
        })
    }
}

/// A pool's settings, checked.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) ctx: Context,
    /// The start of the workers' names.
    pub(crate) prefix: &'static str,
    pub(crate) processes: usize,
    pub(crate) init: Option<InitSpec>,
    pub(crate) maxtasks: Option<u64>,
    /// The calls' defaults.
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_result_bytes: Option<usize>,
    pub(crate) retry: Retry,
    /// SIGTERM, then SIGKILL this much later, for a worker killed for a task.
    pub(crate) kill_grace: Option<Duration>,
    pub(crate) caps: Caps,
}

//! [`Pool`]: worker processes that run the chunks of `map`, `imap` and `apply` calls, as
//! CPython's `multiprocessing.pool.Pool`, without its hangs.
//!
//! Shape: each worker has its own task queue, and all of them share one result queue (both
//! are shared-memory rings, see mp-ipc). The pool's owner keeps, per worker, the list of the
//! chunks it sent and has not heard back about, so when a worker dies the pool knows exactly
//! which chunk it was running (the first unfinished one it had taken) and which it had not
//! taken yet (those go to another worker). A shared task queue, as Python's, cannot know that:
//! a task taken by a worker that dies is lost and its caller waits forever (gh-66587).
//!
//! Threads in the owner: a *handler* reads the result queue (results, and the deaths the
//! *monitor* thread reports by watching the workers' pidfds), replaces dead workers and
//! hands out pending chunks. Callers hand out chunks themselves when a worker has room, so
//! a lone `apply` costs no thread hop on the way out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mp_ipc::Queue;
use mp_spawn::reduction;
use mp_spawn::{Context, Process, StartMethod, Target};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{PoolError, signal_name};
use crate::imap::{IMap, PoolRef};
use crate::interrupt;
use crate::plain;
use crate::result::{AsyncResult, Deferred, Job, Part, decode_all, decode_one};
use crate::task;
use crate::worker::{self, InitSpec, WorkerArgs};

/// How many chunks a worker may hold at least: the one it runs and the next, so that it never
/// waits for the owner between two chunks.
const MIN_DEPTH: usize = 2;
/// At most.
const MAX_DEPTH: usize = 64;
/// How much work (by the measured time per chunk) a worker may have queued: short chunks are
/// queued deeper, so the owner's thread need not keep up chunk by chunk, while a slow chunk
/// never holds back more than this much work behind it.
const QUEUED_WORK: Duration = Duration::from_millis(1);
/// How long the handler and an idle worker poll their queue before they sleep: a result or a
/// task that comes within this time costs no wake-up (tens of microseconds on a small VM).
const POLL: Duration = Duration::from_micros(50);
/// The most messages the handler takes under one lock.
const BATCH: usize = 256;

/// Settings of a [`Pool`] (Python's `Pool(processes, initializer, initargs,
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
        let _ = initializer;
        let spec = reduction::dumps(&args)
            .map_err(|e| PoolError::Encode(e.0))
            .map(|dumped| InitSpec {
                entry: task::init_offset::<F, A>(),
                args: dumped.bytes,
                fds: dumped.fds.into_iter().map(reduction::Fd::new).collect(),
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

    /// Starts the workers.
    pub fn build(self) -> Result<Pool, PoolError> {
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
        let config = Config {
            prefix: match ctx.start_method() {
                StartMethod::Fork => "ForkPoolWorker",
                StartMethod::Spawn => "SpawnPoolWorker",
                StartMethod::Forkserver => "ForkServerPoolWorker",
            },
            ctx,
            processes,
            init: self.init.transpose()?,
            maxtasks: self.maxtasks.map(|m| m as u64),
        };
        Pool::start(config)
    }
}

#[derive(Debug)]
struct Config {
    ctx: Context,
    prefix: &'static str,
    processes: usize,
    init: Option<InitSpec>,
    maxtasks: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Closed,
    Terminated,
}

/// A chunk, from submission until its result arrives.
struct Task {
    job: Arc<Job>,
    /// Its number within the job.
    chunk: usize,
    /// The index of its first input item, and how many it holds.
    index: usize,
    len: usize,
    /// The `TASK` frame, kept until the result arrives so that it can go to another worker.
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// When it went into a worker's queue.
    sent: Option<Instant>,
}

/// A chunk ready to be submitted.
pub(crate) struct Prepared {
    pub(crate) chunk: usize,
    pub(crate) index: usize,
    pub(crate) len: usize,
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Prepared {
    /// Encodes the argument tuples of one chunk for `entry`.
    pub(crate) fn encode<A: Serialize + 'static>(
        entry: i64,
        chunk: usize,
        index: usize,
        items: &[A],
    ) -> Result<Prepared, PoolError> {
        let mut frame = Vec::with_capacity(task::TASK_HEADER + 8 * items.len() + 8);
        frame.push(task::TASK);
        task::put_u64(&mut frame, 0); // the id, set at submission
        frame.extend_from_slice(&entry.to_le_bytes());
        let fds = if plain::encode(items, &mut frame) {
            Vec::new()
        } else {
            reduction::dumps_into(items, &mut frame).map_err(|e| PoolError::Encode(e.0))?
        };
        Ok(Prepared {
            chunk,
            index,
            len: items.len(),
            frame,
            fds,
        })
    }
}

struct Worker {
    process: Process<()>,
    pid: u32,
    generation: u32,
    tasks: Queue<()>,
    /// Ids of the chunks sent and not answered, in the order sent.
    outstanding: VecDeque<u64>,
    /// Chunks it may still be sent under `maxtasksperchild`.
    budget: Option<u64>,
    stopping: bool,
    /// When its last result arrived: a chunk queued before it started then.
    last_result: Instant,
}

struct State {
    status: Status,
    workers: Vec<Option<Worker>>,
    pending: VecDeque<u64>,
    tasks: HashMap<u64, Task>,
    next_id: u64,
    generation: u32,
    started: usize,
    /// The initializer failed, or workers die as they start: no worker can take tasks.
    broken: Option<PoolError>,
    /// The generations of the live workers that are up (sent `READY`).
    ready: HashSet<u32>,
    /// Workers that died in a row before they were up (reset when one comes up, and by
    /// every result): the crash-loop guard.
    early_deaths: usize,
    /// The time a chunk takes in a worker (a moving average), once measured.
    chunk_time: Option<Duration>,
}

impl State {
    /// How many chunks a worker may hold: about `QUEUED_WORK` of them.
    fn depth(&self) -> usize {
        match self.chunk_time {
            Some(t) if !t.is_zero() => {
                ((QUEUED_WORK.as_nanos() / t.as_nanos()) as usize).clamp(MIN_DEPTH, MAX_DEPTH)
            }
            Some(_) => MAX_DEPTH,
            None => MIN_DEPTH,
        }
    }
}

/// What the monitor thread is told.
enum Watch {
    Add {
        slot: u32,
        generation: u32,
        sentinel: OwnedFd,
    },
    Stop,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    results: Queue<()>,
    config: Config,
    /// Tells the monitor thread about new workers; the socket wakes it from its wait.
    monitor: Mutex<(mpsc::Sender<Watch>, UnixStream)>,
    /// Under the fork method, forks every worker (see `mp_spawn::ForkServer`); dropped once
    /// the workers are gone.
    fork_helper: Mutex<Option<mp_spawn::ForkServer>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the callbacks of settled jobs, after the pool's lock is released (a callback may
/// submit more work).
fn run(callbacks: Vec<Deferred>) {
    for callback in callbacks {
        callback();
    }
}

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// ```
/// use mp_pool::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.map(square, 1..=3)?, [1, 4, 9]);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
///
/// # Functions
/// A task is a fn item or a non-capturing closure (`Copy`, zero-sized), so that every worker,
/// whatever its start method, can find it; state travels in the arguments, which are serde
/// types (handles such as a `Queue` or a `Lock` included). A capturing closure does not
/// compile:
///
/// ```compile_fail
/// let pool = mp_pool::Pool::new(1).unwrap();
/// let offset = 10u64;
/// pool.map(move |x: u64| x + offset, [1, 2, 3]).unwrap();
/// ```
///
/// # Failures
/// A task that panics fails alone with [`PoolError::Panicked`]; its worker goes on. A worker
/// that dies (killed, out of memory, abort, segfault) fails the chunk it was running with
/// [`PoolError::WorkerDied`], naming the chunk and the signal; a new worker takes its place
/// and the other chunks finish. `map` waits for every chunk, then reports the failure of the
/// lowest failed input index. A function that returns a `Result` gets its `Err` values back
/// as values, typed, in the output.
///
/// # Shutting down
/// [`close`](Pool::close) then [`join`](Pool::join) lets the submitted work finish;
/// [`terminate`](Pool::terminate) kills the workers at once. **Dropping a pool terminates
/// it**, as the end of Python's `with Pool() as p:` block does: results still outstanding
/// fail with [`PoolError::Terminated`]. Workers are daemons: they also end when the owner
/// process ends, however it ends.
///
/// # The fork start method
/// Every worker, first or replacement, is a fork of the thread that built the pool, as it was
/// then: a helper process forked at that moment forks them all. So a replacement has the
/// same stack as the first workers, and no lock that another thread takes later is held in
/// it. Build the pool before other threads take locks its tasks need.
pub struct Pool {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    joined: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Pool")
            .field("processes", &self.inner.config.processes)
            .field("state", &st.status)
            .field("pending", &st.pending.len())
            .finish()
    }
}

impl Pool {
    /// A pool of `processes` workers with the default start method.
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        Pool::builder().processes(processes).build()
    }

    /// Settings beyond the number of workers.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    fn start(config: Config) -> Result<Pool, PoolError> {
        task::install_panic_capture();
        // Forked first, from the caller's thread: the first workers and every replacement
        // are forks of this one snapshot, not of whichever thread starts them (the handler's
        // small stack, locks that other threads hold at that moment).
        let fork_helper = match config.ctx.start_method() {
            StartMethod::Fork => Some(mp_spawn::ForkServer::start()?),
            _ => None,
        };
        let results = Queue::<()>::new()?;
        let (wake_rx, wake_tx) = mp_shm::sys::socketpair(libc::SOCK_STREAM)?;
        let (watch_tx, watch_rx) = mpsc::channel();
        let processes = config.processes;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                status: Status::Running,
                workers: (0..processes).map(|_| None).collect(),
                pending: VecDeque::new(),
                tasks: HashMap::new(),
                next_id: 0,
                generation: 0,
                started: 0,
                broken: None,
                ready: HashSet::new(),
                early_deaths: 0,
                chunk_time: None,
            }),
            results: results.clone(),
            config,
            monitor: Mutex::new((watch_tx, UnixStream::from(wake_tx))),
            fork_helper: Mutex::new(fork_helper),
        });
        let monitor = std::thread::Builder::new()
            .name("mp-pool-monitor".into())
            .spawn(move || monitor_loop(results, watch_rx, UnixStream::from(wake_rx)))?;
        let pool = Pool {
            inner: Arc::clone(&inner),
            threads: Mutex::new(vec![monitor]),
            joined: AtomicBool::new(false),
        };
        // The handler runs before any worker exists: if a worker cannot be started, dropping
        // `pool` terminates the ones that were, and the handler reaps them and stops the
        // monitor (without a handler, `join` would wait for the monitor forever).
        let handler_inner = Arc::clone(&inner);
        let handler = std::thread::Builder::new()
            .name("mp-pool-handler".into())
            .spawn(move || handler_inner.handle_results())?;
        lock(&pool.threads).push(handler);
        {
            let mut st = lock(&inner.state);
            for slot in 0..processes {
                inner.start_worker(&mut st, slot)?;
            }
        }
        interrupt::register_pool(&inner);
        Ok(pool)
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        self.inner.config.processes
    }

    /// The pid of the process that forks the workers of a fork-method pool (for tests).
    #[doc(hidden)]
    pub fn fork_helper_pid(&self) -> Option<u32> {
        lock(&self.inner.fork_helper)
            .as_ref()
            .map(mp_spawn::ForkServer::pid)
    }

    /// The pids of the live workers (they change as workers are replaced).
    pub fn pids(&self) -> Vec<u32> {
        let st = lock(&self.inner.state);
        st.workers.iter().flatten().map(|w| w.pid).collect()
    }

    /// The pids of the live workers that are up: started, their initializer (if any)
    /// returned, ready for tasks. A worker that dies after this is replaced, however often;
    /// workers that keep dying before it stop the pool (see [`PoolError::StartFailed`]).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// let pool = mp_pool::Pool::new(2)?;
    /// pool.map(square, 0..100)?;
    /// assert!(pool.ready_pids().iter().all(|pid| pool.pids().contains(pid)));
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn ready_pids(&self) -> Vec<u32> {
        let st = lock(&self.inner.state);
        st.workers
            .iter()
            .flatten()
            .filter(|w| st.ready.contains(&w.generation))
            .map(|w| w.pid)
            .collect()
    }

    /// Options for the next call: the chunk size (how many items travel per task).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// let pool = mp_pool::Pool::new(2)?;
    /// let squares: Vec<u64> = pool.chunksize(1).map(square, 0..10)?;
    /// assert_eq!(squares[9], 81);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn chunksize(&self, chunksize: usize) -> Submit<'_> {
        Submit::new(self).chunksize(chunksize)
    }

    /// Options for the next call: how many chunks an `imap` keeps in flight ahead of the
    /// caller (default: twice the number of workers; Python 3.15's `buffersize`).
    pub fn buffersize(&self, chunks: usize) -> Submit<'_> {
        Submit::new(self).buffersize(chunks)
    }

    /// Calls `f(args...)` in a worker and waits for its value (Python's `apply`).
    pub fn apply<F, A>(&self, f: F, args: A) -> Result<F::Output, PoolError>
    where
        F: Target<A> + Copy,
        A: Serialize + DeserializeOwned + 'static,
        F::Output: Serialize + DeserializeOwned + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// Calls `f(args...)` in a worker; the value comes through the returned [`AsyncResult`]
    /// (Python's `apply_async`). Attach callbacks with [`AsyncResult::callback`] and
    /// [`AsyncResult::error_callback`].
    pub fn apply_async<F, A>(&self, f: F, args: A) -> Result<AsyncResult<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Serialize + DeserializeOwned + 'static,
        F::Output: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        let entry = task::entry_offset::<F, A>();
        let chunk = Prepared::encode(entry, 0, 0, std::slice::from_ref(&args))?;
        let job = Job::new(Some(1));
        self.inner.submit(&job, vec![chunk])?;
        Ok(AsyncResult::new(job, decode_one::<F::Output>))
    }

    /// Applies `f` to every item, in parallel, and returns the values in input order (Python's
    /// `map`). The input is split into chunks of `ceil(n / (4 × workers))` items, as Python
    /// does; choose another size with [`chunksize`](Pool::chunksize).
    pub fn map<F, T, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Submit::new(self).map(f, items)
    }

    /// As [`map`](Pool::map), without waiting: the values come through the [`AsyncResult`].
    pub fn map_async<F, T, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Submit::new(self).map_async(f, items)
    }

    /// Calls `f(a, b, ...)` for every tuple `(a, b, ...)` (Python's `starmap`).
    pub fn starmap<F, A>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Serialize + DeserializeOwned + 'static,
        F::Output: Serialize + DeserializeOwned + 'static,
    {
        Submit::new(self).starmap(f, items)
    }

    /// As [`starmap`](Pool::starmap), without waiting (Python's `starmap_async`).
    pub fn starmap_async<F, A>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<F::Output>>, PoolError>
    where
        F: Target<A> + Copy,
        A: Serialize + DeserializeOwned + 'static,
        F::Output: Serialize + DeserializeOwned + 'static,
    {
        Submit::new(self).starmap_async(f, items)
    }

    /// A lazy, ordered map (Python's `imap`): the input is read only as workers free up, a
    /// bounded number of chunks ahead, so an endless iterator works in bounded memory.
    /// Chunks of one item by default. Each item of the output is the value or the failure of
    /// that input item (a failed chunk gives one `Err`, then the output goes on).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// let pool = mp_pool::Pool::new(2)?;
    /// let first: Vec<u64> = pool.imap(square, 0..).take(4).collect::<Result<_, _>>()?;
    /// assert_eq!(first, [0, 1, 4, 9]);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn imap<F, T, R, I>(&self, f: F, items: I) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Submit::new(self).imap(f, items)
    }

    /// As [`imap`](Pool::imap), yielding values in the order they finish (Python's
    /// `imap_unordered`).
    pub fn imap_unordered<F, T, R, I>(&self, f: F, items: I) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Submit::new(self).imap_unordered(f, items)
    }

    /// Takes no more tasks; the workers exit once the submitted ones are done.
    pub fn close(&self) {
        let mut st = lock(&self.inner.state);
        if st.status == Status::Running {
            st.status = Status::Closed;
            self.inner.stop_idle_workers(&mut st);
            drop(st);
            self.inner.wake_handler();
        }
    }

    /// Kills the workers now; unfinished tasks fail with [`PoolError::Terminated`].
    pub fn terminate(&self) {
        self.inner.terminate_all();
    }

    /// Waits for the workers to exit, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate); [`PoolError::StillRunning`] before.
    pub fn join(&self) -> Result<(), PoolError> {
        if lock(&self.inner.state).status == Status::Running {
            return Err(PoolError::StillRunning);
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
        // Every worker has been reaped: the helper has nothing left to fork or report.
        drop(lock(&self.inner.fork_helper).take());
        self.joined.store(true, Ordering::Release);
        Ok(())
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !self.joined.load(Ordering::Acquire) {
            self.terminate();
            let _ = self.join();
        }
    }
}

/// The options of one call: `pool.chunksize(n)` or `pool.buffersize(n)`, then the call.
#[derive(Debug, Clone, Copy)]
pub struct Submit<'p> {
    pool: &'p Pool,
    chunksize: Option<usize>,
    buffersize: Option<usize>,
}

impl<'p> Submit<'p> {
    fn new(pool: &'p Pool) -> Self {
        Submit {
            pool,
            chunksize: None,
            buffersize: None,
        }
    }

    /// How many items travel per task (at least 1; 0 is taken as 1).
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = Some(chunksize.max(1));
        self
    }

    /// How many chunks an `imap` keeps in flight (at least 1).
    pub fn buffersize(mut self, chunks: usize) -> Self {
        self.buffersize = Some(chunks.max(1));
        self
    }

    /// Python's default for `map`: `ceil(n / (4 × workers))`.
    fn map_chunksize(&self, n: usize) -> usize {
        self.chunksize
            .unwrap_or_else(|| n.div_ceil(4 * self.pool.processes()))
            .max(1)
    }

    /// See [`Pool::map`].
    pub fn map<F, T, R>(self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.map_async(f, items)?.get()
    }

    /// See [`Pool::map_async`].
    pub fn map_async<F, T, R>(
        self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        // `T` and `(T,)` have the same encoding, so a slice of items is a slice of 1-tuples.
        self.submit_all(task::entry_offset::<F, (T,)>(), items.into_iter().collect())
    }

    /// See [`Pool::starmap`].
    pub fn starmap<F, A>(
        self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Serialize + DeserializeOwned + 'static,
        F::Output: Serialize + DeserializeOwned + 'static,
    {
        self.starmap_async(f, items)?.get()
    }

    /// See [`Pool::starmap_async`].
    pub fn starmap_async<F, A>(
        self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<F::Output>>, PoolError>
    where
        F: Target<A> + Copy,
        A: Serialize + DeserializeOwned + 'static,
        F::Output: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        self.submit_all(task::entry_offset::<F, A>(), items.into_iter().collect())
    }

    fn submit_all<T: Serialize + 'static, R: DeserializeOwned + 'static>(
        self,
        entry: i64,
        items: Vec<T>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
        let chunksize = self.map_chunksize(items.len());
        let job = Job::new(Some(items.len().div_ceil(chunksize)));
        // Chunks go out in small groups as they are encoded, so that workers start on the
        // first ones while the rest are encoded.
        let mut group = Vec::new();
        let mut group_bytes = 0;
        for (chunk, slice) in items.chunks(chunksize).enumerate() {
            let prepared = Prepared::encode(entry, chunk, chunk * chunksize, slice)?;
            group_bytes += prepared.frame.len();
            group.push(prepared);
            if group.len() >= 64 || group_bytes >= 1 << 16 {
                self.pool.inner.submit(&job, std::mem::take(&mut group))?;
                group_bytes = 0;
            }
        }
        if !group.is_empty() {
            self.pool.inner.submit(&job, group)?;
        }
        Ok(AsyncResult::new(job, decode_all::<R>))
    }

    /// An `imap` of `entry` over `items` with this call's options.
    fn lazy<I, T, R>(self, entry: i64, items: I, ordered: bool) -> IMap<'p, I, R>
    where
        I: Iterator<Item = T>,
        T: Serialize + 'static,
        R: DeserializeOwned + 'static,
    {
        IMap::new(
            PoolRef::Borrowed(self.pool),
            items,
            entry,
            self.chunksize.unwrap_or(1),
            self.buffersize.unwrap_or(2 * self.pool.processes()),
            ordered,
        )
    }

    /// See [`Pool::imap`].
    pub fn imap<F, T, R, I>(self, f: F, items: I) -> IMap<'p, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        self.lazy(task::entry_offset::<F, (T,)>(), items.into_iter(), true)
    }

    /// See [`Pool::imap_unordered`].
    pub fn imap_unordered<F, T, R, I>(self, f: F, items: I) -> IMap<'p, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        self.lazy(task::entry_offset::<F, (T,)>(), items.into_iter(), false)
    }
}

/// A parsed frame from the result queue.
enum Msg {
    Result {
        slot: u32,
        id: u64,
        status: u8,
        body: Vec<u8>,
        fds: Vec<OwnedFd>,
    },
    Died {
        slot: u32,
        generation: u32,
    },
    InitFailed {
        message: String,
    },
    Ready {
        slot: u32,
    },
    Wake,
}

impl Msg {
    fn parse(bytes: &[u8], fds: Vec<OwnedFd>) -> Msg {
        match bytes.first() {
            Some(&task::RESULT) if bytes.len() >= task::RESULT_HEADER => Msg::Result {
                slot: task::get_u32(bytes, 1).unwrap_or(u32::MAX),
                id: task::get_u64(bytes, 5).unwrap_or(u64::MAX),
                status: bytes[task::STATUS_AT],
                body: bytes[task::RESULT_HEADER..].to_vec(),
                fds,
            },
            Some(&task::DIED) => Msg::Died {
                slot: task::get_u32(bytes, 1).unwrap_or(u32::MAX),
                generation: task::get_u32(bytes, 5).unwrap_or(u32::MAX),
            },
            Some(&task::READY) => Msg::Ready {
                slot: task::get_u32(bytes, 1).unwrap_or(u32::MAX),
            },
            Some(&task::INIT_FAILED) => Msg::InitFailed {
                message: String::from_utf8_lossy(bytes.get(5..).unwrap_or_default()).into_owned(),
            },
            _ => Msg::Wake,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queues chunks of a job and hands out what workers have room for, on this thread.
    pub(crate) fn submit(&self, job: &Arc<Job>, chunks: Vec<Prepared>) -> Result<(), PoolError> {
        let mut st = self.lock();
        if st.status != Status::Running {
            return Err(PoolError::NotRunning);
        }
        if let Some(error) = &st.broken {
            return Err(error.duplicate());
        }
        for mut chunk in chunks {
            let id = st.next_id;
            st.next_id += 1;
            chunk.frame[1..9].copy_from_slice(&id.to_le_bytes());
            st.tasks.insert(
                id,
                Task {
                    job: Arc::clone(job),
                    chunk: chunk.chunk,
                    index: chunk.index,
                    len: chunk.len,
                    frame: chunk.frame,
                    fds: chunk.fds,
                    sent: None,
                },
            );
            st.pending.push_back(id);
        }
        let callbacks = self.dispatch(&mut st);
        drop(st);
        run(callbacks);
        Ok(())
    }

    /// Forgets the chunks of `job` that are not in a worker's queue yet: an `imap` dropped
    /// before its end. The chunks that workers already hold still run, and their results are
    /// dropped.
    pub(crate) fn cancel_pending(&self, job: &Arc<Job>) {
        let mut st = self.lock();
        let State { pending, tasks, .. } = &mut *st;
        pending.retain(|id| match tasks.get(id) {
            Some(task) if Arc::ptr_eq(&task.job, job) => {
                tasks.remove(id);
                false
            }
            _ => true,
        });
        self.stop_idle_workers(&mut st);
    }

    /// Sends pending chunks to the workers with room, the least loaded first.
    fn dispatch(&self, st: &mut State) -> Vec<Deferred> {
        let mut callbacks = Vec::new();
        let depth = st.depth();
        while let Some(&id) = st.pending.front() {
            let best = st
                .workers
                .iter()
                .enumerate()
                .filter_map(|(slot, w)| Some((slot, w.as_ref()?)))
                .filter(|(_, w)| !w.stopping && w.outstanding.len() < depth && w.budget != Some(0))
                .min_by_key(|(_, w)| w.outstanding.len())
                .map(|(slot, _)| slot);
            let Some(slot) = best else { break };
            st.pending.pop_front();
            let Some(task) = st.tasks.get_mut(&id) else {
                continue;
            };
            let Some(worker) = st.workers[slot].as_mut() else {
                continue;
            };
            task.sent = Some(Instant::now());
            let fds: Vec<BorrowedFd<'_>> = task.fds.iter().map(AsFd::as_fd).collect();
            match worker.tasks.put_bytes(&task.frame, &fds) {
                Ok(()) => {
                    worker.outstanding.push_back(id);
                    if let Some(budget) = worker.budget.as_mut() {
                        *budget -= 1;
                    }
                }
                Err(e) => {
                    if let Some(task) = st.tasks.remove(&id) {
                        callbacks.extend(task.job.finish(
                            task.chunk,
                            Err(PoolError::Io(std::io::Error::other(e.to_string()))),
                        ));
                    }
                }
            }
        }
        callbacks
    }

    fn start_worker(&self, st: &mut State, slot: usize) -> Result<(), PoolError> {
        let tasks = Queue::<()>::new()?;
        let init = match &self.config.init {
            Some(init) => Some(init.try_clone()?),
            None => None,
        };
        let args = WorkerArgs {
            slot: slot as u32,
            tasks: tasks.clone(),
            results: self.results.clone(),
            init,
            maxtasks: self.config.maxtasks,
        };
        st.started += 1;
        let process = match &*lock(&self.fork_helper) {
            Some(helper) => helper.process(worker::worker_main, (args,)),
            None => self.config.ctx.process(worker::worker_main, (args,)),
        };
        let mut process = process
            .with_name(format!("{}-{}", self.config.prefix, st.started))
            .with_daemon(true);
        process.start()?;
        let pid = process.pid().unwrap_or(0);
        let sentinel = process.sentinel()?.try_clone_to_owned()?;
        st.generation = st.generation.wrapping_add(1);
        let generation = st.generation;
        {
            let monitor = lock(&self.monitor);
            let _ = monitor.0.send(Watch::Add {
                slot: slot as u32,
                generation,
                sentinel,
            });
            let _ = (&monitor.1).write_all(&[1]);
        }
        st.workers[slot] = Some(Worker {
            process,
            pid,
            generation,
            tasks,
            outstanding: VecDeque::new(),
            budget: self.config.maxtasks,
            stopping: false,
            last_result: Instant::now(),
        });
        Ok(())
    }

    /// After `close`, tells the workers to exit once no chunk is left.
    fn stop_idle_workers(&self, st: &mut State) {
        if st.status != Status::Closed || !st.tasks.is_empty() {
            return;
        }
        for worker in st.workers.iter_mut().flatten() {
            if !worker.stopping {
                worker.stopping = true;
                let _ = worker.tasks.put_bytes(&[task::STOP], &[]);
            }
        }
    }

    fn wake_handler(&self) {
        let _ = self.results.put_bytes(&[task::WAKE], &[]);
    }

    /// Kills the workers and fails every unfinished chunk (terminate, drop, Ctrl-C).
    pub(crate) fn terminate_all(&self) {
        let mut st = self.lock();
        if st.status == Status::Terminated {
            return;
        }
        st.status = Status::Terminated;
        st.pending.clear();
        let mut callbacks = Vec::new();
        for (_, task) in st.tasks.drain() {
            callbacks.extend(task.job.finish(task.chunk, Err(PoolError::Terminated)));
        }
        for worker in st.workers.iter_mut().flatten() {
            worker.stopping = true;
            worker.outstanding.clear();
            let _ = worker.process.kill();
        }
        drop(st);
        self.wake_handler();
        run(callbacks);
    }

    /// The handler thread: results, deaths, replacements, until the pool is shut down and
    /// every worker has exited.
    fn handle_results(&self) {
        let mut msgs = Vec::with_capacity(BATCH);
        loop {
            crate::result::spin_for(POLL, || self.results.qsize() > 0);
            match self.results.get_bytes(None, Msg::parse) {
                Ok(msg) => msgs.push(msg),
                // The queue is broken: nothing more can arrive. Fail what is left.
                Err(_) => {
                    self.terminate_all();
                    break;
                }
            }
            // Whatever else has arrived, under one lock.
            while msgs.len() < BATCH && self.results.qsize() > 0 {
                match self.results.get_bytes(Some(Duration::ZERO), Msg::parse) {
                    Ok(msg) => msgs.push(msg),
                    Err(_) => break,
                }
            }
            let mut st = self.lock();
            let mut callbacks = Vec::new();
            for msg in msgs.drain(..) {
                callbacks.extend(match msg {
                    Msg::Result {
                        slot,
                        id,
                        status,
                        body,
                        fds,
                    } => self.on_result(&mut st, slot, id, status, body, fds),
                    Msg::Died { slot, generation } => self.on_died(&mut st, slot, generation),
                    Msg::InitFailed { message } => {
                        self.on_broken(&mut st, PoolError::Initializer { message })
                    }
                    Msg::Ready { slot } => {
                        self.on_ready(&mut st, slot);
                        Vec::new()
                    }
                    Msg::Wake => Vec::new(),
                });
            }
            callbacks.extend(self.dispatch(&mut st));
            self.stop_idle_workers(&mut st);
            let finished = st.status != Status::Running && st.workers.iter().all(Option::is_none);
            drop(st);
            run(callbacks);
            if finished {
                break;
            }
        }
        let monitor = lock(&self.monitor);
        let _ = monitor.0.send(Watch::Stop);
        let _ = (&monitor.1).write_all(&[1]);
    }

    fn on_result(
        &self,
        st: &mut State,
        slot: u32,
        id: u64,
        status: u8,
        body: Vec<u8>,
        fds: Vec<OwnedFd>,
    ) -> Vec<Deferred> {
        st.early_deaths = 0;
        // A chunk failed by `terminate` has no task any more.
        let Some(task) = st.tasks.remove(&id) else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut took = None;
        if let Some(Some(worker)) = st.workers.get_mut(slot as usize) {
            if let Some(at) = worker.outstanding.iter().position(|&o| o == id) {
                worker.outstanding.remove(at);
            }
            // It started when it was sent, or when the worker finished the chunk before it.
            if let Some(sent) = task.sent {
                took = Some(now.saturating_duration_since(sent.max(worker.last_result)));
            }
            worker.last_result = now;
        }
        if let Some(took) = took {
            st.chunk_time = Some(match st.chunk_time {
                None => took,
                Some(avg) => (avg * 7 + took) / 8,
            });
        }
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let result = match status {
            task::OK => Ok(Part { bytes: body, fds }),
            task::PANICKED => {
                let offset = task::get_u64(&body, 0).unwrap_or(0) as usize;
                Err(PoolError::Panicked {
                    index: task.index + offset,
                    message: text(body.get(8..).unwrap_or_default()),
                })
            }
            task::ENCODE_FAILED => Err(PoolError::Encode(text(&body))),
            _ => Err(PoolError::Decode(text(&body))),
        };
        task.job.finish(task.chunk, result)
    }

    fn on_died(&self, st: &mut State, slot: u32, generation: u32) -> Vec<Deferred> {
        let slot = slot as usize;
        let Some(entry) = st.workers.get_mut(slot) else {
            return Vec::new();
        };
        if entry.as_ref().is_none_or(|w| w.generation != generation) {
            return Vec::new();
        }
        let Some(mut worker) = entry.take() else {
            return Vec::new();
        };
        let _ = worker.process.join();
        let exitcode = worker.process.exitcode().ok().flatten().unwrap_or(-1);
        let mut callbacks = Vec::new();
        // Frames still in its queue were never taken: they go to another worker. If it had
        // taken more than it answered, the first unanswered one was running when it died.
        let untaken = worker.tasks.qsize().min(worker.outstanding.len());
        let taken = worker.outstanding.len() - untaken;
        let mut outstanding = worker.outstanding;
        if taken > 0 {
            if let Some(id) = outstanding.pop_front() {
                if let Some(task) = st.tasks.remove(&id) {
                    callbacks.extend(task.job.finish(
                        task.chunk,
                        Err(PoolError::WorkerDied {
                            index: task.index,
                            len: task.len,
                            pid: worker.pid,
                            exitcode,
                        }),
                    ));
                }
            }
        }
        for id in outstanding.into_iter().rev() {
            st.pending.push_front(id);
        }
        // Only a worker that died before it was up, or that was up with work queued for it and
        // took none of it, counts towards the guard: one killed while idle (by an operator, by
        // the OOM killer) is replaced however often it happens. The count resets on a result
        // only, so that workers that always die right after `READY` still trip it.
        let was_ready = st.ready.remove(&generation);
        if !was_ready || (taken == 0 && untaken > 0) {
            st.early_deaths += 1;
            // Workers that die as they start (a crash in the initializer, say) would be
            // replaced forever, as Python's are: give up instead.
            if st.early_deaths > 2 * self.config.processes + 2 {
                let (count, how) = (st.early_deaths, how_it_ended(exitcode));
                let error = if self.config.init.is_some() && !was_ready {
                    PoolError::Initializer {
                        message: format!(
                            "died before it returned, in {count} workers in a row (the last \
                             {how})"
                        ),
                    }
                } else {
                    PoolError::StartFailed {
                        message: format!(
                            "{count} workers in a row died before they took a task (the \
                             last {how})"
                        ),
                    }
                };
                callbacks.extend(self.on_broken(st, error));
            }
        }
        let needed = match st.status {
            Status::Running => true,
            Status::Closed => !st.tasks.is_empty(),
            Status::Terminated => false,
        };
        if needed && st.broken.is_none() {
            if let Err(e) = self.start_worker(st, slot) {
                // No worker can be started: fail what waits, rather than wait forever.
                if st.workers.iter().all(Option::is_none) {
                    let message = e.to_string();
                    callbacks.extend(fail_all(st, || {
                        PoolError::Io(std::io::Error::other(message.clone()))
                    }));
                }
            }
        }
        callbacks
    }

    /// A worker is up.
    fn on_ready(&self, st: &mut State, slot: u32) {
        // Its `READY` comes before the monitor's `DIED` for it, so the slot still holds it.
        if let Some(Some(worker)) = st.workers.get(slot as usize) {
            st.ready.insert(worker.generation);
        }
    }

    /// No worker can take tasks: every waiting and every later task fails with `error`.
    fn on_broken(&self, st: &mut State, error: PoolError) -> Vec<Deferred> {
        let callbacks = fail_all(st, || error.duplicate());
        st.broken = Some(error);
        callbacks
    }
}

/// How a worker ended, for messages: "killed by SIGKILL (exit code -9)".
fn how_it_ended(exitcode: i32) -> String {
    match (exitcode < 0).then(|| signal_name(-exitcode)) {
        Some(Some(name)) => format!("was killed by {name}, exit code {exitcode}"),
        Some(None) => format!("was killed by signal {}, exit code {exitcode}", -exitcode),
        None => format!("exited with code {exitcode}"),
    }
}

fn fail_all(st: &mut State, error: impl Fn() -> PoolError) -> Vec<Deferred> {
    st.pending.clear();
    for worker in st.workers.iter_mut().flatten() {
        worker.outstanding.clear();
    }
    let mut callbacks = Vec::new();
    for (_, task) in st.tasks.drain() {
        callbacks.extend(task.job.finish(task.chunk, Err(error())));
    }
    callbacks
}

/// The monitor thread: waits on the workers' sentinels and reports each death on the result
/// queue, after the results the worker sent before it died.
fn monitor_loop(results: Queue<()>, watches: mpsc::Receiver<Watch>, mut wake: UnixStream) {
    let mut watched: Vec<(u32, u32, OwnedFd)> = Vec::new();
    loop {
        loop {
            match watches.try_recv() {
                Ok(Watch::Add {
                    slot,
                    generation,
                    sentinel,
                }) => watched.push((slot, generation, sentinel)),
                Ok(Watch::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        let mut objects: Vec<BorrowedFd<'_>> = vec![wake.as_fd()];
        objects.extend(watched.iter().map(|(_, _, fd)| fd.as_fd()));
        let refs: Vec<&dyn mp_ipc::Waitable> = objects
            .iter()
            .map(|fd| fd as &dyn mp_ipc::Waitable)
            .collect();
        let ready = match mp_ipc::wait(&refs, None) {
            Ok(ready) => ready,
            Err(_) => return,
        };
        let mut dead = Vec::new();
        for index in ready {
            if index == 0 {
                let mut buf = [0u8; 64];
                let _ = wake.read(&mut buf);
            } else {
                dead.push(index - 1);
            }
        }
        dead.sort_unstable();
        for index in dead.into_iter().rev() {
            let (slot, generation, _) = watched.remove(index);
            let mut frame = vec![task::DIED];
            task::put_u32(&mut frame, slot);
            task::put_u32(&mut frame, generation);
            if results.put_bytes(&frame, &[]).is_err() {
                return;
            }
        }
    }
}

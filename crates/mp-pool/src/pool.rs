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
//!
//! Where things are: the bookkeeping (which chunk is where, what a death means) is the
//! `scheduler`, the threads are in `monitor`, the
//! frames in `wire`; this module starts and reaps the processes and holds the
//! public API.

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use mp_ipc::Queue;
use mp_spawn::reduction::Fd;
use mp_spawn::{Portable, Process, StartMethod, Target};

use crate::builder::{Config, PoolBuilder};
use crate::error::PoolError;
use crate::interrupt;
use crate::monitor::{self, Monitor};
use crate::progress::{Board, Rows};
use crate::result::{AsyncResult, Deferred, Job, decode_one};
use crate::scheduler::{self, Scheduler, Status, Worker};
use crate::submit::Submit;
use crate::task;
use crate::wire::{self, Msg, Prepared};
use crate::worker::{self, WorkerArgs};

impl PoolBuilder {
    /// Starts the workers.
    pub fn build(self) -> Result<Pool, PoolError> {
        Pool::start(self.config()?)
    }
}

/// A worker's process and task queue: what the scheduler reaches it through.
pub(crate) struct Handle {
    process: Process<()>,
    tasks: Queue<()>,
}

impl scheduler::Port for Handle {
    type Error = mp_ipc::PutError;

    fn send(&self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Self::Error> {
        self.tasks.put_bytes(frame, fds)
    }

    fn queued(&self) -> usize {
        self.tasks.qsize()
    }
}

type State = Scheduler<Handle>;

pub(crate) struct Inner {
    state: Mutex<State>,
    /// Notified (under `state`) when a worker reports that it is up.
    ready: Condvar,
    results: Queue<()>,
    config: Config,
    /// Tells the monitor thread about new workers.
    monitor: Mutex<Monitor>,
    /// Under the fork method, forks every worker (see `mp_spawn::ForkServer`); dropped once
    /// the workers are gone.
    fork_helper: Mutex<Option<mp_spawn::ForkServer>>,
    /// The per-item progress counters of watched calls, the descriptor the workers map, and
    /// which rows are taken (see `progress`).
    board: (Board, OwnedFd),
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    rows: Rows,
}

/// The pids of the live workers that reported `READY`.
fn ready_pids(st: &State) -> Vec<u32> {
    st.workers
        .iter()
        .flatten()
        .filter(|w| st.is_ready(w.generation))
        .map(|w| w.pid)
        .collect()
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
/// A task is a fn item, a fn pointer or a non-capturing closure, so that every worker,
/// whatever its start method, can find it; state travels in the arguments, which are serde
/// types (handles such as a `Queue` or a `Lock` included). A capturing closure does not
/// compile (one that captures a single pointer-sized value compiles, and the call returns
/// [`PoolError::InvalidArgument`]):
///
/// ```compile_fail
/// let pool = mp_pool::Pool::new(1).unwrap();
/// let (scale, offset) = (2u64, 10u64);
/// pool.map(move |x: u64| x * scale + offset, [1, 2, 3]).unwrap();
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
            .field("pending", &st.pending_len())
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
        let (monitor, monitor_thread) = Monitor::start(results.clone())?;
        let processes = config.processes;
        let inner = Arc::new(Inner {
            state: Mutex::new(Scheduler::new(processes, config.init.is_some())),
            ready: Condvar::new(),
            results,
            config,
            monitor: Mutex::new(monitor),
            fork_helper: Mutex::new(fork_helper),
            board: Board::new(processes)?,
            rows: Rows::default(),
        });
        let pool = Pool {
            inner: Arc::clone(&inner),
            threads: Mutex::new(vec![monitor_thread]),
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

    /// The pid of the process that forks the workers of a fork-method pool (for tests; feature
    /// `unstable-test-hooks`).
    #[cfg(feature = "unstable-test-hooks")]
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
        ready_pids(&lock(&self.inner.state))
    }

    /// Waits until `until(ready_pids)` holds, woken by each worker that comes up (not by a
    /// clock); `None` if `timeout` passes first. For a program that wants its workers warm
    /// before the first task, or that acts on workers once they are up.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = mp_pool::Pool::new(2)?;
    /// let up = pool.wait_ready_pids(Duration::from_secs(60), |up| up.len() == 2);
    /// assert_eq!(up.map(|pids| pids.len()), Some(2));
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn wait_ready_pids(
        &self,
        timeout: std::time::Duration,
        mut until: impl FnMut(&[u32]) -> bool,
    ) -> Option<Vec<u32>> {
        let deadline = mp_sys::deadline::after(timeout);
        let mut st = lock(&self.inner.state);
        loop {
            let up = ready_pids(&st);
            if until(&up) {
                return Some(up);
            }
            st = match deadline {
                None => self.inner.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(std::time::Instant::now())?;
                    self.inner
                        .ready
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
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

    /// Options for the next call: a progress bar (feature `progress`; see
    /// [`Submit::progress`]).
    #[cfg(feature = "progress")]
    pub fn progress(&self, on: bool) -> Submit<'_> {
        Submit::new(self).progress(on)
    }

    /// Calls `f(args...)` in a worker and waits for its value (Python's `apply`).
    pub fn apply<F, A>(&self, f: F, args: A) -> Result<F::Output, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        self.apply_async(f, args)?.get()
    }

    /// Calls `f(args...)` in a worker; the value comes through the returned [`AsyncResult`]
    /// (Python's `apply_async`). Attach callbacks with [`AsyncResult::callback`] and
    /// [`AsyncResult::error_callback`].
    ///
    /// A closure that captures state does not build (a worker could not recreate it):
    ///
    /// ```compile_fail
    /// let pool = mp_pool::Pool::new(1).unwrap();
    /// let (scale, shift) = (3u64, 1u64);
    /// let _ = pool.apply_async(move |i: u64| i * scale + shift, (0,));
    /// ```
    pub fn apply_async<F, A>(&self, f: F, args: A) -> Result<AsyncResult<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        let task = task::task_fn::<F, A>(&f).map_err(PoolError::InvalidArgument)?;
        let chunk = Prepared::encode(task, 0, 0, std::slice::from_ref(&args))?;
        let job = Job::new(Some(1));
        self.inner.submit(&job, vec![chunk])?;
        Ok(AsyncResult::new(job, decode_one::<F::Output>))
    }

    /// Applies `f` to every item, in parallel, and returns the values in input order (Python's
    /// `map`). The input is split into chunks of `ceil(n / (4 × workers))` items, as Python
    /// does; choose another size with [`chunksize`](Pool::chunksize).
    ///
    /// A closure that captures state does not build (a worker could not recreate it):
    ///
    /// ```compile_fail
    /// let pool = mp_pool::Pool::new(1).unwrap();
    /// let (scale, shift) = (3u64, 1u64);
    /// let _ = pool.map(move |i: u64| i * scale + shift, 0..3);
    /// ```
    pub fn map<F, T, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
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
        T: Portable,
        R: Portable,
    {
        Submit::new(self).map_async(f, items)
    }

    /// Calls `f(a, b, ...)` for every tuple `(a, b, ...)` (Python's `starmap`).
    ///
    /// A closure that captures state does not build (a worker could not recreate it):
    ///
    /// ```compile_fail
    /// let pool = mp_pool::Pool::new(1).unwrap();
    /// let (scale, shift) = (3u64, 1u64);
    /// let _ = pool.starmap(move |i: u64, j: u64| i * scale + j + shift, [(0, 1)]);
    /// ```
    pub fn starmap<F, A>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
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
        A: Portable,
        F::Output: Portable,
    {
        Submit::new(self).starmap_async(f, items)
    }

    /// Takes no more tasks; the workers exit once the submitted ones are done.
    pub fn close(&self) {
        let closed = self.inner.lock().close();
        if closed {
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

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queues chunks of a job and hands out what workers have room for, on this thread.
    pub(crate) fn submit(
        &self,
        job: &Arc<Job>,
        mut chunks: Vec<Prepared>,
    ) -> Result<(), PoolError> {
        if let Some(tally) = job.tally() {
            chunks.iter_mut().for_each(|c| c.set_tally(tally.0));
        }
        let mut st = self.lock();
        let callbacks = st.submit(job, chunks)?;
        drop(st);
        run(callbacks);
        Ok(())
    }

    /// Forgets the chunks of `job` that are not in a worker's queue yet: an `imap` dropped
    /// before its end. The chunks that workers already hold still run, and their results are
    /// dropped.
    pub(crate) fn cancel_pending(&self, job: &Arc<Job>) {
        self.lock().cancel_pending(job);
    }

    /// Fails every chunk no worker has taken yet with `PoolError::Cancelled`.
    /// The progress counters (see `progress`).
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn board(&self) -> &Board {
        &self.board.0
    }

    /// The rows of the progress counters.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn rows(&self) -> &Rows {
        &self.rows
    }

    /// Fails every chunk no worker has taken yet with `PoolError::Cancelled`.
    pub(crate) fn cancel_all_pending(&self) {
        let callbacks = self.lock().cancel_all_pending();
        run(callbacks);
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
            board: Fd::new(self.board.1.try_clone()?),
            slots: self.config.processes as u32,
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
        let generation = st.next_generation();
        lock(&self.monitor).add(slot as u32, generation, sentinel);
        st.workers[slot] = Some(Worker::new(
            Handle { process, tasks },
            pid,
            generation,
            self.config.maxtasks,
        ));
        Ok(())
    }

    fn wake_handler(&self) {
        let _ = self.results.put_bytes(&wire::WAKE, &[]);
    }

    /// Kills the workers and fails every unfinished chunk (terminate, drop, Ctrl-C).
    pub(crate) fn terminate_all(&self) {
        self.stop_all(true);
    }

    /// Fails every unfinished chunk and stops the workers: SIGKILL, or SIGTERM (`kill` false).
    pub(crate) fn stop_all(&self, kill: bool) {
        let mut st = self.lock();
        let Some(callbacks) = st.terminate() else {
            return;
        };
        for worker in st.workers.iter_mut().flatten() {
            let _ = if kill {
                worker.port.process.kill()
            } else {
                worker.port.process.terminate()
            };
        }
        drop(st);
        self.wake_handler();
        run(callbacks);
    }

    /// The handler thread: results, deaths, replacements, until the pool is shut down and
    /// every worker has exited.
    fn handle_results(&self) {
        monitor::handle_results(
            &self.results,
            |msgs| self.on_batch(msgs),
            || self.terminate_all(),
        );
        lock(&self.monitor).stop();
    }

    /// Takes in what the handler read, under one lock; whether the pool is finished.
    fn on_batch(&self, msgs: &mut Vec<Msg>) -> bool {
        let mut st = self.lock();
        let mut callbacks = Vec::new();
        for msg in msgs.drain(..) {
            callbacks.extend(match msg {
                Msg::Result {
                    slot,
                    id,
                    outcome,
                    body,
                    fds,
                } => st.on_result(slot, id, outcome, body, fds),
                Msg::Died { slot, generation } => self.on_died(&mut st, slot, generation),
                Msg::InitFailed { message } => st.on_broken(PoolError::Initializer { message }),
                Msg::Ready { slot } => {
                    st.on_ready(slot);
                    self.ready.notify_all();
                    Vec::new()
                }
                Msg::Wake => Vec::new(),
            });
        }
        callbacks.extend(st.dispatch());
        st.stop_idle_workers();
        let finished = st.finished();
        drop(st);
        run(callbacks);
        finished
    }

    /// The monitor saw a worker die: reap it, let the scheduler account for it, replace it.
    fn on_died(&self, st: &mut State, slot: u32, generation: u32) -> Vec<Deferred> {
        let slot = slot as usize;
        let Some(mut worker) = st.take_dead(slot, generation) else {
            return Vec::new();
        };
        let _ = worker.port.process.join();
        let exitcode = worker.port.process.exitcode().ok().flatten().unwrap_or(-1);
        let mut callbacks = st.on_died(worker, exitcode);
        if st.needs_replacement() {
            if let Err(e) = self.start_worker(st, slot) {
                // No worker can be started: fail what waits, rather than wait forever.
                if st.workers.iter().all(Option::is_none) {
                    let message = e.to_string();
                    callbacks.extend(
                        st.fail_all(|| PoolError::Io(std::io::Error::other(message.clone()))),
                    );
                }
            }
        }
        callbacks
    }
}

impl interrupt::Terminate for Inner {
    fn terminate(&self) {
        self.terminate_all();
    }
}

//! [`Pool`]: the public face of a pool (CPython's `multiprocessing.pool.Pool`, without its
//! hangs). Each call is one [`Submit`] (the call's options, plain values) consumed by
//! `submit`, which cuts the input into chunks for the engine (`core`); the engine's scheduler
//! hands them to the workers. The path of one call, file by file, is in the crate's README.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use mp_spawn::{Portable, Target};

use crate::builder::PoolBuilder;
use crate::core::Inner;
use crate::error::PoolError;
use crate::imap::IMap;
use crate::result::AsyncResult;
use crate::submit::Submit;
use crate::transport::Transport;

impl PoolBuilder {
    /// Starts the workers.
    pub fn build(self) -> Result<Pool, PoolError> {
        let (inner, threads) = Inner::start_local(self.config()?)?;
        Ok(Pool::from_parts(inner, threads))
    }

    /// A pool whose workers are `transport`'s (remote workers: the ranks of an MPI job, see
    /// the [`transport`](crate::transport) module), with this builder's call options
    /// ([`task_timeout`](PoolBuilder::task_timeout), [`max_result_bytes`](PoolBuilder::max_result_bytes)).
    /// The settings of local processes (`processes`, `initializer`, `maxtasksperchild`,
    /// `context`) are the transport's business: setting one is
    /// [`PoolError::InvalidArgument`].
    pub fn build_with(self, transport: Arc<dyn Transport>) -> Result<Pool, PoolError> {
        let config = self.remote_config(transport.workers())?;
        let (inner, threads) = Inner::start_remote(config, transport)?;
        Ok(Pool::from_parts(inner, threads))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let (status, pending) = self.inner.status();
        f.debug_struct("Pool")
            .field("processes", &self.inner.processes())
            .field("state", &status)
            .field("pending", &pending)
            .finish()
    }
}

impl Pool {
    fn from_parts(inner: Arc<Inner>, threads: Vec<JoinHandle<()>>) -> Pool {
        Pool {
            inner,
            threads: Mutex::new(threads),
            joined: AtomicBool::new(false),
        }
    }

    /// A pool of `processes` workers with the default start method.
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        Pool::builder().processes(processes).build()
    }

    /// Settings beyond the number of workers.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        self.inner.processes()
    }

    /// The pid of the process that forks the workers of a fork-method pool (for tests; feature
    /// `unstable-test-hooks`).
    #[cfg(feature = "unstable-test-hooks")]
    #[doc(hidden)]
    pub fn fork_helper_pid(&self) -> Option<u32> {
        self.inner.fork_helper_pid()
    }

    /// The pids of the live workers (they change as workers are replaced). A pool over a
    /// [`Transport`] has no local worker: none.
    pub fn pids(&self) -> Vec<u32> {
        self.inner.pids()
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
        self.inner.ready_pids()
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
        until: impl FnMut(&[u32]) -> bool,
    ) -> Option<Vec<u32>> {
        self.inner
            .wait_ready_pids(mp_sys::deadline::after(timeout), until)
    }

    /// The options of the next call, to set with [`Submit`]'s methods, then call: the same
    /// as [`chunksize`](Pool::chunksize) and the others, starting from the defaults.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// let pool = mp_pool::Pool::new(2)?;
    /// assert_eq!(pool.call().map(square, [3])?, [9]);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn call(&self) -> Submit<'_> {
        Submit::new(&self.inner)
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
        self.call().chunksize(chunksize)
    }

    /// Options for the next call: how many chunks an `imap` keeps in flight ahead of the
    /// caller (default: twice the number of workers; Python 3.15's `buffersize`).
    pub fn buffersize(&self, chunks: usize) -> Submit<'_> {
        self.call().buffersize(chunks)
    }

    /// Options for the next call: how long one task (chunk) may run (see
    /// [`Submit::timeout`]).
    pub fn timeout(&self, timeout: std::time::Duration) -> Submit<'_> {
        self.call().timeout(timeout)
    }

    /// Options for the next call: the largest encoded result of one task (see
    /// [`Submit::max_result_bytes`]).
    pub fn max_result_bytes(&self, bytes: usize) -> Submit<'_> {
        self.call().max_result_bytes(bytes)
    }

    /// Options for the next call: how many more times a task whose worker ended under it runs
    /// (see [`Submit::retries`]).
    pub fn retries(&self, retries: u32) -> Submit<'_> {
        self.call().retries(retries)
    }

    /// Options for the next call: its retry policy (see [`Submit::retry`]).
    pub fn retry(&self, retry: crate::Retry) -> Submit<'_> {
        self.call().retry(retry)
    }

    /// Options for the next call: an `imap` dropped early cancels what runs (see
    /// [`Submit::cancel_on_drop`]).
    pub fn cancel_on_drop(&self, on: bool) -> Submit<'_> {
        self.call().cancel_on_drop(on)
    }

    /// Options for the next call: a progress bar (feature `progress`; see
    /// [`Submit::progress`]).
    #[cfg(feature = "progress")]
    pub fn progress(&self, on: bool) -> Submit<'_> {
        self.call().progress(on)
    }

    /// Without the `progress` feature: does not build, and the error names the feature.
    #[cfg(not(feature = "progress"))]
    pub fn progress<'a>(&'a self, on: bool) -> Submit<'a>
    where
        Submit<'a>: crate::feature::Progress,
    {
        self.call().progress(on)
    }

    /// Calls `f(args...)` in a worker and waits for its value (Python's `apply`).
    pub fn apply<F, A>(&self, f: F, args: A) -> Result<F::Output, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        self.call().apply(f, args)
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
        self.call().apply_async(f, args)
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
        self.call().map(f, items)
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
        self.call().map_async(f, items)
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
        self.call().starmap(f, items)
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
        self.call().starmap_async(f, items)
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
    ///
    /// A closure that captures state does not build (a worker could not recreate it):
    ///
    /// ```compile_fail
    /// let pool = mp_pool::Pool::new(1).unwrap();
    /// let (scale, shift) = (3u64, 1u64);
    /// let _ = pool.imap(move |i: u64| i * scale + shift, 0..3).count();
    /// ```
    pub fn imap<F, T, R, I>(&self, f: F, items: I) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        self.call().imap(f, items)
    }

    /// As [`imap`](Pool::imap), yielding values in the order they finish (Python's
    /// `imap_unordered`).
    ///
    /// A closure that captures state does not build (a worker could not recreate it):
    ///
    /// ```compile_fail
    /// let pool = mp_pool::Pool::new(1).unwrap();
    /// let (scale, shift) = (3u64, 1u64);
    /// let _ = pool.imap_unordered(move |i: u64| i * scale + shift, 0..3).count();
    /// ```
    pub fn imap_unordered<F, T, R, I>(&self, f: F, items: I) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        self.call().imap_unordered(f, items)
    }

    /// Takes no more tasks; the workers exit once the submitted ones are done.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Kills the workers now; unfinished tasks fail with [`PoolError::Terminated`].
    pub fn terminate(&self) {
        self.inner.terminate_all();
    }

    /// Waits for the workers to exit, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate); [`PoolError::StillRunning`] before.
    pub fn join(&self) -> Result<(), PoolError> {
        if self.inner.running() {
            return Err(PoolError::StillRunning);
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
        if !self.joined.swap(true, Ordering::AcqRel) {
            self.inner.release();
        }
        Ok(())
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl<T> AsyncResult<T> {
    /// How many items of the call the workers have finished so far, counted per item, if
    /// the call shows its progress ([`Submit::progress`]; feature `progress`): for a user's
    /// own display. (Remote workers count whole chunks, as their answers arrive.)
    #[cfg(feature = "progress")]
    pub fn progress(&self, pool: &Pool) -> Option<u64> {
        crate::progress_bar::count(pool.inner(), self.job())
    }

    /// Without the `progress` feature: does not build, and the error names the feature.
    #[cfg(not(feature = "progress"))]
    pub fn progress<'a>(&'a self, _pool: &Pool) -> Option<u64>
    where
        &'a Self: crate::feature::Progress,
    {
        None
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

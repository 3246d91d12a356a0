//! `Submit`: the options of one call (`pool.chunksize(n)`, `buffersize`, `timeout`,
//! `max_result_bytes`, `progress`), plain values, and the one place that consumes them: how
//! an input is cut into chunks and handed to the engine (`apply`, `map`, `starmap` and their
//! `_async` forms, and the lazy `imap`s).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mp_spawn::{Portable, Target};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::Inner;
use crate::error::PoolError;
use crate::imap::{IMap, PoolRef};
use crate::result::{AsyncResult, Job, decode_all, decode_one};
use crate::retry::Retry;
use crate::task;
use crate::wire::{Limits, Prepared, TaskFn};

/// The options of one call: `pool.chunksize(n)`, `pool.buffersize(n)`, `pool.timeout(d)`...,
/// then the call. Every pool is called this way, whatever its workers (local processes, or
/// an MPI job's ranks).
///
/// ```
/// # fn square(x: u64) -> u64 { x * x }
/// use std::time::Duration;
///
/// let pool = mp_pool::Pool::new(2)?;
/// let squares = pool
///     .chunksize(10)
///     .timeout(Duration::from_secs(600))
///     .max_result_bytes(1 << 20)
///     .map(square, 0..100)?;
/// assert_eq!(squares[9], 81);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Submit<'p> {
    pool: &'p Arc<Inner>,
    chunksize: Option<usize>,
    buffersize: Option<usize>,
    timeout: Option<Duration>,
    max_result_bytes: Option<usize>,
    retry: Option<Retry>,
    cancel_on_drop: bool,
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    progress: bool,
}

impl fmt::Debug for Submit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submit")
            .field("chunksize", &self.chunksize)
            .field("buffersize", &self.buffersize)
            .field("timeout", &self.timeout)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("retry", &self.retry)
            .field("cancel_on_drop", &self.cancel_on_drop)
            .field("progress", &self.progress)
            .finish()
    }
}

impl<'p> Submit<'p> {
    pub(crate) fn new(pool: &'p Arc<Inner>) -> Self {
        Submit {
            pool,
            chunksize: None,
            buffersize: None,
            timeout: None,
            max_result_bytes: None,
            retry: None,
            cancel_on_drop: false,
            progress: false,
        }
    }

    /// Shows a progress bar on stderr while the call runs (feature `progress`; tqdm's
    /// `process_map`): items finished out of the total, with the rate and the time left,
    /// counted per item as the workers finish them, not per chunk (tqdm#973). Drawn only on
    /// a terminal; the count costs the workers one store per item, to a line of their own.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// let pool = mp_pool::Pool::new(2)?;
    /// let squares = pool.chunksize(100).progress(true).map(square, 0..1000)?;
    /// assert_eq!(squares[999], 998_001);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Without the `progress` feature: does not build, and the error names the feature.
    #[cfg(not(feature = "progress"))]
    pub fn progress(mut self, on: bool) -> Self
    where
        Self: crate::feature::Progress,
    {
        self.progress = on;
        self
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

    /// How long one task (a chunk) may run, from when its worker starts it (pebble's
    /// `timeout`). Past it, the task fails with [`PoolError::TaskTimeout`] and its worker is
    /// killed (SIGKILL) and replaced (a remote worker, which cannot be killed from here, gets
    /// no more work until it answers); the other tasks go on. A huge timeout is forever.
    ///
    /// What is timed is the chunk: with `chunksize(n)`, its `n` items together, and a chunk
    /// past its timeout fails whole (its error names its first item; the items it finished
    /// before are lost with the worker). Use `chunksize(1)` to time each item alone. A chunk
    /// waiting in a worker's queue is not timed until the worker starts it (when it answered
    /// the chunk before).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// fn hang(_: u64) -> u64 {
    ///     loop {
    ///         std::thread::park();
    ///     }
    /// }
    ///
    /// let pool = mp_pool::Pool::new(1)?;
    /// let e = pool.timeout(Duration::from_millis(100)).apply(hang, (0,)).unwrap_err();
    /// assert!(matches!(e, mp_pool::PoolError::TaskTimeout { index: 0, .. }));
    /// // The worker was replaced.
    /// assert_eq!(pool.apply(|x: u64| x + 1, (1,))?, 2);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The largest encoded result one task (a chunk) may send back: a larger one fails with
    /// [`PoolError::ResultTooLarge`] instead of filling this process's memory (the worker
    /// drops it).
    ///
    /// ```
    /// fn zeros(n: usize) -> Vec<u8> {
    ///     vec![0; n]
    /// }
    ///
    /// let pool = mp_pool::Pool::new(1)?;
    /// let e = pool.max_result_bytes(4096).apply(zeros, (100_000,)).unwrap_err();
    /// assert!(matches!(e, mp_pool::PoolError::ResultTooLarge { limit: 4096, .. }));
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = Some(bytes);
        self
    }

    /// Runs a task of this call again, up to `retries` more times, when its worker ends
    /// under it (a crash, a cap, its timeout): see [`Retry`]. Nothing runs twice unless asked.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// let pool = mp_pool::Pool::new(2)?;
    /// assert_eq!(pool.retries(2).map(square, [1, 2, 3])?, [1, 4, 9]);
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        let base = self.retry.unwrap_or(self.pool.config.retry);
        self.retry = Some(base.with_retries(retries));
        self
    }

    /// The retry policy of this call (which endings, a crash budget): see [`Retry`].
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// A lazy `imap` of this call dropped before its end cancels what its workers run (their
    /// workers are killed and replaced), as [`AsyncResult::cancel`] does. By default the
    /// chunks that workers hold run to their end and only the ones not sent are dropped.
    ///
    /// [`AsyncResult::cancel`]: crate::AsyncResult::cancel
    pub fn cancel_on_drop(mut self, on: bool) -> Self {
        self.cancel_on_drop = on;
        self
    }

    fn limits(&self) -> Limits {
        self.pool
            .limits(self.timeout, self.max_result_bytes, self.retry)
    }

    /// Shows the progress of `job` if this call asked for it (before its chunks go out).
    fn watch(&self, job: &Arc<Job>, total: Option<u64>) {
        #[cfg(feature = "progress")]
        if self.progress {
            crate::progress_bar::watch(self.pool, job, total);
        }
        let _ = (job, total);
    }

    /// Python's default for `map`: `ceil(n / (4 × workers))`.
    fn map_chunksize(&self, n: usize) -> usize {
        self.chunksize
            .unwrap_or_else(|| n.div_ceil(4 * self.pool.processes()))
            .max(1)
    }

    /// See [`Pool::apply`](crate::Pool::apply).
    pub fn apply<F, A>(self, f: F, args: A) -> Result<F::Output, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        self.apply_async(f, args)?.get()
    }

    /// See [`Pool::apply_async`](crate::Pool::apply_async).
    pub fn apply_async<F, A>(self, f: F, args: A) -> Result<AsyncResult<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        let task = task::task_fn::<F, A>(&f).map_err(PoolError::InvalidArgument)?;
        let chunk = Prepared::encode(task, 0, 0, std::slice::from_ref(&args))?;
        let job = Job::new(Some(1));
        self.pool.submit(&job, vec![chunk], self.limits())?;
        Ok(AsyncResult::new(job, decode_one::<F::Output>))
    }

    /// See [`Pool::map`](crate::Pool::map).
    pub fn map<F, T, R>(self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        let result = self.map_async(f, items)?;
        let values = result.get();
        result.finish_progress();
        values
    }

    /// See [`Pool::map_async`](crate::Pool::map_async).
    pub fn map_async<F, T, R>(
        self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        // `T` and `(T,)` have the same encoding, so a slice of items is a slice of 1-tuples.
        let task = task::task_fn::<F, (T,)>(&f).map_err(PoolError::InvalidArgument)?;
        self.submit_all(task, items.into_iter().collect())
    }

    /// See [`Pool::starmap`](crate::Pool::starmap).
    pub fn starmap<F, A>(
        self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        let result = self.starmap_async(f, items)?;
        let values = result.get();
        result.finish_progress();
        values
    }

    /// See [`Pool::starmap_async`](crate::Pool::starmap_async).
    pub fn starmap_async<F, A>(
        self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<F::Output>>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        let task = task::task_fn::<F, A>(&f).map_err(PoolError::InvalidArgument)?;
        self.submit_all(task, items.into_iter().collect())
    }

    /// See [`Pool::imap`](crate::Pool::imap).
    pub fn imap<F, T, R, I>(self, f: F, items: I) -> IMap<'p, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        self.lazy(task::task_fn::<F, (T,)>(&f), items.into_iter(), true)
    }

    /// See [`Pool::imap_unordered`](crate::Pool::imap_unordered).
    pub fn imap_unordered<F, T, R, I>(self, f: F, items: I) -> IMap<'p, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        self.lazy(task::task_fn::<F, (T,)>(&f), items.into_iter(), false)
    }

    /// A `starmap` as a lazy iterator over the pool `owner` holds (joblib's generators: the
    /// iterator owns the pool it runs on).
    pub(crate) fn lazy_owning<I, T, R>(
        self,
        owner: Box<dyn std::any::Any + Send + Sync>,
        entry: Result<TaskFn, &'static str>,
        items: I,
        ordered: bool,
    ) -> IMap<'static, I, R>
    where
        I: Iterator<Item = T>,
        T: Serialize + 'static,
        R: DeserializeOwned + 'static,
    {
        let pool = PoolRef::Owned(Arc::clone(self.pool), owner);
        self.lazy_on(pool, entry, items, ordered)
    }

    /// An `imap` of `entry` over `items` with this call's options.
    fn lazy<I, T, R>(
        self,
        entry: Result<TaskFn, &'static str>,
        items: I,
        ordered: bool,
    ) -> IMap<'p, I, R>
    where
        I: Iterator<Item = T>,
        T: Serialize + 'static,
        R: DeserializeOwned + 'static,
    {
        self.lazy_on(PoolRef::Borrowed(self.pool), entry, items, ordered)
    }

    fn lazy_on<'i, I, T, R>(
        self,
        pool: PoolRef<'i>,
        entry: Result<TaskFn, &'static str>,
        items: I,
        ordered: bool,
    ) -> IMap<'i, I, R>
    where
        I: Iterator<Item = T>,
        T: Serialize + 'static,
        R: DeserializeOwned + 'static,
    {
        let total = match items.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(lower as u64),
            _ => None,
        };
        let imap = IMap::new(
            pool,
            self.limits(),
            items,
            entry,
            self.chunksize.unwrap_or(1),
            self.buffersize.unwrap_or(2 * self.pool.processes()),
            ordered,
        )
        .with_cancel_on_drop(self.cancel_on_drop);
        self.watch(imap.job(), total);
        imap
    }

    fn submit_all<T: Serialize + 'static, R: DeserializeOwned + 'static>(
        self,
        task: TaskFn,
        items: Vec<T>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
        let chunksize = self.map_chunksize(items.len());
        let limits = self.limits();
        let job = Job::new(Some(items.len().div_ceil(chunksize)));
        self.watch(&job, Some(items.len() as u64));
        // Chunks go out in small groups as they are encoded, so that workers start on the
        // first ones while the rest are encoded.
        let mut group = Vec::new();
        let mut group_bytes = 0;
        for (chunk, slice) in items.chunks(chunksize).enumerate() {
            let prepared = Prepared::encode(task, chunk, chunk * chunksize, slice)?;
            group_bytes += prepared.frame.len();
            group.push(prepared);
            if group.len() >= 64 || group_bytes >= 1 << 16 {
                self.pool.submit(&job, std::mem::take(&mut group), limits)?;
                group_bytes = 0;
            }
        }
        if !group.is_empty() {
            self.pool.submit(&job, group, limits)?;
        }
        Ok(AsyncResult::new(job, decode_all::<R>))
    }
}

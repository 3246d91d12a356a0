//! `Submit`: the options of one call (`pool.chunksize(n)`, `pool.buffersize(n)`), and how a
//! whole input is cut into chunks and submitted (`map`, `starmap` and their `_async` forms;
//! `imap` lives in `imap`).

use mp_spawn::{Portable, Target};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::PoolError;
use crate::pool::Pool;
use crate::result::{AsyncResult, Job, decode_all};
use crate::task;
use crate::wire::Prepared;

/// The options of one call: `pool.chunksize(n)` or `pool.buffersize(n)`, then the call.
#[derive(Debug, Clone, Copy)]
pub struct Submit<'p> {
    pub(crate) pool: &'p Pool,
    pub(crate) chunksize: Option<usize>,
    pub(crate) buffersize: Option<usize>,
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) progress: bool,
}

impl<'p> Submit<'p> {
    pub(crate) fn new(pool: &'p Pool) -> Self {
        Submit {
            pool,
            chunksize: None,
            buffersize: None,
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

    /// Shows the progress of `job` if this call asked for it (before its chunks go out).
    pub(crate) fn watch(&self, job: &std::sync::Arc<Job>, total: Option<u64>) {
        #[cfg(feature = "progress")]
        if self.progress {
            crate::progress::watch(self.pool.inner(), job, total);
        }
        let _ = (job, total);
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
        T: Portable,
        R: Portable,
    {
        let result = self.map_async(f, items)?;
        let values = result.get();
        result.finish_progress();
        values
    }

    /// See [`Pool::map_async`].
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

    /// See [`Pool::starmap`].
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

    /// See [`Pool::starmap_async`].
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

    fn submit_all<T: Serialize + 'static, R: DeserializeOwned + 'static>(
        self,
        task: task::TaskFn,
        items: Vec<T>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
        let chunksize = self.map_chunksize(items.len());
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
                self.pool.inner().submit(&job, std::mem::take(&mut group))?;
                group_bytes = 0;
            }
        }
        if !group.is_empty() {
            self.pool.inner().submit(&job, group)?;
        }
        Ok(AsyncResult::new(job, decode_all::<R>))
    }
}

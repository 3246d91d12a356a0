//! [`Parallel`]: joblib's `Parallel(n_jobs)(delayed(f)(*args) for args in calls)` over a
//! [`Pool`] made for the call.

use std::panic::{self, AssertUnwindSafe};

use mp_spawn::{Context, Portable, Target};

use std::sync::Arc;

use crate::error::PoolError;
use crate::imap::IMap;
use crate::pool::Pool;
use crate::submit::Submit;
use crate::task;

/// joblib's `Parallel`: runs one function over a batch of argument tuples on `n_jobs`
/// processes, and returns the values as a list or as an iterator.
///
/// | joblib | here |
/// |---|---|
/// | `Parallel(n_jobs=4)(delayed(f)(a, b) for a, b in calls)` | `Parallel::new(4).run(f, calls)` |
/// | `return_as="generator"` | [`Parallel::iter`] |
/// | `return_as="generator_unordered"` | [`Parallel::iter_unordered`] |
/// | `batch_size=n` | [`Parallel::batch_size`] |
// `progress` exists only with its feature: without it the link would name the private field.
#[cfg_attr(
    feature = "progress",
    doc = "| `verbose=` | [`Parallel::progress`] (an indicatif bar; feature `progress`) |"
)]
#[cfg_attr(
    not(feature = "progress"),
    doc = "| `verbose=` | `Parallel::progress` (an indicatif bar; feature `progress`) |"
)]
///
/// ```
/// use mp_pool::Parallel;
///
/// fn power(base: u64, exp: u32) -> u64 {
///     base.pow(exp)
/// }
///
/// let calls = (1..=4).map(|b| (b, 2));
/// assert_eq!(Parallel::new(2).run(power, calls)?, [1, 4, 9, 16]);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
///
/// `n_jobs` follows joblib: `-1` is every CPU this process may use, `-2` all but one (and so
/// on), `1` runs the calls in this process one after the other (for debugging), `0` is an
/// error.
#[derive(Debug, Clone)]
pub struct Parallel {
    n_jobs: isize,
    batch_size: Option<usize>,
    timeout: Option<std::time::Duration>,
    retry: Option<crate::Retry>,
    max_memory: Option<u64>,
    max_cpu: Option<std::time::Duration>,
    context: Option<Context>,
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    progress: bool,
}

impl Parallel {
    /// A runner on `n_jobs` processes.
    pub fn new(n_jobs: isize) -> Self {
        Parallel {
            n_jobs,
            batch_size: None,
            timeout: None,
            retry: None,
            max_memory: None,
            max_cpu: None,
            context: None,
            progress: false,
        }
    }

    /// How many calls travel to a worker at once (joblib's `batch_size`). By default, as
    /// `Pool.map`: a quarter of each worker's share for lists, one for iterators.
    pub fn batch_size(mut self, calls: usize) -> Self {
        self.batch_size = Some(calls.max(1));
        self
    }

    /// How long one batch of calls may run in its worker (joblib's `timeout`, per task as
    /// pebble's): past it the batch fails with [`PoolError::TaskTimeout`] and its worker is
    /// killed and replaced; the other calls go on (see [`Submit::timeout`]). Not with
    /// `n_jobs == 1`, which runs the calls in this process.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs a batch again, up to `retries` more times, when its worker ends under it (a
    /// crash, a cap, its timeout; see [`Retry`](crate::Retry) and [`Submit::retries`]).
    /// Not with `n_jobs == 1`, which runs the calls in this process.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retry = Some(crate::Retry::new(retries));
        self
    }

    /// The retry policy of the calls (see [`Retry`](crate::Retry)).
    pub fn retry(mut self, retry: crate::Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Caps what each worker may allocate (see
    /// [`PoolBuilder::max_memory_per_worker`](crate::PoolBuilder::max_memory_per_worker)): a
    /// call past it fails with [`PoolError::MemoryLimit`]. Not with `n_jobs == 1`.
    pub fn max_memory_per_worker(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Caps the CPU time of each batch (see
    /// [`PoolBuilder::max_cpu_time_per_task`](crate::PoolBuilder::max_cpu_time_per_task)).
    /// Not with `n_jobs == 1`.
    pub fn max_cpu_time_per_task(mut self, cpu: std::time::Duration) -> Self {
        self.max_cpu = Some(cpu);
        self
    }

    /// The start method of the workers.
    pub fn context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// Shows a progress bar on stderr while [`run`](Parallel::run) works (feature
    /// `progress`; joblib's `verbose`).
    #[cfg(feature = "progress")]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Without the `progress` feature: does not build, and the error names the feature.
    #[cfg(not(feature = "progress"))]
    pub fn progress<'a>(mut self, on: bool) -> Self
    where
        &'a Self: crate::feature::Progress,
    {
        self.progress = on;
        self
    }

    /// The number of worker processes `n_jobs` stands for.
    pub fn workers(&self) -> Result<usize, PoolError> {
        let cpus = mp_spawn::process_cpu_count() as isize;
        match self.n_jobs {
            0 => Err(PoolError::InvalidArgument(
                "n_jobs == 0 has no meaning (use 1 for a serial run)",
            )),
            n if n > 0 => Ok(n as usize),
            n => Ok((cpus + 1 + n).max(1) as usize),
        }
    }

    fn pool(&self) -> Result<Pool, PoolError> {
        let mut builder = Pool::builder().processes(self.workers()?);
        if let Some(ctx) = self.context {
            builder = builder.context(ctx);
        }
        if let Some(bytes) = self.max_memory {
            builder = builder.max_memory_per_worker(bytes);
        }
        if let Some(cpu) = self.max_cpu {
            builder = builder.max_cpu_time_per_task(cpu);
        }
        builder.build()
    }

    /// Calls `f(args...)` for every tuple and returns the values in call order. Every call
    /// runs; then the failure of the first failed call (in call order) is returned.
    pub fn run<F, A>(
        &self,
        f: F,
        calls: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        if self.n_jobs == 1 {
            return run_serially(f, calls);
        }
        let pool = self.pool()?;
        let mut submit = pool.call();
        #[cfg(feature = "progress")]
        {
            submit = submit.progress(self.progress);
        }
        if let Some(batch) = self.batch_size {
            submit = submit.chunksize(batch);
        }
        if let Some(timeout) = self.timeout {
            submit = submit.timeout(timeout);
        }
        if let Some(retry) = self.retry {
            submit = submit.retry(retry);
        }
        submit.starmap(f, calls)
    }

    /// The values as an iterator, in call order (joblib's `return_as="generator"`): calls are
    /// read lazily, so the batch may be endless. The iterator owns the workers.
    pub fn iter<F, A, I>(
        &self,
        f: F,
        calls: I,
    ) -> Result<IMap<'static, I::IntoIter, F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        I: IntoIterator<Item = A>,
        A: Portable,
        F::Output: Portable,
    {
        self.iterate(f, calls, true)
    }

    /// As [`iter`](Parallel::iter), in the order calls finish (joblib's
    /// `return_as="generator_unordered"`).
    pub fn iter_unordered<F, A, I>(
        &self,
        f: F,
        calls: I,
    ) -> Result<IMap<'static, I::IntoIter, F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        I: IntoIterator<Item = A>,
        A: Portable,
        F::Output: Portable,
    {
        self.iterate(f, calls, false)
    }

    fn iterate<F, A, I>(
        &self,
        f: F,
        calls: I,
        ordered: bool,
    ) -> Result<IMap<'static, I::IntoIter, F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        I: IntoIterator<Item = A>,
        A: Portable,
        F::Output: Portable,
    {
        let pool = self.pool()?;
        let inner = Arc::clone(pool.inner());
        let mut submit = Submit::new(&inner).chunksize(self.batch_size.unwrap_or(1));
        if let Some(timeout) = self.timeout {
            submit = submit.timeout(timeout);
        }
        if let Some(retry) = self.retry {
            submit = submit.retry(retry);
        }
        Ok(submit.lazy_owning(
            Box::new(pool),
            task::task_fn::<F, A>(&f),
            calls.into_iter(),
            ordered,
        ))
    }
}

/// `n_jobs=1`: a plain loop in this process, as joblib's, with panics caught as a pool's are.
fn run_serially<F, A>(f: F, calls: impl IntoIterator<Item = A>) -> Result<Vec<F::Output>, PoolError>
where
    F: Target<A> + Copy,
{
    let mut values = Vec::new();
    let mut first_error = None;
    for (index, args) in calls.into_iter().enumerate() {
        match panic::catch_unwind(AssertUnwindSafe(|| f.call(args))) {
            Ok(value) => values.push(value),
            Err(payload) => {
                if first_error.is_none() {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    first_error = Some(PoolError::Panicked {
                        index,
                        message: format!("panicked: {message}"),
                    });
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

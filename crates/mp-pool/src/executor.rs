//! `ProcessPoolExecutor` and `as_completed`: the names of Python's `concurrent.futures`, over
//! a [`Pool`] (not a second pool): `submit` is `apply_async`, a future is an [`AsyncResult`],
//! `map` is a lazy `imap`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_spawn::{Portable, Target};

use crate::error::PoolError;
use crate::imap::IMap;
use crate::pool::Pool;
use crate::result::AsyncResult;

/// Python's `concurrent.futures.ProcessPoolExecutor`, as names over a [`Pool`].
///
/// | Python | here |
/// |---|---|
/// | `ProcessPoolExecutor(max_workers)` | [`ProcessPoolExecutor::new`], [`from_pool`](ProcessPoolExecutor::from_pool) |
/// | `submit(fn, *args)` → `Future` | [`submit`](ProcessPoolExecutor::submit) → [`AsyncResult`] (`result(timeout)`: [`get_timeout`](AsyncResult::get_timeout); `done()`: [`ready`](AsyncResult::ready); `add_done_callback`: [`callback`](AsyncResult::callback)) |
/// | `map(fn, it, chunksize=1, buffersize=None)` | [`map`](ProcessPoolExecutor::map), or `executor.pool().chunksize(c).buffersize(b).imap(f, it)` |
/// | `as_completed(fs, timeout)` | [`as_completed`], [`as_completed_timeout`] |
/// | `shutdown(wait, cancel_futures)`, `with` | [`shutdown`](ProcessPoolExecutor::shutdown), drop (waits, as `with` does) |
/// | `terminate_workers()`, `kill_workers()` (3.14) | [`terminate_workers`](ProcessPoolExecutor::terminate_workers), [`kill_workers`](ProcessPoolExecutor::kill_workers) |
///
/// ```
/// use mp_pool::{ProcessPoolExecutor, as_completed};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let executor = ProcessPoolExecutor::new(2)?;
/// let futures: Vec<_> = (1..=3)
///     .map(|x| executor.submit(square, (x,)))
///     .collect::<Result<_, _>>()?;
/// let mut done: Vec<u64> = as_completed(futures).map(|f| f.get()).collect::<Result<_, _>>()?;
/// done.sort();
/// assert_eq!(done, [1, 4, 9]);
/// let mapped: Vec<u64> = executor.map(square, 0..4).collect::<Result<_, _>>()?;
/// assert_eq!(mapped, [0, 1, 4, 9]);
/// executor.shutdown(true, false)?;
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
#[derive(Debug)]
pub struct ProcessPoolExecutor {
    pool: Pool,
}

impl ProcessPoolExecutor {
    /// An executor with `max_workers` worker processes (Python's `ProcessPoolExecutor(n)`).
    pub fn new(max_workers: usize) -> Result<ProcessPoolExecutor, PoolError> {
        Ok(ProcessPoolExecutor {
            pool: Pool::new(max_workers)?,
        })
    }

    /// An executor over a pool built with [`Pool::builder`] (a context, an initializer,
    /// `maxtasksperchild`: Python's `mp_context`, `initializer`, `max_tasks_per_child`).
    pub fn from_pool(pool: Pool) -> ProcessPoolExecutor {
        ProcessPoolExecutor { pool }
    }

    /// The pool underneath, for everything else it offers.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs `f(args...)` in a worker (Python's `submit`): its future.
    pub fn submit<F, A>(&self, f: F, args: A) -> Result<AsyncResult<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        self.pool.apply_async(f, args)
    }

    /// The values of `f` over `items`, in order, computed ahead in chunks of one item (Python's
    /// `executor.map`, lazy as 3.14's with `buffersize`; set both with
    /// `executor.pool().chunksize(c).buffersize(b).imap(f, items)`).
    pub fn map<F, T, R, I>(&self, f: F, items: I) -> IMap<'_, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        self.pool.chunksize(1).imap(f, items)
    }

    /// Takes no more tasks (Python's `shutdown(wait, cancel_futures)`): with `cancel_futures`,
    /// the tasks no worker has taken yet fail with [`PoolError::Cancelled`]; with `wait`,
    /// returns once the others are done and the workers have exited. Calling it again is fine.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) -> Result<(), PoolError> {
        if cancel_futures {
            self.pool.inner().cancel_all_pending();
        }
        self.pool.close();
        if wait {
            self.pool.join()?;
        }
        Ok(())
    }

    /// Stops every worker now with SIGTERM and shuts down (Python 3.14's
    /// `terminate_workers`): unfinished tasks fail with [`PoolError::Terminated`].
    pub fn terminate_workers(&self) -> Result<(), PoolError> {
        self.pool.inner().stop_all(false);
        self.pool.join()
    }

    /// As [`terminate_workers`](Self::terminate_workers), with SIGKILL (Python 3.14's
    /// `kill_workers`).
    pub fn kill_workers(&self) -> Result<(), PoolError> {
        self.pool.inner().stop_all(true);
        self.pool.join()
    }
}

impl Drop for ProcessPoolExecutor {
    /// Waits for the submitted tasks, as leaving Python's `with ProcessPoolExecutor()` does
    /// (`shutdown(wait=True)`); a `Pool` dropped terminates instead.
    fn drop(&mut self) {
        let _ = self.shutdown(true, false);
    }
}

/// The futures `results` in the order they finish (Python's `concurrent.futures.as_completed`).
/// Each comes out ready: its [`get`](AsyncResult::get) does not wait.
///
/// ```
/// # fn square(x: u64) -> u64 { x * x }
/// let pool = mp_pool::Pool::new(2)?;
/// let futures = vec![pool.apply_async(square, (2,))?, pool.apply_async(square, (3,))?];
/// let mut values: Vec<u64> = mp_pool::as_completed(futures).map(|f| f.get().unwrap()).collect();
/// values.sort();
/// assert_eq!(values, [4, 9]);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
pub fn as_completed<T>(results: impl IntoIterator<Item = AsyncResult<T>>) -> AsCompleted<T> {
    AsCompleted::new(results, None)
}

/// As [`as_completed`], giving up `timeout` after this call: then the iterator yields one
/// `Err(PoolError::Timeout)` and ends (Python raises `TimeoutError`).
pub fn as_completed_timeout<T>(
    results: impl IntoIterator<Item = AsyncResult<T>>,
    timeout: Duration,
) -> impl Iterator<Item = Result<AsyncResult<T>, PoolError>> {
    AsCompleted::new(results, Some(mp_sys::deadline::after(timeout))).timed()
}

/// The iterator of [`as_completed`].
#[derive(Debug)]
pub struct AsCompleted<T> {
    slots: Vec<Option<AsyncResult<T>>>,
    ready: mpsc::Receiver<usize>,
    left: usize,
    /// `Some(None)`: a timeout too far to represent, which is forever.
    deadline: Option<Option<Instant>>,
    timed_out: bool,
}

impl<T> AsCompleted<T> {
    fn new(
        results: impl IntoIterator<Item = AsyncResult<T>>,
        deadline: Option<Option<Instant>>,
    ) -> AsCompleted<T> {
        let slots: Vec<_> = results.into_iter().map(Some).collect();
        let (tx, ready) = mpsc::channel();
        for (i, result) in slots.iter().flatten().enumerate() {
            let tx = tx.clone();
            // The receiver may be gone by then: nobody waits any more.
            result.when_ready(move || {
                let _ = tx.send(i);
            });
        }
        AsCompleted {
            left: slots.len(),
            slots,
            ready,
            deadline,
            timed_out: false,
        }
    }

    fn timed(self) -> impl Iterator<Item = Result<AsyncResult<T>, PoolError>> {
        let mut this = self;
        std::iter::from_fn(move || this.next_or_timeout())
    }

    fn next_or_timeout(&mut self) -> Option<Result<AsyncResult<T>, PoolError>> {
        if self.left == 0 || self.timed_out {
            return None;
        }
        let index = match self.deadline {
            Some(Some(deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.ready.recv_timeout(left) {
                    Ok(i) => i,
                    Err(_) => {
                        self.timed_out = true;
                        return Some(Err(PoolError::Timeout));
                    }
                }
            }
            _ => self.ready.recv().ok()?,
        };
        self.left -= 1;
        self.slots[index].take().map(Ok)
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = AsyncResult<T>;

    fn next(&mut self) -> Option<AsyncResult<T>> {
        // Without a deadline, the only failure is a result that can never be ready (its
        // pool gone), which ends the iteration.
        self.next_or_timeout()?.ok()
    }
}

//! One call's options (`MpiSubmit`), the lazy `MpiIMap`, `MpiAsyncResult`, and `PoolApi` for
//! `MpiPool`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use mp_spawn::{Portable, Target};

use crate::api::{Pending, PoolApi};
use crate::entry::{self, TaskFn};
use crate::error::MpiError;
use crate::pool::{Limits, MAX_FRAME, MpiPool, decode, encode, forget_job, new_job};

/// The options of one call: `pool.chunksize(n)`, `buffersize(n)`, `deadline(..)` or
/// `max_result_bytes(n)`, then the call.
///
/// ```no_run
/// # fn square(x: u64) -> u64 { x * x }
/// use std::time::Duration;
///
/// let pool = mp_mpi::MpiPool::init()?;
/// let squares = pool
///     .chunksize(1000)
///     .deadline(Some(Duration::from_secs(60)))
///     .map(square, 0..100_000)?;
/// assert_eq!(squares[3], 9);
/// # Ok::<(), mp_mpi::MpiError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MpiSubmit<'p> {
    pool: &'p MpiPool,
    chunksize: Option<usize>,
    buffersize: Option<usize>,
    limits: Limits,
}

impl<'p> MpiSubmit<'p> {
    pub(crate) fn new(pool: &'p MpiPool) -> Self {
        MpiSubmit {
            pool,
            chunksize: None,
            buffersize: None,
            limits: pool.limits(),
        }
    }

    /// This call's deadline per chunk (see [`MpiPoolBuilder::deadline`](crate::MpiPoolBuilder::deadline)).
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.limits.deadline = deadline;
        self
    }

    /// This call's limit on a chunk's encoded result (see
    /// [`MpiPoolBuilder::max_result_bytes`](crate::MpiPoolBuilder::max_result_bytes)).
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_result_bytes = bytes.min(MAX_FRAME);
        self
    }

    /// How many items travel per chunk (at least 1).
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = Some(chunksize.max(1));
        self
    }

    /// How many chunks an `imap` keeps in flight (at least 1).
    pub fn buffersize(mut self, chunks: usize) -> Self {
        self.buffersize = Some(chunks.max(1));
        self
    }

    /// See [`MpiPool::map`].
    pub fn map<F, T, R>(self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, MpiError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        // `T` and `(T,)` have the same encoding: a slice of items is a slice of 1-tuples.
        let task = entry::task_fn::<F, (T,)>(&f).map_err(MpiError::InvalidArgument)?;
        self.run_all(task, items.into_iter().collect())
    }

    /// See [`MpiPool::starmap`].
    pub fn starmap<F, A>(
        self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, MpiError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        let task = entry::task_fn::<F, A>(&f).map_err(MpiError::InvalidArgument)?;
        self.run_all(task, items.into_iter().collect())
    }

    fn run_all<T: Portable, R: Portable>(
        self,
        task: TaskFn,
        items: Vec<T>,
    ) -> Result<Vec<R>, MpiError> {
        let pool = self.pool;
        let chunksize = self
            .chunksize
            .unwrap_or_else(|| items.len().div_ceil(4 * pool.workers.len()))
            .max(1);
        let chunks = items.len().div_ceil(chunksize);
        let mut st = pool.state.borrow_mut();
        let job = new_job(&mut st);
        for (chunk, slice) in items.chunks(chunksize).enumerate() {
            let payload = match encode(slice) {
                Ok(payload) => payload,
                Err(e) => {
                    forget_job(&mut st, job);
                    return Err(e);
                }
            };
            let start = chunk * chunksize;
            pool.enqueue(
                &mut st,
                job,
                chunk as u64,
                start,
                task,
                &payload,
                self.limits,
            );
            // The ranks start on the first chunks while the rest are encoded.
            pool.poll(&mut st);
        }
        pool.pump(&mut st, |st| st.jobs[&job].done.len() == chunks);
        let done = st.jobs.remove(&job).map(|j| j.done).unwrap_or_default();
        drop(st);
        let mut out = Vec::with_capacity(items.len());
        for (_, outcome) in done {
            out.extend(decode::<R>(&outcome?)?);
        }
        Ok(out)
    }

    /// See [`MpiPool::imap`].
    pub fn imap<F, T, R, I>(self, f: F, items: I) -> MpiIMap<'p, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        self.lazy(entry::task_fn::<F, (T,)>(&f), items.into_iter(), true)
    }

    /// See [`MpiPool::imap_unordered`].
    pub fn imap_unordered<F, T, R, I>(self, f: F, items: I) -> MpiIMap<'p, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        self.lazy(entry::task_fn::<F, (T,)>(&f), items.into_iter(), false)
    }

    fn lazy<I, R>(
        self,
        task: Result<TaskFn, &'static str>,
        input: I,
        ordered: bool,
    ) -> MpiIMap<'p, I, R> {
        let pool = self.pool;
        let job = new_job(&mut pool.state.borrow_mut());
        MpiIMap {
            pool,
            job,
            task,
            input,
            limits: self.limits,
            chunksize: self.chunksize.unwrap_or(1),
            buffersize: self.buffersize.unwrap_or(2 * pool.workers.len()),
            submitted: 0,
            read: 0,
            next_chunk: 0,
            in_flight: 0,
            exhausted: false,
            ordered,
            values: VecDeque::new(),
        }
    }
}

/// The iterator of [`MpiPool::imap`] and [`MpiPool::imap_unordered`]: reads its input on
/// the caller's thread, at most `buffersize` chunks ahead of what it has yielded.
///
/// ```no_run
/// # fn square(x: u64) -> u64 { x * x }
/// let pool = mp_mpi::MpiPool::init()?;
/// // An endless input: read only as the ranks finish chunks.
/// for value in pool.chunksize(10).imap(square, 0..).take(100) {
///     println!("{}", value?);
/// }
/// # Ok::<(), mp_mpi::MpiError>(())
/// ```
pub struct MpiIMap<'p, I, R> {
    pool: &'p MpiPool,
    job: u64,
    task: Result<TaskFn, &'static str>,
    input: I,
    limits: Limits,
    chunksize: usize,
    buffersize: usize,
    submitted: u64,
    read: usize,
    next_chunk: u64,
    in_flight: usize,
    exhausted: bool,
    ordered: bool,
    values: VecDeque<R>,
}

impl<I, R> fmt::Debug for MpiIMap<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiIMap")
            .field("chunksize", &self.chunksize)
            .field("buffersize", &self.buffersize)
            .field("in_flight", &self.in_flight)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

impl<I, R> Drop for MpiIMap<'_, I, R> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.pool.state.try_borrow_mut() {
            forget_job(&mut st, self.job);
        }
    }
}

impl<I, R> Iterator for MpiIMap<'_, I, R>
where
    I: Iterator,
    I::Item: Portable,
    R: Portable,
{
    type Item = Result<R, MpiError>;

    fn next(&mut self) -> Option<Self::Item> {
        let task = match self.task {
            Ok(task) => task,
            Err(message) => {
                if self.exhausted {
                    return None;
                }
                self.exhausted = true;
                return Some(Err(MpiError::InvalidArgument(message)));
            }
        };
        loop {
            if let Some(value) = self.values.pop_front() {
                return Some(Ok(value));
            }
            while !self.exhausted && self.in_flight < self.buffersize {
                // Read on the caller's thread, with no borrow of the pool held.
                let chunk: Vec<I::Item> = self.input.by_ref().take(self.chunksize).collect();
                if chunk.is_empty() {
                    self.exhausted = true;
                    break;
                }
                let start = self.read;
                self.read += chunk.len();
                let payload = match encode(&chunk) {
                    Ok(payload) => payload,
                    Err(e) => return Some(Err(e)),
                };
                let mut st = self.pool.state.borrow_mut();
                let (job, chunk) = (self.job, self.submitted);
                self.pool
                    .enqueue(&mut st, job, chunk, start, task, &payload, self.limits);
                self.pool.poll(&mut st);
                self.submitted += 1;
                self.in_flight += 1;
            }
            if self.in_flight == 0 {
                return None;
            }
            let mut st = self.pool.state.borrow_mut();
            let (job, next, ordered) = (self.job, self.next_chunk, self.ordered);
            self.pool.pump(&mut st, |st| {
                let j = &st.jobs[&job];
                if ordered {
                    j.done.contains_key(&next)
                } else {
                    !j.order.is_empty()
                }
            });
            let j = st
                .jobs
                .get_mut(&job)
                .expect("the job lives as long as its IMap");
            let chunk = if ordered {
                j.order.retain(|c| *c != next);
                self.next_chunk += 1;
                next
            } else {
                j.order.pop_front().expect("pumped until one finished")
            };
            let outcome = j.done.remove(&chunk).expect("settled");
            drop(st);
            self.in_flight -= 1;
            match outcome.and_then(|bytes| decode::<R>(&bytes)) {
                Ok(values) => self.values.extend(values),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A value on its way from a worker rank ([`MpiPool::apply_async`]).
///
/// ```no_run
/// # fn add(a: u64, b: u64) -> u64 { a + b }
/// let pool = mp_mpi::MpiPool::init()?;
/// let sums: Vec<_> = (0..4).map(|i| pool.apply_async(add, (i, 10))).collect::<Result<_, _>>()?;
/// for (i, sum) in sums.iter().enumerate() {
///     assert_eq!(sum.get()?, i as u64 + 10);
/// }
/// # Ok::<(), mp_mpi::MpiError>(())
/// ```
pub struct MpiAsyncResult<'p, T> {
    pool: &'p MpiPool,
    job: u64,
    outcome: RefCell<Option<Result<Vec<u8>, MpiError>>>,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for MpiAsyncResult<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiAsyncResult")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl<'p, T> MpiAsyncResult<'p, T> {
    pub(crate) fn new(pool: &'p MpiPool, job: u64) -> Self {
        MpiAsyncResult {
            pool,
            job,
            outcome: RefCell::new(None),
            _value: PhantomData,
        }
    }
}

impl<T: Portable> MpiAsyncResult<'_, T> {
    /// Waits for the value (again if called again).
    pub fn get(&self) -> Result<T, MpiError> {
        if self.outcome.borrow().is_none() {
            let mut st = self.pool.state.borrow_mut();
            let job = self.job;
            self.pool.pump(&mut st, |st| {
                st.jobs.get(&job).is_none_or(|j| !j.done.is_empty())
            });
            let outcome = st
                .jobs
                .remove(&job)
                .and_then(|mut j| j.done.remove(&0))
                .unwrap_or(Err(MpiError::Decode("the result was lost".into())));
            *self.outcome.borrow_mut() = Some(outcome);
        }
        match self.outcome.borrow().as_ref().expect("set above") {
            Ok(bytes) => decode::<T>(bytes)?
                .pop()
                .ok_or_else(|| MpiError::Decode("an empty result".into())),
            Err(e) => Err(e.duplicate()),
        }
    }

    /// Whether the value (or its failure) has arrived; moves work along without waiting.
    pub fn ready(&self) -> bool {
        if self.outcome.borrow().is_some() {
            return true;
        }
        let mut st = self.pool.state.borrow_mut();
        self.pool.poll(&mut st);
        st.jobs.get(&self.job).is_none_or(|j| !j.done.is_empty())
    }
}

impl<T> Drop for MpiAsyncResult<'_, T> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.pool.state.try_borrow_mut() {
            forget_job(&mut st, self.job);
        }
    }
}

impl<T: Portable> Pending<T> for MpiAsyncResult<'_, T> {
    type Error = MpiError;
    fn get(&self) -> Result<T, MpiError> {
        MpiAsyncResult::get(self)
    }
}

impl PoolApi for MpiPool {
    type Error = MpiError;

    fn map<F, T, R>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, MpiError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        MpiPool::map(self, f, items)
    }

    fn starmap<F, A>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, MpiError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        MpiPool::starmap(self, f, items)
    }

    fn imap<F, T, R, I>(&self, f: F, items: I) -> impl Iterator<Item = Result<R, MpiError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        MpiPool::imap(self, f, items)
    }

    fn imap_unordered<F, T, R, I>(
        &self,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, MpiError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        MpiPool::imap_unordered(self, f, items)
    }

    fn map_chunksize<F, T, R>(
        &self,
        chunksize: usize,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, MpiError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        MpiPool::chunksize(self, chunksize).map(f, items)
    }

    fn imap_chunksize<F, T, R, I>(
        &self,
        chunksize: usize,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, MpiError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        MpiPool::chunksize(self, chunksize).imap(f, items)
    }

    fn imap_unordered_chunksize<F, T, R, I>(
        &self,
        chunksize: usize,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, MpiError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        MpiPool::chunksize(self, chunksize).imap_unordered(f, items)
    }

    fn apply_async<F, A>(
        &self,
        f: F,
        args: A,
    ) -> Result<impl Pending<F::Output, Error = MpiError>, MpiError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        MpiPool::apply_async(self, f, args)
    }
}

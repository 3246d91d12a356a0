//! [`IMap`]: the lazy iterator of `imap` and `imap_unordered` (CPython's `IMapIterator`,
//! with the bounded look-ahead that Python gains only in 3.15, gh-64192).
//!
//! The input is read on the caller's thread, inside `next`, only while fewer than
//! `buffersize` chunks are in flight: an endless iterator works, in bounded memory, and the
//! input needs to be neither `Send` nor sized.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::Inner;
use crate::error::PoolError;
use crate::result::{Job, Part};
use crate::task;
use crate::wire::{Limits, Prepared, TaskFn};

/// The output of [`Pool::imap`](crate::Pool::imap) and [`Pool::imap_unordered`](crate::Pool::imap_unordered): one `Result` per input item (a
/// chunk that fails yields one `Err` for the whole chunk, then the output goes on). If the
/// input panics, the values of the items it gave come first, then
/// [`PoolError::InputPanicked`], then the end.
///
/// The input is read on the thread that calls `next`, so it need not be `Send`; the `IMap`
/// is `Send` only if the input is:
///
/// ```compile_fail
/// # fn square(x: u64) -> u64 { x * x }
/// let pool = mp_pool::Pool::new(1).unwrap();
/// let shared = std::rc::Rc::new(vec![1u64, 2, 3]);
/// let it = pool.imap(square, (0..3).map(move |i| shared[i]));
/// std::thread::scope(|s| { s.spawn(move || it.count()); });
/// ```
pub struct IMap<'p, I, R> {
    pool: PoolRef<'p>,
    /// The call's limits, for each chunk.
    limits: Limits,
    input: Option<I>,
    job: Arc<Job>,
    /// How workers find the function, or why they cannot (every chunk then fails with it).
    entry: Result<TaskFn, &'static str>,
    chunksize: usize,
    buffersize: usize,
    ordered: bool,
    /// Chunks submitted, and chunks handed to the caller.
    submitted: usize,
    taken: usize,
    /// Items read from the input.
    read: usize,
    /// Ordered mode: chunks that finished ahead of their turn.
    early: BTreeMap<usize, Result<Part, PoolError>>,
    /// Values of the current chunk, not yet yielded.
    values: VecDeque<R>,
    /// A failure of the pool itself ends the output after it is yielded.
    ended: bool,
    /// Dropped early, it cancels what the workers run too (`Submit::cancel_on_drop`).
    cancel_on_drop: bool,
    _values: PhantomData<fn() -> R>,
}

/// Dropping an `IMap` before its end reads no more input and cancels its chunks that no
/// worker holds yet (Python's `imap` keeps feeding the pool after its iterator is gone); with
/// [`Submit::cancel_on_drop`](crate::Submit::cancel_on_drop), the running ones too.
// Nothing in an `IMap` is ever pinned (the stream works through `&mut`), so it may move
// whatever its input and values are.
impl<I, R> Unpin for IMap<'_, I, R> {}

impl<I, R> Drop for IMap<'_, I, R> {
    fn drop(&mut self) {
        if self.submitted > self.taken {
            if self.cancel_on_drop {
                self.pool.get().cancel(&self.job);
            } else {
                self.pool.get().cancel_pending(&self.job);
            }
        }
    }
}

impl<I, R> fmt::Debug for IMap<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("ordered", &self.ordered)
            .field("chunksize", &self.chunksize)
            .field("in_flight", &(self.submitted - self.taken))
            .finish()
    }
}

/// The pool an `IMap` submits to: borrowed from the caller, or owned (by a `Parallel`
/// generator, which made the pool for it: the `Box` holds it, and its drop ends it).
pub(crate) enum PoolRef<'p> {
    Borrowed(&'p Arc<Inner>),
    Owned(
        Arc<Inner>,
        #[allow(dead_code)] Box<dyn std::any::Any + Send + Sync>,
    ),
}

impl PoolRef<'_> {
    fn get(&self) -> &Arc<Inner> {
        match self {
            PoolRef::Borrowed(inner) => inner,
            PoolRef::Owned(inner, _) => inner,
        }
    }
}

impl<I, R> IMap<'_, I, R> {
    /// The job its chunks belong to.
    pub(crate) fn job(&self) -> &Arc<Job> {
        &self.job
    }
}

impl<'p, I, T, R> IMap<'p, I, R>
where
    I: Iterator<Item = T>,
    T: Serialize + 'static,
    R: DeserializeOwned + 'static,
{
    pub(crate) fn new(
        pool: PoolRef<'p>,
        limits: Limits,
        input: I,
        entry: Result<TaskFn, &'static str>,
        chunksize: usize,
        buffersize: usize,
        ordered: bool,
    ) -> Self {
        IMap {
            pool,
            limits,
            input: Some(input),
            job: Job::new(None),
            entry,
            chunksize: chunksize.max(1),
            buffersize: buffersize.max(1),
            ordered,
            submitted: 0,
            taken: 0,
            read: 0,
            early: BTreeMap::new(),
            values: VecDeque::new(),
            ended: false,
            cancel_on_drop: false,
            _values: PhantomData,
        }
    }

    /// Dropped early, cancels what the workers run too (`Submit::cancel_on_drop`).
    pub(crate) fn with_cancel_on_drop(mut self, on: bool) -> Self {
        self.cancel_on_drop = on;
        self
    }

    /// Reads and submits input while fewer than `buffersize` chunks are in flight.
    fn top_up(&mut self) -> Result<(), PoolError> {
        // A function no worker can find fails the whole call, once (every chunk would fail
        // alike, and an endless input would give endless failures).
        if let Err(message) = self.entry {
            self.input = None;
            return Err(PoolError::InvalidArgument(message));
        }
        while self.submitted - self.taken < self.buffersize {
            let Some(input) = self.input.as_mut() else {
                return Ok(());
            };
            // The input runs here, on the caller's thread: a panic in it ends the input, after
            // the items it gave, as Python's `imap` raises the iterator's exception in turn.
            let mut items: Vec<T> = Vec::new();
            let chunksize = self.chunksize;
            let read = panic::catch_unwind(AssertUnwindSafe(|| {
                items.extend(input.by_ref().take(chunksize));
            }));
            let panicked = read.err().map(|payload| task::panic_message(&*payload));
            if let Some(message) = panicked {
                if let Some(input) = self.input.take() {
                    // Its drop may panic too, after the first panic left it in a bad state.
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(input)));
                }
                if !items.is_empty() {
                    self.submit(items)?;
                }
                let chunk = self.submitted;
                self.submitted += 1;
                let failure = PoolError::InputPanicked {
                    index: self.read,
                    message,
                };
                for callback in self.job.finish(chunk, Err(failure)) {
                    callback();
                }
                for callback in self.job.set_expected(self.submitted) {
                    callback();
                }
                return Ok(());
            }
            if items.is_empty() {
                self.input = None;
                for callback in self.job.set_expected(self.submitted) {
                    callback();
                }
                return Ok(());
            }
            self.submit(items)?;
        }
        Ok(())
    }

    /// Submits the next chunk.
    fn submit(&mut self, items: Vec<T>) -> Result<(), PoolError> {
        let chunk = self.submitted;
        let index = self.read;
        self.read += items.len();
        self.submitted += 1;
        let prepared = self
            .entry
            .map_err(PoolError::InvalidArgument)
            .and_then(|task| Prepared::encode(task, chunk, index, &items));
        match prepared {
            Ok(prepared) => self
                .pool
                .get()
                .submit(&self.job, vec![prepared], self.limits)?,
            // This chunk fails alone; the ones after it still run.
            Err(e) => {
                for callback in self.job.finish(chunk, Err(e)) {
                    callback();
                }
            }
        }
        Ok(())
    }

    /// The next value, waiting at most `timeout`; `Some(Err(PoolError::Timeout))` if it did
    /// not come in time (the iterator can be resumed). Python's `next(timeout)`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R, PoolError>> {
        self.next_until(mp_sys::deadline::after(timeout))
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<R, PoolError>> {
        loop {
            if let Some(step) = self.before_part() {
                return step;
            }
            let part = match self.take_part(deadline) {
                Ok(part) => part,
                Err(e @ PoolError::Timeout) => return Some(Err(e)),
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            };
            if let Some(item) = self.accept(part) {
                return Some(item);
            }
        }
    }

    /// What `next` returns without waiting for a chunk, if anything: a value already decoded,
    /// the end, or a failure to submit. `None`: a chunk must be awaited.
    #[allow(clippy::option_option)]
    fn before_part(&mut self) -> Option<Option<Result<R, PoolError>>> {
        if let Some(value) = self.values.pop_front() {
            return Some(Some(Ok(value)));
        }
        if self.ended {
            return Some(None);
        }
        if let Err(e) = self.top_up() {
            self.ended = true;
            return Some(Some(Err(e)));
        }
        if self.input.is_none() && self.taken == self.submitted {
            return Some(None);
        }
        None
    }

    /// Takes in the chunk just taken; returns its first value or its failure (`None`: an
    /// empty chunk, which cannot happen; the caller then goes on rather than end early).
    fn accept(&mut self, part: Result<Part, PoolError>) -> Option<Result<R, PoolError>> {
        self.taken += 1;
        match part.and_then(|mut part| part.decode::<R>()) {
            Ok(values) => {
                self.values = values.into();
                self.values.pop_front().map(Ok)
            }
            Err(e @ (PoolError::Terminated | PoolError::Interrupted)) => {
                self.ended = true;
                Some(Err(e))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// The next chunk if it has finished, else registers the task to be woken (a `Stream`).
    #[cfg(feature = "async")]
    fn poll_part(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Part, PoolError>> {
        let want = self.taken;
        if self.ordered {
            if let Some(part) = self.early.remove(&want) {
                return std::task::Poll::Ready(part);
            }
        }
        let job = Arc::clone(&self.job);
        let mut st = job.lock();
        if !self.ordered {
            if let Some((_, part)) = st.done.pop_front() {
                return std::task::Poll::Ready(part);
            }
        } else {
            while let Some((chunk, part)) = st.done.pop_front() {
                if chunk == want {
                    return std::task::Poll::Ready(part);
                }
                self.early.insert(chunk, part);
            }
        }
        st.register(cx.waker());
        std::task::Poll::Pending
    }

    /// Waits for the next chunk to hand out: the next in order, or the next to finish.
    fn take_part(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Result<Part, PoolError>, PoolError> {
        let want = self.taken;
        if self.ordered {
            if let Some(part) = self.early.remove(&want) {
                return Ok(part);
            }
        }
        let ordered = self.ordered;
        let mut st = self.job.wait_for(deadline, |st| {
            if ordered {
                st.done.iter().any(|(chunk, _)| *chunk == want)
            } else {
                !st.done.is_empty()
            }
        })?;
        if !ordered {
            return Ok(st.done.pop_front().map(|(_, r)| r).expect("waited for it"));
        }
        // Keep the chunks that came early, so the next calls need not wait for them.
        while let Some((chunk, result)) = st.done.pop_front() {
            if chunk == want {
                drop(st);
                return Ok(result);
            }
            self.early.insert(chunk, result);
        }
        unreachable!("waited for chunk {want}")
    }
}

/// An `IMap` is also a [`Stream`](futures_core::Stream) (feature `async`): awaiting the next
/// value does not block a thread; the pool's thread wakes the task when a chunk finishes.
/// Runtime-agnostic, with no descriptor and no polling loop. The input iterator is still read
/// on the polling task, as [`next`](Iterator::next) reads it: give one that does not block.
///
/// Dropping the stream cancels the chunks not yet started, as dropping the iterator does.
///
/// Being an `Iterator` too, its combinators (`map`, `next`, ...) are ambiguous with
/// `StreamExt`'s; [`into_stream`](IMap::into_stream) gives a stream that is only a stream:
///
/// ```
/// use futures::StreamExt;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = mp_pool::Pool::new(2)?;
/// let squares: Vec<u64> = futures::executor::block_on(async {
///     pool.imap(square, 0..5u64).into_stream().map(|r| r.unwrap()).collect().await
/// });
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
#[cfg(feature = "async")]
impl<I, T, R> futures_core::Stream for IMap<'_, I, R>
where
    I: Iterator<Item = T>,
    T: Serialize + 'static,
    R: DeserializeOwned + 'static,
{
    type Item = Result<R, PoolError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(step) = this.before_part() {
                return std::task::Poll::Ready(step);
            }
            let part = match this.poll_part(cx) {
                std::task::Poll::Ready(part) => part,
                std::task::Poll::Pending => return std::task::Poll::Pending,
            };
            if let Some(item) = this.accept(part) {
                return std::task::Poll::Ready(Some(item));
            }
        }
    }
}

/// An [`IMap`] as a [`Stream`](futures_core::Stream) alone, without `Iterator`'s methods
/// (feature `async`; see [`IMap::into_stream`]).
#[cfg(feature = "async")]
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct IMapStream<'p, I, R>(IMap<'p, I, R>);

#[cfg(feature = "async")]
impl<'p, I, R> IMap<'p, I, R> {
    /// This `IMap` as a stream that is not also an iterator, so that `StreamExt`'s
    /// combinators need no disambiguation (feature `async`).
    pub fn into_stream(self) -> IMapStream<'p, I, R> {
        IMapStream(self)
    }
}

#[cfg(feature = "async")]
impl<I, T, R> futures_core::Stream for IMapStream<'_, I, R>
where
    I: Iterator<Item = T>,
    T: Serialize + 'static,
    R: DeserializeOwned + 'static,
{
    type Item = Result<R, PoolError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.0).poll_next(cx)
    }
}

impl<I, T, R> Iterator for IMap<'_, I, R>
where
    I: Iterator<Item = T>,
    T: Serialize + 'static,
    R: DeserializeOwned + 'static,
{
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_until(None)
    }
}

//! What a submission hands back: [`AsyncResult`] (CPython's `ApplyResult` and `MapResult`),
//! and the [`Job`] behind it, which the pool's thread fills in chunk by chunk.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use mp_spawn::reduction;
use serde::de::DeserializeOwned;

use crate::control::Cancel;
use crate::error::PoolError;
use crate::interrupt;
use crate::plain;
use crate::progress::Tally;

/// The encoded results of one chunk, as a worker sent them.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Part {
    /// Decodes the chunk's values. The handles go to the first reader; a second decode of a
    /// part that carried handles fails.
    pub(crate) fn decode<R: DeserializeOwned + 'static>(&mut self) -> Result<Vec<R>, PoolError> {
        if let Some(values) = plain::decode(&self.bytes) {
            return values.map_err(PoolError::Decode);
        }
        reduction::loads(&self.bytes, std::mem::take(&mut self.fds))
            .map_err(|e| PoolError::Decode(e.0))
    }
}

/// A callback attached to a job, called with the finished job and no lock held.
pub(crate) type Callback = Box<dyn FnOnce(&Job) + Send>;
/// The callbacks of a finished job, bound to it, to be run by whoever finished it after
/// releasing the pool's locks; the job becomes ready once they have run (or when this is
/// dropped unrun), as Python's `ApplyResult._set` calls the callback before `_event.set()`.
pub(crate) type Deferred = Box<dyn FnOnce() + Send>;

/// The chunks of one submission, as they finish.
#[derive(Default)]
pub(crate) struct JobState {
    /// Finished chunks in completion order: (chunk number, its values or its failure).
    pub(crate) done: VecDeque<(usize, Result<Part, PoolError>)>,
    /// How many chunks the job has, once known (an `imap` learns it when its input ends).
    pub(crate) expected: Option<usize>,
    /// How many chunks have finished, taken or not.
    pub(crate) finished: usize,
    callbacks: Vec<Callback>,
    /// Tasks awaiting the job (an `AsyncResult` future, an `IMap` stream), woken whenever
    /// the condition variable's waiters are.
    wakers: Vec<Waker>,
    /// Every chunk has finished and the callbacks have run: waiters may see the result.
    ready: bool,
}

impl JobState {
    /// Every chunk has finished (the callbacks may still be running).
    fn finished_all(&self) -> bool {
        self.expected == Some(self.finished)
    }

    /// Ready for waiters: finished, and the callbacks have run.
    fn settled(&self) -> bool {
        self.ready
    }

    /// Has the task of `waker` woken at the next change (once; a task registers again when it
    /// polls again).
    #[cfg(feature = "async")]
    pub(crate) fn register(&mut self, waker: &Waker) {
        if !self.wakers.iter().any(|w| w.will_wake(waker)) {
            self.wakers.push(waker.clone());
        }
    }
}

/// Wakes the tasks taken out of a job's state (outside its lock: a waker may run code).
fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

/// Runs the callbacks of a finished job, then makes it ready; on drop, so that a job whose
/// deferred callbacks are dropped unrun still becomes ready.
struct Settle(Arc<Job>);

impl Drop for Settle {
    fn drop(&mut self) {
        let job = &self.0;
        loop {
            // Callbacks attached while these run are run too, before the job is ready.
            let callbacks = {
                let mut st = job.lock();
                if st.callbacks.is_empty() {
                    st.ready = true;
                    job.settled.store(true, Ordering::Release);
                    job.ring_bell();
                    let wakers = std::mem::take(&mut st.wakers);
                    drop(st);
                    job.cond.notify_all();
                    wake_all(wakers);
                    return;
                }
                std::mem::take(&mut st.callbacks)
            };
            for callback in callbacks {
                // A panicking callback must not take the pool's thread down with it, nor
                // leave the job unready; the panic hook has reported it.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| callback(job)));
            }
        }
    }
}

/// One submission: an `apply`, a `map` or an `imap`.
pub(crate) struct Job {
    state: Mutex<JobState>,
    cond: Condvar,
    /// Set once every chunk has finished: read without the lock by spinning waiters.
    settled: AtomicBool,
    /// An `imap`: its reader waits for each chunk, not for the whole job.
    streaming: bool,
    /// The progress counters of a watched call (0: not watched; see `progress`).
    tally: AtomicU64,
    /// The items a watched call's workers finished, once its counters are given back
    /// (`u64::MAX` until then).
    counted: AtomicU64,
    /// The thread drawing a watched call's bar.
    #[cfg(feature = "progress")]
    pub(crate) bar: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// An eventfd rung when the job settles, made on demand by [`AsyncResult::ready_fd`];
    /// set and checked under the state's lock.
    bell: std::sync::OnceLock<OwnedFd>,
    /// The pool that runs it, for `cancel` (set when its first chunk is submitted).
    owner: std::sync::OnceLock<Weak<dyn Owner>>,
}

/// The pool that runs a job, as the job's result reaches it.
pub(crate) trait Owner: Send + Sync {
    /// Cancels every unfinished chunk of `job` (see `AsyncResult::cancel`).
    fn cancel(&self, job: &Arc<Job>) -> Cancel;
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("settled", &self.settled.load(Ordering::Relaxed))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a waiter spins on `settled` before it sleeps: a short task's result then costs no
/// wake-up of the caller.
const SPIN: Duration = Duration::from_micros(50);

impl Job {
    pub(crate) fn new(expected: Option<usize>) -> Arc<Job> {
        Arc::new(Job {
            state: Mutex::new(JobState {
                expected,
                ready: expected == Some(0),
                ..JobState::default()
            }),
            cond: Condvar::new(),
            settled: AtomicBool::new(expected == Some(0)),
            streaming: expected.is_none(),
            tally: AtomicU64::new(0),
            counted: AtomicU64::new(u64::MAX),
            #[cfg(feature = "progress")]
            bar: Mutex::new(None),
            bell: std::sync::OnceLock::new(),
            owner: std::sync::OnceLock::new(),
        })
    }

    /// Names the pool that runs the job (its first submission; later ones are the same pool).
    pub(crate) fn set_owner(&self, owner: Weak<dyn Owner>) {
        let _ = self.owner.set(owner);
    }

    /// Records the final count of a watched call, before its counters are given back.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn set_counted(&self, n: u64) {
        self.counted.store(n, Ordering::Release);
    }

    /// The final count, once recorded.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn counted(&self) -> Option<u64> {
        Some(self.counted.load(Ordering::Acquire)).filter(|&n| n != u64::MAX)
    }

    /// Watches this call's progress with `tally`: set before its chunks are submitted.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn set_tally(&self, tally: Tally) {
        self.tally.store(tally.0, Ordering::Relaxed);
    }

    /// The call's progress counters, if it is watched.
    pub(crate) fn tally(&self) -> Option<Tally> {
        Some(Tally(self.tally.load(Ordering::Relaxed))).filter(|t| t.0 != 0)
    }

    /// Rings the ready descriptor, if someone asked for one (called with the state locked).
    fn ring_bell(&self) {
        if let Some(bell) = self.bell.get() {
            mp_sys::eventfd::ring(bell.as_fd());
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, JobState> {
        lock(&self.state)
    }

    /// Records a finished chunk. Returns the callbacks to run (outside every pool lock) if
    /// this settled the job.
    pub(crate) fn finish(
        self: &Arc<Self>,
        chunk: usize,
        result: Result<Part, PoolError>,
    ) -> Vec<Deferred> {
        let mut st = self.lock();
        st.done.push_back((chunk, result));
        st.finished += 1;
        self.after_change(st)
    }

    /// Declares the number of chunks (an `imap` whose input has ended).
    pub(crate) fn set_expected(self: &Arc<Self>, chunks: usize) -> Vec<Deferred> {
        let mut st = self.lock();
        st.expected = Some(chunks);
        self.after_change(st)
    }

    fn after_change(self: &Arc<Self>, mut st: MutexGuard<'_, JobState>) -> Vec<Deferred> {
        let finished = st.finished_all() && !st.ready;
        // Without callbacks the job is ready at once; with some, once they have run.
        let settle = finished && !st.callbacks.is_empty();
        if finished && !settle {
            st.ready = true;
            self.settled.store(true, Ordering::Release);
            self.ring_bell();
        }
        // A `get` waits for the whole job: waking it for every chunk of a long `map` would
        // cost a context switch per chunk. An `imap` waits for each chunk.
        let wake = (finished && !settle) || self.streaming;
        let wakers = if wake {
            std::mem::take(&mut st.wakers)
        } else {
            Vec::new()
        };
        drop(st);
        if wake {
            self.cond.notify_all();
            wake_all(wakers);
        }
        if settle {
            let settle = Settle(Arc::clone(self));
            vec![Box::new(move || drop(settle)) as Deferred]
        } else {
            Vec::new()
        }
    }

    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Runs `callback` when the job finishes, before it is ready: now, on this thread, if
    /// it is ready already; with the job's other callbacks if they are running.
    pub(crate) fn on_settled(&self, callback: Callback) {
        let mut st = self.lock();
        if st.ready {
            drop(st);
            callback(self);
        } else {
            st.callbacks.push(callback);
        }
    }

    /// Waits until `ready(state)` holds or the deadline passes; SIGINT ends the wait too
    /// (see [`interrupt`]). Returns the guard and whether `ready` holds.
    pub(crate) fn wait_for(
        self: &Arc<Self>,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&JobState) -> bool,
    ) -> Result<MutexGuard<'_, JobState>, PoolError> {
        // Spin briefly first, without the lock, when waiting for the whole job: a short
        // task's result then costs no wake-up. Yielding lets the worker have the core.
        if !self.streaming {
            crate::spin::spin_for(SPIN, || self.is_settled());
        }
        let watch = interrupt::Watch::begin(self);
        let mut st = self.lock();
        loop {
            // Ctrl-C first: the interrupt also terminated the pool, which settles the job
            // with `Terminated`, and the caller should learn why.
            if watch.interrupted() {
                return Err(PoolError::Interrupted);
            }
            if ready(&st) {
                return Ok(st);
            }
            st = match deadline {
                None => self.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(PoolError::Timeout);
                    }
                    self.cond
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

impl interrupt::Wake for Job {
    /// Wakes every waiter (an interrupt).
    fn wake(&self) {
        let mut st = self.lock();
        self.cond.notify_all();
        let wakers = std::mem::take(&mut st.wakers);
        drop(st);
        wake_all(wakers);
    }
}

/// Decodes a settled job into the caller's type.
type Decode<T> = fn(&mut JobState) -> Result<T, PoolError>;

/// The result of an `apply_async`, `map_async` or `starmap_async` (Python's `AsyncResult`):
/// wait for it, poll it, or attach callbacks.
///
/// It does not borrow the pool. If the pool is terminated or dropped first, [`get`] returns
/// [`PoolError::Terminated`], as the tasks of Python's `with Pool()` block are killed at its end.
///
/// ```
/// use mp_pool::Pool;
///
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// let pool = Pool::new(2)?;
/// let sum = pool.apply_async(add, (2, 3))?;
/// assert_eq!(sum.get()?, 5);
/// assert!(sum.successful()?);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
///
/// [`get`]: AsyncResult::get
pub struct AsyncResult<T> {
    job: Arc<Job>,
    decode: Decode<T>,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.job.is_settled())
            .finish()
    }
}

/// The value of a single-chunk job holding one call.
pub(crate) fn decode_one<R: DeserializeOwned + 'static>(st: &mut JobState) -> Result<R, PoolError> {
    decode_all::<R>(st)?
        .pop()
        .ok_or_else(|| PoolError::Decode("a task sent back no value".into()))
}

/// The values of every chunk, in input order; the failure of the lowest failed chunk (in
/// input order, so the same input always reports the same error).
pub(crate) fn decode_all<R: DeserializeOwned + 'static>(
    st: &mut JobState,
) -> Result<Vec<R>, PoolError> {
    let mut parts: Vec<&mut (usize, Result<Part, PoolError>)> = st.done.iter_mut().collect();
    parts.sort_unstable_by_key(|(chunk, _)| *chunk);
    if let Some((_, Err(e))) = parts.iter().find(|(_, r)| r.is_err()) {
        return Err(e.duplicate());
    }
    let mut values: Vec<R> = Vec::new();
    for (_, part) in parts {
        if let Ok(part) = part {
            let decoded = part.decode::<R>()?;
            if values.is_empty() {
                values = decoded;
            } else {
                values.extend(decoded);
            }
        }
    }
    Ok(values)
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(job: Arc<Job>, decode: Decode<T>) -> Self {
        AsyncResult {
            job,
            decode,
            _value: PhantomData,
        }
    }

    /// Waits for the value, as long as it takes. Returns the value, or why there is none: a
    /// panic or a worker's death in the task, a termination of the pool, Ctrl-C. May be called
    /// again (the value is decoded anew; handles inside it go to the first caller).
    pub fn get(&self) -> Result<T, PoolError> {
        self.get_until(None)
    }

    /// As [`get`](Self::get), waiting at most `timeout`; then [`PoolError::Timeout`], and the
    /// result can still be waited for.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, PoolError> {
        self.get_until(mp_sys::deadline::after(timeout))
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<T, PoolError> {
        let mut st = self.job.wait_for(deadline, JobState::settled)?;
        (self.decode)(&mut st)
    }

    /// Waits until the result is ready or `timeout` passes (`None`: forever). Returns whether
    /// it is ready. Python's `wait` returns nothing; call [`ready`](Self::ready) there.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = mp_sys::deadline::of(timeout);
        self.job.wait_for(deadline, JobState::settled).is_ok()
    }

    /// Whether the result has arrived (successful or not).
    pub fn ready(&self) -> bool {
        self.job.is_settled()
    }

    /// A blocking call returns after its bar has drawn its last state (tqdm's does).
    pub(crate) fn finish_progress(&self) {
        #[cfg(feature = "progress")]
        if let Some(thread) = lock(&self.job.bar).take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }

    /// The job behind it.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn job(&self) -> &Arc<Job> {
        &self.job
    }

    /// A descriptor that turns readable once the result is ready (and stays so), to wait on
    /// it with `poll`, `epoll`, tokio's `AsyncFd` or mp's [`wait`](mp_ipc::wait), beside other
    /// descriptors. Made on first call (an eventfd); a result ready already gives one that is
    /// readable at once. Awaiting the result itself (feature `async`) needs no descriptor.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let pool = mp_pool::Pool::new(1)?;
    /// let r = pool.apply_async(square, (3,))?;
    /// let fd = r.ready_fd()?;
    /// assert!(mp_ipc::wait(&[&fd], Some(std::time::Duration::from_secs(60)))? == [0]);
    /// assert!(r.ready());
    /// assert_eq!(r.get()?, 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ready_fd(&self) -> std::io::Result<std::os::fd::BorrowedFd<'_>> {
        let st = self.job.lock();
        if self.job.bell.get().is_none() {
            let bell = mp_sys::eventfd::new()?;
            if st.settled() {
                mp_sys::eventfd::ring(bell.as_fd());
            }
            // Under the lock: the settling side checks for the bell under it too.
            let _ = self.job.bell.set(bell);
        }
        drop(st);
        self.job
            .bell
            .get()
            .map(AsFd::as_fd)
            .ok_or_else(|| std::io::Error::other("the ready descriptor was not kept"))
    }

    /// Cancels the call's tasks that have not finished (pebble's `future.cancel()`): a task
    /// no worker has started never runs; a running one has its worker killed (SIGKILL, or
    /// SIGTERM first with [`PoolBuilder::kill_grace`](crate::PoolBuilder::kill_grace)) and
    /// replaced. They fail with [`PoolError::Cancelled`]; the other tasks of the pool go on.
    /// A call that had finished is left as it is, and [`Cancel::Finished`] says so. On a
    /// remote worker (MPI), which cannot be killed, a running task's result is dropped.
    ///
    /// ```
    /// use mp_pool::{Cancel, Pool, PoolError};
    ///
    /// fn forever() {
    ///     loop {
    ///         std::thread::park();
    ///     }
    /// }
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let pool = Pool::new(1)?;
    /// let stuck = pool.apply_async(forever, ())?;
    /// let behind = pool.apply_async(square, (3,))?;
    /// // It waits behind the stuck one: it never runs.
    /// assert_eq!(behind.cancel(), Cancel::Cancelled { queued: 1, running: 0 });
    /// assert!(matches!(behind.get(), Err(PoolError::Cancelled)));
    /// // Running (or about to): cancelled either way, and its worker replaced.
    /// assert!(matches!(stuck.cancel(), Cancel::Cancelled { .. }));
    /// assert!(matches!(stuck.get(), Err(PoolError::Cancelled)));
    /// assert_eq!(pool.apply(square, (4,))?, 16);
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn cancel(&self) -> Cancel {
        if self.job.is_settled() {
            return Cancel::Finished;
        }
        match self.job.owner.get().and_then(Weak::upgrade) {
            Some(owner) => owner.cancel(&self.job),
            None => Cancel::Finished,
        }
    }

    /// Whether the call completed without a failure; `Err(PoolError::StillRunning)` before it
    /// is ready (Python raises `ValueError`).
    pub fn successful(&self) -> Result<bool, PoolError> {
        if !self.ready() {
            return Err(PoolError::StillRunning);
        }
        Ok(self.job.lock().done.iter().all(|(_, r)| r.is_ok()))
    }
}

impl<T> AsyncResult<T> {
    /// Calls `notify` once the result is ready, successful or not (at once if it is).
    pub(crate) fn when_ready(&self, notify: impl FnOnce() + Send + 'static) {
        self.job.on_settled(Box::new(move |_| notify()));
    }
}

/// Awaiting an `AsyncResult` gives what [`get`](AsyncResult::get) gives, without blocking a
/// thread: the pool's thread wakes the task when the result is ready. Runtime-agnostic (tokio,
/// either flavour; smol; `futures::executor`); no descriptor and no polling loop is involved.
///
/// Dropping the future (or the `AsyncResult`) before it resolves loses nothing but the value:
/// the task still runs in its worker, and the pool stays usable. Ctrl-C is not seen by a future
/// (no thread waits): it ends the program as usual, unless the program handles SIGINT itself.
///
/// ```
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// let pool = mp_pool::Pool::new(2)?;
/// let sum = pool.apply_async(add, (2, 3))?;
/// // Any executor; futures' own here.
/// assert_eq!(futures::executor::block_on(sum)?, 5);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
#[cfg(feature = "async")]
impl<T> std::future::Future for AsyncResult<T> {
    type Output = Result<T, PoolError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut st = self.job.lock();
        if st.settled() {
            return std::task::Poll::Ready((self.decode)(&mut st));
        }
        st.register(cx.waker());
        std::task::Poll::Pending
    }
}

impl<T: 'static> AsyncResult<T> {
    /// Calls `callback` with the value once it has arrived, on the pool's thread (Python's
    /// `callback`); at once on this thread if the result is ready already. As in Python, it
    /// runs before the result is ready: once [`wait`](Self::wait) or [`get`](Self::get)
    /// returns, it has finished (so it must not wait for this result itself). Keep it short:
    /// it holds up the delivery of other results. Not called on failure. A panic in it is
    /// reported by the panic hook and goes no further.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # fn square(x: u64) -> u64 { x * x }
    /// let pool = mp_pool::Pool::new(1)?;
    /// let seen = Arc::new(Mutex::new(None));
    /// let slot = Arc::clone(&seen);
    /// let r = pool.apply_async(square, (4,))?.callback(move |v| *slot.lock().unwrap() = Some(*v));
    /// r.wait(None);
    /// assert_eq!(*seen.lock().unwrap(), Some(16));
    /// # Ok::<(), mp_pool::PoolError>(())
    /// ```
    pub fn callback(self, callback: impl FnOnce(&T) + Send + 'static) -> Self {
        let decode = self.decode;
        self.job.on_settled(Box::new(move |job| {
            let value = decode(&mut job.lock());
            if let Ok(value) = value {
                callback(&value);
            }
        }));
        self
    }

    /// Calls `callback` with the failure, if the call fails (Python's `error_callback`); as
    /// [`callback`](Self::callback), it has finished by the time the result is ready.
    pub fn error_callback(self, callback: impl FnOnce(&PoolError) + Send + 'static) -> Self {
        let decode = self.decode;
        self.job.on_settled(Box::new(move |job| {
            let mut st = job.lock();
            let failure = st
                .done
                .iter()
                .filter_map(|(chunk, r)| Some((chunk, r.as_ref().err()?)))
                .min_by_key(|(chunk, _)| **chunk)
                .map(|(_, e)| e.duplicate());
            let failure = match failure {
                Some(e) => Some(e),
                None => decode(&mut st).err(),
            };
            drop(st);
            if let Some(e) = failure {
                callback(&e);
            }
        }));
        self
    }
}

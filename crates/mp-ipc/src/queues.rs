//! `Queue`, `JoinableQueue` and `SimpleQueue`: typed multi-producer, multi-consumer queues
//! between processes, as CPython's `multiprocessing.queues`, on the shared-memory ring of
//! [`ring`](crate::ring).
//!
//! Differences from Python, all on purpose:
//! - Typed: a `Queue<T>` carries `T`s (serde), so a type error is a compile error, and an item
//!   that cannot be serialised fails in `put` itself instead of being dropped by a feeder thread.
//! - No feeder thread: `put` writes the item into shared memory before it returns, so a
//!   process may exit right after `put` and nothing is lost or waited for (gh-73983), and
//!   `empty()` is true or false at once, not after a delay.
//! - A process killed inside `put` or `get` (even holding the queue's lock) does not wedge the
//!   others: they go on, and the killed process's own item is the only one lost.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mp_spawn::reduction;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{GetError, PutError, TaskDoneError};
use crate::ring::{Ring, RingError};
use crate::wait::sealed::Sealed;
use crate::wait::{Inner, Waitable, Waiter};

struct Shared {
    ring: Ring,
    /// `close` was called in this process (Python closes per process, too).
    closed: AtomicBool,
}

/// A process-shared FIFO queue of `T`, as Python's `multiprocessing.Queue`.
///
/// Clone it to share it between threads; pass it as a `Process` argument, or send it through a
/// [`Connection`](crate::Connection) or another queue, to share it with other processes.
///
/// ```
/// use mp_ipc::Queue;
/// use mp_spawn::Process;
///
/// fn worker(q: Queue<String>) {
///     q.put("hello".to_string()).unwrap();
/// }
///
/// let q = Queue::new()?;
/// let mut p = Process::new(worker, (q.clone(),));
/// p.start()?;
/// assert_eq!(q.get()?, "hello");
/// p.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    shared: Arc<Shared>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            shared: Arc::clone(&self.shared),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.shared.ring.len())
            .field("maxsize", &self.shared.ring.maxsize())
            .finish()
    }
}

thread_local! {
    static PUT_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A put buffer larger than this is given back rather than kept for the next item.
const KEEP_BUFFER: usize = 1 << 20;

fn put_error(e: RingError) -> PutError {
    match e {
        RingError::Full => PutError::Full,
        RingError::TooLarge(len) => PutError::TooLarge { len },
        RingError::Io(e) => PutError::Io(e),
        other => PutError::Io(std::io::Error::other(format!("{other:?}"))),
    }
}

fn get_error(e: RingError) -> GetError {
    match e {
        RingError::Empty => GetError::Empty,
        RingError::HandlesLost => GetError::HandlesLost,
        RingError::Corrupt(m) => GetError::Corrupt(m.to_string()),
        RingError::Io(e) => GetError::Io(e),
        other => GetError::Corrupt(format!("{other:?}")),
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue (Python's `Queue()`): `put` never waits.
    pub fn new() -> std::io::Result<Self> {
        Self::with_maxsize(0)
    }

    /// A queue of at most `maxsize` items (Python's `Queue(maxsize)`); 0 means unbounded.
    pub fn with_maxsize(maxsize: usize) -> std::io::Result<Self> {
        Ok(Queue {
            shared: Arc::new(Shared {
                ring: Ring::new(maxsize as u64)?,
                closed: AtomicBool::new(false),
            }),
            _items: PhantomData,
        })
    }

    /// Puts an item, waiting for room as long as it takes (Python's `put(obj)`).
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), PutError> {
        self.put_inner(item.borrow(), None, false)
    }

    /// Puts an item, waiting at most `timeout` for room; then [`PutError::Full`]
    /// (Python's `put(obj, timeout=t)`).
    pub fn put_timeout(&self, item: impl Borrow<T>, timeout: Duration) -> Result<(), PutError> {
        self.put_inner(item.borrow(), Some(timeout), false)
    }

    /// Puts an item if there is room now, else [`PutError::Full`] (Python's `put_nowait`).
    #[doc(alias = "try_put")]
    #[doc(alias = "try_send")]
    pub fn put_nowait(&self, item: impl Borrow<T>) -> Result<(), PutError> {
        self.put_inner(item.borrow(), Some(Duration::ZERO), false)
    }

    fn put_inner(
        &self,
        item: &T,
        timeout: Option<Duration>,
        counted: bool,
    ) -> Result<(), PutError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(PutError::Closed);
        }
        // Serialised here, on the caller's thread: an error is the caller's to see. The buffer
        // is reused: one allocation per thread, not per item.
        let mut buf = PUT_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
        buf.clear();
        let result = reduction::dumps_into(item, &mut buf)
            .map_err(PutError::Encode)
            .and_then(|fds| {
                let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                self.shared
                    .ring
                    .put(&buf, &fds, mp_sys::deadline::of(timeout), counted)
                    .map_err(put_error)
            });
        if buf.capacity() <= KEEP_BUFFER {
            PUT_BUFFER.with(|b| *b.borrow_mut() = buf);
        }
        result
    }

    /// Takes the oldest item, waiting as long as it takes (Python's `get()`).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_inner(None)
    }

    /// Takes the oldest item, waiting at most `timeout`; then [`GetError::Empty`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_inner(Some(timeout))
    }

    /// Takes the oldest item if there is one, else [`GetError::Empty`] (Python's `get_nowait`).
    #[doc(alias = "try_get")]
    #[doc(alias = "try_recv")]
    pub fn get_nowait(&self) -> Result<T, GetError> {
        self.get_inner(Some(Duration::ZERO))
    }

    fn get_inner(&self, timeout: Option<Duration>) -> Result<T, GetError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(GetError::Closed);
        }
        let decoded = self
            .shared
            .ring
            .get(mp_sys::deadline::of(timeout), |bytes, fds| {
                reduction::loads(bytes, fds)
            })
            .map_err(get_error)?;
        decoded.map_err(GetError::Decode)
    }

    /// Takes the oldest item, waiting for one without blocking a thread (feature `async`):
    /// the future sleeps on the queue's doorbell (an eventfd that producers ring while someone
    /// awaits), through async-io's reactor, under any executor (tokio, either flavour; smol;
    /// `futures::executor`).
    ///
    /// Cancel-safe: the item is taken only in the poll that returns it, so a future dropped
    /// before it resolves takes nothing, and the item stays for the next `get`.
    ///
    /// ```
    /// let q = mp_ipc::Queue::<String>::new()?;
    /// q.put("hi".to_string())?;
    /// // Any executor; futures' own here.
    /// assert_eq!(futures::executor::block_on(q.get_async())?, "hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "async")]
    pub async fn get_async(&self) -> Result<T, GetError> {
        let ring = &self.shared.ring;
        loop {
            match self.get_nowait() {
                Err(GetError::Empty) => {}
                other => return other,
            }
            let _watching = Watching::items(ring);
            // An item put before we registered rang no doorbell: look once more.
            match self.get_nowait() {
                Err(GetError::Empty) => {}
                other => return other,
            }
            mp_sys::aio::readable(&[ring.bell()])
                .map_err(GetError::Io)?
                .await
                .map_err(GetError::Io)?;
            // Resets the doorbell (ringing it again if an item is there, for other waiters).
            ring.ready_for_wait(true);
        }
    }

    /// Puts an item, waiting for room without blocking a thread (feature `async`; only a
    /// bounded queue ever waits). The future sleeps on the queue's room doorbell (an eventfd
    /// that consumers ring while someone awaits room), under any executor.
    ///
    /// Cancel-safe: the item is put only in the poll that returns `Ok`; a future dropped
    /// before that has put nothing. Items carrying handles may still block briefly when
    /// hundreds of them are unread (see [`Queue`]).
    ///
    /// ```
    /// let q = mp_ipc::Queue::<u64>::with_maxsize(1)?;
    /// futures::executor::block_on(async {
    ///     q.put_async(1).await?;
    ///     assert_eq!(q.get_async().await?, 1);
    ///     q.put_async(2).await?;
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "async")]
    pub async fn put_async(&self, item: impl Borrow<T>) -> Result<(), PutError> {
        self.put_async_inner(item.borrow(), false).await
    }

    #[cfg(feature = "async")]
    async fn put_async_inner(&self, item: &T, counted: bool) -> Result<(), PutError> {
        let ring = &self.shared.ring;
        loop {
            match self.put_inner(item, Some(Duration::ZERO), counted) {
                Err(PutError::Full) => {}
                other => return other,
            }
            let _watching = Watching::room(ring);
            // Room made before we registered rang no doorbell: try once more.
            match self.put_inner(item, Some(Duration::ZERO), counted) {
                Err(PutError::Full) => {}
                other => return other,
            }
            mp_sys::aio::readable(&[ring.room_bell()])
                .map_err(PutError::Io)?
                .await
                .map_err(PutError::Io)?;
            ring.room_rang();
        }
    }

    /// The queue's doorbell, to wait for items with your own `poll`, `epoll` or reactor
    /// (tokio's `AsyncFd`, ...): while the returned [`Doorbell`] lives, producers ring its
    /// descriptor (an eventfd) on every put. Readable means "maybe an item": call
    /// [`Doorbell::ready`] to reset a stale ring and learn whether an item is there, then take
    /// it with [`get_nowait`](Queue::get_nowait) (another consumer may have been first).
    /// `get_async` (feature `async`) does all this for you.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let q = mp_ipc::Queue::<u64>::new()?;
    /// let bell = q.doorbell();
    /// q.put(1)?;
    /// assert_eq!(mp_sys::poll::readable(&[bell.as_fd()], None)?, [true]);
    /// assert!(bell.ready());
    /// assert_eq!(q.get_nowait()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn doorbell(&self) -> Doorbell<'_> {
        self.shared.ring.watch(true);
        Doorbell {
            ring: &self.shared.ring,
        }
    }

    /// The number of items in the queue. Exact when read; other processes may change it at
    /// any moment after.
    #[doc(alias = "len")]
    pub fn qsize(&self) -> usize {
        self.shared.ring.len() as usize
    }

    /// Whether the queue holds no item.
    #[doc(alias = "is_empty")]
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether a bounded queue holds `maxsize` items.
    #[doc(alias = "is_full")]
    pub fn full(&self) -> bool {
        let max = self.shared.ring.maxsize();
        max > 0 && self.shared.ring.len() >= max
    }

    /// The bound given at creation (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.shared.ring.maxsize() as usize
    }

    /// Declares that this process will use the queue no more: later `put` and `get` on any
    /// clone in this process fail with `Closed`. Other processes are not affected, and items
    /// already put stay in the queue (there is no buffer to flush). Closing twice is fine.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }

    /// Nothing to wait for: `put` has finished writing when it returns. Kept for ports of
    /// Python code (`join_thread`).
    pub fn join_thread(&self) {}

    /// Nothing to cancel: no background thread holds items (Python's `cancel_join_thread`).
    pub fn cancel_join_thread(&self) {}

    /// Puts an item already serialised (with the handles it carries), for layers that frame
    /// their own messages (mp-pool's task and result frames): no second encoding, one copy into
    /// shared memory. A typed [`get`](Queue::get) of bytes that are not a `T` is a decode
    /// error, never a wrong value.
    ///
    /// ```
    /// let q = mp_ipc::Queue::<()>::new()?;
    /// q.put_bytes(b"frame", &[])?;
    /// let got = q.get_bytes(None, |bytes, _fds| bytes.to_vec())?;
    /// assert_eq!(got, b"frame");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_bytes(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), PutError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(PutError::Closed);
        }
        self.shared
            .ring
            .put(bytes, fds, None, false)
            .map_err(put_error)
    }

    /// Takes the oldest item as bytes borrowed from shared memory, waiting at most `timeout`
    /// (`None`: forever); `take` decodes it in place (see [`put_bytes`](Queue::put_bytes)).
    pub fn get_bytes<R>(
        &self,
        timeout: Option<Duration>,
        take: impl FnOnce(&[u8], Vec<std::os::fd::OwnedFd>) -> R,
    ) -> Result<R, GetError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(GetError::Closed);
        }
        self.shared
            .ring
            .get(mp_sys::deadline::of(timeout), take)
            .map_err(get_error)
    }

    /// Test hook: takes the queue's internal locks and never releases them (feature
    /// `unstable-test-hooks`).
    #[cfg(feature = "unstable-test-hooks")]
    #[doc(hidden)]
    pub fn hold_locks_forever(&self) -> std::io::Result<()> {
        self.shared.ring.hold_locks_forever()
    }
}

/// Registered in the ring's header as awaiting items (or room) while alive, so that the other
/// side rings the matching doorbell; unregistered on drop (a future dropped mid-wait too).
#[cfg(feature = "async")]
struct Watching<'a> {
    ring: &'a Ring,
    room: bool,
}

#[cfg(feature = "async")]
impl<'a> Watching<'a> {
    fn items(ring: &'a Ring) -> Self {
        ring.watch(true);
        Watching { ring, room: false }
    }

    fn room(ring: &'a Ring) -> Self {
        ring.watch_room(true);
        Watching { ring, room: true }
    }
}

#[cfg(feature = "async")]
impl Drop for Watching<'_> {
    fn drop(&mut self) {
        if self.room {
            self.ring.watch_room(false);
        } else {
            self.ring.watch(false);
        }
    }
}

/// A queue's doorbell, registered as watched while it lives (see [`Queue::doorbell`]).
#[derive(Debug)]
pub struct Doorbell<'a> {
    ring: &'a Ring,
}

impl Doorbell<'_> {
    /// Whether an item is in the queue now. Resets the doorbell when it rang for an item that
    /// is gone, and rings it again if an item arrived meanwhile, so no ring is lost.
    pub fn ready(&self) -> bool {
        let rang =
            mp_sys::poll::readable(&[self.ring.bell()], Some(Duration::ZERO)).is_ok_and(|r| r[0]);
        self.ring.ready_for_wait(rang)
    }
}

impl AsFd for Doorbell<'_> {
    /// The eventfd: readable after a put (and until [`ready`](Doorbell::ready) resets it).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.bell()
    }
}

impl Drop for Doorbell<'_> {
    fn drop(&mut self) {
        self.ring.watch(false);
    }
}

impl<T> Waitable for Queue<T> {}

impl<T> Sealed for Queue<T> {
    fn waiter(&self) -> Waiter<'_> {
        Waiter(Inner::Ring(&self.shared.ring))
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shared.ring.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Queue {
            shared: Arc::new(Shared {
                ring: Ring::deserialize(d)?,
                closed: AtomicBool::new(false),
            }),
            _items: PhantomData,
        })
    }
}

/// A [`Queue`] that counts unfinished items: every `put` adds one, [`task_done`] removes one,
/// and [`join`] waits for zero (Python's `JoinableQueue`).
///
/// [`task_done`]: JoinableQueue::task_done
/// [`join`]: JoinableQueue::join
///
/// ```
/// let q = mp_ipc::JoinableQueue::<u32>::new()?;
/// q.put(1)?;
/// assert_eq!(q.get()?, 1);
/// q.task_done()?;
/// q.join();
/// assert!(q.task_done().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field(
                "unfinished",
                &self.queue.shared.ring.unfinished().load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> std::io::Result<Self> {
        Self::with_maxsize(0)
    }

    /// A joinable queue of at most `maxsize` items; 0 means unbounded.
    pub fn with_maxsize(maxsize: usize) -> std::io::Result<Self> {
        Ok(JoinableQueue {
            queue: Queue::with_maxsize(maxsize)?,
        })
    }

    /// As [`Queue::put`]; the item also counts as unfinished until `task_done`.
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), PutError> {
        self.queue.put_inner(item.borrow(), None, true)
    }

    /// As [`Queue::put_timeout`], counted.
    pub fn put_timeout(&self, item: impl Borrow<T>, timeout: Duration) -> Result<(), PutError> {
        self.queue.put_inner(item.borrow(), Some(timeout), true)
    }

    /// As [`Queue::put_nowait`], counted.
    #[doc(alias = "try_put")]
    #[doc(alias = "try_send")]
    pub fn put_nowait(&self, item: impl Borrow<T>) -> Result<(), PutError> {
        self.queue
            .put_inner(item.borrow(), Some(Duration::ZERO), true)
    }

    /// As [`Queue::put_async`], counted (feature `async`).
    #[cfg(feature = "async")]
    pub async fn put_async(&self, item: impl Borrow<T>) -> Result<(), PutError> {
        self.queue.put_async_inner(item.borrow(), true).await
    }

    /// Marks one item as processed; an error when every item already was.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let ring = &self.queue.shared.ring;
        let counter = ring.unfinished();
        let before = counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map_err(|_| TaskDoneError)?;
        if before == 1 {
            ring.wake_joiners();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) {
        self.queue.shared.ring.wait_unfinished_zero(None);
    }

    /// Waits at most `timeout`; whether every item was marked done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue
            .shared
            .ring
            .wait_unfinished_zero(mp_sys::deadline::of(Some(timeout)))
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    /// Everything but the counted `put`s: `get`, `qsize`, `close`...
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

/// The small queue: `put`, `get`, `empty`, `close`, no bound and no timeouts (Python's
/// `SimpleQueue`). It shares [`Queue`]'s machinery, so it is as fast and as safe.
///
/// ```
/// let q = mp_ipc::SimpleQueue::<String>::new()?;
/// q.put("x".to_string())?;
/// assert!(!q.empty());
/// assert_eq!(q.get()?, "x");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.queue).finish()
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// An empty queue.
    pub fn new() -> std::io::Result<Self> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }

    /// Puts an item (never waits).
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), PutError> {
        self.queue.put(item)
    }

    /// Takes the oldest item, waiting for one.
    pub fn get(&self) -> Result<T, GetError> {
        self.queue.get()
    }

    /// As [`Queue::get_async`] (feature `async`).
    #[cfg(feature = "async")]
    pub async fn get_async(&self) -> Result<T, GetError> {
        self.queue.get_async().await
    }

    /// Whether the queue holds no item.
    #[doc(alias = "is_empty")]
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// Closes this process's handle (as [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close()
    }
}

/// The impls a queue wrapper takes straight from its inner [`Queue`]: cloning, `wait`, and
/// travelling to other processes.
macro_rules! delegate_to_queue {
    ($($wrapper:ident),*) => {$(
        impl<T> Clone for $wrapper<T> {
            fn clone(&self) -> Self {
                $wrapper { queue: self.queue.clone() }
            }
        }

        impl<T> Waitable for $wrapper<T> {}

        impl<T> Sealed for $wrapper<T> {
            fn waiter(&self) -> Waiter<'_> {
                self.queue.waiter()
            }
        }

        impl<T> Serialize for $wrapper<T> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.queue.serialize(s)
            }
        }

        impl<'de, T> Deserialize<'de> for $wrapper<T> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($wrapper { queue: Queue::deserialize(d)? })
            }
        }
    )*};
}

delegate_to_queue!(JoinableQueue, SimpleQueue);

//! `Manager::queue` and `Manager::joinable_queue`: Python's `queue.Queue` held by the server
//! (`manager.Queue()`, `manager.JoinableQueue()`), which processes with no shared memory
//! between them (on other hosts, say) can share.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dict::Item;
use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::SharedProxy;
use crate::servant::{Caller, SharedServant};
use crate::synchronize::Cell;

/// A call on a queue.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub(crate) enum QueueCall<T> {
    Put { item: T, timeout: Option<Duration> },
    Get(Option<Duration>),
    Size,
    Full,
    TaskDone,
    Join,
}

/// The server's answer to a [`QueueCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub(crate) enum QueueReply<T> {
    Item(T),
    Number(u64),
    Done,
}

/// The items, the bound, and the count of items not yet marked done.
pub(crate) struct State<T> {
    items: VecDeque<T>,
    maxsize: u64,
    unfinished: u64,
}

impl<T> State<T> {
    fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() as u64 >= self.maxsize
    }
}

/// The server's side of a [`ManagedQueue`] (`JOINABLE = false`) or a [`JoinableQueue`].
pub(crate) struct QueueServant<T, const JOINABLE: bool>(Cell<State<T>>);

impl<T: Item, const JOINABLE: bool> SharedServant for QueueServant<T, JOINABLE> {
    type Args = u64;
    type Call = QueueCall<T>;
    type Reply = QueueReply<T>;

    fn create(maxsize: u64) -> Self {
        QueueServant(Cell::new(State {
            items: VecDeque::new(),
            maxsize,
            unfinished: 0,
        }))
    }

    fn call(&self, call: QueueCall<T>, caller: &Caller<'_>) -> Result<QueueReply<T>, RemoteError> {
        match call {
            QueueCall::Put { item, timeout } => {
                let mut item = Some(item);
                let put = self.0.wait_for(caller, timeout, |s| {
                    if s.full() {
                        return None;
                    }
                    s.items.extend(item.take());
                    s.unfinished += 1;
                    Some(())
                });
                put.ok_or(RemoteError::Full)?;
                self.0.notify();
                Ok(QueueReply::Done)
            }
            QueueCall::Get(timeout) => {
                let item = self.0.wait_for(caller, timeout, |s| s.items.pop_front());
                let item = item.ok_or(RemoteError::Empty)?;
                self.0.notify();
                Ok(QueueReply::Item(item))
            }
            QueueCall::Size => Ok(QueueReply::Number(self.0.lock().items.len() as u64)),
            QueueCall::Full => Ok(QueueReply::Number(u64::from(self.0.lock().full()))),
            QueueCall::TaskDone if JOINABLE => {
                let mut state = self.0.lock();
                if state.unfinished == 0 {
                    return Err(RemoteError::Runtime(
                        "task_done() called too many times".to_owned(),
                    ));
                }
                state.unfinished -= 1;
                drop(state);
                self.0.notify();
                Ok(QueueReply::Done)
            }
            QueueCall::Join if JOINABLE => {
                let done = self
                    .0
                    .wait_for(caller, None, |s| (s.unfinished == 0).then_some(()));
                done.map(|()| QueueReply::Done)
                    .ok_or(RemoteError::Runtime("the caller is gone".to_owned()))
            }
            QueueCall::TaskDone | QueueCall::Join => {
                Err(RemoteError::BadCall("not a joinable queue".to_owned()))
            }
        }
    }
}

/// A FIFO queue held by a manager's server (Python's `manager.Queue(maxsize)`): unlike
/// [`mp_ipc::Queue`], which lives in shared memory, any process that can reach the server
/// can use it, on this host or another.
///
/// ```
/// use std::time::Duration;
/// use mp_managers::{ManagerError, RemoteError};
///
/// let manager = mp_managers::Manager::new()?;
/// let q = manager.queue::<String>()?;
/// q.put("a".to_owned())?;
/// assert_eq!(q.qsize()?, 1);
/// assert_eq!(q.get()?, "a");
/// assert!(matches!(q.get_timeout(Duration::ZERO), Err(ManagerError::Remote(RemoteError::Empty))));
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct ManagedQueue<T> {
    proxy: SharedProxy<QueueServant<T, false>>,
}

/// A [`ManagedQueue`] whose consumers mark each item done, and whose producers wait until all
/// are (Python's `manager.JoinableQueue(maxsize)`).
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let q = manager.joinable_queue::<u32>()?;
/// q.put(1)?;
/// assert_eq!(q.get()?, 1);
/// q.task_done()?;
/// q.join()?;
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct JoinableQueue<T> {
    proxy: SharedProxy<QueueServant<T, true>>,
}

macro_rules! queue_methods {
    ($name:ident) => {
        impl<T: Item> $name<T> {
            /// Adds `item` at the end, waiting for room in a bounded queue (Python's `put`).
            pub fn put(&self, item: T) -> Result<(), ManagerError> {
                self.put_with(item, None)
            }

            /// Adds `item`, waiting at most `timeout` for room: full until then is
            /// [`RemoteError::Full`] (Python's `put(item, timeout=t)`).
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), ManagerError> {
                self.put_with(item, Some(timeout))
            }

            /// Adds `item` if there is room now, else [`RemoteError::Full`] (Python's
            /// `put_nowait`).
            pub fn put_nowait(&self, item: T) -> Result<(), ManagerError> {
                self.put_with(item, Some(Duration::ZERO))
            }

            fn put_with(&self, item: T, timeout: Option<Duration>) -> Result<(), ManagerError> {
                match self.proxy.call(QueueCall::Put { item, timeout })? {
                    QueueReply::Done => Ok(()),
                    _ => unexpected(),
                }
            }

            /// Takes the first item, waiting for one (Python's `get`).
            pub fn get(&self) -> Result<T, ManagerError> {
                self.get_with(None)
            }

            /// Takes the first item, waiting at most `timeout`: empty until then is
            /// [`RemoteError::Empty`] (Python's `get(timeout=t)`).
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, ManagerError> {
                self.get_with(Some(timeout))
            }

            /// Takes the first item if there is one, else [`RemoteError::Empty`] (Python's
            /// `get_nowait`).
            pub fn get_nowait(&self) -> Result<T, ManagerError> {
                self.get_with(Some(Duration::ZERO))
            }

            fn get_with(&self, timeout: Option<Duration>) -> Result<T, ManagerError> {
                match self.proxy.call(QueueCall::Get(timeout))? {
                    QueueReply::Item(item) => Ok(item),
                    _ => unexpected(),
                }
            }

            /// How many items it holds now (Python's `qsize`).
            pub fn qsize(&self) -> Result<u64, ManagerError> {
                match self.proxy.call(QueueCall::Size)? {
                    QueueReply::Number(n) => Ok(n),
                    _ => unexpected(),
                }
            }

            /// Whether it is empty now (Python's `empty`).
            pub fn empty(&self) -> Result<bool, ManagerError> {
                Ok(self.qsize()? == 0)
            }

            /// Whether a bounded queue is full now (Python's `full`).
            pub fn full(&self) -> Result<bool, ManagerError> {
                match self.proxy.call(QueueCall::Full)? {
                    QueueReply::Number(n) => Ok(n == 1),
                    _ => unexpected(),
                }
            }
        }
    };
}

queue_methods!(ManagedQueue);
queue_methods!(JoinableQueue);
proxy_wrapper!(ManagedQueue<T> where T: Item);
proxy_wrapper!(JoinableQueue<T> where T: Item);

impl<T: Item> JoinableQueue<T> {
    /// Marks one item taken with `get` as done (Python's `task_done`); more than were put:
    /// [`RemoteError::Runtime`].
    pub fn task_done(&self) -> Result<(), ManagerError> {
        match self.proxy.call(QueueCall::TaskDone)? {
            QueueReply::Done => Ok(()),
            _ => unexpected(),
        }
    }

    /// Waits until every item put has been marked done (Python's `join`).
    pub fn join(&self) -> Result<(), ManagerError> {
        match self.proxy.call(QueueCall::Join)? {
            QueueReply::Done => Ok(()),
            _ => unexpected(),
        }
    }
}

impl Manager {
    /// A new unbounded queue held by the server (Python's `manager.Queue()`).
    pub fn queue<T: Item>(&self) -> Result<ManagedQueue<T>, ManagerError> {
        self.bounded_queue(0)
    }

    /// A new queue of at most `maxsize` items (0: unbounded) held by the server (Python's
    /// `manager.Queue(maxsize)`).
    pub fn bounded_queue<T: Item>(&self, maxsize: u64) -> Result<ManagedQueue<T>, ManagerError> {
        Ok(ManagedQueue {
            proxy: SharedProxy::new(self.serve_shared::<QueueServant<T, false>>(maxsize)?),
        })
    }

    /// A new unbounded joinable queue held by the server (Python's
    /// `manager.JoinableQueue()`).
    pub fn joinable_queue<T: Item>(&self) -> Result<JoinableQueue<T>, ManagerError> {
        Ok(JoinableQueue {
            proxy: SharedProxy::new(self.serve_shared::<QueueServant<T, true>>(0)?),
        })
    }
}

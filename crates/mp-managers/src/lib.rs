//! Managers and proxies between processes: the part of [mp](https://docs.rs/mp-rs) that mirrors
//! Python's `multiprocessing.managers`.
//!
//! A [`Manager`] starts a server process that holds objects; a proxy ([`Dict`], [`List`],
//! [`ManagedValue`], [`Namespace`], or a [`Proxy`] to a type of your own, see [`Servant`]) calls
//! them there. Proxies are ordinary arguments: they travel to children under every start
//! method and through queues and pipes, and an object is freed when the last proxy to it, in
//! any process, is gone, including those of processes that were killed.
//!
//! | Python | here |
//! |---|---|
//! | `Manager()`, `ctx.Manager()` | [`Manager::new`], [`Manager::with_context`] |
//! | `manager.dict()`, `.list()`, `.Value(t, v)`, `.Namespace()` | [`Manager::dict`], [`Manager::list`], [`Manager::value`], [`Manager::namespace`] |
//! | `manager.set()`, `.set(items)` (3.14) | [`Manager::set`], [`Manager::set_from`] ([`Set`]) |
//! | `manager.Array(t, size)`, `.Array(t, seq)` | [`Manager::array`], [`Manager::array_from`] ([`ManagedArray`]) |
//! | `l.sort()`, `l.sort(reverse=True)` | [`List::sort`], [`List::sort_reverse`] |
//! | `manager.Lock()`, `.RLock()`, `.Semaphore(n)`, `.BoundedSemaphore(n)` | [`Manager::lock`], [`Manager::rlock`], [`Manager::semaphore`], [`Manager::bounded_semaphore`] |
//! | `manager.Event()`, `.Condition()`, `.Barrier(n)` | [`Manager::event`], [`Manager::condition`], [`Manager::barrier`] |
//! | `manager.Queue()`, `.JoinableQueue()` | [`Manager::queue`], [`Manager::joinable_queue`] ([`ManagedQueue`], [`JoinableQueue`]) |
//! | `BaseManager.register(typeid, callable)` | a type implementing [`Servant`], made by [`Manager::serve`] |
//! | `BaseManager(address, authkey).start()` | [`Manager::listen`] |
//! | `BaseManager(address, authkey).connect()` | [`Manager::connect`], [`Manager::connect_timeout`] |
//! | `manager.get_server().serve_forever()` | [`Server::bind`], [`Server::serve_forever`] |
//! | a typeid registered on a remote server, `manager.get_queue()` | [`Manager::publish`], [`Manager::lookup`] |
//! | `manager.shutdown()` | [`Manager::shutdown`] (or drop) |
//! | a server-side exception, `RemoteError` | [`ManagerError::Remote`] with a [`RemoteError`] |
//! | `SharedMemoryManager()`, `.SharedMemory(size)`, `.ShareableList(seq)` | [`SharedMemoryManager::new`], [`SharedMemoryManager::shared_memory`], [`SharedMemoryManager::shareable_list`] (a [`Segments`] handle in children) |
//!
//! ```
//! use mp_managers::{Dict, Manager};
//!
//! fn square_into(d: Dict<u64, u64>, n: u64) {
//!     d.insert(n, n * n).unwrap();
//! }
//!
//! let manager = Manager::new()?;
//! let d = manager.dict::<u64, u64>()?;
//! let mut children: Vec<_> = (1..=3)
//!     .map(|n| mp_managers::Process::new(square_into, (d.clone(), n)))
//!     .collect();
//! for c in &mut children {
//!     c.start().unwrap();
//! }
//! for c in &mut children {
//!     c.join().unwrap();
//! }
//! let mut items = d.items()?;
//! items.sort();
//! assert_eq!(items, [(1, 1), (2, 4), (3, 9)]);
//! # Ok::<(), mp_managers::ManagerError>(())
//! ```
//!
//! Every call is a round trip to the server, as in Python: through shared-memory rings on one
//! host (a few microseconds), over the socket across hosts. For a map that
//! lives in shared memory with no server at all, see `mp_shm::SharedDict`.
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Clone, Debug, Serialize and Deserialize of a typed proxy: all through its `proxy` field.
macro_rules! proxy_wrapper {
    ($name:ident < $($t:ident),* > where $($bound:tt)*) => {
        impl<$($t),*> Clone for $name<$($t),*> where $($bound)* {
            fn clone(&self) -> Self {
                $name { proxy: self.proxy.clone() }
            }
        }

        impl<$($t),*> std::fmt::Debug for $name<$($t),*> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.proxy).finish()
            }
        }

        impl<$($t),*> serde::Serialize for $name<$($t),*> {
            fn serialize<Z: serde::Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
                serde::Serialize::serialize(&self.proxy, s)
            }
        }

        impl<'de, $($t),*> serde::Deserialize<'de> for $name<$($t),*> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name { proxy: serde::Deserialize::deserialize(d)? })
            }
        }

        impl<$($t),*> $crate::Managed for $name<$($t),*> where $($bound)* {
            fn base(&self) -> &$crate::BaseProxy {
                $crate::Managed::base(&self.proxy)
            }

            fn from_base(
                base: $crate::BaseProxy,
                type_name: &str,
            ) -> Result<Self, $crate::ManagerError> {
                Ok($name { proxy: $crate::Managed::from_base(base, type_name)? })
            }
        }
    };
}

mod array;
mod codec;
mod dict;
mod error;
mod link;
mod list;
mod manager;
mod namespace;
mod protocol;
mod proxy;
mod queues;
mod servant;
mod server;
mod set;
mod shared_memory_manager;
mod synchronize;

pub use array::{ArrayCall, ArrayReply, ArrayServant, ManagedArray};
pub use dict::{Dict, DictCall, DictReply, DictServant, Item, Key};
pub use error::{ManagerError, RemoteError};
pub use list::{List, ListCall, ListItem, ListReply, ListServant};
pub use manager::{Manager, Server};
/// Processes, re-exported from mp-spawn so that this crate's examples need no other name.
#[doc(no_inline)]
pub use mp_spawn::{Process, get_context};
pub use namespace::{
    ManagedValue, Namespace, NamespaceCall, NamespaceReply, NamespaceServant, ValueCall,
    ValueServant,
};
pub use proxy::{BaseProxy, Managed, Proxy};
pub use queues::{JoinableQueue, ManagedQueue};
pub use servant::Servant;
pub use set::{Set, SetCall, SetReply, SetServant};
pub use shared_memory_manager::{Segments, SharedMemoryManager, SmmError};
pub use synchronize::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, Semaphore,
};

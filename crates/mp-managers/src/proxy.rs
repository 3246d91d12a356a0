//! Proxies: handles to objects a server holds, usable from any process that receives them.
//!
//! Each proxy is one reference held by its process's session (see `protocol`). A proxy that
//! travels to another process (as a `Process` argument under spawn or forkserver, or through a
//! queue or a pipe) adds a transit reference when it is serialised, which the receiver adopts
//! when it is deserialised, so the object cannot be freed in between (cpython #119937). A proxy
//! copied by `fork` takes its own reference on its first use in the child.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ManagerError, unexpected};
use crate::link::{Endpoint, request};
use crate::protocol::{Reply, Request};
use crate::servant::{Servant, SharedServant};

/// A proxy of no particular type (Python's `BaseProxy`): a reference to an object on a
/// server, which every typed proxy wraps. Cloning adds a reference; the object is freed when
/// the last proxy to it, in any process, is dropped (or its process ends).
pub struct BaseProxy {
    endpoint: Endpoint,
    id: u64,
    /// The process whose session holds this proxy's reference (0: none).
    owner: AtomicU32,
}

impl BaseProxy {
    /// A proxy for a reference this process's session already holds.
    pub(crate) fn owned(endpoint: Endpoint, id: u64) -> BaseProxy {
        BaseProxy {
            endpoint,
            id,
            owner: AtomicU32::new(mp_sys::process::getpid()),
        }
    }

    /// Sends `call` to the object and decodes its reply.
    pub(crate) fn call<C: Serialize, R: DeserializeOwned>(
        &self,
        call: &C,
    ) -> Result<R, ManagerError> {
        self.own()?;
        let call = postcard::to_stdvec(call).map_err(|e| ManagerError::Encode(e.to_string()))?;
        match request(&self.endpoint, &Request::Call { id: self.id, call })? {
            Reply::Value(bytes) => crate::codec::decode(&bytes).map_err(ManagerError::Decode),
            _ => unexpected(),
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Makes sure this process's session holds a reference (a proxy copied by `fork` takes
    /// its own on first use).
    fn own(&self) -> Result<(), ManagerError> {
        let pid = mp_sys::process::getpid();
        if self.owner.load(Ordering::Relaxed) == pid {
            return Ok(());
        }
        request(&self.endpoint, &Request::IncRef { id: self.id })?;
        self.owner.store(pid, Ordering::Relaxed);
        Ok(())
    }

    /// The object's id on its server (Python's `_id`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Clone for BaseProxy {
    fn clone(&self) -> BaseProxy {
        // A clone that cannot take a reference (the server is gone) holds none, and its
        // calls fail as the original's do.
        let owned =
            self.own().is_ok() && request(&self.endpoint, &Request::IncRef { id: self.id }).is_ok();
        BaseProxy {
            endpoint: self.endpoint.clone(),
            id: self.id,
            owner: AtomicU32::new(if owned { mp_sys::process::getpid() } else { 0 }),
        }
    }
}

impl Drop for BaseProxy {
    fn drop(&mut self) {
        if self.owner.load(Ordering::Relaxed) == mp_sys::process::getpid() {
            // A server that is gone has nothing left to free.
            let _ = request(&self.endpoint, &Request::DecRef { id: self.id });
        }
    }
}

impl fmt::Debug for BaseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseProxy")
            .field("id", &self.id)
            .field("server", &self.endpoint)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    endpoint: Endpoint,
    id: u64,
    /// The sending session's transit reference, which the receiver adopts.
    token: u64,
}

impl Serialize for BaseProxy {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        // The receiver adopts this reference: the object lives until it has, or until this
        // process's session ends.
        let token = match request(&self.endpoint, &Request::Transit { id: self.id }) {
            Ok(Reply::Count(token)) => token,
            Ok(_) => return unexpected().map_err(serde::ser::Error::custom),
            Err(e) => return Err(serde::ser::Error::custom(e)),
        };
        Wire {
            endpoint: self.endpoint.clone(),
            id: self.id,
            token,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for BaseProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BaseProxy, D::Error> {
        let Wire {
            endpoint,
            id,
            token,
        } = Wire::deserialize(d)?;
        request(&endpoint, &Request::Adopt { id, token }).map_err(D::Error::custom)?;
        Ok(BaseProxy::owned(endpoint, id))
    }
}

/// A proxy that can be published under a name and looked up (see
/// [`Manager::publish`](crate::Manager::publish)): every proxy type of this crate.
pub trait Managed: Sized {
    /// The proxy it wraps.
    fn base(&self) -> &BaseProxy;
    /// The typed proxy for `base`, if its object's type is `type_name` (the name a looked-up
    /// object has on the server).
    fn from_base(base: BaseProxy, type_name: &str) -> Result<Self, ManagerError>;
}

/// The name a server records for objects of type `S` (what a lookup checks).
pub(crate) fn type_name<S: 'static>() -> &'static str {
    std::any::type_name::<S>()
}

/// `base` if its object's type, `found`, is `S`.
pub(crate) fn check_type<S: 'static>(
    base: BaseProxy,
    found: &str,
) -> Result<BaseProxy, ManagerError> {
    let expected = type_name::<S>();
    if found == expected {
        Ok(base)
    } else {
        Err(ManagerError::WrongType {
            expected: expected.to_owned(),
            found: found.to_owned(),
        })
    }
}

/// A handle to an object of type `S` on a manager's server: call it with
/// [`call`](Proxy::call). Cloning adds a reference; the object is freed when the last proxy to
/// it, in any process, is dropped (or its process ends).
///
/// The typed proxies ([`Dict`](crate::Dict), [`List`](crate::List), ...) wrap one.
pub struct Proxy<S> {
    base: BaseProxy,
    _servant: PhantomData<fn() -> S>,
}

impl<S: Servant> Proxy<S> {
    pub(crate) fn new(base: BaseProxy) -> Proxy<S> {
        Proxy {
            base,
            _servant: PhantomData,
        }
    }

    /// Calls the object: `call` runs on the server, and its reply comes back.
    pub fn call(&self, call: S::Call) -> Result<S::Reply, ManagerError> {
        self.base.call(&call)
    }

    /// The object's id on its server (Python's `_id`).
    pub fn id(&self) -> u64 {
        self.base.id
    }
}

impl<S: Servant> Managed for Proxy<S> {
    fn base(&self) -> &BaseProxy {
        &self.base
    }

    fn from_base(base: BaseProxy, type_name: &str) -> Result<Self, ManagerError> {
        Ok(Proxy::new(check_type::<S>(base, type_name)?))
    }
}

impl<S> Clone for Proxy<S> {
    fn clone(&self) -> Proxy<S> {
        Proxy {
            base: self.base.clone(),
            _servant: PhantomData,
        }
    }
}

impl<S> fmt::Debug for Proxy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("type", &std::any::type_name::<S>())
            .field("id", &self.base.id)
            .field("server", &self.base.endpoint)
            .finish()
    }
}

impl<S> Serialize for Proxy<S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        self.base.serialize(s)
    }
}

impl<'de, S> Deserialize<'de> for Proxy<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Proxy<S>, D::Error> {
        Ok(Proxy {
            base: BaseProxy::deserialize(d)?,
            _servant: PhantomData,
        })
    }
}

/// A handle to an object whose calls may block (see `SharedServant`): what the proxies of
/// locks, events, queues... wrap.
pub(crate) struct SharedProxy<S> {
    base: BaseProxy,
    _servant: PhantomData<fn() -> S>,
}

impl<S: SharedServant> SharedProxy<S> {
    pub(crate) fn new(base: BaseProxy) -> SharedProxy<S> {
        SharedProxy {
            base,
            _servant: PhantomData,
        }
    }

    pub(crate) fn call(&self, call: S::Call) -> Result<S::Reply, ManagerError> {
        self.base.call(&call)
    }
}

impl<S: SharedServant> Managed for SharedProxy<S> {
    fn base(&self) -> &BaseProxy {
        &self.base
    }

    fn from_base(base: BaseProxy, type_name: &str) -> Result<Self, ManagerError> {
        Ok(SharedProxy::new(check_type::<S>(base, type_name)?))
    }
}

impl<S> Clone for SharedProxy<S> {
    fn clone(&self) -> SharedProxy<S> {
        SharedProxy {
            base: self.base.clone(),
            _servant: PhantomData,
        }
    }
}

impl<S> fmt::Debug for SharedProxy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.base.fmt(f)
    }
}

impl<S> Serialize for SharedProxy<S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        self.base.serialize(s)
    }
}

impl<'de, S> Deserialize<'de> for SharedProxy<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedProxy<S>, D::Error> {
        Ok(SharedProxy {
            base: BaseProxy::deserialize(d)?,
            _servant: PhantomData,
        })
    }
}

//! Proxies: handles to objects a server holds, usable from any process that receives them.
//!
//! A process talks to a server over one connection of its own, made on first use (a forked
//! child never uses its parent's: the pid is checked). Each proxy is one reference held by its
//! process's connection. A proxy that travels to another process (as a `Process` argument
//! under spawn or forkserver, or through a queue or a pipe) adds a transit reference when it is
//! serialised, which the receiver adopts when it is deserialised, so the object cannot be freed
//! in between (cpython #119937). A proxy copied by `fork` takes its own reference on its first
//! use in the child.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mp_ipc::{Address, Connection, Queue};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ManagerError;
use crate::servant::Servant;
use crate::server::{Reply, Request};

/// Where a server is, and the key to it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Server {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the authkey.
        f.debug_struct("Server")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// This process's connection to one server: requests and replies go through two
/// shared-memory rings (mp-ipc queues, a round trip of a few microseconds when both sides are
/// awake); the socket stays open so that each side sees the other go (end-of-file).
struct Link {
    pid: u32,
    server: Server,
    channel: Mutex<Channel>,
}

struct Channel {
    conn: Connection,
    requests: Queue<Request>,
    replies: Queue<Reply>,
}

/// How often a caller waiting for a reply checks that the server is still there.
const GONE_CHECK: Duration = Duration::from_millis(200);

static LINKS: Mutex<Vec<Arc<Link>>> = Mutex::new(Vec::new());

fn links() -> MutexGuard<'static, Vec<Arc<Link>>> {
    LINKS.lock().unwrap_or_else(|e| e.into_inner())
}

fn hold_links() -> Box<dyn Any> {
    Box::new(links())
}

/// This process's connection to `server`, made on first use.
fn link(server: &Server) -> Result<Arc<Link>, ManagerError> {
    // A fork must not copy the list while another thread changes it. Not a `Once`: one still
    // running in another thread at a fork would hang the child's first call here.
    static REGISTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !REGISTERED.load(Ordering::Relaxed) {
        // Registering twice registers once.
        mp_spawn::hold_across_fork(hold_links);
        REGISTERED.store(true, Ordering::Relaxed);
    }
    let pid = mp_sys::process::getpid();
    let mut links = links();
    if links.iter().any(|l| l.pid != pid) {
        // Forked: the parent's connections are not ours to use. Their descriptors are closed
        // in this process only (closing never shuts the parent's socket down).
        links.retain(|l| l.pid == pid);
    }
    if let Some(link) = links.iter().find(|l| &l.server == server) {
        return Ok(Arc::clone(link));
    }
    let conn =
        mp_ipc::client(&server.address, Some(&server.authkey)).map_err(ManagerError::Connect)?;
    let gone = |_| ManagerError::ServerGone;
    let (requests, replies) = (Queue::new().map_err(gone)?, Queue::new().map_err(gone)?);
    conn.send(&Request::Upgrade {
        requests: requests.clone(),
        replies: replies.clone(),
    })?;
    let link = Arc::new(Link {
        pid,
        server: server.clone(),
        channel: Mutex::new(Channel {
            conn,
            requests,
            replies,
        }),
    });
    links.push(Arc::clone(&link));
    Ok(link)
}

/// Sends one request to `server` and waits for the answer.
pub(crate) fn request(server: &Server, request: &Request) -> Result<Reply, ManagerError> {
    let link = link(server)?;
    let channel = link.channel.lock().unwrap_or_else(|e| e.into_inner());
    channel.requests.put(request).map_err(|e| match e {
        mp_ipc::PutError::Encode(e) => ManagerError::Encode(e.to_string()),
        _ => ManagerError::ServerGone,
    })?;
    let reply = loop {
        match channel.replies.get_timeout(GONE_CHECK) {
            Ok(reply) => break reply,
            // The server never writes on the socket: readable means it is gone.
            Err(mp_ipc::GetError::Empty)
                if !channel.conn.poll(Some(Duration::ZERO)).unwrap_or(true) => {}
            Err(mp_ipc::GetError::Decode(e)) => return Err(ManagerError::Decode(e.to_string())),
            Err(_) => return Err(ManagerError::ServerGone),
        }
    };
    match reply {
        Reply::Error(e) => Err(ManagerError::Remote(e)),
        reply => Ok(reply),
    }
}

/// A handle to an object of type `S` on a manager's server (Python's `BaseProxy`): call it
/// with [`call`](Proxy::call). Cloning adds a reference; the object is freed when the last
/// proxy to it, in any process, is dropped (or its process ends).
///
/// The typed proxies ([`Dict`](crate::Dict), [`List`](crate::List), ...) wrap one.
pub struct Proxy<S> {
    server: Server,
    id: u64,
    /// The process whose connection holds this proxy's reference (0: none).
    owner: AtomicU32,
    _servant: PhantomData<fn() -> S>,
}

impl<S: Servant> Proxy<S> {
    /// A proxy for a reference this process's connection already holds.
    pub(crate) fn owned(server: Server, id: u64) -> Proxy<S> {
        Proxy {
            server,
            id,
            owner: AtomicU32::new(mp_sys::process::getpid()),
            _servant: PhantomData,
        }
    }

    /// Calls the object: `call` runs on the server, and its reply comes back.
    pub fn call(&self, call: S::Call) -> Result<S::Reply, ManagerError> {
        self.own()?;
        let call = postcard::to_stdvec(&call).map_err(|e| ManagerError::Encode(e.to_string()))?;
        match request(&self.server, &Request::Call { id: self.id, call })? {
            Reply::Value(bytes) => {
                postcard::from_bytes(&bytes).map_err(|e| ManagerError::Decode(e.to_string()))
            }
            other => Err(ManagerError::Decode(format!("unexpected reply {other:?}"))),
        }
    }

    /// Makes sure this process's connection holds a reference (a proxy copied by `fork`
    /// takes its own on first use).
    fn own(&self) -> Result<(), ManagerError> {
        let pid = mp_sys::process::getpid();
        if self.owner.load(Ordering::Relaxed) == pid {
            return Ok(());
        }
        request(&self.server, &Request::IncRef { id: self.id })?;
        self.owner.store(pid, Ordering::Relaxed);
        Ok(())
    }

    /// The object's id on its server (Python's `_id`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<S: Servant> Clone for Proxy<S> {
    fn clone(&self) -> Proxy<S> {
        // A clone that cannot take a reference (the server is gone) holds none, and its
        // calls fail as the original's do.
        let owned =
            self.own().is_ok() && request(&self.server, &Request::IncRef { id: self.id }).is_ok();
        Proxy {
            server: self.server.clone(),
            id: self.id,
            owner: AtomicU32::new(if owned { mp_sys::process::getpid() } else { 0 }),
            _servant: PhantomData,
        }
    }
}

impl<S> Drop for Proxy<S> {
    fn drop(&mut self) {
        if self.owner.load(Ordering::Relaxed) == mp_sys::process::getpid() {
            // A server that is gone has nothing left to free.
            let _ = request(&self.server, &Request::DecRef { id: self.id });
        }
    }
}

impl<S> fmt::Debug for Proxy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("type", &std::any::type_name::<S>())
            .field("id", &self.id)
            .field("server", &self.server)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    server: Server,
    id: u64,
}

impl<S> Serialize for Proxy<S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        // The receiver adopts this reference: the object lives until it has.
        request(&self.server, &Request::Transit { id: self.id })
            .map_err(serde::ser::Error::custom)?;
        Wire {
            server: self.server.clone(),
            id: self.id,
        }
        .serialize(s)
    }
}

impl<'de, S> Deserialize<'de> for Proxy<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Proxy<S>, D::Error> {
        let Wire { server, id } = Wire::deserialize(d)?;
        request(&server, &Request::Adopt { id }).map_err(D::Error::custom)?;
        Ok(Proxy {
            server,
            id,
            owner: AtomicU32::new(mp_sys::process::getpid()),
            _servant: PhantomData,
        })
    }
}

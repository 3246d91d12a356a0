//! The server: the process that holds the managed objects, a thread per client connection, and
//! the reference counts that free an object when its last proxy anywhere is gone.
//!
//! Who holds a reference: a client connection (each proxy in a process is one reference held by
//! that process's connection), or nobody yet (a proxy in transit to another process: `Transit`
//! adds one, the receiver's `Adopt` makes it its connection's). When a connection ends, however
//! its process ended, the references it held are dropped, so a killed client leaks nothing
//! (cpython #119937).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mp_ipc::{Address, Connection, GetError, Listener, Queue};
use serde::{Deserialize, Serialize};

use crate::error::RemoteError;
use crate::servant::{Erased, creator_at};

/// A client's request.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Request {
    /// Creates an object of the type `type_offset` names (see `servant`), held by this
    /// connection.
    Create { type_offset: i64, args: Vec<u8> },
    /// Calls an object.
    Call { id: u64, call: Vec<u8> },
    /// One more reference, held by this connection (a proxy cloned or first used here).
    IncRef { id: u64 },
    /// One reference less, of those this connection holds (a proxy dropped).
    DecRef { id: u64 },
    /// One more reference, held by no connection: a proxy on its way to another process.
    Transit { id: u64 },
    /// Makes one transit reference this connection's (the proxy arrived).
    Adopt { id: u64 },
    /// How many objects the server holds (for tests and `Manager::object_count`).
    Count,
    /// From now on, requests come on `requests` and replies go on `replies` (shared-memory
    /// rings: a round trip without a socket wake-up); the socket only tells that the client
    /// is gone (end-of-file).
    Upgrade {
        requests: Queue<Request>,
        replies: Queue<Reply>,
    },
    /// Ends the server.
    Shutdown,
}

/// The server's answer.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Reply {
    Created(u64),
    Value(Vec<u8>),
    Count(u64),
    Done,
    Error(RemoteError),
}

/// An object and the references to it.
struct Object {
    servant: Arc<Mutex<Box<dyn Erased>>>,
    /// Every reference: held by connections, and in transit.
    refs: u64,
    /// Of those, the ones in transit (adopted by no connection yet).
    transit: u64,
}

#[derive(Default)]
struct Objects {
    map: Mutex<HashMap<u64, Object>>,
    next: AtomicU64,
}

impl Objects {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Object>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops `n` references to `id`, freeing it at zero. The servant is dropped outside the lock.
    fn release(&self, id: u64, n: u64) {
        let freed = {
            let mut map = self.lock();
            match map.get_mut(&id) {
                Some(object) if object.refs <= n => map.remove(&id),
                Some(object) => {
                    object.refs -= n;
                    None
                }
                None => None,
            }
        };
        drop(freed);
    }
}

/// The server's life (the target of its process): listen at a fresh abstract address with
/// `authkey`, say the address on `ready`, and serve until `Shutdown`.
pub(crate) fn serve(ready: Connection, authkey: Vec<u8>) {
    // Ctrl-C goes to the whole process group: the program, not its server, decides (Python's
    // manager ignores it too: bpo-36368).
    mp_sys::signal::set_ignored(libc::SIGINT, true);
    let listener = match bind(&authkey) {
        Ok(listener) => Arc::new(listener),
        Err(e) => {
            let _ = ready.send(&Err::<Address, String>(e.to_string()));
            return;
        }
    };
    if ready
        .send(&Ok::<Address, String>(listener.address().clone()))
        .is_err()
    {
        return;
    }
    drop(ready);
    run(&listener);
}

fn bind(authkey: &[u8]) -> Result<Listener, mp_ipc::ListenerError> {
    let mut nonce = [0u8; 8];
    mp_sys::random::fill(&mut nonce)?;
    let name = format!(
        "mp-manager-{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(nonce)
    );
    Listener::bind(&Address::Abstract(name.into_bytes()), Some(authkey))
}

/// Accepts clients until the listener is closed (by a `Shutdown`).
pub(crate) fn run(listener: &Arc<Listener>) {
    let objects = Arc::new(Objects::default());
    loop {
        let conn = match listener.accept() {
            Ok(conn) => conn,
            // Closed by a `Shutdown`: the server's life is over.
            Err(mp_ipc::ListenerError::Closed) => return,
            // Anything else concerns one client (a wrong authkey, garbage instead of the
            // handshake, a peer that hung up or stayed silent): the next one is served.
            Err(_) => continue,
        };
        let (objects, listener) = (Arc::clone(&objects), Arc::clone(listener));
        let spawned = std::thread::Builder::new()
            .name("mp-manager-client".to_owned())
            .spawn(move || serve_client(&conn, &objects, &listener));
        if spawned.is_err() {
            continue;
        }
    }
}

/// How often a client served through rings is checked for being gone while it is silent.
const GONE_CHECK: Duration = Duration::from_millis(200);

/// Serves one connection until it ends, then drops the references it held.
fn serve_client(conn: &Connection, objects: &Objects, listener: &Listener) {
    let mut held: HashMap<u64, u64> = HashMap::new();
    while let Ok(request) = conn.recv::<Request>() {
        if let Request::Upgrade { requests, replies } = request {
            serve_rings(conn, &requests, &replies, objects, listener, &mut held);
            break;
        }
        let shutdown = matches!(request, Request::Shutdown);
        let reply = answer(request, objects, &mut held);
        if conn.send(&reply).is_err() {
            break;
        }
        if shutdown {
            listener.close();
            break;
        }
    }
    for (id, n) in held {
        objects.release(id, n);
    }
}

/// Serves a client through its rings until its socket ends (it closed it, or died).
fn serve_rings(
    conn: &Connection,
    requests: &Queue<Request>,
    replies: &Queue<Reply>,
    objects: &Objects,
    listener: &Listener,
    held: &mut HashMap<u64, u64>,
) {
    loop {
        let request = match requests.get_timeout(GONE_CHECK) {
            Ok(request) => request,
            // Silent: is it still there? (The client never writes on the socket now.)
            Err(GetError::Empty) if !conn.poll(Some(Duration::ZERO)).unwrap_or(true) => continue,
            Err(_) => return,
        };
        let shutdown = matches!(request, Request::Shutdown);
        let reply = answer(request, objects, held);
        if replies.put(&reply).is_err() {
            return;
        }
        if shutdown {
            listener.close();
            return;
        }
    }
}

fn answer(request: Request, objects: &Objects, held: &mut HashMap<u64, u64>) -> Reply {
    match request {
        Request::Create { type_offset, args } => {
            let Some(create) = creator_at(type_offset) else {
                return Reply::Error(RemoteError::BadCall(
                    "the type is unknown to the server (a different build?)".to_owned(),
                ));
            };
            match create(&args) {
                Ok(servant) => {
                    let id = objects.next.fetch_add(1, Ordering::Relaxed) + 1;
                    let object = Object {
                        servant: Arc::new(Mutex::new(servant)),
                        refs: 1,
                        transit: 0,
                    };
                    objects.lock().insert(id, object);
                    *held.entry(id).or_default() += 1;
                    Reply::Created(id)
                }
                Err(e) => Reply::Error(e),
            }
        }
        Request::Call { id, call } => {
            let Some(servant) = objects.lock().get(&id).map(|o| Arc::clone(&o.servant)) else {
                return Reply::Error(RemoteError::NoSuchObject(id));
            };
            let mut servant = servant.lock().unwrap_or_else(|e| e.into_inner());
            match servant.call(&call) {
                Ok(value) => Reply::Value(value),
                Err(e) => Reply::Error(e),
            }
        }
        Request::IncRef { id } | Request::Transit { id } => {
            let transit = matches!(request, Request::Transit { .. });
            match objects.lock().get_mut(&id) {
                Some(object) => {
                    object.refs += 1;
                    object.transit += u64::from(transit);
                }
                None => return Reply::Error(RemoteError::NoSuchObject(id)),
            }
            if !transit {
                *held.entry(id).or_default() += 1;
            }
            Reply::Done
        }
        Request::Adopt { id } => {
            match objects.lock().get_mut(&id) {
                Some(object) if object.transit > 0 => object.transit -= 1,
                // Nothing in transit: a second delivery of one message, or a confused
                // client. Count it as a fresh reference instead.
                Some(object) => object.refs += 1,
                None => return Reply::Error(RemoteError::NoSuchObject(id)),
            }
            *held.entry(id).or_default() += 1;
            Reply::Done
        }
        Request::DecRef { id } => {
            match held.get_mut(&id) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    held.remove(&id);
                }
                // Not ours to drop: a confused client cannot free others' objects.
                None => return Reply::Done,
            }
            objects.release(id, 1);
            Reply::Done
        }
        Request::Count => Reply::Count(objects.lock().len() as u64),
        Request::Upgrade { .. } => Reply::Error(RemoteError::BadCall("upgraded twice".to_owned())),
        Request::Shutdown => Reply::Done,
    }
}

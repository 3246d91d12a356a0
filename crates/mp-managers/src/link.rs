//! A client's connections to a server: one session per process and server (its anchor
//! connection, kept until the process ends), and a link per thread that calls, joined to the
//! session (see `protocol` for what the server keeps of them).
//!
//! A link per thread, as Python's proxies have a connection per thread: a call that blocks in
//! the server (a lock's `acquire`, a queue's `get`) holds up its own thread only, and a call
//! takes no lock shared with other threads. A forked child never uses its parent's
//! connections (the pid is checked): it opens its own.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mp_ipc::{Address, Connection, GetError, Queue};
use serde::{Deserialize, Serialize};

use crate::error::ManagerError;
use crate::protocol::{Build, Hello, Reply, Request};

/// Where a server is, and the key to it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Endpoint {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
}

impl Endpoint {
    /// Over TCP the server may be on another host: no shared-memory rings, and the build is
    /// compared by content.
    fn remote(&self) -> bool {
        matches!(self.address, Address::Tcp(_))
    }

    fn connect(&self, session: Option<u64>) -> Result<(Connection, u64), ManagerError> {
        let conn =
            mp_ipc::client(&self.address, Some(&self.authkey)).map_err(ManagerError::Connect)?;
        conn.send(&Hello {
            build: Build::of_this_process(self.remote()),
            session,
        })?;
        match conn.recv::<Reply>()? {
            Reply::Session(id) => Ok((conn, id)),
            Reply::Error(e) => Err(ManagerError::Remote(e)),
            _ => crate::error::unexpected(),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the authkey.
        f.debug_struct("Endpoint")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// This process's session with one server.
struct Session {
    pid: u32,
    endpoint: Endpoint,
    id: u64,
    /// The anchor: while it is open, the session lives. It also carries the calls of a thread
    /// that is exiting (whose own link is gone).
    anchor: Mutex<Connection>,
}

static SESSIONS: Mutex<Vec<Arc<Session>>> = Mutex::new(Vec::new());

fn sessions() -> MutexGuard<'static, Vec<Arc<Session>>> {
    SESSIONS.lock().unwrap_or_else(|e| e.into_inner())
}

fn hold_sessions() -> Box<dyn std::any::Any> {
    Box::new(sessions())
}

/// This process's session with `endpoint`, opened on first use.
fn session(endpoint: &Endpoint) -> Result<Arc<Session>, ManagerError> {
    // A fork must not copy the list while another thread changes it. Not a `Once`: one still
    // running in another thread at a fork would hang the child's first call here.
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if !REGISTERED.load(Ordering::Relaxed) {
        // Registering twice registers once.
        mp_spawn::hold_across_fork(hold_sessions);
        REGISTERED.store(true, Ordering::Relaxed);
    }
    let pid = mp_sys::process::getpid();
    let mut sessions = sessions();
    // Forked: the parent's sessions are not ours. Their descriptors are closed in this process
    // only (closing never shuts the parent's socket down).
    sessions.retain(|s| s.pid == pid);
    if let Some(session) = sessions.iter().find(|s| &s.endpoint == endpoint) {
        return Ok(Arc::clone(session));
    }
    let (anchor, id) = endpoint.connect(None)?;
    let session = Arc::new(Session {
        pid,
        endpoint: endpoint.clone(),
        id,
        anchor: Mutex::new(anchor),
    });
    sessions.push(Arc::clone(&session));
    Ok(session)
}

/// One thread's connection to one server.
struct Link {
    pid: u32,
    endpoint: Endpoint,
    transport: Transport,
}

enum Transport {
    /// Requests and replies through two shared-memory rings (mp-ipc queues: a round trip of a
    /// few microseconds when both sides are awake); the socket only tells that the server is
    /// gone (end-of-file).
    Rings {
        conn: Connection,
        requests: Queue<Request>,
        replies: Queue<Reply>,
    },
    /// Requests and replies on the socket (a server over TCP).
    Socket(Connection),
}

/// How often a caller waiting for a reply checks that the server is still there.
const GONE_CHECK: Duration = Duration::from_millis(200);

thread_local! {
    static LINKS: RefCell<Vec<Rc<Link>>> = const { RefCell::new(Vec::new()) };
}

impl Link {
    fn open(endpoint: &Endpoint, pid: u32) -> Result<Link, ManagerError> {
        let session = session(endpoint)?;
        let (conn, _) = endpoint.connect(Some(session.id))?;
        let transport = if endpoint.remote() {
            Transport::Socket(conn)
        } else {
            let gone = |_| ManagerError::ServerGone;
            let (requests, replies) = (Queue::new().map_err(gone)?, Queue::new().map_err(gone)?);
            conn.send(&Request::Upgrade {
                requests: requests.clone(),
                replies: replies.clone(),
            })?;
            Transport::Rings {
                conn,
                requests,
                replies,
            }
        };
        Ok(Link {
            pid,
            endpoint: endpoint.clone(),
            transport,
        })
    }

    fn round_trip(&self, request: &Request) -> Result<Reply, ManagerError> {
        match &self.transport {
            Transport::Socket(conn) => socket_round_trip(conn, request),
            Transport::Rings {
                conn,
                requests,
                replies,
            } => {
                requests.put(request).map_err(|e| match e {
                    mp_ipc::PutError::Encode(e) => ManagerError::Encode(e.to_string()),
                    _ => ManagerError::ServerGone,
                })?;
                loop {
                    match replies.get_timeout(GONE_CHECK) {
                        Ok(reply) => return Ok(reply),
                        // The server never writes on the socket: readable means it is gone.
                        Err(GetError::Empty)
                            if !conn.poll(Some(Duration::ZERO)).unwrap_or(true) => {}
                        Err(GetError::Decode(e)) => {
                            return Err(ManagerError::Decode(e.to_string()));
                        }
                        Err(_) => return Err(ManagerError::ServerGone),
                    }
                }
            }
        }
    }
}

fn socket_round_trip(conn: &Connection, request: &Request) -> Result<Reply, ManagerError> {
    conn.send(request)?;
    Ok(conn.recv::<Reply>()?)
}

/// This thread's link to `endpoint`, opened on first use; `None` if the thread is exiting
/// (its thread-locals are gone).
fn thread_link(endpoint: &Endpoint) -> Option<Result<Rc<Link>, ManagerError>> {
    LINKS
        .try_with(|links| {
            let pid = mp_sys::process::getpid();
            {
                let mut links = links.borrow_mut();
                links.retain(|l| l.pid == pid);
                if let Some(link) = links.iter().find(|l| &l.endpoint == endpoint) {
                    return Ok(Rc::clone(link));
                }
            }
            // Not borrowed while connecting: nothing here calls back, but a panic must not
            // leave the list borrowed either.
            let link = Rc::new(Link::open(endpoint, pid)?);
            links.borrow_mut().push(Rc::clone(&link));
            Ok(link)
        })
        .ok()
}

/// Sends one request to the server at `endpoint` and waits for the answer.
pub(crate) fn request(endpoint: &Endpoint, request: &Request) -> Result<Reply, ManagerError> {
    let reply = match thread_link(endpoint) {
        Some(link) => link?.round_trip(request)?,
        // An exiting thread (a proxy dropped by a thread-local's destructor): the anchor.
        None => {
            let session = session(endpoint)?;
            let anchor = session.anchor.lock().unwrap_or_else(|e| e.into_inner());
            socket_round_trip(&anchor, request)?
        }
    };
    match reply {
        Reply::Error(e) => Err(ManagerError::Remote(e)),
        reply => Ok(reply),
    }
}

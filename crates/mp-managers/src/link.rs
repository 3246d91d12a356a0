//! A client's connections to a server: one session per process and server (its anchor
//! connection, kept while the server lives), and a link per thread that calls, joined to the
//! session (see `protocol` for what the server keeps of them).
//!
//! A link per thread, as Python's proxies have a connection per thread: a call that blocks in
//! the server (a lock's `acquire`, a queue's `get`) holds up its own thread only, and a call
//! takes no lock shared with other threads.
//!
//! The list of sessions is held across every fork (a child must not find it half changed), so
//! nothing does I/O while holding it: connects run outside it, with a deadline (debug builds
//! check this). A forked child never uses its parent's connections (the pid is checked), and
//! its copies of them are closed when it starts (`forget_parent_links`): a copy would keep the
//! parent's session and callers alive on the server after the parent (or one of its threads)
//! is gone. A server seen gone (its socket at end-of-file) has its session and links dropped,
//! so the next call connects anew: to nothing (`ServerGone` at once), or to a server restarted
//! at the same address.

use std::cell::RefCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use mp_ipc::{Address, Connection, GetError, ListenerError, Queue};
use mp_sys::socket::Peer;
use serde::{Deserialize, Serialize};

use crate::error::{ManagerError, RemoteError};
use crate::protocol::{Build, Hello, Reply, Request};

/// How long opening a connection to a server may take, connect and handshake (Python waits
/// forever): a peer that accepts and never answers is an error after it, not a hang.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// A new connection, with its session's id: a new session's (`None`, the anchor), or
    /// `session`'s, which it joins. Done by `timeout`, or `Connect(HandshakeTimeout)`.
    fn connect(
        &self,
        session: Option<u64>,
        timeout: Duration,
    ) -> Result<(Connection, u64), ManagerError> {
        assert_no_fork_lock();
        // `None`: a timeout too large to add is no deadline at all.
        let deadline = mp_sys::deadline::after(timeout);
        let conn = mp_ipc::client_timeout(&self.address, Some(&self.authkey), timeout)
            .map_err(ManagerError::Connect)?;
        conn.send(&Hello {
            build: Build::of_this_process(self.remote()),
            session,
        })?;
        // The peer passed the handshake (it knows the key): a server, whose answer comes
        // whole once it starts.
        if !conn.poll(deadline.map(|d| d.saturating_duration_since(Instant::now())))? {
            return Err(ManagerError::Connect(ListenerError::HandshakeTimeout));
        }
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

/// Whether a socket is at end-of-file: the server never writes on a connection between
/// calls, so readable means it is gone.
fn hung_up(conn: &Connection) -> bool {
    assert_no_fork_lock();
    conn.poll(Some(Duration::ZERO)).unwrap_or(true)
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

impl Session {
    /// Whether its server is gone (the anchor at end-of-file). An anchor busy with an exiting
    /// thread's call is taken as alive: that call finds out.
    fn gone(&self) -> bool {
        match self.anchor.try_lock() {
            Ok(anchor) => hung_up(&anchor),
            Err(TryLockError::Poisoned(e)) => hung_up(&e.into_inner()),
            Err(TryLockError::WouldBlock) => false,
        }
    }

    fn round_trip(&self, request: &Request) -> Result<Reply, ManagerError> {
        let anchor = self.anchor.lock().unwrap_or_else(|e| e.into_inner());
        socket_round_trip(&anchor, request)
    }
}

/// This process's sessions, and every server address it ever connected to (what a forked
/// child looks for among its inherited sockets, see `forget_parent_links`).
struct Clients {
    sessions: Vec<Arc<Session>>,
    addresses: Vec<Address>,
}

static CLIENTS: Mutex<Clients> = Mutex::new(Clients {
    sessions: Vec::new(),
    addresses: Vec::new(),
});

#[cfg(debug_assertions)]
thread_local! {
    /// Whether this thread holds `CLIENTS` (debug builds): I/O then is a bug, checked by
    /// `assert_no_fork_lock`.
    static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `CLIENTS`, locked; the I/O paths assert that their thread does not hold it (debug builds).
struct Held(MutexGuard<'static, Clients>);

fn clients() -> Held {
    let guard = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    #[cfg(debug_assertions)]
    let _ = HOLDING.try_with(|h| h.set(true));
    Held(guard)
}

impl Drop for Held {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        let _ = HOLDING.try_with(|h| h.set(false));
    }
}

impl Deref for Held {
    type Target = Clients;
    fn deref(&self) -> &Clients {
        &self.0
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Clients {
        &mut self.0
    }
}

/// Panics (debug builds) if this thread holds `CLIENTS`, which every fork takes: I/O under it
/// would hold up every fork of the process, and every `println!` while a fork waits (the
/// forking thread holds stdout's lock).
fn assert_no_fork_lock() {
    #[cfg(debug_assertions)]
    assert!(
        !HOLDING.try_with(std::cell::Cell::get).unwrap_or(false),
        "mp-managers: I/O while holding the session list, which is held across forks"
    );
}

/// A fork must not copy the list while another thread changes it.
static HOLD_CLIENTS: mp_sys::fork::Hold =
    mp_sys::fork::Hold::new(mp_sys::fork::Rank::MANAGERS_CLIENTS, || {
        Box::new(CLIENTS.lock().unwrap_or_else(|e| e.into_inner()))
    });

/// This process's session with `endpoint`: the known one if its server is still there, else a
/// new one (connected outside the lock, within `timeout`).
fn session(endpoint: &Endpoint, timeout: Duration) -> Result<Arc<Session>, ManagerError> {
    HOLD_CLIENTS.register();
    let pid = mp_sys::process::getpid();
    let (known, parents) = {
        let mut clients = clients();
        // Forked: the parent's sessions are not ours (their sockets were closed here at the
        // start). Dropped after the lock.
        let (ours, parents) = std::mem::take(&mut clients.sessions)
            .into_iter()
            .partition(|s| s.pid == pid);
        clients.sessions = ours;
        // Before the connect: a fork during it must close the new socket in its child too.
        if !clients.addresses.contains(&endpoint.address) {
            clients.addresses.push(endpoint.address.clone());
        }
        let known = clients
            .sessions
            .iter()
            .find(|s| &s.endpoint == endpoint)
            .cloned();
        (known, parents)
    };
    drop(parents);
    if let Some(known) = known {
        if !known.gone() {
            return Ok(known);
        }
        forget(&known);
    }
    let (anchor, id) = endpoint.connect(None, timeout)?;
    let opened = Arc::new(Session {
        pid,
        endpoint: endpoint.clone(),
        id,
        anchor: Mutex::new(anchor),
    });
    let mut clients = clients();
    // Another thread may have opened one meanwhile: one session per process and server.
    if let Some(other) = clients
        .sessions
        .iter()
        .find(|s| s.pid == pid && &s.endpoint == endpoint)
        .cloned()
    {
        drop(clients);
        // Ours closes (after the lock); the server drops its empty session.
        return Ok(other);
    }
    clients.sessions.push(Arc::clone(&opened));
    Ok(opened)
}

/// Drops `session` from the list (not another one opened since), so that the next call opens
/// a new one.
fn forget(session: &Arc<Session>) {
    let removed: Vec<_> = {
        let mut clients = clients();
        let (removed, kept) = std::mem::take(&mut clients.sessions)
            .into_iter()
            .partition(|s| Arc::ptr_eq(s, session));
        clients.sessions = kept;
        removed
    };
    // Closed after the lock.
    drop(removed);
}

/// Drops `session` if its server is gone.
fn forget_if_gone(session: &Arc<Session>) {
    if session.gone() {
        forget(session);
    }
}

/// One thread's connection to one server.
struct Link {
    pid: u32,
    endpoint: Endpoint,
    /// The session it joined (kept open while the link is).
    session: Arc<Session>,
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
    fn open(endpoint: &Endpoint, pid: u32, timeout: Duration) -> Result<Link, ManagerError> {
        let mut joined = session(endpoint, timeout)?;
        let conn = match endpoint.connect(Some(joined.id), timeout) {
            Ok((conn, _)) => conn,
            // The server does not know the session: it is another one, restarted at the same
            // address since the session's anchor was checked. Once more, with a new session.
            Err(ManagerError::Remote(RemoteError::NoSuchSession(_))) => {
                forget(&joined);
                joined = session(endpoint, timeout)?;
                endpoint.connect(Some(joined.id), timeout)?.0
            }
            Err(e) => return Err(e),
        };
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
            session: joined,
            transport,
        })
    }

    fn round_trip(&self, request: &Request) -> Result<Reply, ManagerError> {
        assert_no_fork_lock();
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
                        Err(GetError::Empty) if !hung_up(conn) => {}
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
    assert_no_fork_lock();
    conn.send(request)?;
    Ok(conn.recv::<Reply>()?)
}

/// A round trip on this thread's `link`; one that finds its server gone is dropped, so that
/// the next call connects anew (and fails at once if nothing is there).
fn link_round_trip(link: &Rc<Link>, request: &Request) -> Result<Reply, ManagerError> {
    let reply = link.round_trip(request);
    if let Err(ManagerError::ServerGone) = reply {
        let _ = LINKS.try_with(|links| drop_link(links, link));
    }
    reply
}

/// Drops this thread's `link`, and its session if the server is gone (not only this
/// connection).
fn drop_link(links: &RefCell<Vec<Rc<Link>>>, link: &Rc<Link>) {
    let removed: Vec<_> = {
        let mut links = links.borrow_mut();
        let (removed, kept) = std::mem::take(&mut *links)
            .into_iter()
            .partition(|l| Rc::ptr_eq(l, link));
        *links = kept;
        removed
    };
    drop(removed);
    forget_if_gone(&link.session);
}

/// This thread's link to `endpoint`, and whether it was kept from an earlier call (a new one
/// is opened if there is none); `None` if the thread is exiting (its thread-locals are gone).
/// A kept link is not checked here: that would cost every call a `poll`; a call on a link
/// whose server went since is retried once on a new one instead (see [`call`]).
fn thread_link(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Option<Result<(Rc<Link>, bool), ManagerError>> {
    LINKS
        .try_with(|links| {
            let pid = mp_sys::process::getpid();
            let known = {
                let mut links = links.borrow_mut();
                links.retain(|l| l.pid == pid);
                links.iter().find(|l| &l.endpoint == endpoint).cloned()
            };
            if let Some(link) = known {
                return Ok((link, true));
            }
            // Not borrowed while connecting: nothing here calls back, but a panic must not
            // leave the list borrowed either.
            let link = Rc::new(Link::open(endpoint, pid, timeout)?);
            links.borrow_mut().push(Rc::clone(&link));
            Ok((link, false))
        })
        .ok()
}

/// Sends one request to the server at `endpoint` and waits for the answer. A server that cannot
/// be reached any more is `ServerGone` (the endpoint was reached before: a proxy's, a
/// manager's).
pub(crate) fn request(endpoint: &Endpoint, request: &Request) -> Result<Reply, ManagerError> {
    call(endpoint, request, CONNECT_TIMEOUT).map_err(|e| match e {
        ManagerError::Connect(ListenerError::Io(e)) if is_gone(&e) => ManagerError::ServerGone,
        e => e,
    })
}

/// [`request`] to a server not reached before (`Manager::connect`): an unreachable one is a
/// `Connect` error, and connecting may take `timeout`.
pub(crate) fn first_request(
    endpoint: &Endpoint,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, ManagerError> {
    call(endpoint, request, timeout)
}

/// A connect error that means nothing listens at the address (any more).
fn is_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | NotFound | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

fn call(endpoint: &Endpoint, request: &Request, timeout: Duration) -> Result<Reply, ManagerError> {
    let reply = match thread_link(endpoint, timeout) {
        Some(link) => {
            let (link, kept) = link?;
            match link_round_trip(&link, request) {
                // A link kept from earlier calls whose server has gone since (a server ends a
                // connection only when it ends): once more on a new link, to whatever server is
                // at the address now (a restarted one), which fails at once if there is none.
                Err(ManagerError::ServerGone) if kept => match thread_link(endpoint, timeout) {
                    Some(link) => link_round_trip(&link?.0, request)?,
                    None => return Err(ManagerError::ServerGone),
                },
                reply => reply?,
            }
        }
        // An exiting thread (a proxy dropped by a thread-local's destructor): the anchor.
        None => {
            let session = session(endpoint, timeout)?;
            let reply = session.round_trip(request);
            if let Err(ManagerError::ServerGone) = reply {
                forget_if_gone(&session);
            }
            reply?
        }
    };
    match reply {
        Reply::Error(e) => Err(ManagerError::Remote(e)),
        reply => Ok(reply),
    }
}

#[linkme::distributed_slice(mp_spawn::resources::CHILD_START)]
static FORGET_PARENT_LINKS: fn() = forget_parent_links;

/// In every new child, before its target: a forked child's copies of its parent's connections
/// to servers (the sessions' anchors, every thread's links, one being opened at the fork) stop
/// being connections. The objects that own them are the parent's (some in thread-locals of
/// threads this child does not have), so each descriptor number is pointed at /dev/null
/// rather than closed: its owner closes it, if ever, and the number is never reused under it.
/// A spawn or forkserver child inherits none (nothing to do).
fn forget_parent_links() {
    let addresses = clients().addresses.clone();
    if addresses.is_empty() {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Listed first: the directory's own descriptor is closed before any is looked at.
    let fds: Vec<RawFd> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let Ok(null) = mp_sys::fd::dev_null() else {
        return;
    };
    for fd in fds {
        // SAFETY: `fd` was listed open just now, and this child runs one thread, which closes
        // nothing until the loop ends: the number stays open while it is borrowed.
        let sock = unsafe { BorrowedFd::borrow_raw(fd) };
        let Some(peer) = mp_sys::socket::peer(sock) else {
            continue;
        };
        if addresses.iter().any(|a| leads_to(a, &peer)) {
            // SAFETY: dup3 takes descriptors by number and touches no memory; `fd` is a
            // socket to a manager's server that this process inherited (see above for why the
            // number stays its owner's).
            unsafe { libc::dup3(null.as_raw_fd(), fd, libc::O_CLOEXEC) };
        }
    }
}

/// Whether a socket whose peer is `peer` is connected to a server listening at `address`.
fn leads_to(address: &Address, peer: &Peer) -> bool {
    match (address, peer) {
        // A server listening on every interface is reached at one of them.
        (Address::Tcp(a), Peer::Ip(p)) => {
            a.port() == p.port() && (a.ip() == p.ip() || a.ip().is_unspecified())
        }
        (Address::Unix(a), Peer::Path(p)) => a == p,
        (Address::Abstract(a), Peer::Abstract(p)) => a == p,
        _ => false,
    }
}

#[cfg(test)]
mod test;

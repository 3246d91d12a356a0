//! The server: the process that holds the managed objects, a thread per client connection
//! (which runs the client's authkey handshake first, up to [`HANDSHAKES`] at once, so that no
//! client's handshake holds up another's), and the reference counts that free an object when its last proxy anywhere is
//! gone (the invariants are in `protocol`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use mp_ipc::{Address, Connection, GetError, Listener, Queue};

use crate::error::RemoteError;
use crate::protocol::{Hello, Reply, Request};
use crate::servant::{Caller, Erased, creator_at};

/// An object and the references to it.
struct Object {
    servant: Arc<dyn Erased>,
    type_name: String,
    /// Every reference: held by sessions (in transit too) and by names.
    refs: u64,
}

#[derive(Default)]
struct Objects {
    map: Mutex<HashMap<u64, Object>>,
    /// Published names, each holding one reference.
    names: Mutex<HashMap<String, u64>>,
    next: AtomicU64,
}

impl Objects {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Object>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops `n` references to `id`, freeing it at zero. The servant is dropped outside the
    /// lock (its drop may call this server: a nested proxy).
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

    /// One more reference to `id`; `false` if there is no such object.
    fn add_ref(&self, id: u64) -> bool {
        match self.lock().get_mut(&id) {
            Some(object) => {
                object.refs += 1;
                true
            }
            None => false,
        }
    }
}

/// One client process's references (see `protocol`): dropped when its last connection is.
struct Session {
    id: u64,
    objects: Arc<Objects>,
    held: Mutex<HashMap<u64, u64>>,
    /// The references this session sent on their way (`Transit`), by token: each the object's
    /// id. Dropped with the session if nobody adopted them.
    transit: Mutex<Transit>,
}

#[derive(Default)]
struct Transit {
    next: u32,
    by_token: HashMap<u64, u64>,
}

impl Session {
    fn new(id: u64, objects: &Arc<Objects>) -> Session {
        Session {
            id,
            objects: Arc::clone(objects),
            held: Mutex::default(),
            transit: Mutex::default(),
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<u64, u64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn transit(&self) -> MutexGuard<'_, Transit> {
        self.transit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps one reference to `id` (already counted) in transit; its token names this session
    /// in its high half.
    fn send(&self, id: u64) -> u64 {
        let mut transit = self.transit();
        let token = loop {
            transit.next = transit.next.wrapping_add(1);
            let token = (self.id << 32) | u64::from(transit.next);
            if !transit.by_token.contains_key(&token) {
                break token;
            }
        };
        transit.by_token.insert(token, id);
        token
    }

    /// Takes back the transit reference `token` to `id`, if this session still holds it.
    fn take(&self, token: u64, id: u64) -> bool {
        let mut transit = self.transit();
        match transit.by_token.get(&token) {
            Some(&held) if held == id => transit.by_token.remove(&token).is_some(),
            _ => false,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let held = std::mem::take(&mut *self.held());
        for (id, n) in held {
            self.objects.release(id, n);
        }
        let transit = std::mem::take(&mut self.transit().by_token);
        for id in transit.into_values() {
            self.objects.release(id, 1);
        }
    }
}

/// What every connection's thread shares.
struct State {
    objects: Arc<Objects>,
    sessions: Mutex<HashMap<u64, Weak<Session>>>,
    next_session: AtomicU64,
    next_caller: AtomicU64,
    listener: Arc<Listener>,
}

/// The server's life as a manager's child (the target of its process): listen at `address`
/// (a fresh abstract one if `None`) with `authkey`, say the address on `ready`, and serve
/// until `Shutdown`.
pub(crate) fn serve(ready: Connection, address: Option<Address>, authkey: Vec<u8>) {
    // Ctrl-C goes to the whole process group: the program, not its server, decides (Python's
    // manager ignores it too: bpo-36368).
    mp_sys::signal::set_ignored(libc::SIGINT, true);
    let listener = match bind(address, &authkey) {
        Ok(listener) => listener,
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
    run(listener);
}

/// Binds `address`, or a fresh abstract address if `None`.
pub(crate) fn bind(
    address: Option<Address>,
    authkey: &[u8],
) -> Result<Listener, mp_ipc::ListenerError> {
    let address = match address {
        Some(address) => address,
        None => {
            let mut nonce = [0u8; 8];
            mp_sys::random::fill(&mut nonce)?;
            let name = format!(
                "mp-manager-{}-{:016x}",
                std::process::id(),
                u64::from_le_bytes(nonce)
            );
            Address::Abstract(name.into_bytes())
        }
    };
    Listener::bind(&address, Some(authkey))
}

/// How many clients may be in the authkey handshake at once. One thread takes clients and
/// runs each one's handshake in the thread that will serve it, so a client that connects and
/// stays silent (up to the listener's deadline) holds up nobody; past this many at once, the
/// next client waits until one of them finishes or times out.
const HANDSHAKES: usize = 64;

/// Accepts clients until the listener is closed (by a `Shutdown`).
pub(crate) fn run(listener: Listener) {
    // Ids start at random: a client of an earlier server at the same address (restarted)
    // names no object and no session of this one, so its stale proxies fail
    // (`NoSuchObject`) instead of reaching another object.
    let [objects, sessions] = random_ids();
    let state = Arc::new(State {
        objects: Arc::new(Objects {
            next: AtomicU64::new(objects),
            ..Objects::default()
        }),
        sessions: Mutex::default(),
        next_session: AtomicU64::new(sessions),
        next_caller: AtomicU64::new(1),
        listener: Arc::new(listener),
    });
    let handshakes = Arc::new(Handshakes::default());
    loop {
        let slot = HandshakeSlot::take(&handshakes);
        let pending = match state.listener.accept_unauthenticated() {
            Ok(pending) => pending,
            // Closed by a `Shutdown`: the server's life is over.
            Err(mp_ipc::ListenerError::Closed) => return,
            // A client that hung up while queued: the next one is served.
            Err(_) => continue,
        };
        let state = Arc::clone(&state);
        // A thread that cannot be started drops the client (and its slot) here.
        let _ = std::thread::Builder::new()
            .name("mp-manager-client".to_owned())
            .spawn(move || {
                let authenticated = pending.authenticate();
                drop(slot);
                // A wrong authkey, garbage instead of the handshake, a peer that hung up or
                // stayed silent: that client only.
                if let Ok(conn) = authenticated {
                    serve_client(&conn, &state);
                }
            });
    }
}

/// The number of handshakes in progress, bounded by [`HANDSHAKES`].
#[derive(Default)]
struct Handshakes {
    running: Mutex<usize>,
    finished: std::sync::Condvar,
}

/// One handshake in progress: counted until dropped, however its thread ends.
struct HandshakeSlot(Arc<Handshakes>);

impl HandshakeSlot {
    /// Waits until fewer than [`HANDSHAKES`] are in progress, then counts one more.
    fn take(handshakes: &Arc<Handshakes>) -> HandshakeSlot {
        let mut running = handshakes.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= HANDSHAKES {
            running = (handshakes.finished.wait(running)).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        HandshakeSlot(Arc::clone(handshakes))
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.finished.notify_one();
    }
}

/// Random first ids, of objects (below 2^63: they never wrap) and of sessions (below 2^31: a
/// session's id stays within 32 bits, the half of a 64-bit word that other ids may carry it
/// in); 1 and 1 if there is no randomness.
fn random_ids() -> [u64; 2] {
    let mut bytes = [0u8; 12];
    if mp_sys::random::fill(&mut bytes).is_err() {
        return [1, 1];
    }
    let (objects, sessions) = bytes.split_at(8);
    let objects = u64::from_le_bytes(objects.try_into().unwrap_or_default());
    let sessions = u32::from_le_bytes(sessions.try_into().unwrap_or_default());
    [(objects >> 1).max(1), u64::from(sessions >> 1).max(1)]
}

/// How often a client served through rings is checked for being gone while it is silent.
const GONE_CHECK: Duration = Duration::from_millis(200);

/// One connection as the server sees it.
struct Client<'a> {
    state: &'a State,
    session: Arc<Session>,
    caller: u64,
    same_build: bool,
    conn: &'a Connection,
}

/// The largest request a server reads (Python has no cap): a client that claims more is
/// dropped before the payload is read.
const MAX_REQUEST: u64 = 1 << 30;

/// Serves one connection until it ends.
fn serve_client(conn: &Connection, state: &State) {
    conn.set_max_message_size(MAX_REQUEST);
    // Anything but a well-formed hello ends this connection only.
    let Ok(hello) = conn.recv::<Hello>() else {
        return;
    };
    let session = match hello.session {
        None => {
            let id = state.next_session.fetch_add(1, Ordering::Relaxed);
            let session = Arc::new(Session::new(id, &state.objects));
            let mut sessions = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.retain(|_, s| s.strong_count() > 0);
            sessions.insert(id, Arc::downgrade(&session));
            (session, id)
        }
        Some(id) => {
            let sessions = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
            match sessions.get(&id).and_then(Weak::upgrade) {
                Some(session) => (session, id),
                None => {
                    drop(sessions);
                    let _ = conn.send(&Reply::Error(RemoteError::NoSuchSession(id)));
                    return;
                }
            }
        }
    };
    if conn.send(&Reply::Session(session.1)).is_err() {
        return;
    }
    let client = Client {
        state,
        session: session.0,
        caller: state.next_caller.fetch_add(1, Ordering::Relaxed),
        same_build: hello.build.is_ours(),
        conn,
    };
    while let Ok(request) = conn.recv::<Request>() {
        if let Request::Upgrade { requests, replies } = request {
            serve_rings(&client, &requests, &replies);
            break;
        }
        let shutdown = matches!(request, Request::Shutdown);
        if conn.send(&client.answer(request)).is_err() || shutdown {
            break;
        }
    }
    client.gone();
}

/// Serves a client through its rings until its socket ends (it closed it, or died).
fn serve_rings(client: &Client<'_>, requests: &Queue<Request>, replies: &Queue<Reply>) {
    loop {
        let request = match requests.get_timeout(GONE_CHECK) {
            Ok(request) => request,
            // Silent: is it still there? (The client never writes on the socket now.)
            Err(GetError::Empty) if client.alive() => continue,
            Err(_) => return,
        };
        let shutdown = matches!(request, Request::Shutdown);
        if replies.put(client.answer(request)).is_err() || shutdown {
            return;
        }
    }
}

impl Client<'_> {
    /// Whether the client is still there: it never writes on its socket while it waits for
    /// an answer, so a readable socket means end-of-file.
    fn alive(&self) -> bool {
        !self.conn.poll(Some(Duration::ZERO)).unwrap_or(true)
    }

    /// The connection ended: the objects it held as a caller let go (its session's
    /// references go with the session).
    fn gone(&self) {
        let servants: Vec<_> = (self.state.objects.lock().values())
            .map(|o| Arc::clone(&o.servant))
            .collect();
        for servant in servants {
            servant.caller_gone(self.caller);
        }
    }

    fn hold(&self, id: u64) {
        *self.session.held().entry(id).or_default() += 1;
    }

    fn answer(&self, request: Request) -> Reply {
        let objects = &self.state.objects;
        match request {
            Request::Create {
                type_ref,
                type_name,
                args,
            } => self.create(type_ref, type_name, &args),
            Request::Call { id, call } => {
                let Some(servant) = objects.lock().get(&id).map(|o| Arc::clone(&o.servant)) else {
                    return Reply::Error(RemoteError::NoSuchObject(id));
                };
                let alive = || self.alive();
                let caller = Caller {
                    id: self.caller,
                    alive: &alive,
                };
                match servant.call(&call, &caller) {
                    Ok(value) => Reply::Value(value),
                    Err(e) => Reply::Error(e),
                }
            }
            Request::IncRef { id } => {
                if !objects.add_ref(id) {
                    return Reply::Error(RemoteError::NoSuchObject(id));
                }
                self.hold(id);
                Reply::Done
            }
            Request::Transit { id } => {
                if !objects.add_ref(id) {
                    return Reply::Error(RemoteError::NoSuchObject(id));
                }
                Reply::Count(self.session.send(id))
            }
            Request::Adopt { id, token } => {
                let sender = {
                    let sessions = self
                        .state
                        .sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    sessions.get(&(token >> 32)).and_then(Weak::upgrade)
                };
                // The sender's transit reference moves here; if it is gone (the sender ended,
                // or this is a second delivery of one message), a living object gets a fresh
                // reference instead.
                if !sender.is_some_and(|s| s.take(token, id)) && !objects.add_ref(id) {
                    return Reply::Error(RemoteError::NoSuchObject(id));
                }
                self.hold(id);
                Reply::Done
            }
            Request::DecRef { id } => {
                let mut held = self.session.held();
                match held.get_mut(&id) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        held.remove(&id);
                    }
                    // Not ours to drop: a confused client cannot free others' objects.
                    None => return Reply::Done,
                }
                drop(held);
                objects.release(id, 1);
                Reply::Done
            }
            Request::Publish { name, id } => {
                if !objects.add_ref(id) {
                    return Reply::Error(RemoteError::NoSuchObject(id));
                }
                let old =
                    (objects.names.lock().unwrap_or_else(|e| e.into_inner())).insert(name, id);
                if let Some(old) = old {
                    objects.release(old, 1);
                }
                Reply::Done
            }
            Request::Lookup { name } => {
                let id = (objects.names.lock().unwrap_or_else(|e| e.into_inner()))
                    .get(&name)
                    .copied();
                let found = id.and_then(|id| {
                    let mut map = objects.lock();
                    let object = map.get_mut(&id)?;
                    object.refs += 1;
                    Some((id, object.type_name.clone()))
                });
                match found {
                    Some((id, type_name)) => {
                        self.hold(id);
                        Reply::Found { id, type_name }
                    }
                    None => Reply::Error(RemoteError::NoSuchName(name)),
                }
            }
            Request::Count => Reply::Count(objects.lock().len() as u64),
            Request::Upgrade { .. } => {
                Reply::Error(RemoteError::BadCall("upgraded twice".to_owned()))
            }
            Request::Shutdown => {
                self.state.listener.close();
                Reply::Done
            }
        }
    }

    fn create(
        &self,
        type_ref: mp_spawn::code::RawCodeRef,
        type_name: String,
        args: &[u8],
    ) -> Reply {
        if !self.same_build {
            return Reply::Error(RemoteError::BadCall(
                "the client runs another build than the server: it cannot create objects"
                    .to_owned(),
            ));
        }
        let Some(create) = creator_at(type_ref) else {
            return Reply::Error(RemoteError::BadCall(
                "the type is unknown to the server (a different build?)".to_owned(),
            ));
        };
        match create(args) {
            Ok(servant) => {
                let objects = &self.state.objects;
                let id = objects.next.fetch_add(1, Ordering::Relaxed) + 1;
                let object = Object {
                    servant,
                    type_name,
                    refs: 1,
                };
                objects.lock().insert(id, object);
                self.hold(id);
                Reply::Created(id)
            }
            Err(e) => Reply::Error(e),
        }
    }
}

#[cfg(test)]
mod test;

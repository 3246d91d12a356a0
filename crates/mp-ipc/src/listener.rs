//! `Listener` and `client`: connections between processes that did not start each other,
//! over Unix sockets or TCP, with Python's authkey handshake.
//!
//! The handshake is CPython 3.12's: the server sends `#CHALLENGE#{sha256}` and 40 random
//! bytes; the client answers `{sha256}` + HMAC-SHA256(authkey, the message after
//! `#CHALLENGE#`); the server replies `#WELCOME#` or `#FAILURE#`. Then the roles swap, so
//! each side proves the other knows the key. A wrong key fails on both sides with
//! [`AuthenticationError`], before any data is exchanged.
//!
//! Unlike Python, the listener's side of the handshake has a deadline
//! ([`Listener::set_handshake_timeout`], [`DEFAULT_HANDSHAKE_TIMEOUT`] by default): `accept`
//! runs one handshake at a time, so a client that connects and stays silent would otherwise
//! hold every other client back forever.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{self, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use std::{fmt, io};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use mp_spawn::frame::Stop;

use crate::connection::Connection;
use crate::error::{AuthenticationError, ListenerError, RecvError, SendError};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const DIGEST: &[u8] = b"{sha256}";
const NONCE_LEN: usize = 40;
/// The longest handshake message either side accepts (as Python's `recv_bytes(256)`).
const HANDSHAKE_MAX: usize = 256;
/// How long [`Listener::accept`] waits, by default, for a client to finish the authkey
/// handshake (Python waits forever).
///
/// ```
/// let listener = mp_ipc::Listener::new(Some(b"key"))?;
/// assert_eq!(listener.handshake_timeout(), Some(mp_ipc::DEFAULT_HANDSHAKE_TIMEOUT));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a [`Listener`] listens (Python's address families on Linux).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// A Unix socket at a path (`AF_UNIX`, Python's default).
    Unix(PathBuf),
    /// A Unix socket in Linux's abstract namespace (Python's `'\0name'`).
    Abstract(Vec<u8>),
    /// A TCP socket (`AF_INET`/`AF_INET6`: Python's `('host', port)`). Port 0 picks a free one.
    Tcp(SocketAddr),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Abstract(name) => write!(f, "\\0{}", String::from_utf8_lossy(name)),
            Address::Tcp(a) => a.fmt(f),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Self {
        Address::Unix(p)
    }
}

#[derive(Debug)]
enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Unix(l) => l.as_fd(),
            Socket::Tcp(l) => l.as_fd(),
        }
    }

    /// Takes a queued connection without blocking (the socket is non-blocking, so that a
    /// client taken by another thread between poll and accept is `WouldBlock`, not a hang).
    fn accept(&self) -> io::Result<(OwnedFd, String)> {
        match self {
            Socket::Unix(l) => {
                let (s, a) = l.accept()?;
                s.set_nonblocking(false)?;
                Ok((s.into(), format!("{a:?}")))
            }
            Socket::Tcp(l) => {
                let (s, a) = l.accept()?;
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                Ok((s.into(), a.to_string()))
            }
        }
    }
}

/// A client taken by [`Listener::accept_unauthenticated`] that has not yet passed the authkey
/// handshake.
#[derive(Debug)]
pub struct Unauthenticated {
    conn: Connection,
    authkey: Option<Arc<[u8]>>,
    deadline: Option<Instant>,
    /// The listener's: `close` ends a handshake in progress too.
    closing: Arc<OwnedFd>,
}

impl Unauthenticated {
    /// Runs the handshake (when the listener has an authkey) and returns the connection; the
    /// errors are [`Listener::accept`]'s.
    pub fn authenticate(self) -> Result<Connection, ListenerError> {
        if let Some(key) = &self.authkey {
            let stop = Stop {
                deadline: self.deadline,
                cancel: Some(self.closing.as_fd()),
            };
            deliver_challenge(&self.conn, key, stop)?;
            answer_challenge(&self.conn, key, stop)?;
        }
        Ok(self.conn)
    }
}

/// A listening socket that hands out authenticated [`Connection`]s (Python's
/// `multiprocessing.connection.Listener`).
///
/// ```
/// use mp_ipc::{client, Address, Listener};
///
/// let listener = Listener::bind(&Address::Tcp("127.0.0.1:0".parse()?), Some(b"secret"))?;
/// let address = listener.address().clone();
/// let t = std::thread::spawn(move || {
///     let conn = client(&address, Some(b"secret")).unwrap();
///     conn.send(&"hi".to_string()).unwrap();
/// });
/// let conn = listener.accept()?;
/// assert_eq!(conn.recv::<String>()?, "hi");
/// t.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `Sync`: [`close`](Self::close) from another thread wakes a blocked `accept`, which then
/// returns [`ListenerError::Closed`].
#[derive(Debug)]
pub struct Listener {
    /// `accept` holds the read lock while it polls and accepts, so that `close` (the write
    /// lock) cannot close the socket under it, nor the OS reuse its number.
    socket: RwLock<Option<Socket>>,
    /// An eventfd that `close` rings (and never drains): it wakes every `accept` blocked in
    /// poll or in a handshake, so that they release the read lock.
    closing: Arc<OwnedFd>,
    address: Address,
    authkey: Option<Arc<[u8]>>,
    last_accepted: Mutex<Option<String>>,
    handshake_timeout: Mutex<Option<Duration>>,
}

impl Listener {
    /// Listens on `address`. An address already in use is an error (`AddrInUse`).
    /// With an `authkey`, every connection must pass the handshake before `accept` returns it.
    pub fn bind(address: &Address, authkey: Option<&[u8]>) -> Result<Listener, ListenerError> {
        let closing = mp_sys::eventfd::new()?;
        let (socket, address) = match address {
            Address::Unix(path) => (Socket::Unix(UnixListener::bind(path)?), address.clone()),
            Address::Abstract(name) => {
                let addr = net::SocketAddr::from_abstract_name(name)?;
                (
                    Socket::Unix(UnixListener::bind_addr(&addr)?),
                    address.clone(),
                )
            }
            Address::Tcp(addr) => {
                let l = TcpListener::bind(addr)?;
                let bound = l.local_addr()?;
                (Socket::Tcp(l), Address::Tcp(bound))
            }
        };
        // Dropped on error, which removes a Unix socket file.
        let listener = Listener::with(socket, address, closing, authkey);
        listener.nonblocking()?;
        Ok(listener)
    }

    fn with(
        socket: Socket,
        address: Address,
        closing: OwnedFd,
        authkey: Option<&[u8]>,
    ) -> Listener {
        Listener {
            socket: RwLock::new(Some(socket)),
            closing: Arc::new(closing),
            address,
            authkey: authkey.map(Arc::from),
            last_accepted: Mutex::new(None),
            handshake_timeout: Mutex::new(Some(DEFAULT_HANDSHAKE_TIMEOUT)),
        }
    }

    fn nonblocking(&self) -> io::Result<()> {
        match self
            .socket
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(Socket::Unix(l)) => l.set_nonblocking(true),
            Some(Socket::Tcp(l)) => l.set_nonblocking(true),
            None => Ok(()),
        }
    }

    /// Listens on a fresh Unix socket in the temporary directory (Python's `Listener()`).
    pub fn new(authkey: Option<&[u8]>) -> Result<Listener, ListenerError> {
        let mut nonce = [0u8; 8];
        mp_sys::random::fill(&mut nonce)?;
        let name = format!(
            "mp-{}-{:016x}.sock",
            std::process::id(),
            u64::from_le_bytes(nonce)
        );
        Listener::bind(&Address::Unix(std::env::temp_dir().join(name)), authkey)
    }

    /// The address clients connect to (with the real port when bound to port 0).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The peer address of the last accepted connection, as text.
    pub fn last_accepted(&self) -> Option<String> {
        self.last_accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How long [`accept`](Self::accept) waits for a client to finish the authkey handshake
    /// (`None`: forever, as Python). Default [`DEFAULT_HANDSHAKE_TIMEOUT`]; see
    /// [`set_handshake_timeout`](Self::set_handshake_timeout) for an example.
    pub fn handshake_timeout(&self) -> Option<Duration> {
        *self
            .handshake_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sets how long [`accept`](Self::accept) waits for a client to finish the authkey
    /// handshake; after it, `accept` drops the client and returns
    /// [`ListenerError::HandshakeTimeout`]. `None` (or a huge duration) waits forever, as
    /// Python does. Applies to the next `accept`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let listener = mp_ipc::Listener::new(Some(b"key"))?;
    /// listener.set_handshake_timeout(Some(Duration::from_secs(1)));
    /// assert_eq!(listener.handshake_timeout(), Some(Duration::from_secs(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_handshake_timeout(&self, timeout: Option<Duration>) {
        *self
            .handshake_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = timeout;
    }

    /// Waits for a client, runs the handshake when there is an authkey, and returns the
    /// connection.
    ///
    /// A failed handshake is [`ListenerError::Authentication`], and a client that does not
    /// finish it within the [handshake timeout](Self::set_handshake_timeout) is
    /// [`ListenerError::HandshakeTimeout`]; either way that client is dropped and the listener
    /// stays usable: the next `accept` takes the next client. After [`close`](Self::close),
    /// also one made by another thread during the wait: [`ListenerError::Closed`].
    pub fn accept(&self) -> Result<Connection, ListenerError> {
        self.accept_unauthenticated()?.authenticate()
    }

    /// Waits for a client and returns it before its handshake, which
    /// [`Unauthenticated::authenticate`] runs (in another thread, say): a server that must not
    /// let a silent client hold up the next ones takes clients in one thread and runs their
    /// handshakes beside each other. The handshake's deadline starts now.
    ///
    /// ```
    /// use mp_ipc::{client, Address, Listener};
    ///
    /// let listener = Listener::bind(&Address::Tcp("127.0.0.1:0".parse()?), Some(b"secret"))?;
    /// let address = listener.address().clone();
    /// let t = std::thread::spawn(move || client(&address, Some(b"secret")).map(drop));
    /// let pending = listener.accept_unauthenticated()?;
    /// let conn = std::thread::spawn(move || pending.authenticate()).join().unwrap()?;
    /// t.join().unwrap()?;
    /// # drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_unauthenticated(&self) -> Result<Unauthenticated, ListenerError> {
        let (fd, peer) = self.next_client()?;
        *self.last_accepted.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
        Ok(Unauthenticated {
            conn: Connection::new(fd, true, true),
            authkey: self.authkey.clone(),
            deadline: mp_sys::deadline::of(self.handshake_timeout()),
            closing: Arc::clone(&self.closing),
        })
    }

    /// Waits for a queued connection, or for `close`.
    fn next_client(&self) -> Result<(OwnedFd, String), ListenerError> {
        let guard = self.socket.read().unwrap_or_else(|e| e.into_inner());
        let socket = guard.as_ref().ok_or(ListenerError::Closed)?;
        loop {
            let ready =
                mp_sys::poll::readable_until(&[socket.as_fd(), self.closing.as_fd()], None)?;
            if ready[1] {
                return Err(ListenerError::Closed);
            }
            if !ready[0] {
                continue;
            }
            match socket.accept() {
                Ok(client) => return Ok(client),
                // Another thread took it, or the client gave up while queued.
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Stops listening; a Unix socket file is removed. Closing twice is fine. An `accept`
    /// blocked in another thread returns [`ListenerError::Closed`].
    pub fn close(&self) {
        // Ring first: blocked `accept`s let go of the read lock that the write lock waits for.
        mp_sys::eventfd::ring(self.closing.as_fd());
        let socket = self
            .socket
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if socket.is_some() {
            if let Address::Unix(path) = &self.address {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}

/// Connects to a [`Listener`] (Python's `multiprocessing.connection.Client`). With an
/// `authkey`, the handshake runs before this returns; a wrong key is
/// [`ListenerError::Authentication`].
#[doc(alias = "Client")]
pub fn client(address: &Address, authkey: Option<&[u8]>) -> Result<Connection, ListenerError> {
    // No deadline, as Python: a busy server may take its time to accept.
    connect(address, authkey, None)
}

/// [`client`] with a deadline: a TCP connect that is not answered within `timeout` is an
/// [`io::ErrorKind::TimedOut`] error, and a handshake that has not ended by then (a peer that
/// accepts and never speaks) is [`ListenerError::HandshakeTimeout`]. A Unix socket connects at
/// once (or is refused), unless the listener's backlog is full.
///
/// ```
/// use std::time::Duration;
///
/// // A peer that accepts and stays silent.
/// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let address = mp_ipc::Address::Tcp(silent.local_addr()?);
/// let e = mp_ipc::client_timeout(&address, Some(b"key"), Duration::from_millis(50));
/// assert!(matches!(e, Err(mp_ipc::ListenerError::HandshakeTimeout)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client_timeout(
    address: &Address,
    authkey: Option<&[u8]>,
    timeout: Duration,
) -> Result<Connection, ListenerError> {
    connect(address, authkey, Some(timeout))
}

fn connect(
    address: &Address,
    authkey: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Connection, ListenerError> {
    let deadline = mp_sys::deadline::of(timeout);
    let fd: OwnedFd = match address {
        Address::Unix(path) => UnixStream::connect(path)?.into(),
        Address::Abstract(name) => {
            UnixStream::connect_addr(&net::SocketAddr::from_abstract_name(name)?)?.into()
        }
        Address::Tcp(addr) => {
            let s = match timeout {
                // `connect_timeout` refuses a zero duration.
                Some(t) => TcpStream::connect_timeout(addr, t.max(Duration::from_nanos(1)))?,
                None => TcpStream::connect(addr)?,
            };
            s.set_nodelay(true)?;
            s.into()
        }
    };
    let conn = Connection::new(fd, true, true);
    if let Some(key) = authkey {
        let stop = Stop {
            deadline,
            cancel: None,
        };
        answer_challenge(&conn, key, stop)?;
        deliver_challenge(&conn, key, stop)?;
    }
    Ok(conn)
}

fn mac(authkey: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(authkey)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(message);
    let mut out = DIGEST.to_vec();
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

fn handshake_recv(conn: &Connection, stop: Stop<'_>) -> Result<Vec<u8>, ListenerError> {
    conn.recv_bytes_until(HANDSHAKE_MAX, stop)
        .map_err(|e| match e {
            RecvError::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
                ListenerError::HandshakeTimeout
            }
            // The only `Closed` here is the listener's close doorbell.
            RecvError::Closed => ListenerError::Closed,
            RecvError::Io(e) => ListenerError::Io(e),
            other => ListenerError::Authentication(AuthenticationError(format!(
                "bad handshake message: {other}"
            ))),
        })
}

fn handshake_send(conn: &Connection, message: &[u8]) -> Result<(), ListenerError> {
    conn.send_bytes(message, 0, None).map_err(|e| match e {
        SendError::Io(e) => ListenerError::Io(e),
        other => ListenerError::Io(io::Error::other(other.to_string())),
    })
}

/// Challenges the peer to prove it knows `authkey`.
fn deliver_challenge(
    conn: &Connection,
    authkey: &[u8],
    stop: Stop<'_>,
) -> Result<(), ListenerError> {
    let mut message = DIGEST.to_vec();
    let mut nonce = [0u8; NONCE_LEN];
    mp_sys::random::fill(&mut nonce)?;
    message.extend_from_slice(&nonce);
    handshake_send(conn, &[CHALLENGE, &message].concat())?;
    let response = handshake_recv(conn, stop)?;
    let expected = mac(authkey, &message);
    // Constant-time comparison, as Python's `hmac.compare_digest`.
    let same = response.len() == expected.len()
        && response
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        handshake_send(conn, WELCOME)
    } else {
        let _ = handshake_send(conn, FAILURE);
        Err(AuthenticationError("digest received was wrong".into()).into())
    }
}

/// Answers the peer's challenge with `authkey`.
fn answer_challenge(
    conn: &Connection,
    authkey: &[u8],
    stop: Stop<'_>,
) -> Result<(), ListenerError> {
    let message = handshake_recv(conn, stop)?;
    let Some(body) = message.strip_prefix(CHALLENGE) else {
        return Err(AuthenticationError(format!(
            "protocol error, expected a challenge, got {} bytes",
            message.len()
        ))
        .into());
    };
    if !body.starts_with(DIGEST) {
        return Err(AuthenticationError("unsupported digest in the challenge".into()).into());
    }
    handshake_send(conn, &mac(authkey, body))?;
    let verdict = handshake_recv(conn, stop)?;
    if verdict != WELCOME {
        return Err(AuthenticationError("digest sent was rejected".into()).into());
    }
    Ok(())
}

#[cfg(test)]
mod test;

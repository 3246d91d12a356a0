//! Listener and client over Unix sockets and TCP, with and without an authkey.

use crate::common;

use std::io::Read;
use std::time::Duration;

use common::ctx;
use mp_ipc::{Address, Listener, ListenerError, client};
use mp_spawn::StartMethod;

mp_spawn::test_matrix!(client_in_a_child_process);

fn tcp() -> Address {
    Address::Tcp("127.0.0.1:0".parse().unwrap())
}

fn talk(address: Address, key: Option<Vec<u8>>) -> String {
    let conn = client(&address, key.as_deref()).unwrap();
    conn.send(&"ping".to_string()).unwrap();
    conn.recv::<String>().unwrap()
}

fn client_in_a_child_process(m: StartMethod) {
    for address in [
        tcp(),
        Address::Abstract(format!("mp-test-{m:?}-{}", std::process::id()).into_bytes()),
    ] {
        let listener = Listener::bind(&address, Some(b"key")).unwrap();
        let mut p = ctx(m).process(talk, (listener.address().clone(), Some(b"key".to_vec())));
        p.start().unwrap();
        let conn = listener.accept().unwrap();
        assert_eq!(conn.recv::<String>().unwrap(), "ping");
        conn.send(&"pong".to_string()).unwrap();
        assert_eq!(p.join().unwrap(), "pong");
    }
}

/// Accepts one connection on a thread and returns what it gets.
fn serve_one(listener: Listener) -> std::thread::JoinHandle<(Listener, Result<String, String>)> {
    std::thread::spawn(move || {
        let r = listener
            .accept()
            .map_err(|e| e.to_string())
            .and_then(|c| c.recv::<String>().map_err(|e| e.to_string()));
        (listener, r)
    })
}

#[test]
fn unix_path_abstract_and_tcp_with_a_key() {
    let path = std::env::temp_dir().join(format!("mp-test-{}.sock", std::process::id()));
    let addresses = [
        Address::Unix(path.clone()),
        Address::Abstract(b"mp-test-abstract".to_vec()),
        tcp(),
    ];
    for address in addresses {
        let listener = Listener::bind(&address, Some(b"secret")).unwrap();
        let address = listener.address().clone();
        let server = serve_one(listener);
        let conn = client(&address, Some(b"secret")).unwrap();
        conn.send(&format!("hello over {address}")).unwrap();
        let (listener, got) = server.join().unwrap();
        assert_eq!(got.unwrap(), format!("hello over {address}"));
        assert!(listener.last_accepted().is_some());
        listener.close();
    }
    assert!(!path.exists(), "close removes the socket file");
}

#[test]
fn no_key_on_either_side() {
    let listener = Listener::new(None).unwrap();
    let address = listener.address().clone();
    assert!(matches!(address, Address::Unix(_)));
    let server = serve_one(listener);
    client(&address, None)
        .unwrap()
        .send(&"plain".to_string())
        .unwrap();
    assert_eq!(server.join().unwrap().1.unwrap(), "plain");
}

#[test]
fn wrong_key_fails_on_both_sides_and_no_data_passes() {
    for (server_key, client_key) in [(&b"right"[..], &b"wrong"[..]), (b"", b"x")] {
        let listener = Listener::bind(&tcp(), Some(server_key)).unwrap();
        let address = listener.address().clone();
        let server = serve_one(listener);
        match client(&address, Some(client_key)) {
            Err(ListenerError::Authentication(e)) => {
                assert!(e.to_string().contains("rejected"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let (listener, got) = server.join().unwrap();
        let e = got.unwrap_err();
        assert!(e.contains("authentication failed"), "{e}");
        // The listener survives a failed handshake.
        let server = serve_one(listener);
        let conn = client(&address, Some(server_key)).unwrap();
        conn.send(&"after".to_string()).unwrap();
        assert_eq!(server.join().unwrap().1.unwrap(), "after");
    }
}

#[test]
fn a_key_on_one_side_only_fails() {
    // The server wants a key, the client sends plain data: the server rejects it.
    let listener = Listener::bind(&tcp(), Some(b"key")).unwrap();
    let address = listener.address().clone();
    let server = serve_one(listener);
    let conn = client(&address, None).unwrap();
    let _ = conn.send(&"sneaky".to_string());
    let e = server.join().unwrap().1.unwrap_err();
    assert!(e.contains("authentication failed"), "{e}");

    // The client wants a key, the server has none: the client sees no challenge.
    let listener = Listener::bind(&tcp(), None).unwrap();
    let address = listener.address().clone();
    let t = std::thread::spawn(move || {
        let c = listener.accept().unwrap();
        c.send_bytes(b"not a challenge", 0, None).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    });
    assert!(matches!(
        client(&address, Some(b"key")),
        Err(ListenerError::Authentication(_))
    ));
    t.join().unwrap();
}

#[test]
fn accept_after_close_and_address_in_use() {
    let listener = Listener::bind(&tcp(), None).unwrap();
    let address = listener.address().clone();
    assert!(matches!(
        Listener::bind(&address, None),
        Err(ListenerError::Io(e)) if e.kind() == std::io::ErrorKind::AddrInUse
    ));
    listener.close();
    listener.close();
    assert!(matches!(listener.accept(), Err(ListenerError::Closed)));
    assert!(matches!(client(&address, None), Err(ListenerError::Io(_))));

    let path = std::env::temp_dir().join(format!("mp-test-inuse-{}.sock", std::process::id()));
    let first = Listener::bind(&Address::Unix(path.clone()), None).unwrap();
    assert!(matches!(
        Listener::bind(&Address::Unix(path.clone()), None),
        Err(ListenerError::Io(e)) if e.kind() == std::io::ErrorKind::AddrInUse
    ));
    drop(first);
    assert!(!path.exists());
}

const GUARD: Duration = Duration::from_secs(30);

/// A client that connects and never answers the challenge holds `accept` only until the
/// handshake deadline: it gets a typed error (and the silent client is hung up on), and the
/// next good client, which queued behind it, is accepted.
#[test]
fn a_silent_client_times_out_and_the_next_client_is_accepted() {
    for address in [
        tcp(),
        Address::Abstract(format!("mp-test-silent-{}", std::process::id()).into_bytes()),
    ] {
        let listener = Listener::bind(&address, Some(b"key")).unwrap();
        assert_eq!(
            listener.handshake_timeout(),
            Some(mp_ipc::DEFAULT_HANDSHAKE_TIMEOUT)
        );
        listener.set_handshake_timeout(Some(Duration::from_millis(50)));
        let address = listener.address().clone();
        // Queued first: connect returns once the kernel has queued the connection.
        let mut silent = raw_connect(&address);
        let good = std::thread::spawn(move || talk(address, Some(b"key".to_vec())));
        match listener.accept() {
            Err(ListenerError::HandshakeTimeout) => {}
            other => panic!("{other:?}"),
        }
        // The silent client got the challenge, then end-of-file: the server dropped it.
        silent.set_read_timeout(Some(GUARD)).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut silent, &mut got).unwrap();
        assert!(got.windows(11).any(|w| w == b"#CHALLENGE#"));
        // The good client must not race the short deadline on a loaded machine.
        listener.set_handshake_timeout(Some(GUARD));
        let conn = listener.accept().unwrap();
        assert_eq!(conn.recv::<String>().unwrap(), "ping");
        conn.send(&"pong".to_string()).unwrap();
        assert_eq!(good.join().unwrap(), "pong");
    }
}

/// A raw connection that will never speak.
fn raw_connect(address: &Address) -> Box<dyn ReadStream> {
    match address {
        Address::Tcp(a) => Box::new(std::net::TcpStream::connect(a).unwrap()),
        Address::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
            Box::new(std::os::unix::net::UnixStream::connect_addr(&a).unwrap())
        }
        Address::Unix(p) => Box::new(std::os::unix::net::UnixStream::connect(p).unwrap()),
    }
}

trait ReadStream: std::io::Read {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl ReadStream for std::net::TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, t)
    }
}

impl ReadStream for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, t)
    }
}

/// `close` from another thread wakes an `accept` blocked waiting for a client; it returns
/// `Closed`, and `close` itself does not wait for a client.
#[test]
fn close_from_another_thread_wakes_accept() {
    for address in [tcp(), Address::Unix(unix_path("wake"))] {
        let listener = std::sync::Arc::new(Listener::bind(&address, Some(b"key")).unwrap());
        let (started, is_started) = std::sync::mpsc::channel();
        let (done, is_done) = std::sync::mpsc::channel();
        let l = listener.clone();
        std::thread::spawn(move || {
            started.send(()).unwrap();
            done.send(l.accept().map(drop)).unwrap();
        });
        is_started.recv().unwrap();
        // Whether accept is already blocked or not yet called, it must end with `Closed`.
        let (closed, is_closed) = std::sync::mpsc::channel();
        let l = listener.clone();
        std::thread::spawn(move || {
            l.close();
            closed.send(()).unwrap();
        });
        is_closed.recv_timeout(GUARD).expect("close did not return");
        match is_done.recv_timeout(GUARD).expect("accept was not woken") {
            Err(ListenerError::Closed) => {}
            other => panic!("{other:?}"),
        }
        if let Address::Unix(path) = &address {
            assert!(!path.exists());
        }
    }
}

/// `close` also ends a handshake in progress with a silent client.
#[test]
fn close_ends_a_handshake_in_progress() {
    let listener = std::sync::Arc::new(Listener::bind(&tcp(), Some(b"key")).unwrap());
    listener.set_handshake_timeout(None);
    let mut silent = raw_connect(listener.address());
    let (done, is_done) = std::sync::mpsc::channel();
    let l = listener.clone();
    std::thread::spawn(move || done.send(l.accept().map(drop)).unwrap());
    // The challenge has been sent: accept is inside the handshake.
    let mut head = [0u8; 16];
    silent.set_read_timeout(Some(GUARD)).unwrap();
    silent.read_exact(&mut head).unwrap();
    listener.close();
    match is_done.recv_timeout(GUARD).expect("accept was not woken") {
        Err(ListenerError::Closed) => {}
        other => panic!("{other:?}"),
    }
}

/// A huge handshake timeout means no deadline: no `Instant` overflow, the handshake works.
#[test]
fn a_huge_handshake_timeout_does_not_panic() {
    let listener = Listener::bind(&tcp(), Some(b"key")).unwrap();
    listener.set_handshake_timeout(Some(Duration::MAX));
    assert_eq!(listener.handshake_timeout(), Some(Duration::MAX));
    let address = listener.address().clone();
    let good = std::thread::spawn(move || talk(address, Some(b"key".to_vec())));
    let conn = listener.accept().unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), "ping");
    conn.send(&"pong".to_string()).unwrap();
    assert_eq!(good.join().unwrap(), "pong");
}

/// A wrong key is still an authentication error under a handshake deadline, and the
/// listener goes on.
#[test]
fn a_wrong_key_is_still_an_authentication_error_with_a_deadline() {
    let listener = Listener::bind(&tcp(), Some(b"right")).unwrap();
    listener.set_handshake_timeout(Some(GUARD));
    let address = listener.address().clone();
    let a = address.clone();
    let bad = std::thread::spawn(move || client(&a, Some(b"wrong")).map(drop));
    assert!(matches!(
        listener.accept(),
        Err(ListenerError::Authentication(_))
    ));
    assert!(matches!(
        bad.join().unwrap(),
        Err(ListenerError::Authentication(_))
    ));
    let good = std::thread::spawn(move || talk(address, Some(b"right".to_vec())));
    let conn = listener.accept().unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), "ping");
    conn.send(&"pong".to_string()).unwrap();
    assert_eq!(good.join().unwrap(), "pong");
}

/// A client's deadline: a server that accepts and never speaks (over TCP and an abstract
/// socket) is a typed error once it has passed, not a hang; a server that answers in time is
/// served as by `client`.
#[test]
fn a_client_deadline_ends_a_silent_handshake() {
    for address in [
        tcp(),
        Address::Abstract(format!("mp-test-silent-server-{}", std::process::id()).into_bytes()),
    ] {
        // Bound and never accepted from: the kernel queues the connection, nobody speaks.
        let silent = Listener::bind(&address, Some(b"key")).unwrap();
        let timeout = Duration::from_millis(100);
        let began = std::time::Instant::now();
        match mp_ipc::client_timeout(silent.address(), Some(b"key"), timeout) {
            Err(ListenerError::HandshakeTimeout) => {}
            other => panic!("{other:?}"),
        }
        assert!(began.elapsed() >= timeout, "not before its deadline");
        let listener = Listener::bind(&tcp(), Some(b"key")).unwrap();
        let a = listener.address().clone();
        let good = std::thread::spawn(move || {
            let conn = mp_ipc::client_timeout(&a, Some(b"key"), GUARD).unwrap();
            conn.send(&"ping".to_string()).unwrap();
            conn.recv::<String>().unwrap()
        });
        let conn = listener.accept().unwrap();
        assert_eq!(conn.recv::<String>().unwrap(), "ping");
        conn.send(&"pong".to_string()).unwrap();
        assert_eq!(good.join().unwrap(), "pong");
    }
}

fn unix_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mp-test-{tag}-{}.sock", std::process::id()))
}

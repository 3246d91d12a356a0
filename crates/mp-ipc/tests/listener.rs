//! Listener and client over Unix sockets and TCP, with and without an authkey.

mod common;

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

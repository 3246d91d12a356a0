use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};

use super::*;

/// Debug builds catch I/O under the session list (held across every fork): here a connect,
/// which must fail before it touches the network.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "held across forks")]
fn io_under_the_session_list_is_caught() {
    let endpoint = Endpoint {
        address: Address::Tcp("127.0.0.1:1".parse().unwrap()),
        authkey: b"key".to_vec(),
    };
    let _held = clients();
    let _ = endpoint.connect(None, Duration::from_secs(1));
}

#[test]
fn the_session_list_is_released_with_its_guard() {
    drop(clients());
    assert_no_fork_lock();
}

#[test]
fn peers_are_found_by_their_listening_address() {
    let name = format!("mp-link-test-{}", std::process::id()).into_bytes();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let _unix = UnixListener::bind_addr(&addr).unwrap();
    let client = UnixStream::connect_addr(&addr).unwrap();
    assert_eq!(
        peer_address(client.as_raw_fd()),
        Some(Address::Abstract(name))
    );

    let path = std::env::temp_dir().join(format!("mp-link-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    assert_eq!(
        peer_address(client.as_raw_fd()),
        Some(Address::Unix(path.clone()))
    );
    // The accepted end's peer is the client, which has no address.
    let (accepted, _) = listener.accept().unwrap();
    assert_eq!(peer_address(accepted.as_raw_fd()), None);
    std::fs::remove_file(&path).unwrap();

    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = tcp.local_addr().unwrap();
    let client = TcpStream::connect(at).unwrap();
    let peer = peer_address(client.as_raw_fd()).unwrap();
    assert_eq!(peer, Address::Tcp(at));
    let any = Address::Tcp(SocketAddr::new([0, 0, 0, 0].into(), at.port()));
    assert!(same_address(&any, &peer));
    let other = Address::Tcp(SocketAddr::new(at.ip(), at.port().wrapping_add(1)));
    assert!(!same_address(&other, &peer));

    // Not sockets, or not connected: no peer.
    let (r, _w) = mp_sys::fd::pipe().unwrap();
    assert_eq!(peer_address(r.as_raw_fd()), None);
    assert_eq!(peer_address(tcp.as_raw_fd()), None);
    assert_eq!(peer_address(-1), None);
}

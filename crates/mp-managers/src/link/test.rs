use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
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
    let peer = |fd: &dyn AsFd| mp_sys::socket::peer(fd.as_fd());
    let name = format!("mp-link-test-{}", std::process::id()).into_bytes();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let _unix = UnixListener::bind_addr(&addr).unwrap();
    let client = UnixStream::connect_addr(&addr).unwrap();
    let found = peer(&client).unwrap();
    assert_eq!(found, Peer::Abstract(name.clone()));
    assert!(leads_to(&Address::Abstract(name), &found));

    let path = std::env::temp_dir().join(format!("mp-link-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let found = peer(&client).unwrap();
    assert_eq!(found, Peer::Path(path.clone()));
    assert!(leads_to(&Address::Unix(path.clone()), &found));
    // The accepted end's peer is the client, which has no address.
    let (accepted, _) = listener.accept().unwrap();
    assert_eq!(peer(&accepted), None);
    std::fs::remove_file(&path).unwrap();

    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = tcp.local_addr().unwrap();
    let client = TcpStream::connect(at).unwrap();
    let found = peer(&client).unwrap();
    assert_eq!(found, Peer::Ip(at));
    assert!(leads_to(&Address::Tcp(at), &found));
    let any = Address::Tcp(SocketAddr::new([0, 0, 0, 0].into(), at.port()));
    assert!(leads_to(&any, &found));
    let other = Address::Tcp(SocketAddr::new(at.ip(), at.port().wrapping_add(1)));
    assert!(!leads_to(&other, &found));

    // Not sockets, or not connected: no peer.
    let (r, _w) = mp_sys::fd::pipe().unwrap();
    assert_eq!(peer(&r), None);
    assert_eq!(peer(&tcp), None);
}

//! Remote managers (issue #16 item 5): a server at a TCP or Unix address with an authkey,
//! objects published by name and looked up by clients in other processes, and a server that
//! keeps serving whatever one client sends (a wrong authkey, garbage, an oversized frame).
//! A manager restarted at the same address serves the processes that used the old one, and a
//! server that never answers holds nothing else up (issue #24 items 5 and 8).
//! CPython: `_TestRemoteManager.test_remote`, `_TestManagerRestart` (`test_rapid_restart`),
//! `test_mymanager`.

use crate::common;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_ipc::{Address, ListenerError};
use mp_managers::{Dict, ManagedQueue, Manager, ManagerError, RemoteError, Server};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

mp_spawn::test_matrix!(
    a_client_process_works_on_published_objects,
    a_server_in_a_child_serves_until_told_to_end,
    a_wrong_authkey_garbage_or_an_oversized_frame_leave_the_server_serving,
    rapid_restart,
    a_silent_server_holds_up_no_fork_and_no_other_call,
);

/// A failure bound only: what must not hang fails the test after it.
const HANG: Duration = Duration::from_secs(30);

const KEY: &[u8] = b"remote manager test";

fn loopback() -> Address {
    Address::Tcp("127.0.0.1:0".parse().unwrap())
}

/// The client: takes numbers from the published queue until 0, and files their squares.
fn worker(address: Address, authkey: Vec<u8>) {
    let manager = Manager::connect(&address, &authkey).unwrap();
    let jobs: ManagedQueue<u64> = manager.lookup("jobs").unwrap();
    let results: Dict<u64, u64> = manager.lookup("results").unwrap();
    loop {
        match jobs.get().unwrap() {
            0 => break,
            n => results.insert(n, n * n).unwrap(),
        };
    }
}

// CPython's `_TestRemoteManager.test_remote`: a queue published by one manager, used by a
// client that connects with the address and the authkey only.
fn a_client_process_works_on_published_objects(m: StartMethod) {
    let server = Manager::listen_with_context(&ctx(m), &loopback(), KEY).unwrap();
    assert!(matches!(server.address(), Address::Tcp(a) if a.port() != 0));
    let jobs = server.queue::<u64>().unwrap();
    let results = server.dict::<u64, u64>().unwrap();
    server.publish("jobs", &jobs).unwrap();
    server.publish("results", &results).unwrap();
    for n in [1, 2, 3, 4, 0] {
        jobs.put(n).unwrap();
    }
    let mut client = ctx(m).process(worker, (server.address().clone(), KEY.to_vec()));
    client.start().unwrap();
    client.join().unwrap();
    let mut got = results.items().unwrap();
    got.sort();
    assert_eq!(got, [(1, 1), (2, 4), (3, 9), (4, 16)]);
    // The client's references went with it: the names and ours are left.
    drop((jobs, results));
    assert_eq!(server.object_count().unwrap(), 2);

    // Looking up: no such name, the wrong type.
    assert!(matches!(
        server.lookup::<ManagedQueue<u64>>("nope"),
        Err(ManagerError::Remote(RemoteError::NoSuchName(name))) if name == "nope"
    ));
    assert!(matches!(
        server.lookup::<ManagedQueue<String>>("jobs"),
        Err(ManagerError::WrongType { .. })
    ));
    assert!(matches!(
        server.lookup::<Dict<u64, u64>>("jobs"),
        Err(ManagerError::WrongType { .. })
    ));
    // A failed lookup holds nothing.
    assert_eq!(server.object_count().unwrap(), 2);
    // Another server's proxy cannot be published here.
    let other = Manager::with_context(&ctx(m)).unwrap();
    let foreign = other.list::<u8>().unwrap();
    assert!(matches!(
        server.publish("foreign", &foreign),
        Err(ManagerError::OtherServer)
    ));
    // Publishing a name again lets go of the object it named.
    let fresh = server.list_from([7u8]).unwrap();
    server.publish("jobs", &fresh).unwrap();
    drop(fresh);
    assert_eq!(server.object_count().unwrap(), 2);
    let again: mp_managers::List<u8> = server.lookup("jobs").unwrap();
    assert_eq!(again.to_vec().unwrap(), [7]);
}

/// A program whose only job is to serve (Python's `get_server().serve_forever()`).
fn serve_at(path: std::path::PathBuf, ready: mp_ipc::Connection) {
    let server = Server::bind(&Address::Unix(path), KEY).unwrap();
    ready.send(server.address()).unwrap();
    server.serve_forever();
}

fn a_server_in_a_child_serves_until_told_to_end(m: StartMethod) {
    let dir = std::env::temp_dir().join(format!("mp-remote-{}-{m:?}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let (ours, theirs) = mp_ipc::pipe(false).unwrap();
    let mut child = ctx(m).process(serve_at, (dir.clone(), theirs));
    child.start().unwrap();
    let address: Address = ours.recv().unwrap();
    let client = Manager::connect(&address, KEY).unwrap();
    let names = client.list_from(["a".to_owned()]).unwrap();
    client.publish("names", &names).unwrap();
    let other = Manager::connect(&address, KEY).unwrap();
    let same: mp_managers::List<String> = other.lookup("names").unwrap();
    same.append("b".to_owned()).unwrap();
    assert_eq!(names.to_vec().unwrap(), ["a", "b"]);
    // A connected manager's drop leaves the server running.
    drop(other);
    assert_eq!(same.len().unwrap(), 2);
    client.shutdown_server().unwrap();
    child.join().unwrap();
    assert!(matches!(same.len(), Err(ManagerError::ServerGone)));
    let _ = std::fs::remove_file(&dir);
}

fn a_wrong_authkey_garbage_or_an_oversized_frame_leave_the_server_serving(m: StartMethod) {
    let server = Manager::listen_with_context(&ctx(m), &loopback(), KEY).unwrap();
    let address = server.address().clone();
    let d = server.dict_from([(1u8, 1u8)]).unwrap();
    let serving = || assert_eq!(d.get(&1).unwrap(), Some(1));

    assert!(matches!(
        Manager::connect(&address, b"wrong"),
        Err(ManagerError::Connect(ListenerError::Authentication(_)))
    ));
    serving();

    // Past the handshake, garbage instead of a hello.
    let conn = mp_ipc::client(&address, Some(KEY)).unwrap();
    conn.send_bytes(&[0xff; 64], 0, None).unwrap();
    assert!(conn.recv_bytes(None).is_err());
    serving();

    // A valid hello (postcard: `Build::Digest(1)`, no session), then a garbage request.
    let conn = mp_ipc::client(&address, Some(KEY)).unwrap();
    conn.send_bytes(&[1, 1, 0], 0, None).unwrap();
    assert!(!conn.recv_bytes(None).unwrap().is_empty());
    conn.send_bytes(&[0xee; 16], 0, None).unwrap();
    assert!(conn.recv_bytes(None).is_err());
    serving();

    // A frame that claims far more than the server reads: dropped before its payload.
    let conn = mp_ipc::client(&address, Some(KEY)).unwrap();
    let mut raw = std::net::TcpStream::from(conn.detach().unwrap());
    let mut header = Vec::new();
    header.extend(mp_spawn::frame::Codec::CONNECTION.magic().to_le_bytes());
    header.extend(0u32.to_le_bytes());
    header.extend((1u64 << 39).to_le_bytes());
    raw.write_all(&header).unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        std::io::Read::read_to_end(&mut raw, &mut rest).unwrap_or(0),
        0
    );
    serving();
}

/// Issue #24 item 12: clients that connect and stay silent, without the authkey, do not hold
/// up an honest client: the handshakes run beside each other, not one after the other.
mod silent_clients {
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Duration;

    use super::{KEY, loopback};
    use mp_ipc::Address;
    use mp_managers::{Dict, Manager};
    use mp_spawn::StartMethod;
    use mp_spawn::testing::ctx;

    mp_spawn::test_matrix!(silent_clients_do_not_hold_up_an_honest_one);

    /// More silent clients than it takes for their handshake deadlines (5 s each, one after
    /// another) to add up past [`BOUND`].
    const SILENT: usize = 8;
    /// A failure bound only, well below the 40 s the silent clients' deadlines add up to.
    const BOUND: Duration = Duration::from_secs(20);

    /// Whether the server still keeps `stream` open: whatever it sent (its challenge) is
    /// there, but no end-of-file.
    fn kept_open(stream: &mut TcpStream) -> bool {
        stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    fn silent_clients_do_not_hold_up_an_honest_one(m: StartMethod) {
        let server = Manager::listen_with_context(&ctx(m), &loopback(), KEY).unwrap();
        let Address::Tcp(at) = server.address().clone() else {
            unreachable!("a TCP listener has a TCP address")
        };
        let d = server.dict_from([(1u8, 2u8)]).unwrap();
        server.publish("d", &d).unwrap();
        // Queued before the honest client: an accept loop that handshakes them one at a
        // time takes them first.
        let mut silent: Vec<TcpStream> = (0..SILENT)
            .map(|_| TcpStream::connect(at).unwrap())
            .collect();
        let (done, finished) = std::sync::mpsc::channel();
        let address = server.address().clone();
        let honest = std::thread::spawn(move || {
            let client = Manager::connect(&address, KEY).unwrap();
            let d: Dict<u8, u8> = client.lookup("d").unwrap();
            let _ = done.send(d.get(&1).unwrap());
        });
        assert_eq!(
            finished.recv_timeout(BOUND),
            Ok(Some(2)),
            "the honest client was not served beside {SILENT} silent ones"
        );
        honest.join().unwrap();
        // Served while the silent clients were still in their handshakes, not after the
        // server gave up on them.
        for (i, stream) in silent.iter_mut().enumerate() {
            assert!(kept_open(stream), "silent client {i} was dropped first");
        }
    }
}

/// CPython's `putter`: puts into the published queue, connecting with the address and key only.
fn putter(address: Address, authkey: Vec<u8>) {
    let manager = Manager::connect(&address, &authkey).unwrap();
    let queue: ManagedQueue<String> = manager.lookup("queue").unwrap();
    queue.put("hello world".to_owned()).unwrap();
}

/// CPython's `test_rapid_restart`: a manager shut down and started again at the same address
/// with the same key serves a process that used the old one: in the same thread, in a new
/// thread, and in a child; a proxy to the old server's object reaches nothing of the new one.
fn rapid_restart(m: StartMethod) {
    let server = Manager::listen_with_context(&ctx(m), &loopback(), KEY).unwrap();
    let address = server.address().clone();
    let queue = server.queue::<String>().unwrap();
    server.publish("queue", &queue).unwrap();
    common::run(m, putter, (address.clone(), KEY.to_vec()));
    assert_eq!(queue.get().unwrap(), "hello world");
    let stale = server.dict_from([(1u8, 1u8)]).unwrap();
    drop(queue);
    server.shutdown().unwrap();
    drop(server);

    // The listening port is free again (SO_REUSEADDR) once the old server has exited.
    let server = Manager::listen_with_context(&ctx(m), &address, KEY).unwrap();
    assert_eq!(server.address(), &address);
    // The thread that used the old server.
    let queue = server.queue::<String>().unwrap();
    server.publish("queue", &queue).unwrap();
    // A thread that never used either.
    std::thread::scope(|s| {
        s.spawn(|| {
            let q: ManagedQueue<String> = server.lookup("queue").unwrap();
            q.put("from a thread".to_owned()).unwrap();
        })
        .join()
        .unwrap();
    });
    assert_eq!(queue.get().unwrap(), "from a thread");
    common::run(m, putter, (address.clone(), KEY.to_vec()));
    assert_eq!(queue.get().unwrap(), "hello world");
    assert!(matches!(
        stale.get(&1),
        Err(ManagerError::Remote(RemoteError::NoSuchObject(_)))
    ));
    drop(stale);
    assert_eq!(server.object_count().unwrap(), 1, "the queue only");
}

fn nothing() {}

fn insert_two(d: Dict<u8, u8>) {
    d.insert(2, 2).unwrap();
}

/// A connect to a peer that accepts and never speaks holds up no fork (whose every lock another
/// thread may wait for: stdout's, so every `println!`) and no other client's call; it ends
/// with a typed error, at its deadline or when the peer hangs up.
fn a_silent_server_holds_up_no_fork_and_no_other_call(m: StartMethod) {
    let manager = common::manager(m);
    let d = manager.dict::<u8, u8>().unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = Address::Tcp(silent.local_addr().unwrap());
    let (ended, connect_ended) = mpsc::channel();
    let a = address.clone();
    let connecting = std::thread::spawn(move || {
        // A deadline far beyond the probes' bound: it is still waiting when they are done.
        let result = Manager::connect_timeout(&a, KEY, 4 * HANG).map(drop);
        ended.send(()).unwrap();
        result
    });
    // Accepted: the connect now waits for a challenge that never comes.
    let (peer, _) = silent.accept().unwrap();

    let (done, probes_done) = mpsc::channel();
    let d2 = d.clone();
    let probes = std::thread::spawn(move || {
        // A fork takes every lock registered to be held across forks.
        let mut p = ctx(StartMethod::Fork).process(nothing, ());
        p.start().unwrap();
        p.join().unwrap();
        // This thread's first call opens its connection, in the process's session.
        d2.insert(1, 1).unwrap();
        // A child of this test's start method, which uses the manager.
        common::run(m, insert_two, (d2,));
        done.send(()).unwrap();
    });
    if probes_done.recv_timeout(HANG).is_err() {
        // Let the probes go before failing, so that the harness can print.
        drop(peer);
        panic!("a fork or a call waited for a connect to a silent server");
    }
    probes.join().unwrap();
    assert_eq!(d.len().unwrap(), 2);
    assert!(
        connect_ended.try_recv().is_err(),
        "the connect is still waiting"
    );
    // The peer hangs up: a typed error at once.
    drop(peer);
    assert!(matches!(
        connecting.join().unwrap(),
        Err(ManagerError::Connect(_))
    ));

    // No hang-up: the deadline ends it.
    let timeout = Duration::from_millis(300);
    let began = Instant::now();
    assert!(matches!(
        Manager::connect_timeout(&address, KEY, timeout),
        Err(ManagerError::Connect(ListenerError::HandshakeTimeout))
    ));
    assert!(began.elapsed() >= timeout);
    drop(silent);
}

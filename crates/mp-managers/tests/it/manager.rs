//! Managers and proxies under every start method (issue #16): the server's life, proxies in
//! children and through queues, reference counts (including a killed client's), nested
//! proxies, and faults (a dead server is an error at once, never a hang; issue #24: a fork
//! child keeps no dead client alive, calls on a dead server fail at once, `ServerGone` after
//! `shutdown` in every thread).
//! CPython: `_TestManagerRestart`, `_TestContainers` (`test_list`, `test_dict`,
//! `test_namespace`), `test_mymanager` (`test_nested_queue` is in `queues.rs`).

use crate::common;
use common::{manager, run, start};

use std::time::{Duration, Instant};

use mp_ipc::Queue;
use mp_managers::{Dict, List, Lock as ManagedLock, Manager, ManagerError, Namespace, RemoteError};
use mp_shm::Lock;
use mp_spawn::StartMethod;
use mp_spawn::testing::{ctx, park_forever, wait_gone};

mp_spawn::test_matrix!(
    containers_work_from_children,
    counter_reaches_450_under_a_lock,
    proxies_travel_through_a_queue,
    objects_are_freed_when_the_last_proxy_is_gone,
    a_killed_clients_references_are_dropped,
    nested_proxies_live_in_a_dict,
    a_dead_server_is_an_error_not_a_hang,
    the_server_dies_with_its_owner,
    the_server_ignores_sigint,
    a_wrong_authkey_or_garbage_leaves_the_server_serving,
    proxies_move_between_threads,
    a_proxy_nobody_receives_dies_with_its_sender,
    a_fork_child_keeps_no_dead_client_alive,
    calls_on_a_dead_server_fail_at_once,
    after_shutdown_every_thread_gets_server_gone,
);

/// A failure bound only: what must not hang fails the test after it.
const HANG: Duration = Duration::from_secs(30);

fn signal(pid: u32, signal: i32) {
    let pidfd = mp_sys::pidfd::open(pid).unwrap();
    mp_sys::pidfd::send_signal(std::os::fd::AsFd::as_fd(&pidfd), signal).unwrap();
}

fn fill(d: Dict<String, i64>, l: List<i64>, ns: Namespace) {
    d.insert("child".to_owned(), 7).unwrap();
    l.extend([4, 5]).unwrap();
    ns.set("seen", true).unwrap();
}

fn containers_work_from_children(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict_from([("parent".to_owned(), 1)]).unwrap();
    let l = manager.list_from([1, 2, 3]).unwrap();
    let ns = manager.namespace().unwrap();
    run(m, fill, (d.clone(), l.clone(), ns.clone()));
    assert_eq!(
        d.items().unwrap(),
        [("parent".to_owned(), 1), ("child".to_owned(), 7)]
    );
    assert_eq!(l.to_vec().unwrap(), [1, 2, 3, 4, 5]);
    assert!(ns.get::<bool>("seen").unwrap());
    // Python's errors, typed.
    assert!(matches!(
        d.pop(&"nope".to_owned()),
        Err(ManagerError::Remote(RemoteError::Key))
    ));
    assert!(matches!(
        l.get(9),
        Err(ManagerError::Remote(RemoteError::Index {
            index: 9,
            len: 5
        }))
    ));
    assert!(matches!(
        l.remove(42),
        Err(ManagerError::Remote(RemoteError::Value))
    ));
    assert!(matches!(
        ns.get::<u8>("missing"),
        Err(ManagerError::Remote(RemoteError::Attribute(_)))
    ));
}

fn add_fifty(counter: mp_managers::ManagedValue<u64>, lock: Lock) {
    for _ in 0..50 {
        let _held = lock.lock().unwrap();
        let n = counter.get().unwrap();
        counter.set(n + 1).unwrap();
    }
}

/// The first post's counter: 9 processes, 50 increments each, under a lock.
fn counter_reaches_450_under_a_lock(m: StartMethod) {
    let manager = manager(m);
    let counter = manager.value(0u64).unwrap();
    let lock = Lock::new().unwrap();
    let mut children: Vec<_> = (0..9)
        .map(|_| ctx(m).process(add_fifty, (counter.clone(), lock.clone())))
        .collect();
    for c in &mut children {
        c.start().unwrap();
    }
    for c in &mut children {
        c.join().unwrap();
    }
    assert_eq!(counter.get().unwrap(), 450);
}

fn take_from_queue(q: Queue<Dict<u32, String>>) {
    let d = q.get().unwrap();
    d.insert(2, "from the child".to_owned()).unwrap();
}

fn proxies_travel_through_a_queue(m: StartMethod) {
    let manager = manager(m);
    let q = Queue::new().unwrap();
    let mut p = ctx(m).process(take_from_queue, (q.clone(),));
    p.start().unwrap();
    {
        // The only proxy goes into the queue and is dropped here at once: the transit
        // reference keeps the object alive until the child adopts it.
        let d = manager.dict::<u32, String>().unwrap();
        d.insert(1, "from the parent".to_owned()).unwrap();
        q.put(d).unwrap();
    }
    p.join().unwrap();
    assert_eq!(
        manager.object_count().unwrap(),
        0,
        "freed once the child dropped it"
    );
}

fn keep_and_drop(d: Dict<u8, u8>, l: List<u8>) {
    d.insert(1, 1).unwrap();
    l.append(1).unwrap();
}

fn objects_are_freed_when_the_last_proxy_is_gone(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict::<u8, u8>().unwrap();
    let l = manager.list::<u8>().unwrap();
    let d2 = d.clone();
    assert_eq!(manager.object_count().unwrap(), 2);
    run(m, keep_and_drop, (d.clone(), l.clone()));
    assert_eq!(manager.object_count().unwrap(), 2);
    drop(d);
    assert_eq!(
        manager.object_count().unwrap(),
        2,
        "d2 still holds the dict"
    );
    drop(d2);
    drop(l);
    assert_eq!(manager.object_count().unwrap(), 0);
}

fn hold_and_park(d: Dict<u8, u8>, ready: Queue<u32>) {
    let extra: Vec<_> = (0..5).map(|_| d.clone()).collect();
    d.insert(0, 0).unwrap();
    ready.put(std::process::id()).unwrap();
    std::hint::black_box(extra);
    park_forever();
}

fn a_killed_clients_references_are_dropped(m: StartMethod) {
    let manager = manager(m);
    let ready = Queue::new().unwrap();
    let mut p = ctx(m).process(
        hold_and_park,
        (manager.dict::<u8, u8>().unwrap(), ready.clone()),
    );
    p.start().unwrap();
    ready.get().unwrap();
    // Only the child holds the dict now (six references); killing it frees them all.
    p.kill().unwrap();
    p.join().unwrap_err();
    let mut count = manager.object_count().unwrap();
    // The server sees the connection end when the kernel closes it; wait for that, not a clock.
    while count != 0 {
        std::thread::yield_now();
        count = manager.object_count().unwrap();
    }
}

fn nested_proxies_live_in_a_dict(m: StartMethod) {
    let manager = manager(m);
    let outer = manager.dict::<String, List<u32>>().unwrap();
    {
        let inner = manager.list_from([1u32, 2]).unwrap();
        outer.insert("inner".to_owned(), inner).unwrap();
    }
    // The list lives on inside the dict, and a proxy to it comes back out.
    let inner = outer.get(&"inner".to_owned()).unwrap().unwrap();
    inner.append(3).unwrap();
    assert_eq!(inner.to_vec().unwrap(), [1, 2, 3]);
    drop(inner);
    assert_eq!(manager.object_count().unwrap(), 2);
    outer.clear().unwrap();
    assert_eq!(
        manager.object_count().unwrap(),
        1,
        "the nested list is freed with its entry"
    );
}

fn a_dead_server_is_an_error_not_a_hang(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict::<u8, u8>().unwrap();
    let server = manager.pid().unwrap();
    signal(server, libc::SIGKILL);
    wait_gone(server);
    assert!(matches!(d.get(&1), Err(ManagerError::ServerGone)));
    assert!(matches!(
        manager.dict::<u8, u8>(),
        Err(ManagerError::ServerGone)
    ));
    manager.shutdown().unwrap();
}

fn own_a_manager(report: Queue<u32>) {
    let manager = Manager::new().unwrap();
    report.put(manager.pid().unwrap()).unwrap();
    park_forever();
}

fn the_server_dies_with_its_owner(m: StartMethod) {
    let report = Queue::new().unwrap();
    let mut owner = ctx(m).process(own_a_manager, (report.clone(),));
    owner.start().unwrap();
    let server = report.get().unwrap();
    owner.kill().unwrap();
    owner.join().unwrap_err();
    // The server is its owner's daemon: it goes with it (wait_gone fails after 60 s).
    wait_gone(server);
}

fn the_server_ignores_sigint(m: StartMethod) {
    let manager = manager(m);
    let v = manager.value(5u8).unwrap();
    signal(manager.pid().unwrap(), libc::SIGINT);
    assert_eq!(v.get().unwrap(), 5);
    assert_eq!(v.set(6).unwrap(), 5);
}

/// A client with a wrong authkey is refused with a typed error, a peer that sends garbage
/// instead of the handshake is dropped, and the server goes on serving the others.
fn a_wrong_authkey_or_garbage_leaves_the_server_serving(m: StartMethod) {
    use std::io::Write;
    use std::os::linux::net::SocketAddrExt;
    let manager = manager(m);
    let d = manager.dict::<u8, u8>().unwrap();
    assert!(matches!(
        mp_ipc::client(manager.address(), Some(b"not the key")),
        Err(mp_ipc::ListenerError::Authentication(_))
    ));
    let mp_ipc::Address::Abstract(name) = manager.address() else {
        panic!("a local manager listens on an abstract address")
    };
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    let mut raw = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    let _ = raw.write_all(&[0xff; 4096]);
    drop(raw);
    d.insert(1, 2).unwrap();
    assert_eq!(d.get(&1).unwrap(), Some(2));
}

fn proxies_move_between_threads(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict::<u32, u32>().unwrap();
    // Made in threads that then end (closing their own connections): the references are the
    // process's, so the lists live on.
    let lists: Vec<List<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u32)
            .map(|i| {
                let (manager, d) = (&manager, &d);
                s.spawn(move || {
                    d.insert(i, i * 10).unwrap();
                    manager.list_from([i]).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(manager.object_count().unwrap(), 5);
    for (i, l) in (0..).zip(&lists) {
        assert_eq!(l.to_vec().unwrap(), [i]);
    }
    // Dropped in yet another thread: freed.
    std::thread::spawn(move || drop(lists)).join().unwrap();
    assert_eq!(manager.object_count().unwrap(), 1);
    assert_eq!(d.len().unwrap(), 4);
}

/// Sends `d` on its way to nobody (as a full `put_nowait`, a failed `start` or a receiver
/// killed before it reads do), and ends.
fn send_to_nobody(d: Dict<u8, u8>) {
    let bytes = mp_spawn::reduction::dumps(&d).unwrap();
    drop(bytes);
}

/// A proxy serialised and never received holds its object until the sending process ends, not
/// for the server's life (issue #24 item 7: `object_count` stayed 1 after the only proxy was
/// dropped, for good).
fn a_proxy_nobody_receives_dies_with_its_sender(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict::<u8, u8>().unwrap();
    run(m, send_to_nobody, (d.clone(),));
    drop(d);
    // The server sees the child's connections end when the kernel closes them: wait for that,
    // not a clock (the bound only turns a leak into a failure instead of a hang).
    let bound = mp_sys::deadline::after(std::time::Duration::from_secs(60)).unwrap();
    while manager.object_count().unwrap() != 0 {
        assert!(
            std::time::Instant::now() < bound,
            "the unreceived proxy's object leaked"
        );
        std::thread::yield_now();
    }
}

fn wait_for(until: Queue<bool>) {
    until.get().unwrap();
}

/// The client: holds `mine` (this thread) and `theirs` (a thread that ends after the fork) and
/// the dict, forks a child that outlives it, reports the child's pid, and waits to be killed.
fn hold_fork_and_park(
    locks: (ManagedLock, ManagedLock),
    d: Dict<u8, u8>,
    report: Queue<u32>,
    until: Queue<bool>,
) {
    let (mine, theirs) = locks;
    assert!(mine.acquire(true, None).unwrap());
    let (held, theirs_held) = std::sync::mpsc::channel();
    let (forked, fork_made) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        assert!(theirs.acquire(true, None).unwrap());
        held.send(()).unwrap();
        fork_made.recv().unwrap();
    });
    theirs_held.recv().unwrap();
    // Forked while both threads' connections are open.
    let mut child = ctx(StartMethod::Fork).process(wait_for, (until,));
    child.start().unwrap();
    forked.send(()).unwrap();
    holder.join().unwrap();
    report.put(child.pid().unwrap()).unwrap();
    std::hint::black_box((&d, child));
    park_forever();
}

/// Lets the fork child go, and waits for it, however the test ends.
struct Release(Queue<bool>, u32);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.put(true).unwrap();
        wait_gone(self.1);
    }
}

/// A fork child of a client keeps none of the client's connections: when a thread of the
/// client ends, and when the client is killed, the server sees their connections end (the
/// managed locks they held are free, the objects only the client held are freed) while the
/// fork child still runs.
fn a_fork_child_keeps_no_dead_client_alive(m: StartMethod) {
    let manager = manager(m);
    let (mine, theirs) = (manager.lock().unwrap(), manager.lock().unwrap());
    let (report, until) = (Queue::new().unwrap(), Queue::new().unwrap());
    let mut client = start(
        m,
        hold_fork_and_park,
        (
            (mine.clone(), theirs.clone()),
            manager.dict::<u8, u8>().unwrap(),
            report.clone(),
            until.clone(),
        ),
    );
    let _release = Release(until, report.get().unwrap());
    assert!(
        theirs.acquire(true, Some(HANG)).unwrap(),
        "the lock of the client's ended thread is free"
    );
    client.kill().unwrap();
    client.join().unwrap_err();
    assert!(
        mine.acquire(true, Some(HANG)).unwrap(),
        "the killed client's lock is free"
    );
    let began = Instant::now();
    // The dict, which only the client held, is freed: the locks are left.
    while manager.object_count().unwrap() != 2 {
        assert!(began.elapsed() < HANG, "the killed client's dict is freed");
        std::thread::yield_now();
    }
}

/// Once a call has seen the server gone, the next ones fail at once (they cost a 200 ms wait
/// each, for ever, before: dropping 100 proxies took 20 s).
fn calls_on_a_dead_server_fail_at_once(m: StartMethod) {
    let manager = manager(m);
    let values: Vec<_> = (0..100u8).map(|i| manager.value(i).unwrap()).collect();
    let server = manager.pid().unwrap();
    signal(server, libc::SIGKILL);
    wait_gone(server);
    let began = Instant::now();
    for v in &values {
        assert!(matches!(v.get(), Err(ManagerError::ServerGone)));
    }
    drop(values);
    // A failure bound only: the 200 calls take milliseconds.
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "took {:?}",
        began.elapsed()
    );
    manager.shutdown().unwrap();
}

/// After `shutdown`, a proxy fails with `ServerGone` (as documented) in the thread that used it
/// and in a new one, and so does the manager.
fn after_shutdown_every_thread_gets_server_gone(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict_from([(1u8, 1u8)]).unwrap();
    manager.shutdown().unwrap();
    let got = d.get(&1);
    assert!(matches!(got, Err(ManagerError::ServerGone)), "{got:?}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let got = d.get(&1);
            assert!(matches!(got, Err(ManagerError::ServerGone)), "{got:?}");
        })
        .join()
        .unwrap();
    });
    let made = manager.dict::<u8, u8>();
    assert!(matches!(made, Err(ManagerError::ServerGone)), "{made:?}");
}

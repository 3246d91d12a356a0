//! The managed queues (issue #16 item 2) under every start method, with children as the other
//! parties: CPython's `_TestQueue` as run for `TYPE = 'manager'` (`test_put`, `test_get`,
//! `test_fork`, `test_qsize`, `test_task_done`, `test_timeout`), that a `get` blocked in one
//! thread does not hold up a `put` from another thread of the same process, and that a client
//! killed while blocked in `get` leaves the server serving the others (and takes no item with
//! it).
//!
//! Ordering comes from events, never from a sleep; timeouts are hang guards, or the subject of
//! the test (then only "timed out" is asserted, never how long it took).

use crate::common;
use common::{manager, start};

use std::time::Duration;

use mp_ipc::Queue;
use mp_managers::{Dict, Event, JoinableQueue, ManagedQueue, ManagerError, RemoteError};
use mp_spawn::StartMethod;
use mp_spawn::testing::park_forever;

mp_spawn::test_matrix!(
    put,
    get,
    fork,
    qsize,
    task_done,
    timeout,
    a_blocked_get_does_not_hold_up_a_put_from_another_thread,
    a_client_killed_in_get_leaves_the_server_serving,
    a_client_killed_in_put_adds_nothing,
    nested_queue,
);

/// A hang guard only: every wait bounded by it is expected to end long before.
const HANG: Duration = Duration::from_secs(60);
/// A timeout the test is about (CPython's `TIMEOUT1`..`TIMEOUT3`).
const TIMEOUT1: Duration = Duration::from_millis(100);

fn is_full<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> bool {
    matches!(r, Err(ManagerError::Remote(RemoteError::Full)))
}

fn is_empty<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> bool {
    matches!(r, Err(ManagerError::Remote(RemoteError::Empty)))
}

fn wait(event: &Event) {
    assert!(event.wait(Some(HANG)).unwrap(), "hang guard");
}

/// CPython `_TestQueue._test_put`.
fn take_six(queue: ManagedQueue<u32>, child_can_start: Event, parent_can_continue: Event) {
    wait(&child_can_start);
    for _ in 0..6 {
        queue.get_timeout(HANG).unwrap();
    }
    parent_can_continue.set().unwrap();
}

/// CPython `_TestQueue.test_put`: a bounded queue fills up, refuses more (at once or after
/// the timeout), and empties when a child takes the items.
fn put(m: StartMethod) {
    const MAXSIZE: u64 = 6;
    let manager = manager(m);
    let queue = manager.bounded_queue::<u32>(MAXSIZE).unwrap();
    let child_can_start = manager.event().unwrap();
    let parent_can_continue = manager.event().unwrap();
    let mut p = start(
        m,
        take_six,
        (
            queue.clone(),
            child_can_start.clone(),
            parent_can_continue.clone(),
        ),
    );
    assert!(queue.empty().unwrap());
    assert!(!queue.full().unwrap());
    queue.put(1).unwrap();
    queue.put(2).unwrap();
    queue.put_timeout(3, HANG).unwrap();
    queue.put_nowait(4).unwrap();
    queue.put_timeout(5, Duration::ZERO).unwrap();
    queue.put_nowait(6).unwrap();
    assert!(!queue.empty().unwrap());
    assert!(queue.full().unwrap());
    assert_eq!(queue.qsize().unwrap(), MAXSIZE);

    assert!(is_full(queue.put_nowait(7)));
    assert!(is_full(queue.put_timeout(7, Duration::ZERO)));
    assert!(is_full(queue.put_timeout(7, TIMEOUT1)));
    assert!(is_full(queue.put_timeout(7, 3 * TIMEOUT1)));
    assert_eq!(
        queue.qsize().unwrap(),
        MAXSIZE,
        "a refused put adds nothing"
    );

    child_can_start.set().unwrap();
    wait(&parent_can_continue);
    assert!(queue.empty().unwrap());
    assert!(!queue.full().unwrap());
    p.join().unwrap();
}

/// CPython `_TestQueue._test_get`.
fn put_four(queue: ManagedQueue<u32>, child_can_start: Event, parent_can_continue: Event) {
    wait(&child_can_start);
    for i in 2..=5 {
        queue.put(i).unwrap();
    }
    parent_can_continue.set().unwrap();
}

/// CPython `_TestQueue.test_get`: items a child put come out in order, and an empty queue
/// refuses a `get` (at once or after the timeout).
fn get(m: StartMethod) {
    let manager = manager(m);
    let queue = manager.queue::<u32>().unwrap();
    let child_can_start = manager.event().unwrap();
    let parent_can_continue = manager.event().unwrap();
    let mut p = start(
        m,
        put_four,
        (
            queue.clone(),
            child_can_start.clone(),
            parent_can_continue.clone(),
        ),
    );
    assert!(queue.empty().unwrap());
    child_can_start.set().unwrap();
    wait(&parent_can_continue);
    assert!(!queue.empty().unwrap());
    assert_eq!(queue.get().unwrap(), 2);
    assert_eq!(queue.get_timeout(HANG).unwrap(), 3);
    assert_eq!(queue.get_timeout(Duration::from_secs(1)).unwrap(), 4);
    assert_eq!(queue.get_nowait().unwrap(), 5);
    assert!(queue.empty().unwrap());

    assert!(is_empty(queue.get_nowait()));
    assert!(is_empty(queue.get_timeout(Duration::ZERO)));
    assert!(is_empty(queue.get_timeout(TIMEOUT1)));
    assert!(is_empty(queue.get_timeout(3 * TIMEOUT1)));
    p.join().unwrap();
}

/// CPython `_TestQueue._test_fork`.
fn put_ten_more(queue: ManagedQueue<u32>) {
    for i in 10..20 {
        queue.put(i).unwrap();
    }
}

/// CPython `_TestQueue.test_fork`: a queue with items in it goes to a child, which adds more;
/// all come out in order.
fn fork(m: StartMethod) {
    let manager = manager(m);
    let queue = manager.queue::<u32>().unwrap();
    for i in 0..10 {
        queue.put(i).unwrap();
    }
    let mut p = start(m, put_ten_more, (queue.clone(),));
    for i in 0..20 {
        assert_eq!(queue.get_timeout(HANG).unwrap(), i);
    }
    p.join().unwrap();
    assert!(is_empty(queue.get_nowait()));
}

fn put_one(queue: ManagedQueue<u32>) {
    queue.put(9).unwrap();
}

/// CPython `_TestQueue.test_qsize`, and the size a child sees and changes.
fn qsize(m: StartMethod) {
    let manager = manager(m);
    let q = manager.queue::<u32>().unwrap();
    assert_eq!(q.qsize().unwrap(), 0);
    q.put(1).unwrap();
    assert_eq!(q.qsize().unwrap(), 1);
    q.put(5).unwrap();
    assert_eq!(q.qsize().unwrap(), 2);
    q.get().unwrap();
    assert_eq!(q.qsize().unwrap(), 1);
    q.get().unwrap();
    assert_eq!(q.qsize().unwrap(), 0);
    let mut p = start(m, put_one, (q.clone(),));
    p.join().unwrap();
    assert_eq!(q.qsize().unwrap(), 1);
    // An unbounded queue is never full.
    assert!(!q.full().unwrap());
}

/// CPython `_TestQueue._test_task_done`: takes items until `None`, marking each done.
fn worker(q: JoinableQueue<Option<u32>>) {
    while q.get().unwrap().is_some() {
        q.task_done().unwrap();
    }
}

/// CPython `_TestQueue.test_task_done`: four children work through ten items, and `join`
/// returns once all are marked done.
fn task_done(m: StartMethod) {
    let manager = manager(m);
    let queue = manager.joinable_queue::<Option<u32>>().unwrap();
    let mut workers: Vec<_> = (0..4).map(|_| start(m, worker, (queue.clone(),))).collect();
    for i in 0..10 {
        queue.put(Some(i)).unwrap();
    }
    queue.join().unwrap();
    for _ in &workers {
        queue.put(None).unwrap();
    }
    for p in &mut workers {
        p.join().unwrap();
    }
    // Python's ValueError: more `task_done` than items put.
    let fresh = manager.joinable_queue::<u8>().unwrap();
    assert!(matches!(
        fresh.task_done(),
        Err(ManagerError::Remote(RemoteError::Runtime(_)))
    ));
    // Nothing to wait for: `join` returns at once.
    fresh.join().unwrap();
}

/// CPython `_TestQueue.test_timeout`: a `get` with a timeout on an empty queue times out (the
/// duration is not asserted).
fn timeout(m: StartMethod) {
    let manager = manager(m);
    let q = manager.queue::<u32>().unwrap();
    assert!(is_empty(q.get_timeout(Duration::from_millis(200))));
    let bounded = manager.bounded_queue::<u32>(1).unwrap();
    bounded.put(1).unwrap();
    assert!(is_full(bounded.put_timeout(2, Duration::from_millis(200))));
}

/// One thread blocks in `get`, another puts (after a round of calls of its own, each of which
/// would wait behind the blocked `get` if the threads shared a connection): each round the
/// getter gets the item.
fn get_in_one_thread_put_in_another(queue: ManagedQueue<u32>) {
    const ROUNDS: u32 = 20;
    let (about_to_get, getting) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let q = &queue;
        let getter = s.spawn(move || {
            (0..ROUNDS)
                .map(|_| {
                    about_to_get.send(()).unwrap();
                    q.get_timeout(HANG)
                })
                .collect::<Vec<_>>()
        });
        for i in 0..ROUNDS {
            getting.recv().unwrap();
            // Round trips on the same queue while the getter waits in the server.
            assert!(queue.empty().unwrap());
            assert_eq!(queue.qsize().unwrap(), 0);
            queue.put(i).unwrap();
        }
        let got: Vec<u32> = getter
            .join()
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (0..ROUNDS).collect::<Vec<_>>());
    });
}

/// Each thread has its own connection: a `get` blocked in the server holds up its own thread
/// only, in the test and in a child.
fn a_blocked_get_does_not_hold_up_a_put_from_another_thread(m: StartMethod) {
    let manager = manager(m);
    let queue = manager.queue::<u32>().unwrap();
    get_in_one_thread_put_in_another(queue.clone());
    let mut p = start(m, get_in_one_thread_put_in_another, (queue,));
    p.join().unwrap();
}

fn get_forever(queue: ManagedQueue<u32>, about_to_get: Queue<bool>) {
    about_to_get.put(true).unwrap();
    let item = queue.get();
    // Only reached if the test put an item while this child lived: it must not have.
    panic!("the killed child got {item:?}");
}

/// A client killed while it waits in `get`: the server goes on serving the others (a thread
/// of the test that waits in `get` beside it, then the test itself), and the dead client's
/// `get` takes no item that is put after its death.
fn a_client_killed_in_get_leaves_the_server_serving(m: StartMethod) {
    let manager = manager(m);
    let queue = manager.queue::<u32>().unwrap();
    let about_to_get = Queue::new().unwrap();
    let mut p = start(m, get_forever, (queue.clone(), about_to_get.clone()));
    assert!(about_to_get.get().unwrap());
    std::thread::scope(|s| {
        let living = s.spawn(|| queue.get_timeout(HANG));
        // Round trips while the child's `get` reaches the server (it is there, or about to
        // be).
        for _ in 0..10 {
            assert!(queue.empty().unwrap());
        }
        p.kill().unwrap();
        p.join().unwrap_err();
        queue.put(100).unwrap();
        assert_eq!(
            living.join().unwrap().unwrap(),
            100,
            "the living getter got it"
        );
    });
    for i in 0..5 {
        queue.put(i).unwrap();
        assert_eq!(queue.get_timeout(HANG).unwrap(), i, "no item lost");
    }
    assert!(queue.empty().unwrap());
}

fn put_forever(queue: ManagedQueue<u32>, about_to_put: Queue<bool>) {
    about_to_put.put(true).unwrap();
    // The queue is full: this waits until the test kills it.
    let _ = queue.put(99);
    park_forever();
}

/// A client killed while it waits in `put` on a full queue: its item never goes in, even once
/// there is room.
fn a_client_killed_in_put_adds_nothing(m: StartMethod) {
    let manager = manager(m);
    let queue = manager.bounded_queue::<u32>(1).unwrap();
    queue.put(0).unwrap();
    let about_to_put = Queue::new().unwrap();
    let mut p = start(m, put_forever, (queue.clone(), about_to_put.clone()));
    assert!(about_to_put.get().unwrap());
    for _ in 0..10 {
        assert!(queue.full().unwrap());
    }
    p.kill().unwrap();
    p.join().unwrap_err();
    // Room now: the dead client's put must not take it.
    assert_eq!(queue.get().unwrap(), 0);
    for i in 1..5 {
        queue.put_timeout(i, HANG).unwrap();
        assert_eq!(
            queue.get_timeout(HANG).unwrap(),
            i,
            "the dead client's item is not in"
        );
    }
    assert!(queue.empty().unwrap());
}

fn put_through_the_dict(d: Dict<u32, ManagedQueue<u32>>) {
    let q = d.get(&0).unwrap().expect("the queue is in the dict");
    q.put(789).unwrap();
}

/// CPython `_TestContainers.test_nested_queue` (its dict half: a managed list needs
/// `PartialEq` items, which a proxy is not): a managed queue stored in a managed dict is used
/// through it, here and from a child, and lives on after the test's own proxy is gone.
fn nested_queue(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict::<u32, ManagedQueue<u32>>().unwrap();
    d.insert(0, manager.queue().unwrap()).unwrap();
    let q = d.get(&0).unwrap().unwrap();
    q.put(456).unwrap();
    drop(q);
    assert_eq!(d.get(&0).unwrap().unwrap().get_nowait().unwrap(), 456);
    let mut p = start(m, put_through_the_dict, (d.clone(),));
    p.join().unwrap();
    assert_eq!(d.get(&0).unwrap().unwrap().get_nowait().unwrap(), 789);
    d.clear().unwrap();
    assert_eq!(manager.object_count().unwrap(), 1, "only the dict is left");
}

//! Queue, JoinableQueue and SimpleQueue across processes, under all three start methods.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{ctx, park_forever};
use mp_ipc::{GetError, JoinableQueue, PutError, Queue, SimpleQueue, Waitable, pipe, wait};
use mp_spawn::StartMethod;
use serde::{Deserialize, Serialize};

mp_spawn::test_matrix!(
    child_puts_parent_gets,
    many_producers_many_consumers,
    child_exits_right_after_putting_more_than_a_pipe_buffer,
    bounded_queue_blocks_until_a_get,
    queue_travels_through_a_connection,
    queue_travels_through_a_queue,
    holder_of_the_locks_is_killed,
    producer_killed_in_a_put_loop,
    joinable_queue_across_processes,
    wait_on_queue_and_sentinel,
    large_items,
    simple_queue_across_processes,
);

const LONG: Duration = Duration::from_secs(30);

fn put_three(q: Queue<String>) {
    for s in ["one", "two", "three"] {
        q.put(s.to_string()).unwrap();
    }
}

fn child_puts_parent_gets(m: StartMethod) {
    let q = Queue::new().unwrap();
    let mut p = ctx(m).process(put_three, (q.clone(),));
    p.start().unwrap();
    let got: Vec<String> = (0..3).map(|_| q.get_timeout(LONG).unwrap()).collect();
    assert_eq!(got, ["one", "two", "three"]);
    p.join().unwrap();
    assert!(q.empty());
}

fn produce(q: Queue<(u32, u32)>, id: u32, n: u32) {
    for i in 0..n {
        q.put((id, i)).unwrap();
    }
}

fn consume(q: Queue<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    loop {
        let item = q.get().unwrap();
        if item.0 == u32::MAX {
            return got;
        }
        got.push(item);
    }
}

fn many_producers_many_consumers(m: StartMethod) {
    const N: u32 = 3000;
    let q = Queue::new().unwrap();
    let c = ctx(m);
    let mut consumers: Vec<_> = (0..2).map(|_| c.process(consume, (q.clone(),))).collect();
    let mut producers: Vec<_> = (0..2)
        .map(|id| c.process(produce, (q.clone(), id, N)))
        .collect();
    for p in &mut consumers {
        p.start().unwrap();
    }
    for p in &mut producers {
        p.start().unwrap();
    }
    for p in &mut producers {
        p.join().unwrap();
    }
    for _ in 0..2 {
        q.put((u32::MAX, 0)).unwrap();
    }
    let mut all: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in &mut consumers {
        let got = p.join().unwrap();
        // FIFO per producer, as each consumer sees it.
        let mut last: BTreeMap<u32, u32> = BTreeMap::new();
        for (id, i) in got {
            if let Some(prev) = last.insert(id, i) {
                assert!(prev < i, "producer {id}: {i} after {prev}");
            }
            all.entry(id).or_default().push(i);
        }
    }
    for id in 0..2 {
        let mut items = all.remove(&id).unwrap();
        items.sort_unstable();
        assert_eq!(items, (0..N).collect::<Vec<_>>(), "producer {id}");
    }
    assert!(q.empty());
}

fn put_a_megabyte(q: Queue<Vec<u8>>) {
    for i in 0..1000u32 {
        q.put(vec![(i % 251) as u8; 1024]).unwrap();
    }
}

/// Python's gh-73983: joining before draining deadlocks once the pipe buffer is full.
fn child_exits_right_after_putting_more_than_a_pipe_buffer(m: StartMethod) {
    let q = Queue::new().unwrap();
    let mut p = ctx(m).process(put_a_megabyte, (q.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(q.qsize(), 1000);
    for i in 0..1000u32 {
        assert_eq!(q.get_nowait().unwrap(), vec![(i % 251) as u8; 1024]);
    }
    assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
}

fn fill_bounded(q: Queue<u32>) -> bool {
    q.put(1).unwrap();
    q.put(2).unwrap();
    // Full now: this waits for the parent's get.
    q.put(3).unwrap();
    true
}

fn bounded_queue_blocks_until_a_get(m: StartMethod) {
    let q = Queue::with_maxsize(2).unwrap();
    assert_eq!(q.maxsize(), 2);
    let mut p = ctx(m).process(fill_bounded, (q.clone(),));
    p.start().unwrap();
    while q.qsize() < 2 {
        std::thread::yield_now();
    }
    assert!(q.full());
    assert!(matches!(q.put_nowait(9), Err(PutError::Full)));
    let start = Instant::now();
    assert!(matches!(
        q.put_timeout(9, Duration::from_millis(50)),
        Err(PutError::Full)
    ));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(q.get().unwrap(), 1);
    assert!(p.join().unwrap());
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 3);
}

fn receive_queue_and_put(conn: mp_ipc::Connection) {
    let q: Queue<u32> = conn.recv().unwrap();
    q.put(77).unwrap();
}

fn queue_travels_through_a_connection(m: StartMethod) {
    let (a, b) = pipe(true).unwrap();
    let mut p = ctx(m).process(receive_queue_and_put, (b,));
    p.start().unwrap();
    let q = Queue::<u32>::new().unwrap();
    a.send(&q).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), 77);
    p.join().unwrap();
}

fn receive_queue_from_queue(outer: Queue<Queue<u32>>) {
    let inner = outer.get().unwrap();
    inner.put(78).unwrap();
}

fn queue_travels_through_a_queue(m: StartMethod) {
    let outer = Queue::new().unwrap();
    let mut p = ctx(m).process(receive_queue_from_queue, (outer.clone(),));
    p.start().unwrap();
    let inner = Queue::<u32>::new().unwrap();
    outer.put(&inner).unwrap();
    assert_eq!(inner.get_timeout(LONG).unwrap(), 78);
    p.join().unwrap();
}

fn grab_locks_and_park(q: Queue<u32>, ready: Queue<bool>) {
    q.put(1).unwrap();
    q.hold_locks_forever().unwrap();
    ready.put(true).unwrap();
    park_forever();
}

fn holder_of_the_locks_is_killed(m: StartMethod) {
    let q = Queue::new().unwrap();
    let ready = Queue::new().unwrap();
    let mut p = ctx(m).process(grab_locks_and_park, (q.clone(), ready.clone()));
    p.start().unwrap();
    assert!(ready.get_timeout(LONG).unwrap());
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    assert_eq!(p.exitcode().unwrap(), Some(-9));
    // The next taker inherits the locks from the dead holder and goes on.
    assert_eq!(q.get_timeout(LONG).unwrap(), 1);
    q.put(2).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), 2);
}

fn put_forever(q: Queue<(u64, Vec<u8>)>) {
    for i in 0u64.. {
        q.put((i, vec![i as u8; (i % 700) as usize])).unwrap();
    }
}

fn producer_killed_in_a_put_loop(m: StartMethod) {
    let q = Queue::new().unwrap();
    let mut p = ctx(m).process(put_forever, (q.clone(),));
    p.start().unwrap();
    // Take some items while it runs, then kill it wherever it is.
    let mut next = 0u64;
    while next < 2000 {
        let (i, body) = q.get_timeout(LONG).unwrap();
        assert_eq!((i, body.len()), (next, (next % 700) as usize));
        next += 1;
    }
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    // Everything it published is intact and in order; nothing half-written shows.
    while let Ok((i, body)) = q.get_nowait() {
        assert_eq!(i, next);
        assert!(body.iter().all(|&b| b == i as u8));
        next += 1;
    }
    q.put((0, vec![])).unwrap();
    assert_eq!(q.get_nowait().unwrap(), (0, vec![]));
}

fn work_and_mark_done(q: JoinableQueue<u32>, out: Queue<u32>) {
    loop {
        let n = q.get().unwrap();
        out.put(n * 2).unwrap();
        q.task_done().unwrap();
        if n == 0 {
            return;
        }
    }
}

fn joinable_queue_across_processes(m: StartMethod) {
    let q = JoinableQueue::new().unwrap();
    let out = Queue::new().unwrap();
    let mut p = ctx(m).process(work_and_mark_done, (q.clone(), out.clone()));
    for n in [5, 4, 3, 2, 1, 0] {
        q.put(n).unwrap();
    }
    p.start().unwrap();
    q.join();
    // join returned, so every item was processed: all results are there.
    assert_eq!(out.qsize(), 6);
    p.join().unwrap();
    assert!(q.task_done().is_err());
    assert!(q.join_timeout(Duration::ZERO));
}

fn put_after(q: Queue<u8>, go: Queue<bool>) {
    go.get().unwrap();
    q.put(5).unwrap();
}

fn wait_on_queue_and_sentinel(m: StartMethod) {
    let q = Queue::new().unwrap();
    let go = Queue::new().unwrap();
    let mut p = ctx(m).process(put_after, (q.clone(), go.clone()));
    p.start().unwrap();
    let sentinel = p.sentinel().unwrap();
    let (c1, _c2) = pipe(true).unwrap();
    let objects: [&dyn Waitable; 3] = [&c1, &q, &sentinel];
    assert!(
        wait(&objects, Some(Duration::from_millis(20)))
            .unwrap()
            .is_empty()
    );
    go.put(true).unwrap();
    let ready = wait(&objects, Some(LONG)).unwrap();
    assert!(ready.contains(&1), "{ready:?}");
    // Still ready: waiting does not consume.
    assert!(wait(&objects[1..2], Some(Duration::ZERO)).unwrap() == [0]);
    assert_eq!(q.get().unwrap(), 5);
    let sentinel = p.sentinel().unwrap();
    let ready = wait(&[&sentinel as &dyn Waitable, &q], Some(LONG)).unwrap();
    assert_eq!(ready, [0]);
    p.join().unwrap();
}

fn echo_big(q: Queue<Vec<u8>>, back: Queue<Vec<u8>>) {
    let mut v = q.get().unwrap();
    v.reverse();
    back.put(v).unwrap();
}

fn large_items(m: StartMethod) {
    let q = Queue::new().unwrap();
    let back = Queue::new().unwrap();
    let mut p = ctx(m).process(echo_big, (q.clone(), back.clone()));
    p.start().unwrap();
    let big: Vec<u8> = (0..20 << 20).map(|i: u32| (i % 253) as u8).collect();
    q.put(&big).unwrap();
    let mut got = back.get_timeout(LONG).unwrap();
    got.reverse();
    assert!(got == big);
    p.join().unwrap();
}

fn simple_put(q: SimpleQueue<String>) {
    q.put("simple".to_string()).unwrap();
}

fn simple_queue_across_processes(m: StartMethod) {
    let q = SimpleQueue::new().unwrap();
    let mut p = ctx(m).process(simple_put, (q.clone(),));
    p.start().unwrap();
    assert_eq!(q.get().unwrap(), "simple");
    assert!(q.empty());
    p.join().unwrap();
    q.close();
    assert!(q.get().is_err());
}

// ---------------------------------------------------------------------------------------------
// Within one process

struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to be serialized"))
    }
}

impl<'de> Deserialize<'de> for Unserializable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unserializable)
    }
}

#[test]
fn a_serialization_error_is_raised_by_put_itself() {
    let q = Queue::<Unserializable>::new().unwrap();
    match q.put(Unserializable) {
        Err(PutError::Encode(e)) => assert!(e.to_string().contains("serialize")),
        other => panic!("{other:?}"),
    }
    assert!(q.empty());
}

#[test]
fn timeouts_and_nowait() {
    let q = Queue::<u8>::new().unwrap();
    assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
    let start = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(30)),
        Err(GetError::Empty)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
    q.put_nowait(1).unwrap();
    assert!(!q.full());
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(Duration::ZERO).unwrap(), 1);
}

#[test]
fn close_makes_put_and_get_errors() {
    let q = Queue::<u8>::new().unwrap();
    q.put(1).unwrap();
    let other = q.clone();
    q.close();
    q.close();
    assert!(matches!(other.put(2), Err(PutError::Closed)));
    assert!(matches!(other.get(), Err(GetError::Closed)));
}

#[test]
fn decode_error_is_typed() {
    let q = Queue::<String>::new().unwrap();
    // A u32 queue and a String queue on the same ring: 0xff is not a valid string length.
    let bytes: Queue<Vec<u8>> = {
        let (a, b) = pipe(true).unwrap();
        a.send(&q).unwrap();
        b.recv().unwrap()
    };
    bytes.put(vec![0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(q.get_nowait(), Err(GetError::Decode(_))));
}

#[test]
fn threads_share_a_queue() {
    let q = Queue::<(u32, u32)>::new().unwrap();
    let producers: Vec<_> = (0..4)
        .map(|id| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..5000 {
                    q.put((id, i)).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let item = q.get_timeout(LONG).unwrap();
                    if item.0 == u32::MAX {
                        return got;
                    }
                    got.push(item);
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    for _ in 0..2 {
        q.put((u32::MAX, 0)).unwrap();
    }
    let mut all: Vec<_> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    let expected: Vec<_> = (0..4)
        .flat_map(|id| (0..5000).map(move |i| (id, i)))
        .collect();
    assert_eq!(all, expected);
}

#[test]
fn growth_keeps_order_across_wraps() {
    // Items of varied sizes, interleaved puts and gets, so that the ring wraps and grows.
    let q = Queue::<Vec<u8>>::new().unwrap();
    let mut next_put = 0u32;
    let mut next_get = 0u32;
    let item = |i: u32| vec![(i % 256) as u8; (i as usize * 7919) % 70_000];
    for round in 0..40 {
        for _ in 0..(round % 7 + 1) * 10 {
            q.put(item(next_put)).unwrap();
            next_put += 1;
        }
        for _ in 0..(round % 5 + 1) * 9 {
            match q.get_nowait() {
                Ok(v) => {
                    assert!(v == item(next_get), "item {next_get}");
                    next_get += 1;
                }
                Err(GetError::Empty) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    while let Ok(v) = q.get_nowait() {
        assert!(v == item(next_get));
        next_get += 1;
    }
    assert_eq!(next_get, next_put);
}

#[test]
fn handles_inside_queue_items() {
    use mp_spawn::reduction::Fd;
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;
    let q = Queue::<(u8, Fd)>::new().unwrap();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    q.put((1, Fd::new(OwnedFd::from(b)))).unwrap();
    drop(q.clone());
    let (n, fd) = q.get().unwrap();
    assert_eq!(n, 1);
    let mut b = std::os::unix::net::UnixStream::from(fd.into_inner());
    (&a).write_all(b"x").unwrap();
    let mut buf = [0u8; 1];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"x");
}

/// The ring's shared memory is sealed against shrinking as it travels, so no holder of the
/// queue's descriptors can truncate it under the other users (SIGBUS in all of them); a ring
/// whose memory is not sealed so is refused on arrival.
#[test]
fn no_holder_of_a_queues_descriptors_can_shrink_its_memory() {
    use mp_spawn::reduction::{dumps, loads};
    use std::os::fd::AsFd;
    let q = Queue::<u32>::new().unwrap();
    q.put(7).unwrap();
    let packed = dumps(&q).unwrap();
    let ring = |fds: &[std::os::fd::OwnedFd]| {
        fds.iter()
            .position(|fd| mp_sys::shm::file_size(fd.as_fd()).unwrap() > 0)
            .expect("the ring's memfd travels with the queue")
    };
    let at = ring(&packed.fds);
    assert!(mp_sys::shm::cannot_shrink(packed.fds[at].as_fd()).unwrap());
    assert!(mp_sys::shm::set_len(packed.fds[at].as_fd(), 0).is_err());
    assert_eq!(q.get().unwrap(), 7);
    // The same size in a memfd that is not sealed, in the ring's place.
    let mut packed = dumps(&q).unwrap();
    let size = mp_sys::shm::file_size(packed.fds[at].as_fd()).unwrap();
    packed.fds[at] = mp_sys::shm::memfd(c"forged", size).unwrap();
    assert!(loads::<Queue<u32>>(&packed.bytes, packed.fds).is_err());
}

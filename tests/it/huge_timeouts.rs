//! A huge timeout (`Duration::MAX`) means "wait forever": never an `Instant` overflow, never a
//! panic. Each call here is made where it returns at once, so that a wrong "forever" would hang
//! and a wrong overflow would panic.

use std::time::Duration;

use mp::spawn::StartMethod;
use mp::spawn::testing::ctx;

const HUGE: Duration = Duration::MAX;

fn seven() -> u64 {
    7
}

fn square(x: u64) -> u64 {
    x * x
}

fn join_timeout(m: StartMethod) {
    let mut p = ctx(m).process(seven, ());
    p.start().unwrap();
    assert_eq!(p.join_timeout(HUGE).unwrap(), Some(7));
}

mp::spawn::test_matrix!(join_timeout);

#[test]
fn connection_poll_and_wait() {
    let (a, b) = mp::pipe(true).unwrap();
    a.send(&1u32).unwrap();
    assert!(b.poll(Some(HUGE)).unwrap());
    assert_eq!(mp::ipc::wait(&[&b], Some(HUGE)).unwrap(), [0]);
    assert_eq!(b.recv::<u32>().unwrap(), 1);
}

#[test]
fn queues() {
    let q = mp::Queue::<u32>::with_maxsize(1).unwrap();
    q.put_timeout(5, HUGE).unwrap();
    assert_eq!(q.get_timeout(HUGE).unwrap(), 5);
    let jq = mp::JoinableQueue::<u32>::new().unwrap();
    assert!(jq.join_timeout(HUGE));
}

#[test]
fn locks_and_events() {
    let lock = mp::Lock::new().unwrap();
    assert!(lock.acquire(true, Some(HUGE)).unwrap());
    lock.release().unwrap();
    let rlock = mp::RLock::new().unwrap();
    assert!(rlock.acquire(true, Some(HUGE)).unwrap());
    rlock.release().unwrap();
    let sem = mp::Semaphore::new(1).unwrap();
    assert!(sem.acquire(true, Some(HUGE)));
    let event = mp::Event::new().unwrap();
    event.set();
    assert!(event.wait(Some(HUGE)));
    let cond = mp::Condition::new().unwrap();
    assert!(cond.acquire(true, Some(HUGE)).unwrap());
    assert!(cond.wait_for(|| true, Some(HUGE)).unwrap());
    cond.release().unwrap();
    let barrier = mp::Barrier::new(1, Some(HUGE)).unwrap();
    assert_eq!(barrier.wait(None).unwrap(), 0);
    assert_eq!(barrier.wait(Some(HUGE)).unwrap(), 0);
}

fn pool_results(m: StartMethod) {
    let pool = mp::Pool::builder()
        .processes(1)
        .context(ctx(m))
        .build()
        .unwrap();
    let r = pool.apply_async(square, (3,)).unwrap();
    assert!(r.wait(Some(HUGE)));
    assert_eq!(r.get_timeout(HUGE).unwrap(), 9);
    let mut it = pool.imap(square, [4u64]);
    assert_eq!(it.next_timeout(HUGE).unwrap().unwrap(), 16);
    assert!(it.next_timeout(HUGE).is_none());
}

mod pool {
    mp::spawn::test_matrix!(pool_results);
    use super::pool_results;
}

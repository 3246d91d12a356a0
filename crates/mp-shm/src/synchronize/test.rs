use super::*;

#[test]
fn condition_tokens_wake_exactly_n() {
    // Three registered waiters, notify(2): two tokens, and a timing-out waiter takes one only
    // when every remaining waiter holds one.
    let wt = 3 * ONE_WAITER + 2;
    assert_eq!(waiters(wt), 3);
    assert_eq!(tokens(wt), 2);
}

#[test]
fn thread_id_is_stable_and_names_a_thread_of_this_process() {
    let me = sys::thread_id();
    assert_eq!(me, sys::thread_id());
    assert!(sys::is_thread_of_this_process(me));
    let other = std::thread::spawn(sys::thread_id).join().unwrap();
    assert_ne!(me, other);
}

#[test]
fn lock_block_keeps_mapping_while_held_here() {
    let lock = Lock::new().unwrap();
    assert!(!held_here(&lock.inner.block));
    lock.acquire(true, None).unwrap();
    assert!(held_here(&lock.inner.block));
    lock.release().unwrap();
}

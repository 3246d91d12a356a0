use super::*;

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

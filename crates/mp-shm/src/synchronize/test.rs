use super::*;

#[test]
fn lock_block_keeps_mapping_while_held_here() {
    let lock = Lock::new().unwrap();
    assert!(!held_here(&lock.inner.block));
    lock.acquire(true, None).unwrap();
    assert!(held_here(&lock.inner.block));
    lock.release().unwrap();
}

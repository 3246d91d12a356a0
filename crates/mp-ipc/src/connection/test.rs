use mp_spawn::frame::HEADER;

use super::*;

const MAGIC: u32 = CODEC.magic();

#[test]
fn header_is_magic_handle_count_and_length() {
    let (a, b) = pipe(true).unwrap();
    a.send_bytes(b"xyz", 0, None).unwrap();
    let guard = b.handle();
    let sock = guard.as_ref().unwrap().as_fd();
    let mut raw = [0u8; HEADER + 3];
    let mut got = Vec::new();
    while got.len() < raw.len() {
        let want = raw.len() - got.len();
        mp_sys::fd::read_append(sock, &mut got, want).unwrap();
    }
    raw.copy_from_slice(&got);
    assert_eq!(&raw[0..4], &MAGIC.to_le_bytes());
    assert_eq!(&raw[4..8], &0u32.to_le_bytes());
    assert_eq!(&raw[8..16], &3u64.to_le_bytes());
    assert_eq!(&raw[16..], b"xyz");
}

#[test]
fn growth_is_bounded_by_what_arrives() {
    let (a, b) = pipe(true).unwrap();
    let guard = a.handle();
    let sock = guard.as_ref().unwrap().as_fd();
    let mut head = MAGIC.to_le_bytes().to_vec();
    head.extend_from_slice(&0u32.to_le_bytes());
    head.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    mp_sys::socket::send_all(sock, &head).unwrap();
    mp_sys::socket::send_all(sock, &[1, 2, 3]).unwrap();
    drop(guard);
    a.close();
    let guard = b.handle();
    let r = read_frame(guard.as_ref().unwrap().as_fd(), u64::MAX, Stop::NEVER);
    assert!(matches!(r, Err(RecvError::Malformed(_))), "{r:?}");
}

use std::os::fd::AsFd;

use super::*;

/// A header that announces 1 TiB, then 100 bytes and the end: a typed error, and no
/// allocation of the announced size (it would fail, or exhaust the memory).
#[test]
fn a_lying_length_is_an_eof_not_an_allocation() {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    mp_sys::fd::write_all(ours.as_fd(), &header(0, LIMIT)).unwrap();
    mp_sys::fd::write_all(ours.as_fd(), &[7; 100]).unwrap();
    drop(ours);
    let e = recv(theirs.as_fd(), LIMIT).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert!(e.to_string().contains("after 100 of"), "{e}");
}

#[test]
fn frames_of_every_size_arrive_whole() {
    for len in [
        0,
        1,
        INLINE - 1,
        INLINE,
        INLINE + 1,
        3 * INLINE + 5,
        1 << 20,
    ] {
        let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
        let sent: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let writer = std::thread::spawn({
            let sent = sent.clone();
            move || send(ours.as_fd(), &sent, &[]).unwrap()
        });
        let (got, fds) = recv(theirs.as_fd(), LIMIT).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), len);
        assert!(got == sent);
        assert!(fds.is_empty());
    }
}

#[test]
fn a_length_over_the_limit_is_invalid_data() {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    mp_sys::fd::write_all(ours.as_fd(), &header(0, 1 << 20)).unwrap();
    let e = recv(theirs.as_fd(), 1 << 16).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
}

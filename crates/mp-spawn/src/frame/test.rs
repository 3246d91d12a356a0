use std::os::fd::AsFd;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const CODEC: Codec = Codec::CHANNEL;

fn pair() -> (OwnedFd, OwnedFd) {
    mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap()
}

/// A header that announces 1 TiB, then 100 bytes and the end: a typed error, and no
/// allocation of the announced size (it would fail, or exhaust the memory).
#[test]
fn a_lying_length_is_an_eof_not_an_allocation() {
    let (ours, theirs) = pair();
    mp_sys::fd::write_all(ours.as_fd(), &CODEC.header(0, LIMIT)).unwrap();
    mp_sys::fd::write_all(ours.as_fd(), &[7; 100]).unwrap();
    drop(ours);
    let e = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap_err();
    assert!(
        matches!(
            e,
            FrameError::Truncated {
                part: Part::Payload,
                got: 100,
                len: LIMIT
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("after 100 of"), "{e}");
    assert_eq!(io::Error::from(e).kind(), io::ErrorKind::UnexpectedEof);
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
        (1 << 20) + 1,
        5 << 20,
    ] {
        let (ours, theirs) = pair();
        let sent: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let writer = std::thread::spawn({
            let sent = sent.clone();
            move || CODEC.send(ours.as_fd(), &sent, &[]).unwrap()
        });
        let (got, fds) = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), len);
        assert!(got == sent);
        assert!(fds.is_empty());
    }
}

#[test]
fn descriptors_ride_with_small_and_large_payloads() {
    for len in [0, 10, INLINE + 1] {
        let (ours, theirs) = pair();
        let (r, w) = mp_sys::fd::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            CODEC
                .send(ours.as_fd(), &vec![3; len], &[r.as_fd(), w.as_fd()])
                .unwrap()
        });
        let (got, fds) = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap();
        writer.join().unwrap();
        assert_eq!(got, vec![3; len]);
        assert_eq!(fds.len(), 2);
        // They are the pipe's two ends: what goes into one comes out of the other.
        mp_sys::fd::write_all(fds[1].as_fd(), b"p").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(mp_sys::fd::read(fds[0].as_fd(), &mut buf).unwrap(), 1);
        assert_eq!(&buf, b"p");
    }
}

#[test]
fn a_length_over_the_limit_is_too_large() {
    let (ours, theirs) = pair();
    mp_sys::fd::write_all(ours.as_fd(), &CODEC.header(0, 1 << 20)).unwrap();
    let e = CODEC
        .recv(theirs.as_fd(), 1 << 16, Stop::NEVER)
        .unwrap_err();
    assert!(
        matches!(
            e,
            FrameError::TooLarge {
                len: 0x10_0000,
                limit: 0x1_0000
            }
        ),
        "{e:?}"
    );
    assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidData);
}

#[test]
fn end_of_stream_before_and_inside_a_frame() {
    let (ours, theirs) = pair();
    drop(ours);
    let e = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap_err();
    assert!(matches!(e, FrameError::Eof), "{e:?}");

    let (ours, theirs) = pair();
    mp_sys::fd::write_all(ours.as_fd(), &CODEC.header(0, 10)[..9]).unwrap();
    drop(ours);
    let e = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap_err();
    assert!(
        matches!(
            e,
            FrameError::Truncated {
                part: Part::Header,
                got: 9,
                len: 16
            }
        ),
        "{e:?}"
    );
}

#[test]
fn another_codec_and_a_wrong_handle_count_are_refused() {
    let (ours, theirs) = pair();
    Codec::CONNECTION.send(ours.as_fd(), b"x", &[]).unwrap();
    let e = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap_err();
    assert!(
        matches!(e, FrameError::BadMagic { found } if found == Codec::CONNECTION.magic()),
        "{e:?}"
    );
    assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidData);

    // Announces 3 handles, sends none.
    let (ours, theirs) = pair();
    mp_sys::fd::write_all(ours.as_fd(), &CODEC.header(3, 0)).unwrap();
    let e = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap_err();
    assert!(
        matches!(
            e,
            FrameError::Handles {
                announced: 3,
                arrived: 0
            }
        ),
        "{e:?}"
    );

    // Sends one handle, announces none.
    let (ours, theirs) = pair();
    let (r, _w) = mp_sys::fd::pipe().unwrap();
    mp_sys::socket::send_with_fds(ours.as_fd(), &CODEC.header(0, 0), &[r.as_fd()]).unwrap();
    let e = CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap_err();
    assert!(
        matches!(
            e,
            FrameError::Handles {
                announced: 0,
                arrived: 1
            }
        ),
        "{e:?}"
    );
}

#[test]
fn too_many_descriptors_is_invalid_input() {
    let (ours, _theirs) = pair();
    let (r, _w) = mp_sys::fd::pipe().unwrap();
    let fds = vec![r.as_fd(); mp_sys::socket::MAX_FDS_PER_MSG + 1];
    let e = CODEC.send(ours.as_fd(), b"x", &fds).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}

/// Runs `recv` (a read that should end on its own, through its `Stop`) on another thread. A
/// hang guard only: if it has not returned after a minute, `peer` is shut down (so the read
/// sees the end of the stream and returns) and the test fails.
fn guarded<T: Send>(peer: &OwnedFd, recv: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        s.spawn(move || tx.send(recv()));
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(result) => result,
            Err(_) => {
                let _ = mp_sys::socket::shutdown(peer.as_fd(), mp_sys::socket::Shutdown::Both);
                panic!("the read ignored its stop");
            }
        }
    })
}

#[test]
fn a_passed_deadline_is_timed_out() {
    // Nothing at all, half a header, a payload that stops short of its length: each waits
    // for bytes that do not come.
    let mut part = CODEC.header(0, 10).to_vec();
    part.extend_from_slice(&[1; 4]);
    for sent in [0, 5, part.len()] {
        let (ours, theirs) = pair();
        mp_sys::fd::write_all(ours.as_fd(), &part[..sent]).unwrap();
        let stop = Stop {
            deadline: mp_sys::deadline::after(Duration::ZERO),
            cancel: None,
        };
        let e = guarded(&ours, || CODEC.recv(theirs.as_fd(), LIMIT, stop)).unwrap_err();
        assert!(matches!(e, FrameError::TimedOut), "{sent}: {e:?}");
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::TimedOut);
    }
}

#[test]
fn a_frame_already_there_beats_a_stop() {
    let (ours, theirs) = pair();
    CODEC.send(ours.as_fd(), b"here", &[]).unwrap();
    let stop = Stop {
        deadline: mp_sys::deadline::after(Duration::ZERO),
        cancel: None,
    };
    assert_eq!(CODEC.recv(theirs.as_fd(), LIMIT, stop).unwrap().0, b"here");
}

#[test]
fn a_readable_cancel_descriptor_ends_the_wait() {
    // An eventfd rung from another thread while the reader waits (or before it waits: either
    // way the wait ends), with no deadline to fall back on.
    let (ours, theirs) = pair();
    let doorbell = mp_sys::eventfd::new().unwrap();
    let stop = Stop {
        deadline: None,
        cancel: Some(doorbell.as_fd()),
    };
    let e = std::thread::scope(|s| {
        s.spawn(|| mp_sys::eventfd::ring(doorbell.as_fd()));
        guarded(&ours, || CODEC.recv(theirs.as_fd(), LIMIT, stop)).unwrap_err()
    });
    assert!(matches!(e, FrameError::Cancelled), "{e:?}");
    assert_eq!(io::Error::from(e).kind(), io::ErrorKind::ConnectionAborted);

    // A socket made readable, in the middle of a payload.
    let (ours, theirs) = pair();
    let (bell, cancel) = pair();
    mp_sys::fd::write_all(ours.as_fd(), &CODEC.header(0, 10)).unwrap();
    mp_sys::fd::write_all(ours.as_fd(), &[1; 4]).unwrap();
    mp_sys::socket::send_all(bell.as_fd(), b"!").unwrap();
    let stop = Stop {
        deadline: None,
        cancel: Some(cancel.as_fd()),
    };
    let e = guarded(&ours, || CODEC.recv(theirs.as_fd(), LIMIT, stop)).unwrap_err();
    assert!(matches!(e, FrameError::Cancelled), "{e:?}");
}

#[test]
fn the_prebuilt_frame_reads_back() {
    let (ours, theirs) = pair();
    mp_sys::fd::write_all(ours.as_fd(), &CODEC.encode(b"overflow")).unwrap();
    assert_eq!(
        CODEC.recv(theirs.as_fd(), LIMIT, Stop::NEVER).unwrap().0,
        b"overflow"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The decoder itself against arbitrary bytes, alone or after a valid header (with any
    /// handle count and a length up to far past the limit and past the memory): every read
    /// is a frame or a typed error; never a panic, a hang (the stream is finite and every
    /// call consumes bytes or ends) or an allocation of the announced size (that would be
    /// `OutOfMemory` or an abort, not the `Truncated` it must be).
    #[test]
    fn fuzz_the_codec(
        garbage in proptest::collection::vec(any::<u8>(), 0..512),
        len in prop_oneof![0u64..1024, 0u64..(1 << 24), Just(1u64 << 40), Just(u64::MAX)],
        nfds in prop_oneof![Just(0u32), any::<u32>()],
        limit in prop_oneof![Just(LIMIT), Just(u64::MAX), 0u64..4096],
        with_header in any::<bool>(),
    ) {
        let (ours, theirs) = pair();
        if with_header {
            mp_sys::fd::write_all(ours.as_fd(), &CODEC.header(nfds, len)).unwrap();
        }
        mp_sys::fd::write_all(ours.as_fd(), &garbage).unwrap();
        drop(ours);
        let sent = garbage.len() as u64 + if with_header { HEADER as u64 } else { 0 };
        let mut reads = 0;
        loop {
            reads += 1;
            prop_assert!(reads <= sent + 1, "a read that consumed nothing");
            match CODEC.recv(theirs.as_fd(), limit, Stop::NEVER) {
                Ok((m, fds)) => {
                    prop_assert!(m.len() as u64 <= sent);
                    prop_assert!(m.len() as u64 <= limit);
                    prop_assert!(fds.is_empty());
                    prop_assert!(m.capacity() <= 2 * m.len().max(1));
                }
                Err(FrameError::Eof) => break,
                Err(
                    FrameError::Truncated { .. }
                    | FrameError::BadMagic { .. }
                    | FrameError::TooLarge { .. }
                    | FrameError::Handles { .. },
                ) => {}
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }
}

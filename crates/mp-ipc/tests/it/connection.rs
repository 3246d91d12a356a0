//! Pipe and Connection: across processes under all three start methods, and their edge cases.

use crate::common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::ctx;
use mp_ipc::{Connection, RecvError, SendError, pipe};
use mp_spawn::StartMethod;
use mp_spawn::reduction::{self, Fd};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

mp_spawn::test_matrix!(
    child_sends_the_tutorial_list,
    boundaries_hold_across_processes,
    large_messages_both_ways,
    eof_after_the_child_exits,
    one_way_pipe_in_a_child,
    connection_travels_through_a_connection,
    killed_in_the_middle_of_a_send,
    threads_share_a_connection,
);

const LONG: Duration = Duration::from_secs(30);

/// Python's `[42, None, 'hello']`.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Item {
    Int(i64),
    None,
    Str(String),
}

fn send_list(conn: Connection) {
    conn.send(&vec![Item::Int(42), Item::None, Item::Str("hello".into())])
        .unwrap();
}

fn child_sends_the_tutorial_list(m: StartMethod) {
    let (parent, child) = pipe(true).unwrap();
    let mut p = ctx(m).process(send_list, (child,));
    p.start().unwrap();
    let got: Vec<Item> = parent.recv().unwrap();
    assert_eq!(got, [Item::Int(42), Item::None, Item::Str("hello".into())]);
    p.join().unwrap();
}

fn send_pieces(conn: Connection) {
    for piece in [&b"a"[..], b"b", b"cd", b""] {
        conn.send_bytes(piece, 0, None).unwrap();
    }
    conn.send_bytes(b"xxhelloxx", 2, Some(5)).unwrap();
}

fn boundaries_hold_across_processes(m: StartMethod) {
    let (parent, child) = pipe(true).unwrap();
    let mut p = ctx(m).process(send_pieces, (child,));
    p.start().unwrap();
    p.join().unwrap();
    for expected in [&b"a"[..], b"b", b"cd", b"", b"hello"] {
        assert!(parent.poll(Some(Duration::ZERO)).unwrap());
        assert_eq!(parent.recv_bytes(None).unwrap(), expected);
    }
}

fn echo_reversed(conn: Connection) {
    let mut v = conn.recv_bytes(None).unwrap();
    v.reverse();
    conn.send_bytes(&v, 0, None).unwrap();
    let s: String = conn.recv().unwrap();
    conn.send(&s.len()).unwrap();
}

fn large_messages_both_ways(m: StartMethod) {
    let (parent, child) = pipe(true).unwrap();
    let mut p = ctx(m).process(echo_reversed, (child,));
    p.start().unwrap();
    let big: Vec<u8> = (0..17 << 20).map(|i: u32| (i % 251) as u8).collect();
    parent.send_bytes(&big, 0, None).unwrap();
    let mut back = parent.recv_bytes(None).unwrap();
    back.reverse();
    assert!(back == big);
    parent.send(&"z".repeat(33 << 20)).unwrap();
    assert_eq!(parent.recv::<usize>().unwrap(), 33 << 20);
    p.join().unwrap();
}

fn send_two(conn: Connection) {
    conn.send(&1u8).unwrap();
    conn.send(&2u8).unwrap();
}

fn eof_after_the_child_exits(m: StartMethod) {
    let (parent, child) = pipe(true).unwrap();
    let mut p = ctx(m).process(send_two, (child,));
    p.start().unwrap();
    // `start` dropped the parent's copy of the child's end, so EOF can come.
    p.join().unwrap();
    assert_eq!(parent.recv::<u8>().unwrap(), 1);
    assert_eq!(parent.recv::<u8>().unwrap(), 2);
    assert!(matches!(parent.recv::<u8>(), Err(RecvError::Eof)));
    assert!(matches!(parent.recv::<u8>(), Err(RecvError::Eof)));
}

fn write_end(conn: Connection) -> bool {
    let wrong = matches!(conn.recv::<u8>(), Err(RecvError::NotReadable));
    conn.send(&"one way".to_string()).unwrap();
    wrong
}

fn one_way_pipe_in_a_child(m: StartMethod) {
    let (reader, writer) = pipe(false).unwrap();
    assert!(reader.readable() && !reader.writable());
    assert!(writer.writable() && !writer.readable());
    assert!(matches!(reader.send(&1u8), Err(SendError::NotWritable)));
    assert!(matches!(writer.poll(None), Err(RecvError::NotReadable)));
    let mut p = ctx(m).process(write_end, (writer,));
    p.start().unwrap();
    assert_eq!(reader.recv::<String>().unwrap(), "one way");
    assert!(p.join().unwrap());
}

fn forward_connection(conn: Connection) {
    let inner: Connection = conn.recv().unwrap();
    inner.send(&"through".to_string()).unwrap();
}

fn connection_travels_through_a_connection(m: StartMethod) {
    let (a, b) = pipe(true).unwrap();
    let (x, y) = pipe(true).unwrap();
    let mut p = ctx(m).process(forward_connection, (b,));
    p.start().unwrap();
    a.send(&y).unwrap();
    drop(y);
    assert_eq!(x.recv::<String>().unwrap(), "through");
    p.join().unwrap();
}

fn send_huge(conn: Connection) {
    let _ = conn.send_bytes(&vec![7u8; 256 << 20], 0, None);
}

fn killed_in_the_middle_of_a_send(m: StartMethod) {
    let (parent, child) = pipe(true).unwrap();
    let mut p = ctx(m).process(send_huge, (child,));
    p.start().unwrap();
    // The message is far larger than the socket buffer: once something is readable the child
    // is blocked inside the send.
    assert!(parent.poll(Some(LONG)).unwrap());
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    match parent.recv_bytes(None) {
        Err(RecvError::Malformed(m)) => assert!(m.contains("ended after"), "{m}"),
        other => panic!("{:?}", other.map(|v| v.len())),
    }
    assert!(matches!(parent.recv_bytes(None), Err(RecvError::Broken)));
}

fn count_messages(conn: Connection) -> usize {
    let mut n = 0;
    loop {
        let v = conn.recv::<Vec<u32>>().unwrap();
        if v.is_empty() {
            return n;
        }
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|&x| x == v[0]));
        n += 1;
    }
}

fn threads_share_a_connection(m: StartMethod) {
    let (parent, child) = pipe(true).unwrap();
    let mut p = ctx(m).process(count_messages, (child,));
    p.start().unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let parent = &parent;
            s.spawn(move || {
                for i in 0..200 {
                    parent.send(&vec![t * 1000 + i; 1000]).unwrap();
                }
            });
        }
    });
    // An end marker, not EOF: under fork the child holds a copy of `parent` too (as in Python).
    parent.send(&Vec::<u32>::new()).unwrap();
    assert_eq!(p.join().unwrap(), 800);
}

// ---------------------------------------------------------------------------------------------
// Within one process

#[test]
fn recv_bytes_into_and_buffer_too_short() {
    let (a, b) = pipe(true).unwrap();
    a.send_bytes(b"hello", 0, None).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(b.recv_bytes_into(&mut buf, 3).unwrap(), 5);
    assert_eq!(&buf[3..], b"hello");
    a.send_bytes(b"too long for it", 0, None).unwrap();
    match b.recv_bytes_into(&mut buf, 0) {
        Err(RecvError::BufferTooShort(m)) => assert_eq!(m, b"too long for it"),
        other => panic!("{other:?}"),
    }
    // The connection is still usable.
    a.send(&9u16).unwrap();
    assert_eq!(b.recv::<u16>().unwrap(), 9);
    assert!(matches!(
        b.recv_bytes_into(&mut buf, 9),
        Err(RecvError::OffsetOutOfRange { len: 8, offset: 9 })
    ));
    assert!(matches!(
        a.send_bytes(b"abc", 2, Some(2)),
        Err(SendError::OutOfRange { .. })
    ));
    assert!(matches!(
        a.send_bytes(b"abc", usize::MAX, Some(2)),
        Err(SendError::OutOfRange { .. })
    ));
}

#[test]
fn maxlength_makes_the_connection_unusable() {
    let (a, b) = pipe(true).unwrap();
    a.send_bytes(&[1; 100], 0, None).unwrap();
    a.send_bytes(&[2; 10], 0, None).unwrap();
    assert!(matches!(
        b.recv_bytes(Some(50)),
        Err(RecvError::TooLarge {
            len: 100,
            limit: 50
        })
    ));
    assert!(matches!(b.recv_bytes(None), Err(RecvError::Broken)));
}

#[test]
fn poll_and_close() {
    // In a spawned child: it runs no other test, so no other thread forks a child that would
    // inherit a copy of `b` and keep the socket open after `b.close()` (Python's semantics:
    // the peer sees the close only once every copy is closed).
    let mut p = ctx(StartMethod::Spawn).process(poll_and_close_alone, ());
    p.start().unwrap();
    p.join().unwrap();
}

fn poll_and_close_alone() {
    let (a, b) = pipe(true).unwrap();
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    assert!(!b.poll(Some(Duration::from_millis(10))).unwrap());
    a.send(&1u8).unwrap();
    assert!(b.poll(None).unwrap());
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert!(!b.closed());
    assert!(b.fileno().is_some());
    b.close();
    b.close();
    assert!(b.closed());
    assert_eq!(b.fileno(), None);
    assert!(matches!(b.recv::<u8>(), Err(RecvError::Closed)));
    assert!(matches!(b.send(&1u8), Err(SendError::Closed)));
    assert!(matches!(b.poll(None), Err(RecvError::Closed)));
    assert!(matches!(a.send(&1u8), Err(SendError::Io(_))));
    assert!(a.poll(Some(Duration::ZERO)).unwrap());
    assert!(matches!(a.recv::<u8>(), Err(RecvError::Eof)));
}

#[test]
fn decode_error_keeps_the_connection() {
    let (a, b) = pipe(true).unwrap();
    a.send_bytes(&[0xff, 0xff, 0xff], 0, None).unwrap();
    assert!(matches!(b.recv::<String>(), Err(RecvError::Decode(_))));
    // A value of another type is an error, not a value built from a prefix of it.
    a.send(&[0u8, 1, 2]).unwrap();
    assert!(matches!(b.recv::<Vec<u8>>(), Err(RecvError::Decode(_))));
    a.send(&"fine".to_string()).unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "fine");
}

/// A Connection over one end of a raw socket pair, and the raw other end.
fn raw_pair() -> (Connection, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    // A connection is (fd, readable, writable) on the wire.
    let wire = (Fd::new(ours.into()), true, true);
    let dumped = reduction::dumps(&wire).unwrap();
    (reduction::loads(&dumped.bytes, dumped.fds).unwrap(), theirs)
}

fn header(magic: u32, nfds: u32, len: u64) -> Vec<u8> {
    let mut h = magic.to_le_bytes().to_vec();
    h.extend_from_slice(&nfds.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

const MAGIC: u32 = 0x6d70_0101;

#[test]
fn garbage_bad_magic_and_truncation_are_typed_errors() {
    let (conn, mut raw) = raw_pair();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(matches!(
        conn.recv_bytes(None),
        Err(RecvError::Malformed(_))
    ));

    let (conn, mut raw) = raw_pair();
    raw.write_all(&header(MAGIC, 0, 10)[..9]).unwrap();
    drop(raw);
    assert!(matches!(
        conn.recv_bytes(None),
        Err(RecvError::Malformed(_))
    ));

    let (conn, mut raw) = raw_pair();
    raw.write_all(&header(MAGIC, 3, 0)).unwrap();
    assert!(matches!(
        conn.recv_bytes(None),
        Err(RecvError::Malformed(_))
    ));
}

#[test]
fn a_lying_length_costs_only_what_arrives() {
    let (conn, mut raw) = raw_pair();
    // Claims 1 TiB - 1, sends 10 bytes and hangs up: no 1 TiB allocation, a typed error.
    raw.write_all(&header(MAGIC, 0, (1 << 40) - 1)).unwrap();
    raw.write_all(&[0; 10]).unwrap();
    drop(raw);
    assert!(matches!(
        conn.recv_bytes(None),
        Err(RecvError::Malformed(_))
    ));

    let (conn, mut raw) = raw_pair();
    conn.set_max_message_size(1 << 20);
    raw.write_all(&header(MAGIC, 0, 1 << 30)).unwrap();
    assert!(matches!(
        conn.recv_bytes(None),
        Err(RecvError::TooLarge { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The frame decoder against arbitrary bytes (and arbitrary bytes after a valid header):
    /// it returns a message or a typed error, and never panics, hangs or over-allocates.
    #[test]
    fn fuzz_the_frame_decoder(
        garbage in proptest::collection::vec(any::<u8>(), 0..256),
        len in 0u64..(1 << 24),
        with_header in any::<bool>(),
    ) {
        let (conn, mut raw) = raw_pair();
        conn.set_max_message_size(1 << 23);
        if with_header {
            raw.write_all(&header(MAGIC, 0, len)).unwrap();
        }
        raw.write_all(&garbage).unwrap();
        drop(raw);
        loop {
            match conn.recv_bytes(None) {
                Ok(m) => prop_assert!(m.len() as u64 <= len),
                Err(RecvError::Eof | RecvError::Broken) => break,
                Err(RecvError::Malformed(_) | RecvError::TooLarge { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }
}

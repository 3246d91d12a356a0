//! What the encoder (`mp_spawn::reduction`) hands to `Connection::send` and `Queue::put`: a
//! message that owns its descriptors, and serialisation errors that keep their own text.

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use mp_ipc::{PutError, Queue, SendError, pipe};
use mp_spawn::reduction::{self, Fd};
use serde::{Serialize, Serializer};

/// (device, inode) of a descriptor: which file it is, whatever its number.
fn identity(fd: impl AsFd) -> (u64, u64) {
    let file = std::fs::File::from(fd.as_fd().try_clone_to_owned().unwrap());
    let meta = file.metadata().unwrap();
    (meta.st_dev(), meta.st_ino())
}

/// Holds an `Fd` that `&self` can close, as a `Connection` does (its `close` takes `&self`).
struct Holder(RefCell<Option<Fd>>);

impl Serialize for Holder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.borrow().as_ref().unwrap().serialize(s)
    }
}

/// A dumped message owns (duplicates of) its descriptors: closing the original after `dumps`,
/// and letting the OS reuse its number, must not change which file is sent.
#[test]
fn a_dumped_message_owns_its_descriptors() {
    let (carried, _peer) = UnixStream::pair().unwrap();
    let want = identity(&carried);
    let holder = Holder(RefCell::new(Some(Fd::new(OwnedFd::from(carried)))));
    let dumped = reduction::dumps(&holder).unwrap();
    assert_eq!(dumped.fds.len(), 1);

    // Close the original, and open other files that may take its number.
    holder.0.borrow_mut().take();
    let _reuse: Vec<UnixStream> = (0..4)
        .flat_map(|_| {
            let (a, b) = UnixStream::pair().unwrap();
            [a, b]
        })
        .collect();

    let (tx, rx) = UnixStream::pair().unwrap();
    let fds: Vec<_> = dumped.fds.iter().map(|fd| fd.as_fd()).collect();
    mp_sys::socket::send_with_fds(tx.as_fd(), &dumped.bytes, &fds)
        .expect("the message's descriptors are still open");
    let mut buf = vec![0u8; dumped.bytes.len()];
    let mut got = Vec::new();
    let n = mp_sys::socket::recv_with_fds(rx.as_fd(), &mut buf, &mut got).unwrap();
    assert_eq!(n, dumped.bytes.len());
    assert_eq!(got.len(), 1);
    assert_eq!(identity(&got[0]), want, "the receiver got another file");
}

/// The same through a `Connection` carried inside a message: closing it after `dumps` (as
/// another thread may do while `send` runs) leaves the dumped message intact.
#[test]
fn closing_a_dumped_connection_does_not_change_the_message() {
    let (carried, peer) = pipe(true).unwrap();
    let dumped = reduction::dumps(&carried).unwrap();
    carried.close();
    let _reuse = UnixStream::pair().unwrap();

    let (tx, rx) = UnixStream::pair().unwrap();
    let fds: Vec<_> = dumped.fds.iter().map(|fd| fd.as_fd()).collect();
    mp_sys::socket::send_with_fds(tx.as_fd(), &dumped.bytes, &fds)
        .expect("the message's descriptors are still open");
    let mut buf = vec![0u8; dumped.bytes.len()];
    let mut got = Vec::new();
    mp_sys::socket::recv_with_fds(rx.as_fd(), &mut buf, &mut got).unwrap();
    let conn: mp_ipc::Connection = reduction::loads(&buf, got).unwrap();
    // The received connection is the same socket: it talks to `peer`.
    conn.send(&"still me".to_string()).unwrap();
    assert!(
        peer.poll(Some(Duration::from_secs(30))).unwrap(),
        "hang guard"
    );
    assert_eq!(peer.recv::<String>().unwrap(), "still me");
}

/// Fails to serialise with its own message (`serde::ser::Error::custom`).
#[derive(Debug, Clone, serde::Deserialize)]
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("my message"))
    }
}

#[test]
fn send_keeps_the_message_of_a_serialize_error() {
    let (a, b) = pipe(true).unwrap();
    // Nested, so that the error comes from deep inside postcard's serializer.
    let value = (1u8, vec![Some(Refuses)]);
    match a.send(&value) {
        Err(SendError::Encode(e)) => assert!(e.to_string().contains("my message"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Nothing was sent: the connection still works.
    a.send(&7u32).unwrap();
    assert_eq!(b.recv::<u32>().unwrap(), 7);
}

#[test]
fn queue_put_keeps_the_message_of_a_serialize_error() {
    let q: Queue<Vec<Refuses>> = Queue::new().unwrap();
    match q.put(vec![Refuses]) {
        Err(PutError::Encode(e)) => assert!(e.to_string().contains("my message"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(q.empty());
}

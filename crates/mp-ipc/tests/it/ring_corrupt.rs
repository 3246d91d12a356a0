//! A queue's shared memory comes from another process: a descriptor that lies (right size,
//! right magic, offsets or positions that point outside the ring) must be refused with a typed
//! error, never read or written out of bounds (issue #13).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixDatagram;

use mp_ipc::{GetError, Queue};
use mp_spawn::reduction::{self, Fd};

// The header layout (crates/mp-ipc/src/ring/layout.rs), as a crafted descriptor would write it.
const MAGIC: u64 = 0x6d70_7175_6575_0001;
const RESERVE: u64 = 4096 + 2 * (1 << 34);
const LAYOUT0_OFFSET: u64 = 24;
const LAYOUT0_CAP: u64 = 32;
/// The producers' and consumers' blocks start with their robust mutex.
const MUTEX: u64 = std::mem::size_of::<mp_sys::robust_mutex::RawMutex>() as u64;
const TAIL: u64 = 128 + MUTEX;
const HEAD: u64 = 256 + MUTEX;

fn write_u64(file: &File, at: u64, v: u64) {
    file.write_all_at(&v.to_le_bytes(), at).unwrap();
}

/// A queue descriptor whose memfd the test can still write to.
fn crafted(write: impl FnOnce(&File)) -> Result<Queue<u32>, reduction::DecodeError> {
    let memfd = mp_sys::shm::memfd(c"crafted", RESERVE).unwrap();
    let file = File::from(memfd.try_clone().unwrap());
    write(&file);
    let (a, b) = UnixDatagram::pair().unwrap();
    let bell = OwnedFd::from(UnixDatagram::pair().unwrap().0);
    let parts = (
        Fd::new(memfd),
        Fd::new(OwnedFd::from(a)),
        Fd::new(OwnedFd::from(b)),
        Fd::new(bell),
    );
    let dumped = reduction::dumps(&parts).unwrap();
    let fds = dumped
        .fds
        .iter()
        .map(|fd| fd.try_clone().unwrap())
        .collect();
    reduction::loads::<Queue<u32>>(&dumped.bytes, fds)
}

/// The memfd of a real queue, to corrupt it after attaching.
fn memfd_of(q: &Queue<u32>) -> File {
    let dumped = reduction::dumps(q).unwrap();
    File::from(dumped.fds[0].try_clone().unwrap())
}

#[test]
fn crafted_queue_with_lying_offset_is_refused() {
    let r = crafted(|f| {
        write_u64(f, 0, MAGIC);
        write_u64(f, LAYOUT0_OFFSET, 1 << 50);
        write_u64(f, LAYOUT0_CAP, 1 << 18);
    });
    assert!(r.is_err(), "a region outside the mapping was accepted");
}

#[test]
fn crafted_queue_with_lying_capacity_is_refused() {
    for cap in [0, 3, 1 << 40, u64::MAX] {
        let r = crafted(|f| {
            write_u64(f, 0, MAGIC);
            write_u64(f, LAYOUT0_OFFSET, 4096);
            write_u64(f, LAYOUT0_CAP, cap);
        });
        assert!(r.is_err(), "capacity {cap} was accepted");
    }
}

#[test]
fn layout_corrupted_after_attach_is_a_typed_error() {
    let q = Queue::<u32>::new().unwrap();
    q.put(1).unwrap();
    let f = memfd_of(&q);
    write_u64(&f, LAYOUT0_OFFSET, 1 << 50);
    assert!(matches!(q.get_nowait(), Err(GetError::Corrupt(_))));
    assert!(q.put(2).is_err());
}

#[test]
fn head_past_tail_is_a_typed_error() {
    let q = Queue::<u32>::new().unwrap();
    q.put(1).unwrap();
    // The head beyond the tail: before the check, `tail - head` overflowed (a panic).
    write_u64(&memfd_of(&q), HEAD, 64);
    assert!(matches!(q.get_nowait(), Err(GetError::Corrupt(_))));
}

#[test]
fn tail_more_than_a_ring_ahead_is_a_typed_error() {
    let q = Queue::<u32>::new().unwrap();
    write_u64(&memfd_of(&q), TAIL, 1 << 40);
    assert!(matches!(q.get_nowait(), Err(GetError::Corrupt(_))));
}

//! The ring's header in shared memory: its fields, where they are, and the checks that make a
//! header written by another process safe to use. Every offset, capacity and position read from
//! it is checked here before a pointer is formed from it (see `README.md`).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::RingError;

pub(super) const MAGIC: u64 = 0x6d70_7175_6575_0001; // "mpqueue", layout version 1
pub(super) const HEADER_SIZE: u64 = 4096;
pub(super) const INITIAL_CAP: u64 = 256 << 10;
/// The largest ring; an item must fit in it with its 8-byte header.
pub(super) const MAX_CAP: u64 = 1 << 34;
/// The smallest ring a header may claim: room for a record header and a skip record.
const MIN_CAP: u64 = 64;
/// Address space reserved per queue (and the memfd's size): regions grow one after another and
/// never overlap.
pub(super) const RESERVE: u64 = HEADER_SIZE + 2 * MAX_CAP;

pub(super) const SKIP: u64 = 1 << 63;
pub(super) const HAS_FDS: u64 = 1 << 62;
pub(super) const LEN_MASK: u64 = (1 << 48) - 1;

#[repr(C)]
pub(super) struct Layout {
    /// Byte offset of the region in the memfd.
    pub(super) offset: AtomicU64,
    /// Region size, a power of two.
    pub(super) cap: AtomicU64,
    /// The ring position that maps to the region's first byte.
    pub(super) origin: AtomicU64,
}

#[repr(C, align(128))]
pub(super) struct Shape {
    pub(super) magic: AtomicU64,
    pub(super) maxsize: AtomicU64,
    pub(super) active: AtomicU32,
    pub(super) layouts: [Layout; 2],
}

#[repr(C, align(128))]
pub(super) struct Producers {
    pub(super) lock: UnsafeCell<mp_sys::robust_mutex::RawMutex>,
    /// Ring position after the last published item.
    pub(super) tail: AtomicU64,
    pub(super) puts: AtomicU64,
    /// Bumped on every put; consumers sleep on it.
    pub(super) put_seq: AtomicU32,
    /// Tickets pair items with their handles on the side socket.
    pub(super) ticket: AtomicU64,
}

#[repr(C, align(128))]
pub(super) struct Consumers {
    pub(super) lock: UnsafeCell<mp_sys::robust_mutex::RawMutex>,
    pub(super) head: AtomicU64,
    pub(super) gets: AtomicU64,
    /// Bumped on every get; bounded producers sleep on it.
    pub(super) get_seq: AtomicU32,
}

#[repr(C, align(128))]
pub(super) struct Waiters {
    pub(super) getters: AtomicU32,
    pub(super) putters: AtomicU32,
    /// Callers of `wait` watching the doorbell.
    pub(super) pollers: AtomicU32,
    /// JoinableQueue: items put and not yet marked done (a futex word).
    pub(super) unfinished: AtomicU32,
    pub(super) joiners: AtomicU32,
    /// Callers of `put_async` watching the room doorbell.
    pub(super) room_pollers: AtomicU32,
}

#[repr(C)]
pub(super) struct Header {
    pub(super) shape: Shape,
    pub(super) producers: Producers,
    pub(super) consumers: Consumers,
    pub(super) waiters: Waiters,
}

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);

/// One checked layout: `[base, base + cap)` lies inside the mapping, after the header, and
/// `cap` is a power of two in `MIN_CAP..=MAX_CAP`. Only a `Region` (never the raw words)
/// is used to form pointers into the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Region {
    pub(super) base: u64,
    pub(super) cap: u64,
    pub(super) origin: u64,
}

impl Region {
    /// Checks a layout read from shared memory (any process may have written it).
    #[inline]
    pub(super) fn check(base: u64, cap: u64, origin: u64) -> Result<Region, RingError> {
        if !cap.is_power_of_two() || !(MIN_CAP..=MAX_CAP).contains(&cap) {
            return Err(RingError::Corrupt("bad ring capacity"));
        }
        // RESERVE > MAX_CAP >= cap, so the subtraction cannot wrap.
        if base < HEADER_SIZE || base > RESERVE - cap {
            return Err(RingError::Corrupt("ring region outside the shared memory"));
        }
        Ok(Region { base, cap, origin })
    }

    /// Where ring position `pos` falls in the region (wrapping: positions only ever grow, but
    /// a corrupt header must not make this overflow).
    #[inline]
    pub(super) fn phys(&self, pos: u64) -> u64 {
        pos.wrapping_sub(self.origin) & (self.cap - 1)
    }
}

impl Header {
    /// The active layout, checked. Stable while either lock is held (growth takes both), so
    /// a caller under a lock may use it until it lets go.
    #[inline]
    pub(super) fn region(&self) -> Result<Region, RingError> {
        let l = &self.shape.layouts[self.shape.active.load(Ordering::Acquire) as usize & 1];
        Region::check(
            l.offset.load(Ordering::Relaxed),
            l.cap.load(Ordering::Relaxed),
            l.origin.load(Ordering::Relaxed),
        )
    }

    /// The checks a header must pass to be attached: right magic and a valid active layout.
    /// (Positions are checked under the locks, at each use: without a lock, others may move
    /// them, and a growth between two reads could make a sound ring look corrupt.)
    pub(super) fn check_attach(&self) -> Result<(), RingError> {
        if self.shape.magic.load(Ordering::Acquire) != MAGIC {
            return Err(RingError::Corrupt("the shared memory is not an mp queue"));
        }
        // A layout read without a lock may mix an old and a new layout's words; offsets and
        // capacities only grow and each pair fits, so a sound ring never fails this check.
        self.region()?;
        Ok(())
    }
}

/// Bytes between `head` and `tail`, which a valid ring keeps within one capacity.
#[inline]
pub(super) fn check_live(head: u64, tail: u64, cap: u64) -> Result<u64, RingError> {
    match tail.checked_sub(head) {
        Some(live) if live <= cap => Ok(live),
        _ => Err(RingError::Corrupt("ring positions out of order")),
    }
}

pub(super) fn round8(n: u64) -> u64 {
    (n + 7) & !7
}

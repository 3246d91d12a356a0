//! The shared-memory core of every queue: a growable byte ring in a memfd, with one robust
//! lock for producers and one for consumers (a two-lock queue), futex waits, an eventfd
//! doorbell for `wait`, and a side socket for the handles (fds) that items carry.
//!
//! Why this shape (measurements in `docs/DESIGN.md`):
//! - Items live in shared memory, not in a pipe, so `put` never waits for a reader and a
//!   process that put items can exit at once (Python's feeder-thread deadlock, gh-73983, cannot
//!   happen), and one item costs two uncontended lock round trips, not two syscalls.
//! - An item becomes visible by a single store of `tail` after it is fully written, and is
//!   removed by a single store of `head` after it is fully read. A process killed inside `put`
//!   or `get` therefore leaves the ring consistent: the robust lock reports the death to the
//!   next taker, which simply goes on (a half-written item was never published; a half-read
//!   one is read again).
//! - Unbounded queues never block in `put`: when the ring is full it grows (doubling, into a
//!   fresh region of a sparse reservation, so no process has to remap), and the old region's
//!   pages are given back. `maxsize` bounds the number of items, as in Python.

use std::cell::UnsafeCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Instant;

use mp_spawn::reduction::{self, Fd};

use mp_sys::mmap::Mapping;
use mp_sys::robust_mutex::Locked;

const MAGIC: u64 = 0x6d70_7175_6575_0001; // "mpqueue", layout version 1
const HEADER_SIZE: u64 = 4096;
const INITIAL_CAP: u64 = 256 << 10;
/// The largest ring; an item must fit in it with its 8-byte header.
pub(crate) const MAX_CAP: u64 = 1 << 34;
/// Address space reserved per queue: regions grow one after another and never overlap.
const RESERVE: u64 = HEADER_SIZE + 2 * MAX_CAP;

const SKIP: u64 = 1 << 63;
const HAS_FDS: u64 = 1 << 62;
const LEN_MASK: u64 = (1 << 48) - 1;

/// How long a waiter spins before it sleeps: a reply that comes within this time costs no
/// wake-up (a cross-core futex wake-up costs about 20 µs on a small VM).
const SPIN_ROUNDS: u32 = 200;
const YIELD_ROUNDS: u32 = 20;

#[repr(C)]
struct Layout {
    /// Byte offset of the region in the memfd.
    offset: AtomicU64,
    /// Region size, a power of two.
    cap: AtomicU64,
    /// The ring position that maps to the region's first byte.
    origin: AtomicU64,
}

#[repr(C, align(128))]
struct Shape {
    magic: AtomicU64,
    maxsize: AtomicU64,
    active: AtomicU32,
    layouts: [Layout; 2],
}

#[repr(C, align(128))]
struct Producers {
    lock: UnsafeCell<libc::pthread_mutex_t>,
    /// Ring position after the last published item.
    tail: AtomicU64,
    puts: AtomicU64,
    /// Bumped on every put; consumers sleep on it.
    put_seq: AtomicU32,
    /// Tickets pair items with their handles on the side socket.
    ticket: AtomicU64,
}

#[repr(C, align(128))]
struct Consumers {
    lock: UnsafeCell<libc::pthread_mutex_t>,
    head: AtomicU64,
    gets: AtomicU64,
    /// Bumped on every get; bounded producers sleep on it.
    get_seq: AtomicU32,
}

#[repr(C, align(128))]
struct Waiters {
    getters: AtomicU32,
    putters: AtomicU32,
    /// Callers of `wait` watching the doorbell.
    pollers: AtomicU32,
    /// JoinableQueue: items put and not yet marked done (a futex word).
    unfinished: AtomicU32,
    joiners: AtomicU32,
}

#[repr(C)]
struct Header {
    shape: Shape,
    producers: Producers,
    consumers: Consumers,
    waiters: Waiters,
}

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);

/// Why a ring operation failed.
#[derive(Debug)]
pub(crate) enum RingError {
    /// A bounded queue stayed full until the deadline.
    Full,
    /// The queue stayed empty until the deadline.
    Empty,
    /// An item is larger than the largest ring.
    TooLarge(u64),
    /// The handles of an item were lost (its handle message is missing).
    HandlesLost,
    /// The shared memory does not hold a valid queue.
    Corrupt(&'static str),
    Io(io::Error),
}

impl From<io::Error> for RingError {
    fn from(e: io::Error) -> Self {
        RingError::Io(e)
    }
}

/// One process's handle on a shared ring.
#[derive(Debug)]
pub(crate) struct Ring {
    map: Mapping,
    memfd: Fd,
    /// Producers send item handles here...
    fd_tx: Fd,
    /// ...and consumers take them from here (non-blocking).
    fd_rx: Fd,
    /// Rung by producers while someone is in `wait`.
    bell: Fd,
    /// The last `head` this process's producers saw (under the producer lock): free space is
    /// at least what it implies, so the consumers' cache line is read only when that is short.
    seen_head: AtomicU64,
    /// The last `tail` this process's consumers saw (under the consumer lock).
    seen_tail: AtomicU64,
}

/// The handles that make up a ring, as they travel to another process...
#[derive(serde::Serialize)]
struct PartsRef<'a> {
    memfd: &'a Fd,
    fd_tx: &'a Fd,
    fd_rx: &'a Fd,
    bell: &'a Fd,
}

/// ...and as they arrive (same fields, same order).
#[derive(serde::Deserialize)]
struct Parts {
    memfd: Fd,
    fd_tx: Fd,
    fd_rx: Fd,
    bell: Fd,
}

impl serde::Serialize for Ring {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PartsRef {
            memfd: &self.memfd,
            fd_tx: &self.fd_tx,
            fd_rx: &self.fd_rx,
            bell: &self.bell,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Ring {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parts = Parts::deserialize(d)?;
        Ring::from_parts(parts).map_err(|e| reduction::custom_error(format_args!("{e:?}")))
    }
}

impl Ring {
    /// Creates a ring holding at most `maxsize` items (0: unbounded).
    pub(crate) fn new(maxsize: u64) -> io::Result<Ring> {
        let memfd = mp_sys::shm::memfd(c"mp-queue", RESERVE)?;
        let (fd_tx, fd_rx) = mp_sys::socket::socketpair(mp_sys::socket::Kind::SeqPacket)?;
        mp_sys::fd::set_nonblocking(fd_rx.as_fd(), true)?;
        let bell = mp_sys::eventfd::new()?;
        let map = Mapping::new(memfd.as_fd(), RESERVE as usize)?;
        let header = map.ptr().cast::<Header>();
        // SAFETY: the mapping is fresh, zero-filled, at least HEADER_SIZE long and page
        // aligned; no other process has it yet, so initialising the mutexes in place is sound.
        unsafe {
            mp_sys::robust_mutex::init((*header).producers.lock.get())?;
            mp_sys::robust_mutex::init((*header).consumers.lock.get())?;
        }
        let ring = Ring {
            map,
            memfd: Fd::new(memfd),
            fd_tx: Fd::new(fd_tx),
            fd_rx: Fd::new(fd_rx),
            bell: Fd::new(bell),
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
        };
        let shape = &ring.header().shape;
        shape.maxsize.store(maxsize, Ordering::Relaxed);
        shape.layouts[0]
            .offset
            .store(HEADER_SIZE, Ordering::Relaxed);
        shape.layouts[0].cap.store(INITIAL_CAP, Ordering::Relaxed);
        shape.magic.store(MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Attaches to a ring made by another process, checking that it is one.
    fn from_parts(parts: Parts) -> Result<Ring, RingError> {
        if mp_sys::shm::file_size(parts.memfd.as_fd())? != RESERVE {
            return Err(RingError::Corrupt("the shared memory is not an mp queue"));
        }
        let map = Mapping::new(parts.memfd.as_fd(), RESERVE as usize)?;
        let ring = Ring {
            map,
            memfd: parts.memfd,
            fd_tx: parts.fd_tx,
            fd_rx: parts.fd_rx,
            bell: parts.bell,
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
        };
        if ring.header().shape.magic.load(Ordering::Acquire) != MAGIC {
            return Err(RingError::Corrupt("the shared memory is not an mp queue"));
        }
        Ok(ring)
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a Header (checked by magic on attach), lives as long as
        // `self`, and every field of Header is an atomic or a cell used only through raw pointers.
        unsafe { &*self.map.ptr().cast::<Header>() }
    }

    pub(crate) fn maxsize(&self) -> u64 {
        self.header().shape.maxsize.load(Ordering::Relaxed)
    }

    /// Items in the queue (exact at the moment of reading; others may change it right after).
    pub(crate) fn len(&self) -> u64 {
        let h = self.header();
        let gets = h.consumers.gets.load(Ordering::Acquire);
        let puts = h.producers.puts.load(Ordering::Acquire);
        puts.saturating_sub(gets)
    }

    fn has_items(&self) -> bool {
        let h = self.header();
        h.producers.tail.load(Ordering::SeqCst) != h.consumers.head.load(Ordering::SeqCst)
    }

    fn has_room(&self) -> bool {
        let max = self.maxsize();
        max == 0 || self.len() < max
    }

    pub(crate) fn bell(&self) -> BorrowedFd<'_> {
        self.bell.as_fd()
    }

    // -----------------------------------------------------------------------------------------
    // put

    /// Appends one item (its bytes and its handles), waiting for room until `deadline` when
    /// the queue is bounded. `None` waits forever; a past deadline does not wait. A `counted`
    /// item adds one to the JoinableQueue's unfinished count.
    pub(crate) fn put(
        &self,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
        counted: bool,
    ) -> Result<(), RingError> {
        let extra = if fds.is_empty() { 0 } else { 8 };
        let need = 8 + round8(extra + bytes.len() as u64);
        if need > MAX_CAP {
            return Err(RingError::TooLarge(bytes.len() as u64));
        }
        let h = self.header();
        loop {
            let guard = self.lock_producers()?;
            if self.has_room() {
                let unfinished = self.unfinished();
                if counted {
                    // Counted before the item is visible, so that `join` cannot see zero while
                    // the item waits to be taken.
                    unfinished.fetch_add(1, Ordering::SeqCst);
                }
                let r = self.append(&guard, bytes, fds, need);
                drop(guard);
                if r.is_err() && counted {
                    unfinished.fetch_sub(1, Ordering::SeqCst);
                    self.wake_joiners();
                }
                r?;
                self.after_put();
                return Ok(());
            }
            drop(guard);
            let seq = &h.consumers.get_seq;
            let waiters = &h.waiters.putters;
            if !self.wait_until(|| self.has_room(), seq, waiters, deadline) {
                return Err(RingError::Full);
            }
        }
    }

    fn append(
        &self,
        _guard: &LockGuard<'_>,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        need: u64,
    ) -> Result<(), RingError> {
        let h = self.header();
        let mut pos = h.producers.tail.load(Ordering::Relaxed);
        let (base, cap, origin) = loop {
            let l = self.layout();
            let phys = (pos - l.2) & (l.1 - 1);
            let to_end = l.1 - phys;
            let total = if to_end < need { to_end + need } else { need };
            let seen = self.seen_head.load(Ordering::Relaxed);
            if pos - seen + total <= l.1 {
                break l;
            }
            let head = h.consumers.head.load(Ordering::Acquire);
            self.seen_head.store(head, Ordering::Relaxed);
            if pos - head + total <= l.1 {
                break l;
            }
            self.grow(need)?;
        };
        let mut phys = (pos - origin) & (cap - 1);
        if cap - phys < need {
            // Too little room before the region's end: a skip record covers it.
            let skip = cap - phys;
            // SAFETY: [phys, phys+8) lies inside the region (skip >= 8 since all sizes are
            // multiples of 8), and this range is free: only the producer lock holder writes there.
            unsafe { self.write_at(base + phys, &(SKIP | skip).to_le_bytes()) };
            pos += skip;
            phys = 0;
        }
        let mut word = bytes.len() as u64;
        let mut at = base + phys + 8;
        if !fds.is_empty() {
            let ticket = h.producers.ticket.load(Ordering::Relaxed) + 1;
            h.producers.ticket.store(ticket, Ordering::Relaxed);
            reduction::send_with_fds(self.fd_tx.as_fd(), &ticket.to_le_bytes(), fds)?;
            word |= HAS_FDS;
            // SAFETY: in the free part of the region (checked above), written by us alone.
            unsafe { self.write_at(at, &ticket.to_le_bytes()) };
            at += 8;
        }
        // SAFETY: as above; the record fits before the region's end.
        unsafe {
            self.write_at(at, bytes);
            self.write_at(base + phys, &word.to_le_bytes());
        }
        h.producers.tail.store(pos + need, Ordering::Release);
        let puts = h.producers.puts.load(Ordering::Relaxed);
        h.producers.puts.store(puts + 1, Ordering::Release);
        let seq = h.producers.put_seq.load(Ordering::Relaxed);
        // Release is enough: `after_put` fences before it looks for sleepers.
        h.producers
            .put_seq
            .store(seq.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    fn after_put(&self) {
        let w = &self.header().waiters;
        fence(Ordering::SeqCst);
        if w.getters.load(Ordering::SeqCst) > 0 {
            mp_sys::futex::wake(&self.header().producers.put_seq, 1);
        }
        if w.pollers.load(Ordering::SeqCst) > 0 {
            mp_sys::eventfd::ring(self.bell.as_fd());
        }
    }

    /// Moves the live items into a region big enough for them plus `need` more bytes.
    /// The caller holds the producer lock; this takes the consumer lock too.
    fn grow(&self, need: u64) -> Result<(), RingError> {
        let _consumers = self.lock_consumers()?;
        let h = self.header();
        let head = h.consumers.head.load(Ordering::Acquire);
        let tail = h.producers.tail.load(Ordering::Relaxed);
        let (base, cap, origin) = self.layout();
        let live = tail - head;
        let new_cap = (live + need).next_power_of_two().max(cap * 2);
        let new_base = base + cap;
        if new_cap > MAX_CAP || new_base + new_cap > RESERVE {
            return Err(RingError::TooLarge(need - 8));
        }
        let from = (head - origin) & (cap - 1);
        let first = live.min(cap - from);
        // SAFETY: both source ranges lie in the old region and hold published items that no
        // one changes while we hold both locks; the destination is the unused new region.
        unsafe {
            let src = self.map.ptr().add((base + from) as usize);
            let dst = self.map.ptr().add(new_base as usize);
            std::ptr::copy_nonoverlapping(src, dst, first as usize);
            let src = self.map.ptr().add(base as usize);
            std::ptr::copy_nonoverlapping(src, dst.add(first as usize), (live - first) as usize);
        }
        let shape = &h.shape;
        let next = 1 - shape.active.load(Ordering::Relaxed);
        let l = &shape.layouts[next as usize];
        l.offset.store(new_base, Ordering::Relaxed);
        l.cap.store(new_cap, Ordering::Relaxed);
        l.origin.store(head, Ordering::Relaxed);
        // The switch is one store: a process killed before it leaves the old layout intact.
        shape.active.store(next, Ordering::Release);
        mp_sys::shm::punch_hole(self.memfd.as_fd(), base, cap);
        Ok(())
    }

    /// (region offset, capacity, origin) of the current layout; stable under either lock.
    fn layout(&self) -> (u64, u64, u64) {
        let shape = &self.header().shape;
        let l = &shape.layouts[shape.active.load(Ordering::Acquire) as usize & 1];
        (
            l.offset.load(Ordering::Relaxed),
            l.cap.load(Ordering::Relaxed),
            l.origin.load(Ordering::Relaxed),
        )
    }

    // -----------------------------------------------------------------------------------------
    // get

    /// Takes the oldest item, waiting until `deadline` for one (`None`: forever).
    /// `take` receives the item's bytes (borrowed from the ring) and handles.
    pub(crate) fn get<R>(
        &self,
        deadline: Option<Instant>,
        take: impl FnOnce(&[u8], Vec<OwnedFd>) -> R,
    ) -> Result<R, RingError> {
        let h = self.header();
        let mut take = Some(take);
        loop {
            let guard = self.lock_consumers()?;
            if let Some(r) = self.pop(&guard, &mut take)? {
                drop(guard);
                self.after_get();
                return Ok(r);
            }
            drop(guard);
            let seq = &h.producers.put_seq;
            let waiters = &h.waiters.getters;
            if !self.wait_until(|| self.has_items(), seq, waiters, deadline) {
                // A wake-up meant for us may have come with the timeout: look once more.
                let guard = self.lock_consumers()?;
                if let Some(r) = self.pop(&guard, &mut take)? {
                    drop(guard);
                    self.after_get();
                    return Ok(r);
                }
                return Err(RingError::Empty);
            }
        }
    }

    fn pop<R>(
        &self,
        _guard: &LockGuard<'_>,
        take: &mut Option<impl FnOnce(&[u8], Vec<OwnedFd>) -> R>,
    ) -> Result<Option<R>, RingError> {
        let h = self.header();
        let (base, cap, origin) = self.layout();
        let mut pos = h.consumers.head.load(Ordering::Relaxed);
        loop {
            let mut tail = self.seen_tail.load(Ordering::Relaxed);
            if tail <= pos || tail - pos > cap {
                // Nothing known beyond `pos` (or the cache is from before a wrap): look.
                tail = h.producers.tail.load(Ordering::Acquire);
                self.seen_tail.store(tail, Ordering::Relaxed);
            }
            if pos == tail {
                if pos != h.consumers.head.load(Ordering::Relaxed) {
                    h.consumers.head.store(pos, Ordering::Release);
                }
                return Ok(None);
            }
            let phys = (pos - origin) & (cap - 1);
            let avail = (tail - pos).min(cap - phys);
            if avail < 8 {
                return Err(RingError::Corrupt("truncated item header"));
            }
            // SAFETY: [phys, phys+8) lies in the region and below `tail`, so it was published.
            let word = u64::from_le_bytes(unsafe { self.read_at(base + phys) });
            if word & SKIP != 0 {
                let skip = word & LEN_MASK;
                if skip == 0 || skip > avail {
                    return Err(RingError::Corrupt("bad skip record"));
                }
                pos += skip;
                continue;
            }
            let len = word & LEN_MASK;
            let extra = if word & HAS_FDS != 0 { 8 } else { 0 };
            let size = 8 + round8(extra + len);
            if size > avail {
                return Err(RingError::Corrupt("item runs past the published end"));
            }
            let ticket = (extra != 0)
                // SAFETY: inside the published record (size checked above).
                .then(|| u64::from_le_bytes(unsafe { self.read_at(base + phys + 8) }));
            // SAFETY: the payload lies inside the published record, which no producer touches
            // until `head` moves past it, and only we (holding the consumer lock) move `head`.
            let payload = unsafe {
                std::slice::from_raw_parts(
                    self.map.ptr().add((base + phys + 8 + extra) as usize),
                    len as usize,
                )
            };
            let take = take.take().ok_or(RingError::Corrupt("pop called twice"))?;
            // The handles come off the side socket only after `head` moves, so that a consumer
            // killed in between leaves a stale ticket (skipped later), never a missing one.
            let out = match ticket {
                None => {
                    let out = take(payload, Vec::new());
                    self.advance(pos + size);
                    out
                }
                Some(ticket) => {
                    let bytes = payload.to_vec();
                    self.advance(pos + size);
                    let fds = self.take_fds(ticket)?;
                    take(&bytes, fds)
                }
            };
            return Ok(Some(out));
        }
    }

    fn advance(&self, head: u64) {
        let c = &self.header().consumers;
        c.head.store(head, Ordering::Release);
        let gets = c.gets.load(Ordering::Relaxed);
        c.gets.store(gets + 1, Ordering::Release);
        let seq = c.get_seq.load(Ordering::Relaxed);
        c.get_seq.store(seq.wrapping_add(1), Ordering::Release);
    }

    fn take_fds(&self, ticket: u64) -> Result<Vec<OwnedFd>, RingError> {
        loop {
            let mut buf = [0u8; 8];
            let mut fds = Vec::new();
            match reduction::recv_with_fds(self.fd_rx.as_fd(), &mut buf, &mut fds) {
                Ok(8) => {}
                Ok(_) => return Err(RingError::Corrupt("bad handle message")),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(RingError::HandlesLost);
                }
                Err(e) => return Err(e.into()),
            }
            match u64::from_le_bytes(buf).cmp(&ticket) {
                // Left behind by a process killed between sending and publishing: drop them.
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(fds),
                std::cmp::Ordering::Greater => return Err(RingError::HandlesLost),
            }
        }
    }

    fn after_get(&self) {
        if self.maxsize() == 0 {
            // Only bounded queues have producers that sleep.
            return;
        }
        let h = self.header();
        fence(Ordering::SeqCst);
        if h.waiters.putters.load(Ordering::SeqCst) > 0 {
            mp_sys::futex::wake(&h.consumers.get_seq, 1);
        }
    }

    // -----------------------------------------------------------------------------------------
    // waiting

    /// Spins, then yields, then sleeps on `seq` until `ready()` or the deadline.
    /// Returns whether `ready()` held.
    fn wait_until(
        &self,
        ready: impl Fn() -> bool,
        seq: &AtomicU32,
        waiters: &AtomicU32,
        deadline: Option<Instant>,
    ) -> bool {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return ready();
        }
        for _ in 0..SPIN_ROUNDS {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        for _ in 0..YIELD_ROUNDS {
            if ready() {
                return true;
            }
            mp_sys::thread::yield_now();
        }
        loop {
            waiters.fetch_add(1, Ordering::SeqCst);
            let observed = seq.load(Ordering::SeqCst);
            if ready() {
                waiters.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                waiters.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            mp_sys::futex::wait(seq, observed, deadline);
            waiters.fetch_sub(1, Ordering::SeqCst);
            if ready() {
                return true;
            }
        }
    }

    /// For `wait`: registers (or unregisters) this caller as watching the doorbell.
    pub(crate) fn watch(&self, on: bool) {
        let p = &self.header().waiters.pollers;
        if on {
            p.fetch_add(1, Ordering::SeqCst);
        } else {
            p.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// For `wait`: whether an item is there. A stale doorbell is reset, and rung again if an
    /// item arrived meanwhile, so that other watchers still see it.
    pub(crate) fn ready_for_wait(&self, bell_rang: bool) -> bool {
        if self.has_items() {
            return true;
        }
        if bell_rang {
            mp_sys::eventfd::drain(self.bell.as_fd());
            fence(Ordering::SeqCst);
            if self.has_items() {
                mp_sys::eventfd::ring(self.bell.as_fd());
                return true;
            }
        }
        false
    }

    // -----------------------------------------------------------------------------------------
    // JoinableQueue's counter

    pub(crate) fn unfinished(&self) -> &AtomicU32 {
        &self.header().waiters.unfinished
    }

    /// Wakes `join` callers once the count reaches zero.
    pub(crate) fn wake_joiners(&self) {
        let w = &self.header().waiters;
        fence(Ordering::SeqCst);
        if w.joiners.load(Ordering::SeqCst) > 0 {
            mp_sys::futex::wake(&w.unfinished, i32::MAX);
        }
    }

    /// Sleeps until the unfinished count is zero or the deadline passes.
    pub(crate) fn wait_unfinished_zero(&self, deadline: Option<Instant>) -> bool {
        let w = &self.header().waiters;
        loop {
            w.joiners.fetch_add(1, Ordering::SeqCst);
            let n = w.unfinished.load(Ordering::SeqCst);
            if n == 0 {
                w.joiners.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                w.joiners.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            mp_sys::futex::wait(&w.unfinished, n, deadline);
            w.joiners.fetch_sub(1, Ordering::SeqCst);
        }
    }

    // -----------------------------------------------------------------------------------------
    // raw access and locks

    /// # Safety
    /// `[at, at + data.len())` must lie in the mapping and be owned by the caller's lock.
    unsafe fn write_at(&self, at: u64, data: &[u8]) {
        // SAFETY: the caller guarantees the range is inside the mapping and not shared.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.ptr().add(at as usize),
                data.len(),
            )
        };
    }

    /// # Safety
    /// `[at, at + 8)` must lie in the mapping, in a published record.
    unsafe fn read_at(&self, at: u64) -> [u8; 8] {
        let mut out = [0u8; 8];
        // SAFETY: the caller guarantees the range is inside the mapping and stable.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.ptr().add(at as usize), out.as_mut_ptr(), 8)
        };
        out
    }

    fn lock_producers(&self) -> io::Result<LockGuard<'_>> {
        LockGuard::new(self.header().producers.lock.get())
    }

    fn lock_consumers(&self) -> io::Result<LockGuard<'_>> {
        LockGuard::new(self.header().consumers.lock.get())
    }

    /// Test hook: takes the producer lock and never gives it back (the caller is about to be
    /// killed), to check that the others go on.
    #[doc(hidden)]
    pub(crate) fn hold_locks_forever(&self) -> io::Result<()> {
        std::mem::forget(self.lock_producers()?);
        std::mem::forget(self.lock_consumers()?);
        Ok(())
    }
}

fn round8(n: u64) -> u64 {
    (n + 7) & !7
}

/// A held robust lock. A previous holder's death needs no repair here: the ring is consistent
/// at every instant a lock holder can die (see the module notes).
struct LockGuard<'a> {
    mutex: *mut libc::pthread_mutex_t,
    _ring: std::marker::PhantomData<&'a Ring>,
}

impl LockGuard<'_> {
    fn new(mutex: *mut libc::pthread_mutex_t) -> io::Result<Self> {
        // SAFETY: the mutex was set up by `Ring::new` and lives in the mapping, which outlives
        // the guard (the guard borrows the ring).
        let _: Locked = unsafe { mp_sys::robust_mutex::lock(mutex) }?;
        Ok(LockGuard {
            mutex,
            _ring: std::marker::PhantomData,
        })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread took the mutex in `new`.
        let _ = unsafe { mp_sys::robust_mutex::unlock(self.mutex) };
    }
}

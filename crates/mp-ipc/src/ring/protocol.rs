//! The protocol on the ring: put (append, publish), get (pop, advance), growth, and waiting
//! (futexes and the doorbell). Every offset formed here comes from a checked
//! [`Region`](super::layout::Region) and positions checked against it (see `README.md`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Instant;

use super::RingError;
use super::handle::{LockGuard, Ring};
use super::layout::{HAS_FDS, LEN_MASK, MAX_CAP, RESERVE, Region, SKIP, check_live, round8};

/// How long a waiter spins before it sleeps: a reply that comes within this time costs no
/// wake-up (a cross-core futex wake-up costs about 20 µs on a small VM).
const SPIN_ROUNDS: u32 = 200;
const YIELD_ROUNDS: u32 = 20;

impl Ring {
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
        let region = loop {
            let l = h.region()?;
            let to_end = l.cap - l.phys(pos);
            let total = if to_end < need { to_end + need } else { need };
            let seen = self.seen_head.load(Ordering::Relaxed);
            if fits(pos, seen, total, l.cap) {
                break l;
            }
            let head = h.consumers.head.load(Ordering::Acquire);
            self.seen_head.store(head, Ordering::Relaxed);
            if fits(pos, head, total, l.cap) {
                break l;
            }
            check_live(head, pos, l.cap)?;
            self.grow(need)?;
        };
        // From here on, `total <= cap - (pos - head)`: the record (and any skip record before
        // it) lies in the free part of the checked region.
        let Region { base, cap, .. } = region;
        let mut phys = region.phys(pos);
        if cap - phys < need {
            // Too little room before the region's end: a skip record covers it.
            let skip = cap - phys;
            if skip < 8 {
                // Only a corrupt tail or origin leaves a position that is not a multiple of 8.
                return Err(RingError::Corrupt("misaligned ring position"));
            }
            // SAFETY: [phys, phys+8) lies inside the checked region (phys + skip == cap and
            // skip >= 8), and this range is free: only the producer lock holder writes there.
            unsafe { self.write_at(base + phys, &(SKIP | skip).to_le_bytes()) };
            pos = pos.wrapping_add(skip);
            phys = 0;
        }
        let mut word = bytes.len() as u64;
        let mut at = base + phys + 8;
        if !fds.is_empty() {
            let ticket = h.producers.ticket.load(Ordering::Relaxed).wrapping_add(1);
            h.producers.ticket.store(ticket, Ordering::Relaxed);
            mp_sys::socket::send_with_fds(self.fd_tx.as_fd(), &ticket.to_le_bytes(), fds)?;
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
        h.producers
            .tail
            .store(pos.wrapping_add(need), Ordering::Release);
        let puts = h.producers.puts.load(Ordering::Relaxed);
        h.producers
            .puts
            .store(puts.wrapping_add(1), Ordering::Release);
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
            mp_sys::parker::unpark(&self.header().producers.put_seq, 1);
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
        let region = h.region()?;
        let Region { base, cap, .. } = region;
        // Checked under both locks: the copy below reads `live` bytes of the old region.
        let live = check_live(head, tail, cap)?;
        let new_cap = (live + need).next_power_of_two().max(cap * 2);
        let new_base = base + cap;
        if new_cap > MAX_CAP || new_base + new_cap > RESERVE {
            return Err(RingError::TooLarge(need - 8));
        }
        let from = region.phys(head);
        let first = live.min(cap - from);
        // SAFETY: both source ranges lie in the old, checked region (live <= cap, from < cap)
        // and hold published items that no
        // one changes while we hold both locks; the destination is the unused new region, inside the mapping (checked just above).
        unsafe {
            let src = self.map.ptr().add((base + from) as usize);
            let dst = self.map.ptr().add(new_base as usize);
            std::ptr::copy_nonoverlapping(src, dst, first as usize);
            let src = self.map.ptr().add(base as usize);
            std::ptr::copy_nonoverlapping(src, dst.add(first as usize), (live - first) as usize);
        }
        let shape = &h.shape;
        let next = (shape.active.load(Ordering::Relaxed) & 1) ^ 1;
        let l = &shape.layouts[next as usize];
        l.offset.store(new_base, Ordering::Relaxed);
        l.cap.store(new_cap, Ordering::Relaxed);
        l.origin.store(head, Ordering::Relaxed);
        // The switch is one store: a process killed before it leaves the old layout intact.
        shape.active.store(next, Ordering::Release);
        mp_sys::shm::punch_hole(self.memfd.as_fd(), base, cap);
        Ok(())
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
        let region = h.region()?;
        let Region { base, cap, .. } = region;
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
            let live = check_live(pos, tail, cap)?;
            let phys = region.phys(pos);
            let avail = live.min(cap - phys);
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
        c.gets.store(gets.wrapping_add(1), Ordering::Release);
        let seq = c.get_seq.load(Ordering::Relaxed);
        c.get_seq.store(seq.wrapping_add(1), Ordering::Release);
    }

    fn take_fds(&self, ticket: u64) -> Result<Vec<OwnedFd>, RingError> {
        loop {
            let mut buf = [0u8; 8];
            let mut fds = Vec::new();
            match mp_sys::socket::recv_with_fds(self.fd_rx.as_fd(), &mut buf, &mut fds) {
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
            mp_sys::parker::unpark(&h.consumers.get_seq, 1);
        }
        #[cfg(feature = "async")]
        if h.waiters.room_pollers.load(Ordering::SeqCst) > 0 {
            mp_sys::eventfd::ring(self.room_bell.as_fd());
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
            let _ = mp_sys::parker::park(seq, observed, deadline);
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

    /// For `put_async`: registers (or unregisters) this caller as watching the room doorbell.
    #[cfg(feature = "async")]
    pub(crate) fn watch_room(&self, on: bool) {
        let p = &self.header().waiters.room_pollers;
        if on {
            p.fetch_add(1, Ordering::SeqCst);
            // Against `after_get`'s fence: either it sees us, or our next look sees its get.
            fence(Ordering::SeqCst);
        } else {
            p.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// For `put_async`, after the room doorbell rang: resets it, and rings it again if there is
    /// room, so that other watchers still see it.
    #[cfg(feature = "async")]
    pub(crate) fn room_rang(&self) {
        mp_sys::eventfd::drain(self.room_bell.as_fd());
        fence(Ordering::SeqCst);
        if self.has_room() {
            mp_sys::eventfd::ring(self.room_bell.as_fd());
        }
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
            mp_sys::parker::unpark_all(&w.unfinished);
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
            let _ = mp_sys::parker::park(&w.unfinished, n, deadline);
            w.joiners.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Whether `total` more bytes fit after `pos` when the consumers are at `head` (false, too,
/// when a corrupt header puts `head` after `pos`).
#[inline]
fn fits(pos: u64, head: u64, total: u64, cap: u64) -> bool {
    let used = pos.wrapping_sub(head);
    used <= cap && total <= cap - used
}

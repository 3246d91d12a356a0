//! Progress: how many items of one call the workers have finished, counted per item (not per
//! chunk: tqdm's `process_map` jumps by whole chunks, tqdm#973), and the bar that shows it.
//!
//! The *board* is a small shared memfd made with the pool: a row per call being watched
//! (`ROWS` of them) and, in each row, a cache line per worker slot. A watched call's task
//! frames carry its *tally* (row and serial). A worker writes, after each item, the number of
//! items of that call it has finished into its own cell, tagged with the serial: one relaxed
//! store to a line no other worker writes. The owner adds up the row's cells whose tag is the
//! call's. A row is reused by a later call with a new serial, so a late store for an old call
//! is never counted for the new one. Nothing is written for calls nobody watches.

// Without the feature nothing watches a call: the workers' side stays (it costs nothing
// unless a frame carries a tally), the owner's side is unused.
#![cfg_attr(not(feature = "progress"), allow(dead_code))]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mp_sys::mmap::Mapping;

/// Calls watched at once (more just show no bar).
const ROWS: usize = 64;
/// Words per cell: a cache line each.
const CELL: usize = 8;
/// A cell's low bits count items; the high bits hold the serial's low bits.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The shared counters of a pool.
#[derive(Debug)]
pub(crate) struct Board {
    map: Mapping,
    slots: usize,
}

impl Board {
    /// The rows, then a cell per worker for its cancel handshake (see `control`).
    fn len(slots: usize) -> usize {
        ((ROWS + 1) * slots.max(1) * CELL * 8).next_multiple_of(4096)
    }

    /// Worker `slot`'s words for the cancel handshake (see `control`).
    pub(crate) fn control(&self, slot: usize) -> Option<crate::control::Words<'_>> {
        if slot >= self.slots {
            return None;
        }
        let words = self.map.atomic_words();
        let first = (ROWS * self.slots + slot) * CELL;
        Some(crate::control::Words {
            at: words.get(first)?,
            cancelled: words.get(first + 1)?,
        })
    }

    /// A new board for `slots` workers, and its descriptor for the workers.
    pub(crate) fn new(slots: usize) -> std::io::Result<(Board, OwnedFd)> {
        let fd = mp_sys::shm::memfd(c"mp-pool-progress", Board::len(slots) as u64)?;
        let board = Board::attach(fd.as_fd(), slots)?;
        Ok((board, fd))
    }

    /// As [`new`](Board::new), shared by the pool's threads and its workers' links.
    pub(crate) fn shared(slots: usize) -> std::io::Result<(std::sync::Arc<Board>, OwnedFd)> {
        let (board, fd) = Board::new(slots)?;
        Ok((std::sync::Arc::new(board), fd))
    }

    /// A worker's view of its pool's board.
    pub(crate) fn attach(fd: BorrowedFd<'_>, slots: usize) -> std::io::Result<Board> {
        Ok(Board {
            // SAFETY: the board's memfd is the pool's and its workers' only, and every access
            // to it is an atomic word (`cell`).
            map: unsafe { Mapping::new(fd, Board::len(slots)) }?,
            slots: slots.max(1),
        })
    }

    fn cell(&self, row: usize, slot: usize) -> Option<&AtomicU64> {
        if row >= ROWS || slot >= self.slots {
            return None;
        }
        self.map
            .atomic_words()
            .get((row * self.slots + slot) * CELL)
    }

    /// How many items of the call with `tally` the workers have finished.
    pub(crate) fn count(&self, tally: Tally) -> u64 {
        (0..self.slots)
            .filter_map(|slot| self.cell(tally.row(), slot))
            .map(|cell| cell.load(Ordering::Relaxed))
            .filter(|&v| v >> COUNT_BITS == tally.tag())
            .map(|v| v & COUNT_MASK)
            .sum()
    }

    /// The counter worker `slot` ticks for the chunk whose frame carries `tally` (0: not
    /// watched).
    pub(crate) fn counter(&self, slot: u32, tally: u64) -> Counter<'_> {
        let tally = Tally(tally);
        let cell = (tally.0 != 0)
            .then(|| self.cell(tally.row(), slot as usize))
            .flatten();
        let done = cell.map_or(0, |cell| {
            let v = cell.load(Ordering::Relaxed);
            if v >> COUNT_BITS == tally.tag() {
                v & COUNT_MASK
            } else {
                0
            }
        });
        Counter {
            cell,
            tag: tally.tag() << COUNT_BITS,
            done,
        }
    }
}

impl Board {
    /// Adds `items` to the count of worker `slot` for the call with `tally` (the owner's side,
    /// for remote workers, which count nothing here themselves).
    pub(crate) fn add(&self, slot: u32, tally: u64, items: u64) {
        let mut counter = self.counter(slot, tally);
        for _ in 0..items {
            counter.tick();
        }
    }
}

/// A worker's count of the items of one watched call.
pub(crate) struct Counter<'b> {
    cell: Option<&'b AtomicU64>,
    tag: u64,
    done: u64,
}

impl Counter<'_> {
    /// One more item finished.
    #[inline]
    pub(crate) fn tick(&mut self) {
        if let Some(cell) = self.cell {
            self.done += 1;
            cell.store(self.tag | (self.done & COUNT_MASK), Ordering::Relaxed);
        }
    }
}

/// A watched call's row and serial, as its task frames carry it (0: not watched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally(pub(crate) u64);

impl Tally {
    fn row(self) -> usize {
        (self.0 & 0xffff) as usize
    }

    /// The serial's bits kept in a cell (never 0 for a watched call).
    fn tag(self) -> u64 {
        (self.0 >> 16) & ((1 << (64 - COUNT_BITS)) - 1)
    }
}

/// Which rows are taken, and the next serial.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    taken: Mutex<Vec<bool>>,
    serial: AtomicU64,
}

impl Rows {
    /// A row for a new watched call; `None` if every row is taken.
    pub(crate) fn take(&self) -> Option<Tally> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        taken.resize(ROWS, false);
        let row = taken.iter().position(|t| !t)?;
        taken[row] = true;
        // Serials skip those whose kept bits are 0 (the mark of "not watched").
        let serial = loop {
            let s = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
            if Tally(s << 16).tag() != 0 {
                break s;
            }
        };
        Some(Tally((serial << 16) | row as u64))
    }

    /// Gives a row back.
    pub(crate) fn give_back(&self, tally: Tally) {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = taken.get_mut(tally.row()) {
            *t = false;
        }
    }
}

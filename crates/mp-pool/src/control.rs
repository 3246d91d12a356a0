//! Cancelling a chunk a local worker holds: the handshake between the pool's owner and the
//! worker, through two words of the worker's cell on the pool's board (see `progress`).
//!
//! A chunk in a worker's queue cannot be taken back out, and a running one can only be
//! stopped by killing its worker. The owner must never kill a worker for a chunk it already
//! finished (the chunk it runs now would fail instead), and a cancelled chunk must never
//! start. The words:
//!
//! - `at`: the worker's position, `2s + 1` while it handles its `s`-th frame (counted from 0
//!   since it started), `2s + 2` once it has answered it;
//! - `cancelled`: a bit per frame, bit `s % 64`: the owner cancelled frame `s`. A worker holds
//!   at most 64 frames (the scheduler's `MAX_DEPTH`), so a bit names one frame; the owner
//!   clears it before it sends frame `s + 64`.
//!
//! The owner sets the bit, then reads `at`; the worker writes `at`, then reads the bit; all of
//! it sequentially consistent, so at least one side sees the other's write:
//!
//! - `at < 2s + 1`: the worker has not taken frame `s`. When it does, it sees the bit: it
//!   skips the chunk and exits (the owner sends it nothing more).
//! - `at == 2s + 1`: the worker runs it, or answers it now. The owner kills it; a worker that
//!   answers first sees the bit when it writes `2s + 2`, and exits instead of taking the next
//!   frame, so the kill never hits another chunk.
//! - `at >= 2s + 2`: the chunk is finished and its answer on its way: the cancel is a no-op.
//!
//! Checked by: `control/test.rs` (every interleaving of the two sides) and the cancel tests in
//! `tests/it/failures/control.rs`.

use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(test)]
mod test;

/// Where a cancelled chunk was, as the owner found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Not taken yet: the worker will skip it, then exit.
    Queued,
    /// Running (or being answered): the worker must be killed.
    Running,
    /// Finished: its answer is on its way.
    Finished,
}

/// The two words of one worker's cell.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Words<'b> {
    pub(crate) at: &'b AtomicU64,
    pub(crate) cancelled: &'b AtomicU64,
}

fn bit(seq: u64) -> u64 {
    1 << (seq % 64)
}

impl Words<'_> {
    /// The owner, before a worker's first frame: a fresh worker in the slot.
    pub(crate) fn reset(&self) {
        self.at.store(0, Ordering::SeqCst);
        self.cancelled.store(0, Ordering::SeqCst);
    }

    /// The owner, before it sends frame `seq`: the bit is free for it.
    pub(crate) fn clear(&self, seq: u64) {
        self.cancelled.fetch_and(!bit(seq), Ordering::SeqCst);
    }

    /// The owner cancels frame `seq`.
    pub(crate) fn cancel(&self, seq: u64) -> Found {
        self.cancelled.fetch_or(bit(seq), Ordering::SeqCst);
        let at = self.at.load(Ordering::SeqCst);
        match at.cmp(&(2 * seq + 1)) {
            std::cmp::Ordering::Less => Found::Queued,
            std::cmp::Ordering::Equal => Found::Running,
            std::cmp::Ordering::Greater => Found::Finished,
        }
    }

    /// The worker takes frame `seq`: whether it was cancelled (skip it, answer, exit).
    pub(crate) fn take(&self, seq: u64) -> bool {
        self.at.store(2 * seq + 1, Ordering::SeqCst);
        self.cancelled.load(Ordering::SeqCst) & bit(seq) != 0
    }

    /// The worker has answered frame `seq`: whether it was cancelled meanwhile (the owner may
    /// be killing this worker: take no other frame, exit).
    pub(crate) fn answered(&self, seq: u64) -> bool {
        self.at.store(2 * seq + 2, Ordering::SeqCst);
        self.cancelled.load(Ordering::SeqCst) & bit(seq) != 0
    }
}

/// What [`AsyncResult::cancel`](crate::AsyncResult::cancel) did.
///
/// ```
/// use mp_pool::{Cancel, Pool, PoolError};
///
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// let pool = Pool::new(1)?;
/// let sum = pool.apply_async(add, (2, 3))?;
/// assert_eq!(sum.get()?, 5);
/// // Finished: cancelling is a no-op, and says so.
/// assert_eq!(sum.cancel(), Cancel::Finished);
/// assert_eq!(sum.get()?, 5);
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Nothing was left to cancel: every task had finished; results and errors stand.
    Finished,
    /// Tasks were cancelled and fail with [`PoolError::Cancelled`](crate::PoolError::Cancelled):
    /// `queued` ones never ran, `running` ones had their workers killed (and replaced). A task
    /// that finished meanwhile keeps its result.
    Cancelled {
        /// Tasks that had not started.
        queued: usize,
        /// Tasks that were running.
        running: usize,
    },
}

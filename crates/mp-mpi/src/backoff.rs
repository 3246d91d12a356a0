//! Polling MPI without its busy wait, so that oversubscribed ranks leave the CPU to the
//! ranks' local pools.

use std::time::Duration;

/// Yield a little (a reply often follows within microseconds), then sleep from 8 µs up to a
/// cap: 128 µs on the master, whose wake-up latency every chunk pays; 1 ms on an idle worker
/// rank, which mostly waits while the master has nothing to send.
pub(crate) struct Backoff {
    polls: u32,
    max_shift: u32,
}

impl Backoff {
    pub(crate) const MASTER: u32 = 4;
    pub(crate) const WORKER: u32 = 7;

    pub(crate) fn new(max_shift: u32) -> Self {
        Backoff {
            polls: 0,
            max_shift,
        }
    }

    pub(crate) fn wait(&mut self) {
        if self.polls < 100 {
            std::thread::yield_now();
        } else {
            let shift = (self.polls - 100).min(self.max_shift);
            std::thread::sleep(Duration::from_micros(8 << shift));
        }
        self.polls = self.polls.saturating_add(1);
    }
}

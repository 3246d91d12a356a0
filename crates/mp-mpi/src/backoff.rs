//! Polling MPI without its busy wait, so that oversubscribed ranks leave the CPU to the
//! ranks' local pools.

use std::time::{Duration, Instant};

/// Yield a little (a reply often follows within microseconds), then sleep for a fiftieth of
/// the time waited so far, between 8 µs and 1 ms: the wake-up latency a chunk pays stays
/// near 2% of its run time, and a long wait costs a few wake-ups per second, not thousands.
pub(crate) struct Backoff {
    polls: u32,
    since: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            polls: 0,
            since: None,
        }
    }

    pub(crate) fn wait(&mut self) {
        if let Some(nap) = self.next() {
            std::thread::sleep(nap);
        }
    }

    /// As [`wait`](Backoff::wait), but a message on `wake` ends the nap (and is returned).
    pub(crate) fn wait_on<T>(&mut self, wake: &std::sync::mpsc::Receiver<T>) -> Option<T> {
        match self.next() {
            Some(nap) => wake.recv_timeout(nap).ok(),
            None => wake.try_recv().ok(),
        }
    }

    /// Yields (`None`), or the nap to take.
    fn next(&mut self) -> Option<Duration> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.polls < 100 {
            self.polls += 1;
            std::thread::yield_now();
            None
        } else {
            Some((since.elapsed() / 50).clamp(Duration::from_micros(8), Duration::from_millis(1)))
        }
    }
}

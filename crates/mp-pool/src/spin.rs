//! Waiting without sleeping first: a result, a task or a message that comes within
//! microseconds costs no wake-up (a sleeping thread pays tens of microseconds to wake on a
//! small VM).

use std::time::{Duration, Instant};

/// Waits up to `limit` for `ready`, spinning and yielding the core in turn; returns
/// `ready()`. The clock is read only once `ready` has failed 64 times (the common case, work
/// already there, costs no clock read).
pub(crate) fn spin_for(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let mut until = None;
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        let now = Instant::now();
        if now >= *until.get_or_insert(now + limit) {
            return ready();
        }
        std::thread::yield_now();
    }
}

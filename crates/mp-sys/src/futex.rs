//! Futex waits and wakes on shared memory (no `FUTEX_PRIVATE_FLAG`: the words live in
//! mappings shared between processes). On rustix.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use rustix::thread::futex::{self, Flags, Timespec};

/// Sleeps while `*word == expected`, until woken or the deadline passes. Spurious returns are
/// allowed: callers re-check their condition (every error, `EAGAIN`, `EINTR`, `ETIMEDOUT`,
/// means "re-check").
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// let word = AtomicU32::new(1);
/// mp_sys::futex::wait(&word, 0, None); // the word is not 0: returns at once
/// ```
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let ts = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        Timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: left.subsec_nanos().into(),
        }
    });
    if ts.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0) {
        return;
    }
    let _ = futex::wait(word, Flags::empty(), expected, ts.as_ref());
}

/// Wakes up to `n` sleepers on `word`.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// mp_sys::futex::wake(&AtomicU32::new(0), 1);
/// ```
#[inline]
pub fn wake(word: &AtomicU32, n: i32) {
    let _ = futex::wake(word, Flags::empty(), n.max(0) as u32);
}

//! Who holds a chunk: a process named for good by its pid and its start time, so that a pid
//! reused after the holder died is not taken for the holder.

use std::sync::atomic::{AtomicU64, Ordering};

use mp_sys::fork::{AtFork, Rank};

use crate::error::ShmError;

/// A free claim word.
pub(crate) const FREE: u64 = 0;
/// A claim word of a joined array: closed for good (until the next split resets it).
pub(crate) const CLOSED: u64 = u64::MAX;

/// Bits of the start time kept (clock ticks since boot: 2^42 ticks at 100 Hz are 1,394
/// years). Pids are below 2^22 (the kernel's PID_MAX_LIMIT), so a token is never `CLOSED`.
const TIME_BITS: u32 = 42;

/// This process's token, once computed (0: not yet).
static TOKEN: AtomicU64 = AtomicU64::new(0);

/// A forked child computes its own token: the parent's names the parent.
static FORGET_TOKEN: AtFork =
    AtFork::in_child(Rank::SHM_HOLDER_TOKEN, || TOKEN.store(0, Ordering::Relaxed));

/// This process's token, computed once per process (a forked child computes its own). An
/// error where `/proc` does not show this process: then no holder could be told alive, and
/// every claim could be taken from a live holder, so nothing is claimed at all.
pub(crate) fn mine() -> Result<u64, ShmError> {
    let t = TOKEN.load(Ordering::Acquire);
    if t != 0 {
        return Ok(t);
    }
    // Before the token is set: no fork may copy it without the action that forgets it.
    FORGET_TOKEN.register();
    let pid = mp_sys::process::getpid();
    let start = mp_sys::process::start_time(pid).ok_or_else(|| {
        ShmError::Os(std::io::Error::other(
            "cannot read /proc/self/stat, which names the holders of chunks",
        ))
    })?;
    let token = token_of(pid, start);
    TOKEN.store(token, Ordering::Release);
    Ok(token)
}

fn token_of(pid: u32, start: u64) -> u64 {
    (u64::from(pid) << TIME_BITS) | (start & ((1 << TIME_BITS) - 1))
}

/// The holder's pid.
pub(crate) fn pid(token: u64) -> u32 {
    (token >> TIME_BITS) as u32
}

/// Whether the process a token names is still running (not gone, not a zombie: a zombie's
/// memory, its mappings included, is already released).
pub(crate) fn alive(token: u64) -> bool {
    let pid = pid(token);
    match mp_sys::process::start_time(pid) {
        Some(start) => token_of(pid, start) == token,
        None => false,
    }
}

//! Deadlines from timeouts: the one place where `now + timeout` is computed, so that a huge
//! timeout (`Duration::MAX`) means "wait forever" instead of overflowing `Instant` (a panic).

use std::time::{Duration, Instant};

/// The instant `timeout` from now; `None` (no deadline: wait forever) when it is too far to
/// represent.
///
/// ```
/// use std::time::Duration;
/// assert!(mp_sys::deadline::after(Duration::from_secs(1)).is_some());
/// assert!(mp_sys::deadline::after(Duration::MAX).is_none());
/// ```
pub fn after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The deadline for an optional timeout: `None` (wait forever) for no timeout or a huge one.
///
/// ```
/// use std::time::Duration;
/// assert!(mp_sys::deadline::of(None).is_none());
/// assert!(mp_sys::deadline::of(Some(Duration::MAX)).is_none());
/// assert!(mp_sys::deadline::of(Some(Duration::ZERO)).is_some());
/// ```
pub fn of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(after)
}

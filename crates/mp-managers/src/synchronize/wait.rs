//! Waiting in the server for a call that blocks: in slices, checking that the caller is still
//! there, so that a client killed in the middle of `acquire` or `get` does not leave a server
//! thread waiting (or taking a lock) for nobody.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::servant::Caller;

/// How long a blocked call waits before it checks that its caller is still there.
const GONE_CHECK: Duration = Duration::from_millis(200);

/// A servant's state and the condition its waiters wait on.
#[derive(Default)]
pub(crate) struct Cell<T> {
    state: Mutex<T>,
    changed: Condvar,
}

impl<T> Cell<T> {
    pub(crate) fn new(state: T) -> Cell<T> {
        Cell {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiter (each checks its own condition).
    pub(crate) fn notify(&self) {
        self.changed.notify_all();
    }

    /// Runs `attempt` until it gives an answer, waiting for a change in between: `None` once
    /// `timeout` has passed or the caller is gone.
    pub(crate) fn wait_for<R>(
        &self,
        caller: &Caller<'_>,
        timeout: Option<Duration>,
        attempt: impl FnMut(&mut T) -> Option<R>,
    ) -> Option<R> {
        self.wait_with(self.lock(), caller, mp_sys::deadline::of(timeout), attempt)
            .1
    }

    /// [`wait_for`](Cell::wait_for) from a guard already held, and until `deadline`;
    /// returns the guard too.
    pub(crate) fn wait_with<'a, R>(
        &'a self,
        mut state: MutexGuard<'a, T>,
        caller: &Caller<'_>,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut T) -> Option<R>,
    ) -> (MutexGuard<'a, T>, Option<R>) {
        let mut waited = false;
        loop {
            // After a wait, before the next attempt: a caller that died while it waited must
            // not take what a change brought (an item put, a lock released) from the living.
            if waited && !(caller.alive)() {
                return (state, None);
            }
            if let Some(answer) = attempt(&mut state) {
                return (state, Some(answer));
            }
            let slice = match deadline {
                None => GONE_CHECK,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(GONE_CHECK),
                    _ => return (state, None),
                },
            };
            state = match self.changed.wait_timeout(state, slice) {
                Ok((state, _)) => state,
                Err(e) => e.into_inner().0,
            };
            waited = true;
        }
    }
}

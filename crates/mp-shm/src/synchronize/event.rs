//! `Event`: a flag, and a count of sets that waiters sleep on (so that a set wakes them even
//! if a clear follows before they run: `rules::event_woken`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::Duration;

use mp_sys::deadline::of as deadline;
use mp_sys::parker;
use serde::{Deserialize, Serialize};

use super::rules;
use super::words::{State, Words};
use crate::heap::Kind;

#[repr(C)]
struct EventState {
    flag: AtomicU32,
    waiters: AtomicU32,
    /// Moves on at every `set` (wrapping); the futex word waiters park on.
    sets: AtomicU32,
}

impl State for EventState {
    const KIND: Kind = Kind::Event;
}

/// A process-shared flag that processes can wait for (Python's `multiprocessing.Event`).
///
/// ```
/// use mp_shm::Event;
/// use std::time::Duration;
///
/// let event = Event::new()?;
/// assert!(!event.wait(Some(Duration::from_millis(1))));
/// event.set();
/// assert!(event.is_set() && event.wait(None));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    words: Arc<Words<EventState>>,
}

impl Event {
    /// A new, unset event.
    pub fn new() -> io::Result<Event> {
        Ok(Event {
            words: Arc::new(Words::new()?),
        })
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.words.get().flag.load(SeqCst) != 0
    }

    /// Sets the flag and wakes every waiter: each one's `wait` returns `true`, even if the
    /// flag is cleared again before it runs (as `threading.Event`).
    pub fn set(&self) {
        let s = self.words.get();
        s.flag.store(1, SeqCst);
        s.sets.fetch_add(1, SeqCst);
        if s.waiters.load(SeqCst) > 0 {
            parker::unpark_all(&s.sets);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.words.get().flag.store(0, SeqCst);
    }

    /// Waits until the flag is set, or a `set` happens; `false` if the timeout passed first.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let s = self.words.get();
        let deadline = deadline(timeout);
        // Read before the flag: a set after that read moves it, and the park below sees that.
        let start = s.sets.load(SeqCst);
        let woken = || {
            rules::event_woken(
                s.flag.load(SeqCst) != 0,
                start.into(),
                s.sets.load(SeqCst).into(),
            )
        };
        loop {
            if woken() {
                return true;
            }
            if parker::timed_out(deadline) {
                return false;
            }
            s.waiters.fetch_add(1, SeqCst);
            parker::park(&s.sets, start, deadline);
            s.waiters.fetch_sub(1, SeqCst);
        }
    }
}

#[cfg(test)]
mod test;

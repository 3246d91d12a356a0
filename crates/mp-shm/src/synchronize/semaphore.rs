//! `Semaphore` and `BoundedSemaphore`: a counter in one futex word.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::Duration;

use mp_sys::deadline::of as deadline;
use mp_sys::parker;
use serde::{Deserialize, Serialize};

use super::rules;
use super::words::{State, Words};
use crate::error::SyncError;
use crate::heap::Kind;

#[repr(C)]
struct SemState {
    value: AtomicU32,
    waiters: AtomicU32,
    /// The highest value a release may reach (u32::MAX - 1 for a plain Semaphore).
    bound: AtomicU32,
}

impl State for SemState {
    const KIND: Kind = Kind::Semaphore;
}

const SEM_VALUE_MAX: u32 = i32::MAX as u32;

#[derive(Debug, Serialize, Deserialize)]
struct SemCore(Words<SemState>);

impl SemCore {
    fn new(value: u32, bound: u32) -> io::Result<SemCore> {
        if value > bound {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "semaphore value above its maximum",
            ));
        }
        let words = Words::<SemState>::new()?;
        words.get().value.store(value, SeqCst);
        words.get().bound.store(bound, SeqCst);
        Ok(SemCore(words))
    }

    fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        let s = self.0.get();
        let deadline = deadline(timeout);
        loop {
            let v = s.value.load(SeqCst);
            if let Some(next) = rules::acquired(v.into()) {
                // Below `v`: a u32.
                let next = next as u32;
                if s.value
                    .compare_exchange_weak(v, next, SeqCst, Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if !block || parker::timed_out(deadline) {
                return false;
            }
            s.waiters.fetch_add(1, SeqCst);
            parker::park(&s.value, 0, deadline);
            s.waiters.fetch_sub(1, SeqCst);
        }
    }

    fn release(&self) -> Result<(), SyncError> {
        let s = self.0.get();
        let bound = s.bound.load(Relaxed);
        s.value
            .fetch_update(SeqCst, SeqCst, |v| {
                let next = rules::released(v.into(), 1, bound.into())?;
                u32::try_from(next).ok()
            })
            .map_err(|_| SyncError::TooManyReleases)?;
        if s.waiters.load(SeqCst) > 0 {
            parker::unpark(&s.value, 1);
        }
        Ok(())
    }

    fn value(&self) -> u32 {
        self.0.get().value.load(SeqCst)
    }
}

/// A process-shared counting semaphore (Python's `multiprocessing.Semaphore`).
///
/// ```
/// use mp_shm::Semaphore;
///
/// let sem = Semaphore::new(2)?;
/// assert!(sem.acquire(true, None));
/// assert!(sem.acquire(true, None));
/// assert!(!sem.acquire(false, None));
/// sem.release()?;
/// assert_eq!(sem.get_value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Semaphore {
    core: Arc<SemCore>,
}

impl Semaphore {
    /// A semaphore with the given initial value (at most `i32::MAX`, as POSIX semaphores).
    pub fn new(value: u32) -> io::Result<Semaphore> {
        Ok(Semaphore {
            core: Arc::new(SemCore::new(value, SEM_VALUE_MAX)?),
        })
    }

    /// Takes one unit: `false` when `block` is false and none is free, or on timeout.
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.core.acquire(block, timeout)
    }

    /// Gives one unit back (any process may). [`SyncError::TooManyReleases`] at the bound
    /// (`i32::MAX`, or a [`BoundedSemaphore`]'s initial value).
    pub fn release(&self) -> Result<(), SyncError> {
        self.core.release()
    }

    /// The current value.
    pub fn get_value(&self) -> u32 {
        self.core.value()
    }
}

/// A semaphore that may not be released above its initial value (Python's
/// `multiprocessing.BoundedSemaphore`).
///
/// ```
/// use mp_shm::{BoundedSemaphore, SyncError};
///
/// let sem = BoundedSemaphore::new(1)?;
/// assert!(matches!(sem.release(), Err(SyncError::TooManyReleases)));
/// assert!(sem.acquire(true, None));
/// sem.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BoundedSemaphore(Semaphore);

impl BoundedSemaphore {
    /// A bounded semaphore with the given initial (and maximum) value. It is a [`Semaphore`]
    /// (as Python's subclass) whose `release` gives [`SyncError::TooManyReleases`] above it.
    pub fn new(value: u32) -> io::Result<BoundedSemaphore> {
        Ok(BoundedSemaphore(Semaphore {
            core: Arc::new(SemCore::new(value, value)?),
        }))
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

//! [`ForkOnce`]: the once-cell of mp's fork safety (see the [module docs](super)).

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{GENERATION, install};

const EMPTY: u32 = 0;
const FULL: u32 = u32::MAX;

/// A cell written once, as `std::sync::OnceLock`, that a fork cannot leave half-initialised:
/// an initialisation another thread was running when the process forked is, in the child,
/// nobody's, and the child's first caller runs its own instead of waiting for ever (a
/// `OnceLock` would hang). A thread waits only for another thread of its own process.
///
/// How: the cell's state is empty, full, or stamped with the fork generation of the process
/// whose thread is initialising it; every forked child is one generation further (mp-sys's
/// child handler), so a stamp from another generation is an ancestor's unfinished run.
///
/// ```
/// use mp_sys::fork::ForkOnce;
///
/// static EXE: ForkOnce<(u64, u64)> = ForkOnce::new();
/// let id = EXE.get_or_try_init(mp_sys::process::exe_identity)?;
/// assert_eq!(EXE.get(), Some(id));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ForkOnce<T> {
    state: AtomicU32,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by the one thread that won the state, before the state
// says full (Release); it is read only once the state says full (Acquire), and never written
// again: shared as `&T` (so `Sync` needs `T: Sync`), and sent with the cell (`T: Send`).
unsafe impl<T: Send + Sync> Sync for ForkOnce<T> {}
// SAFETY: as above; moving the cell moves the value.
unsafe impl<T: Send> Send for ForkOnce<T> {}

// As `OnceLock`: a panic in `init` leaves the cell empty, never half-set.
impl<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe> std::panic::RefUnwindSafe
    for ForkOnce<T>
{
}
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for ForkOnce<T> {}

impl<T> Default for ForkOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ForkOnce<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ForkOnce").field(&self.get()).finish()
    }
}

impl<T> ForkOnce<T> {
    /// An empty cell.
    ///
    /// ```
    /// static CELL: mp_sys::fork::ForkOnce<u32> = mp_sys::fork::ForkOnce::new();
    /// assert_eq!(CELL.get(), None);
    /// ```
    pub const fn new() -> ForkOnce<T> {
        ForkOnce {
            state: AtomicU32::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if set. Never waits.
    ///
    /// ```
    /// let cell = mp_sys::fork::ForkOnce::new();
    /// assert_eq!(cell.get_or_init(|| 3), &3);
    /// assert_eq!(cell.get(), Some(&3));
    /// ```
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == FULL {
            // SAFETY: full: the value was written before the state said so, and never again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, set by `init` if the cell is empty. Another thread's initialisation in
    /// progress is waited for; one a fork cut off is run again here.
    ///
    /// ```
    /// let cell = mp_sys::fork::ForkOnce::new();
    /// assert_eq!(cell.get_or_init(|| 1), &1);
    /// assert_eq!(cell.get_or_init(|| 2), &1);
    /// ```
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        match self.get_or_try_init(|| Ok::<T, std::convert::Infallible>(init())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// The value, set by `init` if the cell is empty; an error leaves it empty (the next call
    /// tries again).
    ///
    /// ```
    /// let cell = mp_sys::fork::ForkOnce::new();
    /// assert_eq!(cell.get_or_try_init(|| Err("not yet")), Err("not yet"));
    /// assert_eq!(cell.get_or_try_init(|| Ok::<_, ()>(5)), Ok(&5));
    /// ```
    pub fn get_or_try_init<E>(&self, init: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        if let Some(value) = self.get() {
            return Ok(value);
        }
        if !self.claim() {
            // Filled by another thread meanwhile.
            return Ok(self.get().expect("full"));
        }
        // Empties the cell again if `init` fails or panics.
        struct Release<'a>(&'a AtomicU32);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(EMPTY, Ordering::Release);
                crate::futex::wake(self.0, i32::MAX);
            }
        }
        let release = Release(&self.state);
        let value = init()?;
        std::mem::forget(release);
        // SAFETY: this thread holds the state (`claim`): no other thread reads or writes the
        // value until the state says full.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(FULL, Ordering::Release);
        crate::futex::wake(&self.state, i32::MAX);
        Ok(self.get().expect("full"))
    }

    /// Sets the value if the cell is empty; else gives `value` back.
    ///
    /// ```
    /// let cell = mp_sys::fork::ForkOnce::new();
    /// assert_eq!(cell.set(1), Ok(()));
    /// assert_eq!(cell.set(2), Err(2));
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("once"));
        value.map_or(Ok(()), Err)
    }

    /// Waits until the cell is full (false) or this thread holds its initialisation (true).
    fn claim(&self) -> bool {
        install();
        let me = GENERATION.load(Ordering::Relaxed);
        loop {
            match self.state.load(Ordering::Acquire) {
                FULL => return false,
                // Another thread of this process initialises it.
                s if s == me => crate::futex::wait(&self.state, s, None),
                // Empty, or an ancestor's run, whose thread is not in this process.
                s => {
                    if self
                        .state
                        .compare_exchange(s, me, Ordering::Acquire, Ordering::Acquire)
                        .is_ok()
                    {
                        return true;
                    }
                }
            }
        }
    }
}

impl<T> Drop for ForkOnce<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == FULL {
            // SAFETY: full: the value was written, and `&mut self` means no one borrows it.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}


//! Typed shared memory, as Python's `multiprocessing.sharedctypes`: [`Value`] and [`Array`]
//! (guarded by a re-entrant lock, as Python's default), and [`RawValue`] and [`RawArray`]
//! (no lock). The element type is any [`Pod`] type: the numbers, and `#[repr(C)]` structs that
//! derive `Pod` and `Zeroable` (Python's ctypes `Structure`).

use std::io;
use std::sync::Arc;

use mp_spawn::reduction::Fd;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer};

use crate::error::{LockError, LockResult, SyncError};
use crate::heap::{Kind, Tagged};
use crate::synchronize::{MutexBlock, RLock};

mod array;
mod raw;
mod value;

pub use array::{Array, ArrayGuard};
pub use raw::{RawArray, RawValue};
pub use value::{Value, ValueGuard};

fn bytes_for<T>(len: usize) -> io::Result<usize> {
    len.checked_mul(std::mem::size_of::<T>())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "array too large"))
}

const _: () = assert!(crate::synchronize::DATA_OFFSET % 64 == 0);

/// An array as it travels: its block's descriptor and its length, checked against `T`.
/// Returns the descriptor, the length, and the bytes the block must have.
fn array_parts<'de, T, D: Deserializer<'de>>(
    d: D,
    kind: Kind,
) -> Result<(Fd, usize, usize), D::Error> {
    check_align::<T>().map_err(custom_error)?;
    let (tagged, len) = <(Tagged, u64)>::deserialize(d)?;
    let fd = tagged.fd(kind).map_err(custom_error)?;
    let len = usize::try_from(len).map_err(custom_error)?;
    let bytes = bytes_for::<T>(len).map_err(custom_error)?;
    Ok((fd, len, bytes))
}

fn check_align<T>() -> io::Result<()> {
    // The data sits at a 64-byte boundary of a page-aligned block.
    if std::mem::align_of::<T>() > 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "element types aligned above 64 bytes are not supported",
        ));
    }
    Ok(())
}

/// The lock and data of a `Value` or `Array`. Whether a guard of it is live is marked in the
/// lock's shared state (`MutexBlock::guarded`), so that no handle of the lock, in any process,
/// can release the level a guard holds: only the holder may have a guard, and the lock stays
/// held while it lives, so the guard's `&mut` is the only access to the data.
#[derive(Debug)]
struct Guarded {
    lock: RLock,
    block: Arc<MutexBlock>,
}

impl Guarded {
    fn new(bytes: usize) -> io::Result<Guarded> {
        let block = Arc::new(MutexBlock::new(bytes)?);
        Ok(Guarded {
            lock: RLock::from_block(block.clone()),
            block,
        })
    }

    fn attach(fd: Fd, bytes: usize) -> Result<Guarded, String> {
        let block = Arc::new(MutexBlock::attach(fd, bytes)?);
        Ok(Guarded {
            lock: RLock::from_block(block.clone()),
            block,
        })
    }

    /// Takes the lock for a short access: an owner death or a live guard is an error, and the
    /// lock is not kept then.
    fn enter(&self) -> Result<(), SyncError> {
        match self.block.acquire_counted(true, None) {
            Ok(_) if !self.block.guarded() => Ok(()),
            Ok(_) => {
                self.block.release_counted()?;
                Err(SyncError::Reentrant)
            }
            Err(SyncError::OwnerDied) => {
                self.block.release_counted()?;
                Err(SyncError::OwnerDied)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `f` under the lock, marked as guarded meanwhile (so that `f`, which may hold a
    /// `&mut` to the data, cannot take a guard or another access of it, nor release the lock).
    /// The common case (this thread does not hold the lock) takes the mutex directly, without
    /// the re-entrancy bookkeeping of `enter`.
    #[inline]
    fn exclusive<R>(&self, f: impl FnOnce() -> R) -> Result<R, SyncError> {
        /// Clears the mark and gives the level back, also when `f` panics.
        struct Release<'a> {
            block: &'a MutexBlock,
            counted: bool,
        }
        impl Drop for Release<'_> {
            #[inline]
            fn drop(&mut self) {
                self.block.mark_guarded(false);
                let _ = if self.counted {
                    self.block.release_counted()
                } else {
                    self.block.release_once()
                };
            }
        }
        let counted = self.block.held_by_me();
        if counted {
            self.enter()?;
        } else {
            match self.block.take_forever() {
                Ok(_) => {}
                Err(SyncError::OwnerDied) => {
                    self.block.release_once()?;
                    return Err(SyncError::OwnerDied);
                }
                Err(e) => return Err(e),
            }
        }
        self.block.mark_guarded(true);
        let _release = Release {
            block: &self.block,
            counted,
        };
        Ok(f())
    }

    fn leave(&self) {
        let _ = self.block.release_counted();
    }

    /// Takes the lock for a guard.
    fn guard<G>(&self, make: impl FnOnce() -> G) -> LockResult<G> {
        let died = match self.block.acquire_counted(true, None) {
            Ok(_) => false,
            Err(SyncError::OwnerDied) => true,
            Err(e) => return Err(LockError::Sync(e)),
        };
        if !self.block.set_guarded() {
            self.leave();
            return Err(LockError::Sync(SyncError::Reentrant));
        }
        if died {
            Err(LockError::OwnerDied(make()))
        } else {
            Ok(make())
        }
    }

    fn unguard(&self) {
        self.block.clear_guarded();
        self.leave();
    }

    fn data<T>(&self) -> *mut T {
        self.block.data().cast()
    }
}

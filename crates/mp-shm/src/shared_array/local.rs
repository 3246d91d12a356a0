//! Writable mappings that belong to the process that made them.
//!
//! A writable mapping of an array would stop its memfd from ever being sealed while a forked
//! child (a fork-method pool worker, say) kept a copy of it, and would let that child write
//! where the parent's `&mut [T]` or a chunk's holder does. So every writable mapping is kept
//! out of forks (`MADV_DONTFORK`): a forked copy of a handle (one a closure carried into a
//! fork child) finds private zero-filled pages there (mp-sys maps them in the child), and the
//! operations that would act on the shared file (`freeze`, `join`, releasing a claim) refuse
//! to run in it. Access itself needs no check, so indexing costs what a slice's does.

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use mp_sys::mmap::Mapping;

use crate::error::ShmError;

#[derive(Debug)]
pub(crate) struct LocalMap {
    map: Mapping,
    pid: u32,
}

impl LocalMap {
    /// Maps `len` bytes at `offset`, read-write, kept from forks.
    pub(crate) fn new(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<LocalMap, ShmError> {
        // SAFETY: the array's memfd travels only inside its handles, and each chunk's range is
        // mapped writable by the one process that holds its claim (shared_array/README.md).
        // Kept from forks from the start: a fork by another thread right after the mapping
        // was made would keep a writable copy, and the array's seal would fail (EBUSY).
        let map = unsafe { Mapping::at_kept_from_forks(fd, offset, len) }?;
        Ok(LocalMap {
            map,
            pid: mp_sys::process::getpid(),
        })
    }

    /// The first byte: the shared pages in the process that made the mapping, private zero
    /// pages in a forked child.
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.map.ptr()
    }

    /// Whether this is the process that made the mapping.
    pub(crate) fn here(&self) -> bool {
        self.pid == mp_sys::process::getpid()
    }
}

/// Where a handle's elements are in this process: a pointer into a mapping that the handle
/// owns, and their number. Kept beside the mapping so that an element access costs what a
/// slice's does (measured: indexing 16 Mi `u32`s went from 3x a `Vec`'s time, through an
/// `Option` and the mapping, to a `Vec`'s).
pub(crate) struct Span<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: a span is a view of `[T]` that its handle owns; sending it is sending `[T]`.
unsafe impl<T: Send> Send for Span<T> {}
// SAFETY: sharing it is sharing `[T]`.
unsafe impl<T: Sync> Sync for Span<T> {}

impl<T> Clone for Span<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Span<T> {}

impl<T> Span<T> {
    /// No elements.
    pub(crate) fn empty() -> Span<T> {
        Span {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    /// `len` Ts from `start`, or, with no mapping (`None`: the elements take no bytes), `len`
    /// elements of no size at a dangling, aligned address.
    pub(crate) fn new(start: Option<*mut u8>, len: usize) -> Span<T> {
        match start.and_then(NonNull::new) {
            Some(p) => Span { ptr: p.cast(), len },
            None if std::mem::size_of::<T>() == 0 => Span {
                ptr: NonNull::dangling(),
                len,
            },
            None => Span::empty(),
        }
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

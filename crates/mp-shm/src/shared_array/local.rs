//! Writable mappings that belong to the process that made them.
//!
//! A writable mapping of an array would stop its memfd from ever being sealed while a forked
//! child (a fork-method pool worker, say) kept a copy of it, and would let that child write
//! where the parent's `&mut [T]` or a chunk's holder does. So every writable mapping is kept
//! out of forks (`MADV_DONTFORK`), and the handle that owns it gives access only in the
//! process that made it: a forked copy of the handle (one a closure carried into a fork child)
//! sees nothing, and never unmaps what may be another mapping at those addresses there.

use std::os::fd::BorrowedFd;

use mp_sys::mmap::Mapping;

use crate::error::ShmError;

#[derive(Debug)]
pub(crate) struct LocalMap {
    /// `None` only while dropping.
    map: Option<Mapping>,
    pid: u32,
}

impl LocalMap {
    /// Maps `len` bytes at `offset`, read-write, kept from forks.
    pub(crate) fn new(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<LocalMap, ShmError> {
        let map = Mapping::at(fd, offset, len)?;
        map.keep_from_forks()?;
        Ok(LocalMap {
            map: Some(map),
            pid: mp_sys::process::getpid(),
        })
    }

    /// The first byte, in the process that made the mapping; `None` in a forked child.
    #[inline]
    pub(crate) fn ptr(&self) -> Option<*mut u8> {
        match &self.map {
            Some(m) if self.pid == mp_sys::process::getpid() => Some(m.ptr()),
            _ => None,
        }
    }

    /// Whether this is the process that made the mapping.
    pub(crate) fn here(&self) -> bool {
        self.pid == mp_sys::process::getpid()
    }
}

impl Drop for LocalMap {
    fn drop(&mut self) {
        if !self.here() {
            // Not mapped in this process (MADV_DONTFORK): the addresses may hold another
            // mapping by now, which munmap would destroy.
            std::mem::forget(self.map.take());
        }
    }
}

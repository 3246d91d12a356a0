//! Memory for `Value`, `Array` and the locks: one anonymous shared file (memfd) per object,
//! mapped whole. CPython's `heap.py` does the same with temp files in /dev/shm that it unlinks
//! at once; a memfd never has a name, so nothing can be left behind, whatever kills the process.
//! The block travels to children as its descriptor (an [`Fd`] inside the serde value), and each
//! process maps it again.

use std::ffi::CStr;
use std::io;
use std::os::fd::AsFd;

use mp_spawn::reduction::Fd;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sys::{self, Mapping};

/// A shared block: a memfd and this process's mapping of it.
#[derive(Debug)]
pub(crate) struct Block {
    fd: Fd,
    map: Option<Mapping>,
    /// Checked on drop: a block whose robust mutex a thread of this process still holds is left
    /// mapped, because glibc keeps held robust mutexes in a per-thread list it writes through.
    keep_mapped: Option<fn(&Block) -> bool>,
}

impl Block {
    /// A zero-filled block of `len` bytes.
    pub(crate) fn new(name: &CStr, len: usize) -> io::Result<Block> {
        crate::resource_tracker::ensure_linked();
        let fd = sys::memfd(name, len as u64)?;
        let map = Mapping::new(fd.as_fd(), len)?;
        Ok(Block {
            fd: Fd::new(fd),
            map: Some(map),
            keep_mapped: None,
        })
    }

    /// Maps a block received from another process, checking that it has at least `need` bytes.
    pub(crate) fn attach(fd: Fd, need: usize) -> Result<Block, String> {
        let size = sys::file_size(fd.as_fd()).map_err(|e| e.to_string())?;
        if size < need as u64 || size == 0 {
            return Err(format!(
                "the shared block has {size} bytes, fewer than the {need} this type needs"
            ));
        }
        let len = usize::try_from(size).map_err(|_| "the shared block is too large".to_owned())?;
        let map = Mapping::new(fd.as_fd(), len).map_err(|e| e.to_string())?;
        Ok(Block {
            fd,
            map: Some(map),
            keep_mapped: None,
        })
    }

    pub(crate) fn with_drop_check(mut self, keep_mapped: fn(&Block) -> bool) -> Block {
        self.keep_mapped = Some(keep_mapped);
        self
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.map.as_ref().map_or(std::ptr::null_mut(), Mapping::ptr)
    }

    /// Deserialises a block and checks its size.
    pub(crate) fn deserialize_sized<'de, D: Deserializer<'de>>(
        d: D,
        need: usize,
    ) -> Result<Block, D::Error> {
        let fd = Fd::deserialize(d)?;
        Block::attach(fd, need).map_err(custom_error)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if self.keep_mapped.is_some_and(|keep| keep(self)) {
            std::mem::forget(self.map.take());
        }
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fd.serialize(s)
    }
}

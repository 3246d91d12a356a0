//! Memory for `Value`, `Array` and the locks: one anonymous shared file (memfd) per object,
//! mapped whole. CPython's `heap.py` does the same with temp files in /dev/shm that it unlinks
//! at once; a memfd never has a name, so nothing can be left behind, whatever kills the process.
//! The block travels to children as its descriptor (an [`Fd`] inside the serde value), and each
//! process maps it again.

use std::io;
use std::os::fd::AsFd;

use mp_spawn::reduction::Fd;
use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use mp_sys::mmap::Mapping;
use mp_sys::shm as sys;

/// What a block holds. It travels with the block, so that safe code cannot receive a block as
/// another kind (a lock's mutex as `RawValue` bytes, say) and race the two views of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A robust mutex, and the data it guards (`Lock`, `RLock`, `Value`, `Array`).
    Mutex = 1,
    /// Data accessed only through atomic copies (`RawValue`, `RawArray`).
    Raw = 2,
    /// The futex words of a `Semaphore`.
    Semaphore = 3,
    /// The futex words of an `Event`.
    Event = 4,
    /// The wait state of a `Condition`.
    Condition = 5,
    /// The state of a `Barrier`.
    Barrier = 6,
    /// The table and entries of a `SharedDict` (its lock is a separate `Mutex` block).
    Dict = 7,
}

impl Kind {
    fn name(self) -> &'static std::ffi::CStr {
        match self {
            Kind::Mutex => c"mp-lock",
            Kind::Raw => c"mp-raw",
            Kind::Semaphore | Kind::Event | Kind::Condition | Kind::Barrier => c"mp-sync",
            Kind::Dict => c"mp-dict",
        }
    }
}

/// A block's descriptor as it travels, with its kind.
#[derive(Deserialize)]
pub(crate) struct Tagged(u8, Fd);

impl Tagged {
    /// The descriptor, if the block is of the `expected` kind.
    pub(crate) fn fd(self, expected: Kind) -> Result<Fd, String> {
        if self.0 == expected as u8 {
            Ok(self.1)
        } else {
            Err(format!(
                "the shared block received is not a {expected:?} block (kind {})",
                self.0
            ))
        }
    }
}

/// A shared block: a memfd and this process's mapping of it.
#[derive(Debug)]
pub(crate) struct Block {
    kind: Kind,
    fd: Fd,
    map: Option<Mapping>,
    /// Checked on drop: a block whose robust mutex a thread of this process still holds is left
    /// mapped, because glibc keeps held robust mutexes in a per-thread list it writes through.
    keep_mapped: Option<fn(&Block) -> bool>,
}

impl Block {
    /// A zero-filled block of `len` bytes.
    pub(crate) fn new(kind: Kind, len: usize) -> io::Result<Block> {
        crate::resource_tracker::ensure_linked();
        // Sealed against shrinking: whoever else holds the descriptor can never truncate the
        // pages away under a mapping (SIGBUS in every user).
        let fd = sys::memfd_unshrinkable(kind.name(), len as u64)?;
        // SAFETY: a fresh memfd; every user of a block follows its structure's protocol.
        let map = unsafe { Mapping::new(fd.as_fd(), len) }?;
        Ok(Block {
            kind,
            fd: Fd::new(fd),
            map: Some(map),
            keep_mapped: None,
        })
    }

    /// Maps a block of `kind` received from another process, checking that it has at least
    /// `need` bytes.
    pub(crate) fn attach(kind: Kind, fd: Fd, need: usize) -> Result<Block, String> {
        if !sys::cannot_shrink(fd.as_fd()).map_err(|e| e.to_string())? {
            return Err("the shared block is not sealed against shrinking".to_owned());
        }
        let size = sys::file_size(fd.as_fd()).map_err(|e| e.to_string())?;
        if size < need as u64 || size == 0 {
            return Err(format!(
                "the shared block has {size} bytes, fewer than the {need} this type needs"
            ));
        }
        let len = usize::try_from(size).map_err(|_| "the shared block is too large".to_owned())?;
        // SAFETY: a block's descriptor travels only inside its structure's handle, whose
        // protocol every user of it follows (mp never hands the descriptor out).
        let map = unsafe { Mapping::new(fd.as_fd(), len) }.map_err(|e| e.to_string())?;
        Ok(Block {
            kind,
            fd,
            map: Some(map),
            keep_mapped: None,
        })
    }

    pub(crate) fn with_drop_check(mut self, keep_mapped: fn(&Block) -> bool) -> Block {
        self.keep_mapped = Some(keep_mapped);
        self
    }

    /// The block's descriptor (to punch holes in it).
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.map.as_ref().map_or(std::ptr::null_mut(), Mapping::ptr)
    }

    /// Deserialises a block and checks its kind and size.
    pub(crate) fn deserialize_sized<'de, D: Deserializer<'de>>(
        d: D,
        kind: Kind,
        need: usize,
    ) -> Result<Block, D::Error> {
        let fd = Tagged::deserialize(d)?.fd(kind).map_err(custom_error)?;
        Block::attach(kind, fd, need).map_err(custom_error)
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
        #[derive(Serialize)]
        #[serde(rename = "Tagged")]
        struct TaggedRef<'a>(u8, &'a Fd);
        TaggedRef(self.kind as u8, &self.fd).serialize(s)
    }
}

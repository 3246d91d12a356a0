//! The map's header, in the lock's block: the layout version, the current region and the hash
//! key; and how a map travels: its two descriptors out, and on arrival the layout checked
//! before anything is mapped, then the key read.

use std::fmt;
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::*};

use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use siphasher::sip::SipHasher13;

use super::{RESERVE, Shared, SharedDict};
use crate::error::DictError;
use crate::heap::{Block, Kind, Tagged};
use crate::synchronize::{DATA_OFFSET, MutexBlock};

/// The layout this build reads and writes. 1: FNV-1a, unkeyed. 2: SipHash-1-3 with the key in
/// the header.
pub(super) const LAYOUT: u16 = 2;
/// "mpdict" above the layout version, in the first word of the lock block's data in every
/// layout, so that a map of any version is told apart from garbage and from another version.
const TAG: u64 = 0x6d70_6469_6374 << 16;
pub(super) const MAGIC: u64 = TAG | LAYOUT as u64;

/// The control words, in the lock's block (which never moves: glibc's robust list points
/// into it while the lock is held).
#[repr(C)]
pub(super) struct Control {
    /// `MAGIC`, stored last when the map is made (Release).
    pub(super) magic: AtomicU64,
    /// The current region: its offset in the data block | log2 of its size. Switched with
    /// one store.
    pub(super) region: AtomicU64,
    /// The hash key, drawn when the map is made and never changed; read once per process.
    pub(super) key: [AtomicU64; 2],
}

/// The keyed hash of a map's key bytes: SipHash-1-3 (what Rust's `HashMap` and CPython's
/// `str` hash use), keyed with 128 random bits drawn per map, so that keys chosen to collide
/// need the key, which never leaves the map's shared memory. Its definition is fixed, unlike
/// std's `DefaultHasher`: every process that maps the map, of any build, hashes alike.
#[derive(Clone, Copy)]
pub(super) struct Key(SipHasher13);

impl Key {
    /// A fresh key, from the kernel's random source.
    pub(super) fn random() -> io::Result<Key> {
        let mut bytes = [0u8; 16];
        mp_sys::random::fill(&mut bytes)?;
        Ok(Key(SipHasher13::new_with_key(&bytes)))
    }

    pub(super) fn from_words([k0, k1]: [u64; 2]) -> Key {
        Key(SipHasher13::new_with_keys(k0, k1))
    }

    pub(super) fn words(&self) -> [u64; 2] {
        let (k0, k1) = self.0.keys();
        [k0, k1]
    }

    pub(super) fn hash(&self, bytes: &[u8]) -> u64 {
        self.0.hash(bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is the map's defence against chosen collisions: kept out of logs.
        f.write_str("Key(..)")
    }
}

/// Checks the layout a received lock block says, read from its file: not mapped yet, because
/// a block of another layout may be smaller than this one's `Control`.
pub(super) fn check_layout(lock: BorrowedFd<'_>) -> Result<(), DictError> {
    let mut word = [0u8; 8];
    File::from(lock.try_clone_to_owned()?)
        .read_exact_at(&mut word, DATA_OFFSET as u64)
        .map_err(|_| DictError::Corrupt("the lock block received is not a SharedDict's"))?;
    let magic = u64::from_ne_bytes(word);
    if magic == MAGIC {
        Ok(())
    } else if magic & !0xffff == TAG {
        Err(DictError::LayoutVersion {
            found: magic as u16,
            expected: LAYOUT,
        })
    } else {
        Err(DictError::Corrupt(
            "the lock block received is not a SharedDict's",
        ))
    }
}

impl<K, V> Serialize for SharedDict<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.shared.lock, &self.shared.data).serialize(s)
    }
}

impl<'de, K, V> Deserialize<'de> for SharedDict<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (lock, data) = <(Tagged, Tagged)>::deserialize(d)?;
        let lock_fd = lock.fd(Kind::Mutex).map_err(custom_error)?;
        let data_fd = data.fd(Kind::Dict).map_err(custom_error)?;
        check_layout(lock_fd.as_fd()).map_err(custom_error)?;
        let lock =
            MutexBlock::attach(lock_fd, std::mem::size_of::<Control>()).map_err(custom_error)?;
        let data = Block::attach(Kind::Dict, data_fd, RESERVE as usize).map_err(custom_error)?;
        let mut shared = Shared {
            lock,
            data,
            key: Key::from_words([0, 0]),
        };
        // Checked again in the mapping: the file was read before it was mapped.
        let control = shared.control();
        if control.magic.load(Acquire) != MAGIC {
            return Err(custom_error(DictError::Corrupt(
                "the lock block received is not a SharedDict's",
            )));
        }
        // Written before the magic (Release), and never changed after.
        let key = Key::from_words([control.key[0].load(Relaxed), control.key[1].load(Relaxed)]);
        shared.key = key;
        Ok(SharedDict {
            shared: Arc::new(shared),
            _t: PhantomData,
        })
    }
}

//! Which executable a process runs: the one identity behind every check that a peer runs this
//! very program before its code offsets are believed (a spawn or forkserver child and its
//! parent, a manager server and its clients, the ranks of an MPI job).
//!
//! One identity with two keys, each used where it is exact:
//!
//! - [`file`]: the (device, inode) of `/proc/self/exe`. On one host it names the very file the
//!   process runs, even after the path was replaced, and it costs one `stat`, so a spawn child
//!   checks its parent with it before `main`. It means nothing on another host.
//! - [`digest`]: the SHA-256 of that file's bytes, the same on every host that runs the build
//!   (manager clients over TCP, MPI ranks). Hashing costs about 0.1 s for a 25 MB binary, so it
//!   is computed on first use only, once per process.
//!
//! Both are cached without a lock: a fork while another thread computes one leaves the child
//! nothing to wait for (it computes the value again).
//!
//! ```
//! use mp_spawn::identity;
//! let me = identity::file()?;
//! assert_eq!(identity::file_of(std::process::id())?, me);
//! assert_eq!(identity::digest()?, identity::digest_of("/proc/self/exe".as_ref())?);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// An executable file on this host: its device and inode.
///
/// ```
/// let id = mp_spawn::identity::file()?;
/// assert_ne!(id, mp_spawn::identity::FileId { dev: id.dev, ino: id.ino ^ 1 });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// The device that holds the file.
    pub dev: u64,
    /// The file's inode on that device.
    pub ino: u64,
}

/// The SHA-256 of an executable's bytes. Displays as lower-case hex.
///
/// ```
/// let d = mp_spawn::identity::digest()?;
/// assert_eq!(d.to_string().len(), 64);
/// assert_eq!(d.as_bytes().len(), 32);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// Lower-case hex of `bytes` (for messages about a digest a peer sent, whatever its length).
///
/// ```
/// assert_eq!(mp_spawn::identity::hex(&[0, 0xab]), "00ab");
/// ```
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file this process runs, computed once.
///
/// ```
/// assert_eq!(mp_spawn::identity::file()?, mp_spawn::identity::file()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn file() -> io::Result<FileId> {
    static FILE: Cached<2> = Cached::new();
    let [dev, ino] = FILE.get_or(|| {
        let (dev, ino) = mp_sys::process::exe_identity()?;
        Ok([dev, ino])
    })?;
    Ok(FileId { dev, ino })
}

/// The file process `pid` runs (`/proc/<pid>/exe`).
///
/// ```
/// let me = mp_spawn::identity::file_of(std::process::id())?;
/// assert_eq!(me, mp_spawn::identity::file()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn file_of(pid: u32) -> io::Result<FileId> {
    let (dev, ino) = mp_sys::process::exe_identity_of(pid)?;
    Ok(FileId { dev, ino })
}

/// The SHA-256 of the file this process runs, computed on first use, once.
///
/// ```
/// assert_eq!(mp_spawn::identity::digest()?, mp_spawn::identity::digest()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn digest() -> io::Result<Digest> {
    static DIGEST: Cached<4> = Cached::new();
    let words = DIGEST.get_or(|| {
        let Digest(bytes) = digest_of(Path::new("/proc/self/exe"))?;
        let mut words = [0u64; 4];
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().unwrap_or_default());
        }
        Ok(words)
    })?;
    let mut bytes = [0u8; 32];
    for (b, w) in bytes.chunks_exact_mut(8).zip(words) {
        b.copy_from_slice(&w.to_le_bytes());
    }
    Ok(Digest(bytes))
}

/// The SHA-256 of the file at `path`.
///
/// ```
/// assert!(mp_spawn::identity::digest_of("/nonexistent".as_ref()).is_err());
/// ```
pub fn digest_of(path: &Path) -> io::Result<Digest> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(with_path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(Digest(hasher.finalize().into())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(with_path(e)),
        }
    }
}

/// A value of `N` words, computed at most a few times and never waited for: no lock, unlike a
/// `OnceLock`, whose "being filled" state a fork would leave behind in the child for ever. Two
/// threads may both compute it; they store the same words.
struct Cached<const N: usize> {
    ready: AtomicBool,
    words: [AtomicU64; N],
}

impl<const N: usize> Cached<N> {
    const fn new() -> Self {
        Cached {
            ready: AtomicBool::new(false),
            words: [const { AtomicU64::new(0) }; N],
        }
    }

    fn get_or(&self, compute: impl FnOnce() -> io::Result<[u64; N]>) -> io::Result<[u64; N]> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(self.words.each_ref().map(|w| w.load(Ordering::Relaxed)));
        }
        let value = compute()?;
        for (w, v) in self.words.iter().zip(value) {
            w.store(v, Ordering::Relaxed);
        }
        // Publishes the words above (any other writer stored the same ones).
        self.ready.store(true, Ordering::Release);
        Ok(value)
    }
}

#[cfg(test)]
mod test;

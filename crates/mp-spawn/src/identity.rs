//! Which executable a process runs: the one identity behind every check that a peer runs this
//! very program before its code offsets are believed (a spawn or forkserver child and its
//! parent, a manager server and its clients, the ranks of an MPI job).
//!
//! One identity with two keys, each used where it is exact:
//!
//! - [`file()`]: the (device, inode) of `/proc/self/exe`. On one host it names the very file the
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

use mp_sys::fork::ForkOnce;

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
    // A `ForkOnce`: a fork while another thread computes it cannot leave it stuck in the child.
    static FILE: ForkOnce<FileId> = ForkOnce::new();
    FILE.get_or_try_init(|| {
        let (dev, ino) = mp_sys::process::exe_identity()?;
        Ok(FileId { dev, ino })
    })
    .copied()
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
    static DIGEST: ForkOnce<Digest> = ForkOnce::new();
    DIGEST
        .get_or_try_init(|| digest_of(Path::new("/proc/self/exe")))
        .copied()
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

#[cfg(test)]
mod test;

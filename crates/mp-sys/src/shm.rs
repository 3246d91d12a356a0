//! Shared-memory files: anonymous (`memfd_create`) and named (`shm_open`), their size, and
//! giving their pages back (`fallocate`). On rustix.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FallocateFlags, MemfdFlags, Mode};

use crate::retry;

/// An anonymous shared-memory file of `len` bytes (sparse: pages cost nothing until touched).
/// It has no name, so nothing can leak: it is gone when the last descriptor and mapping are.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 4096)?;
/// assert_eq!(mp_sys::shm::file_size(fd.as_fd())?, 4096);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn memfd(name: &CStr, len: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC)?;
    set_len(fd.as_fd(), len)?;
    Ok(fd)
}

/// Sets the size of a file (`InvalidInput` beyond `i64::MAX`).
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 0)?;
/// mp_sys::shm::set_len(fd.as_fd(), 10)?;
/// assert_eq!(mp_sys::shm::file_size(fd.as_fd())?, 10);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    if i64::try_from(len).is_err() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    retry(|| rustix::fs::ftruncate(fd, len))
}

/// The size of a file.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 7)?;
/// assert_eq!(mp_sys::shm::file_size(fd.as_fd())?, 7);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_size as u64)
}

/// Opens a POSIX named shared-memory object (`/dev/shm/<name without the slash>`),
/// close-on-exec. `create` makes it exclusively (`O_CREAT | O_EXCL`, mode 0600, as Python).
///
/// ```
/// let name = c"/mp-sys-doc-shm-open";
/// let _fd = mp_sys::shm::shm_open(name, true)?;
/// assert!(mp_sys::shm::shm_open(name, true).is_err());
/// mp_sys::shm::shm_unlink(name)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn shm_open(name: &CStr, create: bool) -> io::Result<OwnedFd> {
    use rustix::shm::OFlags;
    // O_NOFOLLOW as glibc's shm_open adds it: a symlink planted in /dev/shm is not followed.
    let nofollow = OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits());
    let flags = if create {
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | nofollow
    } else {
        OFlags::RDWR | nofollow
    };
    retry(|| rustix::shm::open(name, flags, Mode::RUSR | Mode::WUSR))
}

/// Removes a POSIX named shared-memory object's name.
///
/// ```
/// assert!(mp_sys::shm::shm_unlink(c"/mp-sys-doc-no-such-object").is_err());
/// ```
pub fn shm_unlink(name: &CStr) -> io::Result<()> {
    Ok(rustix::shm::unlink(name)?)
}

/// Gives the pages of `[offset, offset + len)` back to the system; they read as zeros after.
/// A failure only means the memory stays in use, so it is not reported.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 8192)?;
/// mp_sys::shm::punch_hole(fd.as_fd(), 0, 4096);
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn punch_hole(fd: BorrowedFd<'_>, offset: u64, len: u64) {
    let _ = rustix::fs::fallocate(
        fd,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    );
}

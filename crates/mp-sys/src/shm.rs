//! Shared-memory files: anonymous (`memfd_create`) and named (`shm_open`), their size, and
//! giving their pages back (`fallocate`). On rustix.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FallocateFlags, MemfdFlags, Mode, SealFlags};

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

/// An anonymous shared-memory file of `len` bytes that can later be sealed
/// ([`seal_read_only`]): `memfd_create` with `MFD_ALLOW_SEALING`.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd_sealable(c"example", 4096)?;
/// assert!(!mp_sys::shm::is_read_only(fd.as_fd())?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn memfd_sealable(name: &CStr, len: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    set_len(fd.as_fd(), len)?;
    Ok(fd)
}

/// Seals a memfd read-only for good: no write, no writable mapping, no resize, no further
/// seal (`F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`).
/// `F_SEAL_WRITE` is refused (`ResourceBusy`) while any process maps the file writable,
/// this one included; then only the size seals are set.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd_sealable(c"example", 4096)?;
/// // SAFETY: a fresh memfd, not reached at all.
/// let map = unsafe { mp_sys::mmap::Mapping::new(fd.as_fd(), 4096) }?;
/// assert!(mp_sys::shm::seal_read_only(fd.as_fd()).is_err()); // mapped writable
/// drop(map);
/// mp_sys::shm::seal_read_only(fd.as_fd())?;
/// assert!(mp_sys::shm::is_read_only(fd.as_fd())?);
/// // SAFETY: as above.
/// assert!(unsafe { mp_sys::mmap::Mapping::new(fd.as_fd(), 4096) }.is_err()); // no writable mapping
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn seal_read_only(fd: BorrowedFd<'_>) -> io::Result<()> {
    // The sizes first, then the write seal, then F_SEAL_SEAL once the write seal is in.
    retry(|| rustix::fs::fcntl_add_seals(fd, SealFlags::SHRINK | SealFlags::GROW))?;
    retry(|| rustix::fs::fcntl_add_seals(fd, SealFlags::WRITE | SealFlags::FUTURE_WRITE))?;
    retry(|| rustix::fs::fcntl_add_seals(fd, SealFlags::SEAL))
}

/// Seals a memfd against shrinking (`F_SEAL_SHRINK`): a mapping of it can then never find its
/// pages gone (SIGBUS), whoever else holds the descriptor. It may still grow.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd_sealable(c"example", 4096)?;
/// mp_sys::shm::forbid_shrinking(fd.as_fd())?;
/// assert!(mp_sys::shm::set_len(fd.as_fd(), 0).is_err());
/// mp_sys::shm::set_len(fd.as_fd(), 8192)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn forbid_shrinking(fd: BorrowedFd<'_>) -> io::Result<()> {
    retry(|| rustix::fs::fcntl_add_seals(fd, SealFlags::SHRINK))
}

/// A new memfd of `len` bytes that nobody can shrink ([`memfd_sealable`], then
/// [`forbid_shrinking`]): what every shared structure whose mapping others rely on is made of.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd_unshrinkable(c"example", 4096)?;
/// assert!(mp_sys::shm::cannot_shrink(fd.as_fd())?);
/// assert!(mp_sys::shm::set_len(fd.as_fd(), 0).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn memfd_unshrinkable(name: &CStr, len: u64) -> io::Result<OwnedFd> {
    let fd = memfd_sealable(name, len)?;
    forbid_shrinking(fd.as_fd())?;
    Ok(fd)
}

/// Whether `fd` is sealed against shrinking (false for files that cannot be sealed): a
/// receiver checks it before it relies on a mapping of a descriptor another process sent.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 4096)?;
/// assert!(!mp_sys::shm::cannot_shrink(fd.as_fd())?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn cannot_shrink(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match rustix::fs::fcntl_get_seals(fd) {
        Ok(seals) => Ok(seals.contains(SealFlags::SHRINK)),
        Err(rustix::io::Errno::INVAL) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether a file is sealed so that no writable mapping of it exists or can be made, no write
/// can change it and its size is fixed (`F_SEAL_WRITE`, `F_SEAL_SHRINK` and `F_SEAL_GROW`).
/// False for files that cannot be sealed (a named segment). `F_SEAL_FUTURE_WRITE` alone is not
/// enough: writable mappings made before it stay writable.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 4096)?;
/// assert!(!mp_sys::shm::is_read_only(fd.as_fd())?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn is_read_only(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let seals = match rustix::fs::fcntl_get_seals(fd) {
        Ok(s) => s,
        // Not a file that supports seals.
        Err(rustix::io::Errno::INVAL) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(seals.contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW))
}

/// The file's identity: (device, inode). Two descriptors of the same memfd have the same.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 1)?;
/// let dup = fd.try_clone()?;
/// assert_eq!(mp_sys::shm::identity(fd.as_fd())?, mp_sys::shm::identity(dup.as_fd())?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Reads exactly `buf.len()` bytes at `offset` (`UnexpectedEof` past the end of the file).
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 8)?;
/// mp_sys::shm::write_at(fd.as_fd(), 2, b"hi")?;
/// let mut buf = [0u8; 3];
/// mp_sys::shm::read_at(fd.as_fd(), 1, &mut buf)?;
/// assert_eq!(&buf, b"\0hi");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_at(fd: BorrowedFd<'_>, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| rustix::io::pread(fd, &mut *buf, offset))?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Writes all of `data` at `offset`.
///
/// ```
/// use std::os::fd::AsFd;
/// let fd = mp_sys::shm::memfd(c"example", 0)?;
/// mp_sys::shm::write_at(fd.as_fd(), 4, b"x")?;
/// assert_eq!(mp_sys::shm::file_size(fd.as_fd())?, 5);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_at(fd: BorrowedFd<'_>, mut offset: u64, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = retry(|| rustix::io::pwrite(fd, data, offset))?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
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

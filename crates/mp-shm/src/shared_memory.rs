//! Named shared memory, as Python's `multiprocessing.shared_memory.SharedMemory`: a POSIX
//! `shm_open` segment that any process (Python's included) can attach by name.
//!
//! Lifetime follows Python: [`SharedMemory::close`] (or drop) unmaps this process's view,
//! [`SharedMemory::unlink`] removes the name. A segment this process tree created and never
//! unlinked is unlinked by the resource tracker once the tree is gone, even after SIGKILL.

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;

use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::atomic_copy;
use crate::error::{IndexError, ShmError};
use crate::resource_tracker;
use mp_sys::mmap::Mapping;
use mp_sys::shm as sys;

pub use crate::resource_tracker::MAX_NAME_LEN;

/// A named shared-memory segment and this process's mapping of it.
///
/// ```
/// use mp_shm::SharedMemory;
///
/// let shm = SharedMemory::create(4096)?;
/// assert!(shm.name().starts_with("psm_"));
/// shm.write_at(0, b"hello")?;
/// let other = SharedMemory::attach(shm.name())?; // another process would do the same
/// let mut buf = [0u8; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// shm.unlink()?;
/// assert!(shm.unlink().is_err()); // a second unlink: not found
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SharedMemory {
    name: String,
    map: Option<Mapping>,
    size: usize,
}

/// How to create or attach a segment: [`SharedMemory::options`].
#[derive(Debug, Clone)]
pub struct ShmOptions {
    name: Option<String>,
    track: bool,
}

impl ShmOptions {
    /// The segment's name (without the leading `/`); a random `psm_XXXXXXXX` by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the resource tracker unlinks the segment when this process tree is gone
    /// (default true; Python 3.13's `track`). Untracked segments live until unlinked.
    pub fn track(mut self, track: bool) -> Self {
        self.track = track;
        self
    }

    /// Creates a new segment of `size` bytes (zero-filled).
    pub fn create(self, size: usize) -> Result<SharedMemory, ShmError> {
        if size == 0 {
            return Err(ShmError::ZeroSize);
        }
        let (name, posix, fd) = match self.name {
            Some(name) => {
                let (name, posix) = posix_name(&name)?;
                let fd = sys::shm_open(&posix, true).map_err(|e| open_error(e, &name))?;
                (name, posix, fd)
            }
            None => loop {
                let name = random_name().map_err(ShmError::Os)?;
                let (name, posix) = posix_name(&name)?;
                match sys::shm_open(&posix, true) {
                    Ok(fd) => break (name, posix, fd),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(ShmError::Os(e)),
                }
            },
        };
        // Register before anything else can fail or kill us, so no window leaks the name.
        if self.track {
            if let Err(e) = resource_tracker::register(&name) {
                let _ = sys::shm_unlink(&posix);
                return Err(ShmError::Os(e));
            }
        }
        // SAFETY: a segment's bytes are reached only through `SharedMemory`'s accessors: atomic
        // copies, or `unsafe` slices whose callers promise that nothing races with them.
        let mapped = sys::set_len(fd.as_fd(), size as u64)
            .and_then(|()| unsafe { Mapping::new(fd.as_fd(), size) });
        match mapped {
            Ok(map) => Ok(SharedMemory {
                name,
                map: Some(map),
                size,
            }),
            Err(e) => {
                let _ = sys::shm_unlink(&posix);
                resource_tracker::unregister(&name);
                Err(ShmError::Os(e))
            }
        }
    }

    /// Unlinks the named segment without attaching it (its name goes; mappings of it stay
    /// until unmapped). Never unregisters it from a tracker.
    ///
    /// ```
    /// use mp_shm::SharedMemory;
    ///
    /// let shm = SharedMemory::options().track(false).create(64)?;
    /// SharedMemory::options().name(shm.name()).unlink()?;
    /// assert!(SharedMemory::options().name(shm.name()).attach().is_err());
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn unlink(self) -> Result<(), ShmError> {
        let Some(name) = self.name else {
            return Err(ShmError::InvalidName {
                name: String::new(),
                reason: "empty",
            });
        };
        let (bare, posix) = posix_name(&name)?;
        sys::shm_unlink(&posix).map_err(|e| open_error(e, &bare))
    }

    /// Attaches an existing segment; its size is the segment's. Never registers it.
    pub fn attach(self) -> Result<SharedMemory, ShmError> {
        let Some(name) = self.name else {
            return Err(ShmError::InvalidName {
                name: String::new(),
                reason: "attaching needs a name",
            });
        };
        let (name, posix) = posix_name(&name)?;
        let fd = sys::shm_open(&posix, false).map_err(|e| open_error(e, &name))?;
        let size = sys::file_size(fd.as_fd()).map_err(ShmError::Os)?;
        let size = usize::try_from(size)
            .map_err(|_| ShmError::Os(io::Error::from(io::ErrorKind::OutOfMemory)))?;
        let map = if size == 0 {
            None
        } else {
            // SAFETY: as in `create`.
            Some(unsafe { Mapping::new(fd.as_fd(), size) }.map_err(ShmError::Os)?)
        };
        Ok(SharedMemory { name, map, size })
    }
}

fn open_error(e: io::Error, name: &str) -> ShmError {
    match e.kind() {
        io::ErrorKind::AlreadyExists => ShmError::Exists(name.to_owned()),
        io::ErrorKind::NotFound => ShmError::NotFound(name.to_owned()),
        _ if e.raw_os_error() == Some(libc::ENAMETOOLONG) => ShmError::InvalidName {
            name: name.to_owned(),
            reason: "too long",
        },
        _ => ShmError::Os(e),
    }
}

/// A fresh random segment name, as Python's (`psm_` and 8 hex digits): what [`create`]
/// picks when no name is given, for a caller that must know the name first (mp-managers'
/// server registers it with its tracker before the segment exists).
///
/// ```
/// let name = mp_shm::random_name()?;
/// assert!(name.starts_with("psm_") && name.len() == 12);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`create`]: ShmOptions::create
pub fn random_name() -> io::Result<String> {
    let mut bytes = [0u8; 4];
    mp_sys::random::fill(&mut bytes)?;
    Ok(format!("psm_{:08x}", u32::from_be_bytes(bytes)))
}

/// Checks a name and returns it without leading slashes, and its POSIX form (`/name`).
pub(crate) fn posix_name(name: &str) -> Result<(String, CString), ShmError> {
    let invalid = |reason| ShmError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let bare = name.trim_start_matches('/');
    if bare.is_empty() || bare == "." || bare == ".." {
        return Err(invalid("empty"));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(invalid("longer than 255 bytes"));
    }
    if bare.contains('/') {
        return Err(invalid("contains a '/'"));
    }
    let posix = CString::new(format!("/{bare}")).map_err(|_| invalid("contains a NUL byte"))?;
    Ok((bare.to_owned(), posix))
}

impl SharedMemory {
    /// Options for [`create`](ShmOptions::create) and [`attach`](ShmOptions::attach).
    pub fn options() -> ShmOptions {
        ShmOptions {
            name: None,
            track: true,
        }
    }

    /// Creates a tracked segment of `size` bytes with a random name.
    pub fn create(size: usize) -> Result<SharedMemory, ShmError> {
        SharedMemory::options().create(size)
    }

    /// Attaches the segment called `name` (as Python's `SharedMemory(name)`).
    pub fn attach(name: &str) -> Result<SharedMemory, ShmError> {
        SharedMemory::options().name(name).attach()
    }

    /// The name, without the leading `/` (as Python's `.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes (0 after [`close`](SharedMemory::close)).
    pub fn size(&self) -> usize {
        self.map.as_ref().map_or(0, |_| self.size)
    }

    /// The first byte's address in this process (null after `close`).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ref().map_or(std::ptr::null_mut(), Mapping::ptr)
    }

    /// The bytes as a slice (Python's `.buf`).
    ///
    /// # Safety
    /// No process or thread may write the bytes while the slice lives, through any handle
    /// (`write_at` included): the writers have finished, or a lock or event orders them.
    pub unsafe fn as_slice(&self) -> &[u8] {
        match &self.map {
            // SAFETY: the mapping has `size` bytes; the caller excludes concurrent writers.
            Some(m) => unsafe { std::slice::from_raw_parts(m.ptr(), self.size) },
            None => &[],
        }
    }

    /// The bytes as a mutable slice.
    ///
    /// # Safety
    /// No other process or thread may read or write the bytes while the slice lives, through
    /// any handle of the segment (`read_at` and `write_at` included).
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        match &self.map {
            // SAFETY: the mapping has `size` bytes; `&mut self` excludes this process's other
            // users of this handle, and the caller excludes other processes.
            Some(m) => unsafe { std::slice::from_raw_parts_mut(m.ptr(), self.size) },
            None => &mut [],
        }
    }

    fn range(&self, offset: usize, len: usize) -> Result<*mut u8, IndexError> {
        let end = offset.checked_add(len);
        match end {
            Some(end) if end <= self.size() => {
                // SAFETY: offset + len is within the mapping (checked).
                Ok(unsafe { self.as_ptr().add(offset) })
            }
            _ => Err(IndexError {
                index: offset.saturating_add(len),
                len: self.size(),
            }),
        }
    }

    /// Copies bytes from `offset` into `buf`. Safe whatever other processes or threads do
    /// meanwhile: the copy goes through relaxed atomics (one aligned 8-byte word at a time),
    /// so a racing write may be seen partly (a torn read), never undefined behaviour.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), IndexError> {
        let src = self.range(offset, buf.len())?;
        // SAFETY: `src..src+len` is inside the mapping, which lives as long as `&self`; safe
        // code reaches it only through these atomic copies (the slices are `unsafe`), and other
        // processes are outside this process's memory model.
        unsafe { atomic_copy::load(src, buf) };
        Ok(())
    }

    /// Copies `data` into the segment at `offset` (relaxed atomic stores, as `read_at`).
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), IndexError> {
        let dst = self.range(offset, data.len())?;
        // SAFETY: as in `read_at`, the other way.
        unsafe { atomic_copy::store(data, dst) };
        Ok(())
    }

    /// Unmaps this process's view (the segment and its name stay). Idempotent.
    pub fn close(&mut self) {
        self.map = None;
    }

    /// Removes the segment's name; processes that have it mapped keep their view.
    /// A second unlink gives [`ShmError::NotFound`].
    pub fn unlink(&self) -> Result<(), ShmError> {
        let (_, posix) = posix_name(&self.name)?;
        sys::shm_unlink(&posix).map_err(|e| open_error(e, &self.name))?;
        resource_tracker::unregister(&self.name);
        Ok(())
    }
}

/// Sent by name: the receiving process attaches it (Python pickles it by name too), and
/// fails with "not found" if it was unlinked meanwhile.
impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.name.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        SharedMemory::attach(&name).map_err(custom_error)
    }
}

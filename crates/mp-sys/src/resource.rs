//! This process's resource limits and usage, as Python's `resource`: `RLIMIT_CPU` and
//! `RLIMIT_DATA` (rustix's `getrlimit`/`setrlimit`), the CPU time used (`getrusage`, on libc:
//! rustix has none), and the sizes the kernel reports in `/proc/self` (resident set, data).
//!
//! Everything here allocates nothing and takes no lock: a forked child calls it before its
//! target runs, and a worker between tasks.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::process::Rlimit;

use crate::cvt;

/// A limit of [`limit`] and [`set_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resource {
    /// `RLIMIT_CPU`: CPU time (user and system, every thread), in whole seconds. At the soft
    /// limit the kernel sends SIGXCPU (whose default action ends the process), then once more
    /// per second; at the hard limit, SIGKILL.
    CpuSeconds,
    /// `RLIMIT_DATA`: bytes of private writable memory (`VmData`: the heap, anonymous and
    /// private file mappings that are writable; not shared mappings, not the main stack). A
    /// `brk` or `mmap` past it fails with `ENOMEM`.
    DataBytes,
}

impl Resource {
    fn rustix(self) -> rustix::process::Resource {
        match self {
            Resource::CpuSeconds => rustix::process::Resource::Cpu,
            Resource::DataBytes => rustix::process::Resource::Data,
        }
    }
}

/// Soft and hard values of a limit; `None` is unlimited (`RLIM_INFINITY`). The kernel enforces
/// the soft one; a process may raise it up to the hard one, and lower the hard one for good
/// (raising it needs `CAP_SYS_RESOURCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The value enforced.
    pub soft: Option<u64>,
    /// The ceiling of `soft`.
    pub hard: Option<u64>,
}

/// The calling process's limit of `resource` (`getrlimit`).
///
/// ```
/// use mp_sys::resource::{Resource, limit};
/// let data = limit(Resource::DataBytes);
/// assert!(data.soft <= data.hard || data.hard.is_none());
/// ```
#[inline]
pub fn limit(resource: Resource) -> Limit {
    let Rlimit { current, maximum } = rustix::process::getrlimit(resource.rustix());
    Limit {
        soft: current,
        hard: maximum,
    }
}

/// Sets the calling process's limit of `resource` (`setrlimit`). `InvalidInput` when `soft`
/// exceeds `hard`; `PermissionDenied` when it raises `hard` without `CAP_SYS_RESOURCE`.
///
/// ```
/// use mp_sys::resource::{Limit, Resource, limit, set_limit};
/// let now = limit(Resource::CpuSeconds);
/// set_limit(Resource::CpuSeconds, now)?; // unchanged
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn set_limit(resource: Resource, limit: Limit) -> io::Result<()> {
    let new = Rlimit {
        current: limit.soft,
        maximum: limit.hard,
    };
    Ok(rustix::process::setrlimit(resource.rustix(), new)?)
}

/// The CPU time this process has used, user and system, over all its threads, dead ones
/// included (`getrusage(RUSAGE_SELF)`; on libc: rustix has none): what `RLIMIT_CPU` counts.
///
/// ```
/// let used = mp_sys::resource::cpu_time()?;
/// assert!(used < std::time::Duration::from_secs(365 * 86400));
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn cpu_time() -> io::Result<Duration> {
    let mut usage = MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given, which lives across the call.
    cvt(unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) })?;
    // SAFETY: getrusage succeeded, so it wrote the whole struct.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

/// The calling process's resident set size in bytes: its pages in RAM now (the second field
/// of `/proc/self/statm`, in pages), shared ones included. Read into a stack buffer.
///
/// ```
/// let rss = mp_sys::resource::resident_size()?;
/// assert!(rss > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn resident_size() -> io::Result<u64> {
    let mut buf = [0u8; 256];
    let text = read_proc(c"/proc/self/statm", &mut buf)?;
    let pages = text
        .split(|b| *b == b' ')
        .nth(1)
        .and_then(parse_decimal)
        .ok_or_else(|| malformed("/proc/self/statm"))?;
    Ok(pages.saturating_mul(rustix::param::page_size() as u64))
}

/// The calling process's data size in bytes: `VmData` of `/proc/self/status`, which is what
/// [`Resource::DataBytes`] limits. Read into a stack buffer.
///
/// ```
/// let data = mp_sys::resource::data_size()?;
/// assert!(data > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn data_size() -> io::Result<u64> {
    // The status file is 1.5 KiB or so; `VmData` is in its first half.
    let mut buf = [0u8; 4096];
    let text = read_proc(c"/proc/self/status", &mut buf)?;
    let key = b"\nVmData:";
    let at = text
        .windows(key.len())
        .position(|w| w == key)
        .ok_or_else(|| malformed("/proc/self/status"))?;
    let kib = text[at + key.len()..]
        .split(|b| *b == b'\n')
        .next()
        .and_then(|line| {
            line.split(|b| *b == b' ' || *b == b'\t')
                .find(|w| !w.is_empty())
        })
        .and_then(parse_decimal)
        .ok_or_else(|| malformed("/proc/self/status"))?;
    Ok(kib.saturating_mul(1024))
}

/// Reads a small `/proc` file into `buf` (as much as fits): no allocation.
fn read_proc<'b>(path: &CStr, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    let fd = crate::retry(|| rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()))?;
    let mut len = 0;
    while len < buf.len() {
        match crate::fd::read(std::os::fd::AsFd::as_fd(&fd), &mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    Ok(&buf[..len])
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

fn malformed(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

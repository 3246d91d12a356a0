//! The OS layer of [mp](https://docs.rs/mp-rs): one module per OS concept, typed with
//! `OwnedFd`/`BorrowedFd`.
//!
//! Built on rustix wherever rustix has the call (pipes, sockets and `SCM_RIGHTS`, pidfds,
//! `waitid`, `poll`, eventfds, `mmap`, `memfd_create`, `shm_open`, `fallocate`, futexes,
//! `gettid`, `getrandom`); on libc only for what rustix leaves out or cannot express
//! soundly: robust process-shared pthread mutexes, `tgkill`, `fork`, `posix_spawn`, `atexit`,
//! `pthread_atfork`, `sigaction`, `sigaltstack`, `pthread_getattr_np`, `dl_iterate_phdr`,
//! `getrusage`, `F_SETOWN`/`F_SETSIG`/`O_ASYNC`, `getauxval(AT_SECURE)`, `sysconf` and
//! `SO_PEERCRED` (rustix's `UCred` holds a non-zero `Pid`, but the kernel reports pid 0 for a socket without
//! a peer).
//!
//! Every `unsafe` OS call of mp-spawn, mp-ipc, mp-shm and mp-pool lives here.
//!
//! ```
//! let (r, w) = mp_sys::fd::pipe()?;
//! mp_sys::fd::write_all(std::os::fd::AsFd::as_fd(&w), b"hi")?;
//! let mut buf = [0u8; 2];
//! assert_eq!(mp_sys::fd::read(std::os::fd::AsFd::as_fd(&r), &mut buf)?, 2);
//! # Ok::<(), std::io::Error>(())
//! ```
// Feature badges on docs.rs (`--cfg docsrs`, nightly's `doc_cfg`).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "mp supports Linux only (with glibc or musl): it is built on pidfds, memfds, futexes, \
     robust process-shared mutexes, /proc/self/exe and .init_array. docs/DESIGN.md \
     (\"Other operating systems\") lists what a port to another system needs."
);

/// Items that exist on Linux only; elsewhere the crate is the one error above.
macro_rules! linux_only {
    ($($item:item)*) => { $( #[cfg(target_os = "linux")] $item )* };
}

linux_only! {

#[cfg(feature = "async")]
pub mod aio;
pub mod cgroup;
pub mod creds;
pub mod deadline;
pub mod eventfd;
pub mod fd;
pub mod fork;
pub mod futex;
pub mod le;
pub mod mmap;
pub mod parker;
pub mod pidfd;
pub mod poll;
pub mod process;
pub mod random;
pub mod resource;
pub mod robust_mutex;
pub mod shm;
pub mod signal;
pub mod socket;
pub mod stack;
pub mod thread;

/// Retries a call interrupted by a signal (`EINTR`).
#[inline]
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> std::io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(Into::into),
        }
    }
}

/// libc's `-1` convention to a `Result`.
fn cvt(ret: std::ffi::c_int) -> std::io::Result<std::ffi::c_int> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod test;
}

//! Thread stacks: where the calling thread's stack lies, and an alternate signal stack for a
//! handler that runs when the stack overflowed.

use std::io;
use std::mem::MaybeUninit;

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::cvt;

/// The page size.
///
/// ```
/// assert!(mp_sys::stack::page_size().is_power_of_two());
/// ```
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// The calling thread's stack: its lowest address (the guard area lies just below) and size
/// (on libc: `pthread_getattr_np`). For the main thread, whose stack the kernel grows on
/// demand, that is the most it may grow to (`RLIMIT_STACK`), as glibc reports it; musl
/// reports only what is mapped so far, so the limit is applied here.
///
/// ```
/// let (low, size) = mp_sys::stack::current_stack()?;
/// let here = &low as *const usize as usize;
/// assert!((low..low + size).contains(&here));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current_stack() -> io::Result<(usize, usize)> {
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_getattr_np initialises `attr` on success (checked) for the calling thread.
    let ret = unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` was initialised above; addr and size are valid out-pointers.
    let ret = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) };
    // SAFETY: `attr` was initialised by pthread_getattr_np and is destroyed once.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    let (low, size) = (addr as usize, size);
    #[cfg(not(target_env = "gnu"))]
    if let Some(grown) = main_stack_low_end(low.saturating_add(size).saturating_sub(1)) {
        let high = low.saturating_add(size);
        if grown < low {
            return Ok((grown, high - grown));
        }
    }
    Ok((low, size))
}

/// If `addr` lies in the main thread's stack (the kernel's `[stack]` mapping, which grows
/// down on demand), the lowest address it may grow to: its end minus `RLIMIT_STACK`, as glibc
/// computes it.
#[cfg(not(target_env = "gnu"))]
fn main_stack_low_end(addr: usize) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let end = maps.lines().filter(|l| l.ends_with("[stack]")).find_map(|line| {
        let range = line.split(' ').next()?;
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start..end).contains(&addr).then_some(end)
    })?;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Stack).current?;
    let limit = usize::try_from(limit).ok()?;
    Some(end.saturating_sub(limit) & !(page_size() - 1))
}

/// Gives the calling thread an alternate signal stack of `size` bytes, unless it has one of at
/// least `keep` bytes already (std's, in a forked child). The memory is leaked: a handler may
/// need it until the process ends. `sigaltstack` is on libc: rustix has none.
///
/// ```
/// mp_sys::stack::ensure_alt_stack(16 * 1024, 64 * 1024)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn ensure_alt_stack(keep: usize, size: usize) -> io::Result<()> {
    let mut old = MaybeUninit::<libc::stack_t>::uninit();
    // SAFETY: a null new stack only queries; `old` is a valid out-pointer.
    cvt(unsafe { libc::sigaltstack(std::ptr::null(), old.as_mut_ptr()) })?;
    // SAFETY: sigaltstack succeeded, so it filled `old`.
    let old = unsafe { old.assume_init() };
    if old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= keep {
        return Ok(());
    }
    let page = page_size();
    let len = size.div_ceil(page) * page + page;
    // SAFETY: a fresh anonymous private mapping at an address the kernel picks; nothing else
    // refers to it.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::STACK,
        )
    }?;
    // A guard page below, so that a handler overflowing the alternate stack faults (and the
    // kernel then kills the process) instead of writing over whatever lies below.
    // SAFETY: the first page of the mapping made above, which nothing uses yet.
    unsafe { rustix::mm::mprotect(base, page, MprotectFlags::empty()) }?;
    let new = libc::stack_t {
        // SAFETY: `page` is inside the mapping of `len > page` bytes.
        ss_sp: unsafe { base.cast::<u8>().add(page) }.cast(),
        ss_flags: 0,
        ss_size: len - page,
    };
    // SAFETY: `new` describes leaked memory that stays mapped for the life of the process.
    cvt(unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) })?;
    Ok(())
}

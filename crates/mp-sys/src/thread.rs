//! Threads: the calling thread's id (as robust futex words hold it), whether an id is a live
//! thread of this process, and giving up the CPU. On rustix, except `tgkill` (rustix has no
//! call to signal one thread of a thread group) and `pthread_atfork`.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

static FORGET_AFTER_FORK: Once = Once::new();

extern "C" fn forget_thread_id() {
    // The forking thread is the child's only thread; its cached id is the parent's.
    TID.with(|tid| tid.set(0));
}

/// This thread's id, as robust futex words hold it (unique system-wide among live threads);
/// cached per thread, and forgotten in a forked child.
///
/// ```
/// let me = mp_sys::thread::id();
/// assert!(mp_sys::thread::is_of_this_process(me));
/// ```
#[inline]
pub fn id() -> u32 {
    TID.with(|cached| {
        let tid = cached.get();
        if tid != 0 {
            return tid;
        }
        FORGET_AFTER_FORK.call_once(|| {
            // SAFETY: registering a plain extern "C" function with no state; it only touches
            // this thread's thread-local.
            unsafe { libc::pthread_atfork(None, None, Some(forget_thread_id)) };
        });
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        cached.set(tid);
        tid
    })
}

/// Whether `tid` is a live thread of this process.
///
/// ```
/// assert!(mp_sys::thread::is_of_this_process(mp_sys::thread::id()));
/// assert!(!mp_sys::thread::is_of_this_process(0));
/// ```
pub fn is_of_this_process(tid: u32) -> bool {
    let Ok(tid) = libc::pid_t::try_from(tid) else {
        return false;
    };
    if tid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the thread exists in our thread group; nothing is sent.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) == 0 }
}

/// Gives up the CPU (the middle step of a spin-then-sleep wait).
///
/// ```
/// mp_sys::thread::yield_now();
/// ```
#[inline]
pub fn yield_now() {
    rustix::thread::sched_yield();
}

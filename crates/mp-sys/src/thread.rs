//! Threads: the calling thread's id (as robust futex words hold it), whether an id is a live
//! thread of this process, and giving up the CPU. On rustix, except `tgkill` (rustix has no
//! call to signal one thread of a thread group).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
    /// This thread's [`token`], once computed (one TLS read on the lock paths).
    static TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// A random number drawn once per process (0: not yet; redrawn in a forked child).
static PROCESS_NONCE: AtomicU32 = AtomicU32::new(0);

/// Registered before the cache is first filled: the forking thread is the child's only thread, and its
/// cached id, token and the nonce are the parent's.
pub(crate) static FORGET_IDS: crate::fork::AtFork =
    crate::fork::AtFork::in_child(crate::fork::Rank::THREAD_IDS, || {
        TID.with(|tid| tid.set(0));
        TOKEN.with(|token| token.set(0));
        PROCESS_NONCE.store(0, Ordering::Relaxed);
    });

/// Makes forked children forget the cached thread id and token: registers that action with
/// [`fork`](crate::fork) (every cache of mp-sys registers its own reset before it is first
/// filled, so calling this is never needed; kept for callers of this name).
///
/// ```
/// mp_sys::thread::forget_ids_after_fork();
/// ```
pub fn forget_ids_after_fork() {
    FORGET_IDS.register();
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
        // Before the cache is filled (see `FORGET_IDS`).
        FORGET_IDS.register();
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        cached.set(tid);
        tid
    })
}

/// A token naming the calling thread for a lock's holder word: its id in the low half, and a
/// random number drawn once per process in the high half. Unique among live threads, and a
/// dead thread's token matches a live one's only if both the thread id was reused and the
/// random halves agree (1 in 2^32), where a bare id would match whenever it is reused.
///
/// ```
/// let me = mp_sys::thread::token();
/// assert_eq!(me as u32, mp_sys::thread::id());
/// assert_eq!(me, mp_sys::thread::token());
/// assert!(mp_sys::thread::is_ours(me));
/// let other = std::thread::spawn(mp_sys::thread::token).join().unwrap();
/// assert_ne!(other, me);
/// assert_eq!(other >> 32, me >> 32);
/// ```
#[inline]
pub fn token() -> u64 {
    TOKEN.with(|cached| {
        let token = cached.get();
        if token != 0 {
            return token;
        }
        let token = new_token();
        cached.set(token);
        token
    })
}

fn new_token() -> u64 {
    let tid = id();
    let mut nonce = PROCESS_NONCE.load(Ordering::Relaxed);
    if nonce == 0 {
        let mut bytes = [0u8; 4];
        // getrandom does not fail for 4 bytes on Linux >= 3.17; a fallback keeps it nonzero.
        let _ = crate::random::fill(&mut bytes);
        let drawn = u32::from_ne_bytes(bytes).max(1);
        nonce = match PROCESS_NONCE.compare_exchange(0, drawn, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => drawn,
            Err(winner) => winner,
        };
    }
    u64::from(nonce) << 32 | u64::from(tid)
}

/// Whether `token` (from [`token`]) names a live thread of this process.
pub fn is_ours(token: u64) -> bool {
    token >> 32 == u64::from(PROCESS_NONCE.load(Ordering::Relaxed))
        && token >> 32 != 0
        && is_of_this_process(token as u32)
}

/// Whether `tid` is a live thread of this process.
///
/// ```
/// assert!(mp_sys::thread::is_of_this_process(mp_sys::thread::id()));
/// assert!(!mp_sys::thread::is_of_this_process(0));
/// ```
pub fn is_of_this_process(tid: u32) -> bool {
    crate::fork::is_of_this_process(tid)
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

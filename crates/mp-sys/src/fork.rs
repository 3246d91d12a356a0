//! Fork safety, in one place: the one `pthread_atfork` registration of mp, the ranked list of
//! locks that mp's forks hold across `fork()`, the actions every fork runs, and a once-cell
//! that a fork cannot leave half-initialised.
//!
//! A forked child has one thread, the one that called `fork`; every other thread of the parent
//! is gone, with whatever it was doing. A lock one of them held stays locked in the child for
//! ever, a cache it was filling stays half-filled, and a descriptor or signal handler the
//! parent set up for its own threads is the parent's.
//!
//! # Adding a static? Here is what to do
//!
//! | the static is | do | why |
//! | --- | --- | --- |
//! | a `Mutex` (or other lock) a forked child may take (mp's child path, a target, code a target calls) | give it a [`Rank`] in the table below and register a [`Hold`] before first use | mp's forks take it across `fork()`, in rank order, so the child finds it unlocked and consistent |
//! | a value computed once (`OnceLock`, `LazyLock`) that a child may read or fill | a [`ForkOnce`] | an initialisation another thread was running at the fork is taken over in the child instead of waited for for ever |
//! | a cache that is wrong in a child (this process's pid, a thread id, a signal handler's socket, a token drawn per process) | an [`AtFork::in_child`] action that resets it, registered before the cache is first filled | runs in every forked child, whoever forks (not only mp) |
//! | per-process state a new mp child must set up before its target (spawn and forkserver children too: install a forwarder, drop the parent's connections) | a `mp_spawn::resources::CHILD_START` hook | runs at the start of every mp child, under every start method, after the locks are released, so it may lock and allocate |
//! | read only in the process that set it, never by a child | nothing | say so in a comment beside it |
//!
//! Rules that make the above hold:
//! - Code in a forked child never touches a lock another thread may hold: only ranked holds
//!   (held across mp's forks), and locks of its own making.
//! - A ranked lock is never taken while one of a higher rank is held (holding a lower one and
//!   taking a higher one is fine): mp's forks take them lowest first, and any other order could
//!   deadlock against a fork. Nothing is printed while one is held (std's stdout and stderr
//!   are the lowest ranks), and no hold is registered while one is held.
//! - An [`AtFork`] action runs inside `fork()` (the `pthread_atfork` handlers): it allocates
//!   nothing and takes no lock another thread may hold (atomics, the forking thread's
//!   thread-locals, system calls); the one exception is a leaf lock that a prepare action
//!   takes and its parent and child actions release (the mapping holes' spin lock), under
//!   which nothing else is locked. A child action must be registered before the state it
//!   resets is first set, so that no fork sees the state without the action.
//! - The hold list covers forks made by mp (`mp_spawn`'s fork start method and fork helper);
//!   [`AtFork`] actions and [`ForkOnce`] cover every fork (`libc::fork` from anywhere).
//!
//! # The ranks
//!
//! One table, one total order (ranks are unique: registering a second hold or action at a
//! rank another one holds panics). Holds are taken lowest rank first; actions run lowest rank
//! first in each phase (prepare, then parent or child).
//!
//! | rank | constant | what | kind |
//! | --- | --- | --- | --- |
//! | 10 | [`Rank::STDOUT`] | std's stdout (flushed first: unflushed output would be printed twice) | hold, taken by [`Held::take`] |
//! | 20 | [`Rank::STDERR`] | std's stderr | hold, taken by [`Held::take`] |
//! | (30) | | the hold list's own lock (a forked child may register holds) | taken by [`Held::take`] |
//! | 100 | [`Rank::SPAWN_FORKSERVER`] | mp-spawn's forkserver connection | hold, taken by mp-spawn through [`Held::lock`] |
//! | 105 | [`Rank::SPAWN_FORKSERVER_PRELOAD`] | mp-spawn's forkserver preload list (read under the connection) | hold |
//! | 110 | [`Rank::SPAWN_PROCESS_STATE`] | mp-spawn's process state (name, children, lifeline) | hold, through [`Held::lock`] |
//! | 120 | [`Rank::SPAWN_RESOURCES`] | mp-spawn's shared descriptors | hold, through [`Held::lock`] |
//! | 200 | [`Rank::LOG_STATE`] | mp-log's forwarding state | hold |
//! | 300 | [`Rank::MANAGERS_CLIENTS`] | mp-managers' session list | hold |
//! | 400 | [`Rank::SHM_ARRAY_CACHE`] | mp-shm's cache of mapped shared arrays | hold |
//! | 410 | [`Rank::SHM_LINGERER`] | mp-shm's lingering array | hold |
//! | 500 | [`Rank::POOL_INTERRUPT`] | mp-pool's SIGINT registry | hold |
//! | 1000.. | | holds registered with [`hold_unranked`] (`mp_spawn::hold_across_fork`), in registration order | hold |
//! | 10000 | [`Rank::PID_CACHE`] | forget the cached pid (`process::getpid`) | child action |
//! | 10010 | [`Rank::THREAD_IDS`] | forget the cached thread id and token, redraw the process nonce (`thread`) | child action |
//! | 10020 | [`Rank::SIGNAL_HANDLERS`] | reset the `signal::send_byte_on` handlers (their sockets are the parent's) | child action |
//! | 10030 | [`Rank::MMAP_HOLES`] | private pages over mappings kept from forks (`mmap::Mapping::keep_from_forks`) | prepare, parent and child actions |
//! | 10100 | [`Rank::SHM_HOLDER_TOKEN`] | forget mp-shm's holder token (it names the process) | child action |
//!
//! A [`ForkOnce`] needs no rank: it holds no lock.

use std::any::Any;
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A place in the one order of fork safety (see the table in the [module docs](self)): holds
/// are taken, and actions run, lowest rank first. Each rank belongs to one hold or action.
///
/// ```
/// use mp_sys::fork::Rank;
/// assert!(Rank::STDOUT < Rank::SPAWN_FORKSERVER);
/// assert!(Rank::SPAWN_RESOURCES < Rank::LOG_STATE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rank(u16);

impl Rank {
    /// std's stdout lock (taken by [`Held::take`]).
    pub const STDOUT: Rank = Rank(10);
    /// std's stderr lock (taken by [`Held::take`]).
    pub const STDERR: Rank = Rank(20);
    /// mp-spawn's forkserver connection.
    pub const SPAWN_FORKSERVER: Rank = Rank(100);
    /// mp-spawn's forkserver preload list (read under the connection's lock).
    pub const SPAWN_FORKSERVER_PRELOAD: Rank = Rank(105);
    /// mp-spawn's process state.
    pub const SPAWN_PROCESS_STATE: Rank = Rank(110);
    /// mp-spawn's shared descriptors.
    pub const SPAWN_RESOURCES: Rank = Rank(120);
    /// mp-log's forwarding state.
    pub const LOG_STATE: Rank = Rank(200);
    /// mp-managers' session list.
    pub const MANAGERS_CLIENTS: Rank = Rank(300);
    /// mp-shm's cache of mapped shared arrays.
    pub const SHM_ARRAY_CACHE: Rank = Rank(400);
    /// mp-shm's lingering array.
    pub const SHM_LINGERER: Rank = Rank(410);
    /// mp-pool's SIGINT registry.
    pub const POOL_INTERRUPT: Rank = Rank(500);
    /// The first rank of [`hold_unranked`]'s holds, after every ranked hold.
    const UNRANKED: Rank = Rank(1000);
    /// The end of the holds' ranks.
    const HOLDS_END: Rank = Rank(10000);
    /// Action: forget the cached pid.
    pub const PID_CACHE: Rank = Rank(10000);
    /// Action: forget the cached thread id, token and process nonce.
    pub const THREAD_IDS: Rank = Rank(10010);
    /// Action: reset the `signal::send_byte_on` handlers.
    pub const SIGNAL_HANDLERS: Rank = Rank(10020);
    /// Actions: private pages over the mappings kept from forks.
    pub const MMAP_HOLES: Rank = Rank(10030);
    /// Action: forget mp-shm's holder token.
    pub const SHM_HOLDER_TOKEN: Rank = Rank(10100);

    /// The rank as a number (for messages).
    ///
    /// ```
    /// assert_eq!(mp_sys::fork::Rank::STDOUT.get(), 10);
    /// ```
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// Takes a lock and returns its guard, type-erased (`Box::new(M.lock())`): what a [`Hold`]
/// holds across a fork.
pub type Take = fn() -> Box<dyn Any>;

/// The holds registered so far, sorted by rank.
#[derive(Debug)]
struct HoldList {
    entries: Vec<(Rank, Take)>,
}

/// Why a hold was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// Another hold has this rank.
    Taken(Rank),
    /// The rank is not one a registered hold may have.
    NotAHoldRank(Rank),
}

impl HoldList {
    const fn new() -> HoldList {
        HoldList {
            entries: Vec::new(),
        }
    }

    /// Adds `take` at `rank`; the same pair again is a no-op.
    fn register(&mut self, rank: Rank, take: Take) -> Result<(), Refused> {
        if rank <= Rank::STDERR || rank >= Rank::UNRANKED {
            return Err(Refused::NotAHoldRank(rank));
        }
        self.insert(rank, take)
    }

    fn insert(&mut self, rank: Rank, take: Take) -> Result<(), Refused> {
        match self.entries.binary_search_by_key(&rank, |e| e.0) {
            Ok(i) if std::ptr::fn_addr_eq(self.entries[i].1, take) => Ok(()),
            Ok(_) => Err(Refused::Taken(rank)),
            Err(i) => {
                self.entries.insert(i, (rank, take));
                Ok(())
            }
        }
    }

    /// Adds `take` after every other hold, unless it is there already.
    fn register_unranked(&mut self, take: Take) -> Result<(), Refused> {
        let unranked = self.entries.iter().filter(|e| e.0 >= Rank::UNRANKED);
        if unranked.clone().any(|e| std::ptr::fn_addr_eq(e.1, take)) {
            return Ok(());
        }
        let rank = Rank::UNRANKED.0.saturating_add(unranked.count() as u16);
        if rank >= Rank::HOLDS_END.0 {
            return Err(Refused::NotAHoldRank(Rank(rank)));
        }
        self.insert(Rank(rank), take)
    }

    fn has(&self, rank: Rank) -> bool {
        self.entries.binary_search_by_key(&rank, |e| e.0).is_ok()
    }

    /// Takes the holds from index `from` on whose rank is below `below`, in rank order; returns
    /// the index of the first one not taken.
    fn take_below(&self, from: usize, below: Rank, into: &mut Vec<Box<dyn Any>>) -> usize {
        let end = from + self.entries[from..].partition_point(|e| e.0 < below);
        into.extend(self.entries[from..end].iter().map(|e| (e.1)()));
        end
    }
}

static HOLDS: Mutex<HoldList> = Mutex::new(HoldList::new());

fn holds() -> MutexGuard<'static, HoldList> {
    // A panicking hold (or a panic under it) must not wedge every later fork.
    HOLDS.lock().unwrap_or_else(|e| e.into_inner())
}

fn refused(refused: Refused) -> ! {
    match refused {
        Refused::Taken(rank) => panic!(
            "mp_sys::fork: two holds claim rank {} (ranks are unique: see the table in \
             mp_sys::fork)",
            rank.0
        ),
        Refused::NotAHoldRank(rank) => panic!(
            "mp_sys::fork: rank {} is not one a registered hold may have (see the table in \
             mp_sys::fork)",
            rank.0
        ),
    }
}

/// A lock that every fork made by mp holds across the `fork()` call, at its [`Rank`]: a
/// forked child finds it unlocked, and the state it guards as no other thread was changing
/// it. Declared as a static next to the lock; [`register`](Hold::register) it before the lock
/// is first taken (cheap after the first call).
///
/// ```
/// use std::sync::Mutex;
/// use mp_sys::fork::{Hold, Rank};
///
/// static STATE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// // In mp, each crate's rank is a constant of the table in `mp_sys::fork`.
/// static HOLD: Hold = Hold::new(Rank::SHM_LINGERER, || Box::new(STATE.lock()));
///
/// fn state() -> std::sync::MutexGuard<'static, Vec<u32>> {
///     HOLD.register();
///     STATE.lock().unwrap()
/// }
/// state().push(1);
/// ```
#[derive(Debug)]
pub struct Hold {
    rank: Rank,
    take: Take,
    registered: AtomicBool,
}

impl Hold {
    /// A hold of the lock that `take` takes, at `rank`.
    ///
    /// ```
    /// static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    /// static HOLD: mp_sys::fork::Hold =
    ///     mp_sys::fork::Hold::new(mp_sys::fork::Rank::POOL_INTERRUPT, || Box::new(M.lock()));
    /// ```
    pub const fn new(rank: Rank, take: Take) -> Hold {
        Hold {
            rank,
            take,
            registered: AtomicBool::new(false),
        }
    }

    /// Adds this hold to the list mp's forks take (once; later calls are one atomic load).
    /// Not a `Once`: one running in another thread at a fork would hang the child's first call.
    ///
    /// # Panics
    /// If another hold has this rank, or the rank is not a hold's (std's, or the ones of
    /// [`hold_unranked`]): the order must be total.
    ///
    /// ```
    /// static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    /// static HOLD: mp_sys::fork::Hold =
    ///     mp_sys::fork::Hold::new(mp_sys::fork::Rank::POOL_INTERRUPT, || Box::new(M.lock()));
    /// HOLD.register();
    /// HOLD.register(); // registered once
    /// ```
    pub fn register(&'static self) {
        if self.registered.load(Ordering::Acquire) {
            return;
        }
        let result = holds().register(self.rank, self.take);
        // Panics after the list's lock is released: it stays usable.
        result.unwrap_or_else(|e| refused(e));
        self.registered.store(true, Ordering::Release);
    }
}

/// Registers `take` after every ranked hold, in registration order: the holds of code outside
/// mp (`mp_spawn::hold_across_fork`). Registering the same function twice registers it once.
///
/// ```
/// static CACHE: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
/// mp_sys::fork::hold_unranked(|| Box::new(CACHE.lock()));
/// ```
pub fn hold_unranked(take: Take) {
    let result = holds().register_unranked(take);
    result.unwrap_or_else(|e| refused(e));
}

/// Everything held across one fork, released on each side when dropped: std's stdout and
/// stderr, the hold list, and every registered [`Hold`], taken in rank order. A fork call site
/// takes its own typed locks through [`Held::lock`] at their ranks, then the rest with
/// [`Held::take_rest`], and forks.
///
/// ```
/// use mp_sys::fork::{Held, Rank};
/// use mp_sys::process::{Forked, exit_now, fork};
///
/// static STATE: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
///
/// let mut held = Held::take();
/// let state = held.lock(Rank::SPAWN_PROCESS_STATE, || STATE.lock().unwrap());
/// held.take_rest();
/// // SAFETY: the child only reads a value whose lock this thread holds, and `_exit`s.
/// let forked = unsafe { fork() }?;
/// if forked == Forked::Child {
///     exit_now(*state as i32);
/// }
/// drop((state, held));
/// if let Forked::Parent(pid) = forked {
///     mp_sys::process::reap_pid_blocking(pid);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Held {
    // Field order is drop order: the registered holds, the list, then std's locks.
    taken: Vec<Box<dyn Any>>,
    list: MutexGuard<'static, HoldList>,
    /// Index in `list` of the first hold not taken yet.
    next: usize,
    /// The highest rank taken through `lock`.
    last: Rank,
    _stderr: std::io::StderrLock<'static>,
    _stdout: std::io::StdoutLock<'static>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("taken", &self.taken.len())
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Held {
    /// Takes std's stdout (flushed) and stderr, then the hold list's lock. The calling thread
    /// must hold no ranked lock.
    ///
    /// ```
    /// let held = mp_sys::fork::Held::take();
    /// drop(held);
    /// ```
    pub fn take() -> Held {
        let mut stdout = std::io::stdout().lock();
        // Unflushed output would be printed twice, once by each process.
        let _ = stdout.flush();
        let stderr = std::io::stderr().lock();
        Held {
            taken: Vec::new(),
            list: holds(),
            next: 0,
            last: Rank::STDERR,
            _stderr: stderr,
            _stdout: stdout,
        }
    }

    /// Takes every registered hold ranked below `rank`, then the caller's own lock of that
    /// rank (`lock`, whose guard the caller keeps, typed, and drops after the fork before this
    /// `Held`).
    ///
    /// # Panics
    /// If `rank` is not above the last one taken, or a registered hold has it.
    ///
    /// ```
    /// static FORKSERVER: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);
    /// let mut held = mp_sys::fork::Held::take();
    /// let server = held.lock(mp_sys::fork::Rank::SPAWN_FORKSERVER, || FORKSERVER.lock());
    /// held.take_rest();
    /// drop((server, held));
    /// ```
    pub fn lock<G>(&mut self, rank: Rank, lock: impl FnOnce() -> G) -> G {
        assert!(
            rank > self.last && rank < Rank::UNRANKED,
            "mp_sys::fork: rank {} taken out of order (after {})",
            rank.0,
            self.last.0
        );
        assert!(
            !self.list.has(rank),
            "mp_sys::fork: rank {} belongs to a registered hold",
            rank.0
        );
        self.next = self.list.take_below(self.next, rank, &mut self.taken);
        self.last = rank;
        lock()
    }

    /// Takes every registered hold not taken yet.
    ///
    /// ```
    /// let mut held = mp_sys::fork::Held::take();
    /// held.take_rest();
    /// ```
    pub fn take_rest(&mut self) {
        self.next = self
            .list
            .take_below(self.next, Rank(u16::MAX), &mut self.taken);
    }
}

/// What every fork runs inside `fork()`, at a [`Rank`]: `prepare` in the forking thread before
/// the fork, then `parent` in it after, or `child` in the new process. mp-sys's one
/// `pthread_atfork` handler runs the registered actions of each phase in rank order.
///
/// An action allocates nothing and takes no lock another thread may hold (see the module docs).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use mp_sys::fork::{AtFork, Rank};
///
/// static TOKEN: AtomicU64 = AtomicU64::new(0);
/// // A child draws its own token: the parent's names the parent.
/// static FORGET_TOKEN: AtFork = AtFork::in_child(Rank::SHM_HOLDER_TOKEN, || {
///     TOKEN.store(0, Ordering::Relaxed)
/// });
///
/// FORGET_TOKEN.register(); // before the token is first set
/// TOKEN.store(42, Ordering::Relaxed);
/// ```
#[derive(Debug)]
pub struct AtFork {
    rank: Rank,
    prepare: Option<fn()>,
    parent: Option<fn()>,
    child: Option<fn()>,
}

impl AtFork {
    /// An action that resets state in every forked child: the registry of "reset in the child".
    ///
    /// ```
    /// static RESET: mp_sys::fork::AtFork =
    ///     mp_sys::fork::AtFork::in_child(mp_sys::fork::Rank::SHM_HOLDER_TOKEN, || {});
    /// ```
    pub const fn in_child(rank: Rank, child: fn()) -> AtFork {
        AtFork {
            rank,
            prepare: None,
            parent: None,
            child: Some(child),
        }
    }

    /// Actions around every fork: `prepare` before, then `parent` or `child` after (a spin
    /// lock taken before and released on both sides, say).
    ///
    /// ```
    /// fn nothing() {}
    /// static AROUND: mp_sys::fork::AtFork =
    ///     mp_sys::fork::AtFork::around(mp_sys::fork::Rank::MMAP_HOLES, nothing, nothing, nothing);
    /// ```
    pub const fn around(rank: Rank, prepare: fn(), parent: fn(), child: fn()) -> AtFork {
        AtFork {
            rank,
            prepare: Some(prepare),
            parent: Some(parent),
            child: Some(child),
        }
    }

    /// Makes every fork from now on run this action (registering it again is a no-op). Lock-free,
    /// so it may be called anywhere, in a forked child too.
    ///
    /// # Panics
    /// If another action has this rank, or more than 32 actions are registered.
    ///
    /// ```
    /// static RESET: mp_sys::fork::AtFork =
    ///     mp_sys::fork::AtFork::in_child(mp_sys::fork::Rank::SHM_HOLDER_TOKEN, || {});
    /// RESET.register();
    /// ```
    pub fn register(&'static self) {
        install();
        add_action(self);
    }
}

/// The registered actions: filled from the front, never emptied (a fixed table, so that the
/// handlers neither lock nor allocate to read it).
static ACTIONS: [AtomicPtr<AtFork>; 32] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 32];

fn add_action(action: &'static AtFork) {
    let ptr = std::ptr::from_ref(action).cast_mut();
    let mut added = false;
    for slot in &ACTIONS {
        match slot.compare_exchange(std::ptr::null_mut(), ptr, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                added = true;
                break;
            }
            Err(there) if there == ptr => return,
            Err(_) => {}
        }
    }
    assert!(added, "mp_sys::fork: more than 32 fork actions");
    // Scanned after the insert: of two racing registrations of one rank, the later sees the
    // earlier.
    let claims = actions().filter(|a| a.rank == action.rank).count();
    assert!(
        claims == 1,
        "mp_sys::fork: two fork actions claim rank {} (ranks are unique: see the table in \
         mp_sys::fork)",
        action.rank.0
    );
}

fn actions() -> impl Iterator<Item = &'static AtFork> {
    ACTIONS.iter().map_while(|slot| {
        // SAFETY: a slot holds null or a pointer from a `&'static AtFork` (`add_action`).
        unsafe { slot.load(Ordering::Acquire).as_ref() }
    })
}

thread_local! {
    /// How many actions the current fork's `prepare` ran over: its `parent` or `child` runs
    /// over the same ones (one registered meanwhile would be released without being taken).
    /// The forking thread's own: two threads may fork at once, and a child keeps this thread's.
    static PREPARED: Cell<usize> = const { Cell::new(0) };
}

/// Runs `phase` of the first `count` actions, lowest rank first. No allocation, no lock: a
/// selection over at most 32 entries.
fn run(count: usize, phase: fn(&AtFork) -> Option<fn()>) {
    let mut last: Option<Rank> = None;
    loop {
        let next = actions()
            .take(count)
            .filter(|a| last.is_none_or(|l| a.rank > l))
            .min_by_key(|a| a.rank);
        let Some(action) = next else {
            return;
        };
        if let Some(f) = phase(action) {
            f();
        }
        last = Some(action.rank);
    }
}

extern "C" fn prepare() {
    let count = actions().count();
    PREPARED.with(|p| p.set(count));
    run(count, |a| a.prepare);
}

extern "C" fn parent() {
    run(PREPARED.with(Cell::get), |a| a.parent);
}

extern "C" fn child() {
    // First: a `ForkOnce` being filled by another thread of the parent is this child's to fill.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // A child of a fork made while another thread was installing: the handler is here.
    INSTALL.store(INSTALLED, Ordering::Release);
    run(PREPARED.with(Cell::get), |a| a.child);
}

const INSTALLED: u32 = u32::MAX;
/// 0: not installed; [`INSTALLED`]; else the thread id of the thread installing it.
static INSTALL: AtomicU32 = AtomicU32::new(0);

/// Whether `tid` is a live thread of this process (here, below `thread`, because installing
/// the handler needs it and `thread` registers an action).
pub(crate) fn is_of_this_process(tid: u32) -> bool {
    let Ok(tid) = libc::pid_t::try_from(tid) else {
        return false;
    };
    if tid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the thread exists in our thread group; nothing is sent.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) == 0 }
}

/// Registers mp's one `pthread_atfork` handler (on libc: rustix has none). Idempotent, and one
/// atomic load once done. mp-spawn calls it before `main`. mp-sys's own actions (forget the
/// cached pid and thread ids, reset the signal-to-socket handlers, the mappings kept from
/// forks) are registered by their modules, each before it first needs its reset (before it
/// caches a value, installs a handler, keeps a mapping), so that this module names none of
/// them.
///
/// Not a `Once`: one running in another thread at a fork would leave the child's copy running
/// for ever. An install that another thread of the parent had begun is finished by the child.
///
/// ```
/// mp_sys::fork::install();
/// ```
#[inline]
pub fn install() {
    if INSTALL.load(Ordering::Acquire) != INSTALLED {
        install_slow();
    }
}

#[cold]
fn install_slow() {
    let me = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    loop {
        match INSTALL.load(Ordering::Acquire) {
            INSTALLED => return,
            // Another live thread of this process installs it: it is quick.
            t if t != 0 && is_of_this_process(t) => std::thread::yield_now(),
            // Nobody, or a thread this process does not have (the parent's, at the fork).
            t => {
                if INSTALL
                    .compare_exchange(t, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    break;
                }
            }
        }
    }
    // SAFETY: three plain extern "C" fns; they run the registered actions, which allocate
    // nothing and take no lock another thread may hold (the rule of `AtFork`).
    let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    // ENOMEM only: without the handler no fork would be safe.
    assert_eq!(r, 0, "mp_sys::fork: pthread_atfork failed");
    INSTALL.store(INSTALLED, Ordering::Release);
}

/// How many forks separate this process from the first one of its line (each child adds one):
/// a state stamped with this process's generation was set here, any other by an ancestor.
static GENERATION: AtomicU32 = AtomicU32::new(1);

mod once;
pub use once::ForkOnce;

#[cfg(test)]
mod test;

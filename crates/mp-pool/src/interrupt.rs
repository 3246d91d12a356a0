//! Ctrl-C: a SIGINT that arrives while a thread waits on a pool ends that wait with
//! [`PoolError::Interrupted`](crate::PoolError::Interrupted) and terminates the pools of this
//! process, so that nothing hangs and no worker prints a traceback (workers ignore SIGINT;
//! bpo-8296). A SIGINT that arrives while nobody waits ends the program as it always does.
//!
//! The handler is installed while a pool exists, and only if SIGINT has its default
//! disposition: a program with its own handler keeps it (and gets no `Interrupted`).
//! The handler sends a byte on a socket; a watcher thread does the rest outside the handler.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A pool, as SIGINT sees it: something to terminate. (A trait, so that this module needs
/// nothing from the pool's.)
pub(crate) trait Terminate: Send + Sync {
    /// Kills the workers and fails every unfinished chunk.
    fn terminate(&self);
}

/// A job a thread waits on, as SIGINT sees it: something to wake.
pub(crate) trait Wake: Send + Sync {
    /// Wakes every waiter.
    fn wake(&self);
}

/// Bumped by every SIGINT that interrupted waiters.
static EPOCH: AtomicU64 = AtomicU64::new(0);
/// The process whose handler is installed: a forked child inherits the registry below but
/// not the watcher thread, and must leave both alone (its SIGINT disposition is back to the
/// default: mp-sys resets it at every fork).
static OWNER: AtomicU32 = AtomicU32::new(0);

struct Registry {
    /// The handler is installed (and the watcher runs).
    installed: bool,
    /// The handler, which owns the write end of the watcher's socket; the watcher holds the
    /// read end.
    handler: Option<mp_sys::signal::ByteOnSignal>,
    pools: Vec<Weak<dyn Terminate>>,
    waiters: Vec<(u64, Weak<dyn Wake>)>,
    next_waiter: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    installed: false,
    handler: None,
    pools: Vec::new(),
    waiters: Vec::new(),
    next_waiter: 0,
});

fn registry() -> MutexGuard<'static, Registry> {
    // A pool made in a forked child takes this lock: no fork may copy it held.
    static HOLD: mp_sys::fork::Hold =
        mp_sys::fork::Hold::new(mp_sys::fork::Rank::POOL_INTERRUPT, || {
            Box::new(lock_registry())
        });
    HOLD.register();
    lock_registry()
}

fn lock_registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn ours() -> bool {
    OWNER.load(Ordering::Relaxed) == std::process::id()
}

/// Registers a new pool, installing the handler on first use.
pub(crate) fn register_pool<P: Terminate + 'static>(pool: &Arc<P>) {
    let mut reg = registry();
    let pid = std::process::id();
    if OWNER.load(Ordering::Relaxed) != pid {
        // First pool of this process (or of a forked child: start afresh; dropping the
        // parent's handler here only closes this process's copy of its socket).
        OWNER.store(pid, Ordering::Relaxed);
        reg.installed = false;
        reg.handler = None;
        reg.pools.clear();
        reg.waiters.clear();
    }
    if !reg.installed {
        if let Ok((reader, writer)) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream) {
            if let Ok(Some(handler)) = mp_sys::signal::send_byte_on(libc::SIGINT, writer) {
                reg.handler = Some(handler);
                reg.installed = true;
                let spawned = std::thread::Builder::new()
                    .name("mp-pool-sigint".into())
                    .spawn(move || watch_sigint(reader));
                if spawned.is_err() {
                    // Dropping the handler restores the default disposition.
                    reg.handler = None;
                    reg.installed = false;
                }
            }
        }
    }
    reg.pools.retain(|p| p.strong_count() > 0);
    let pool: Weak<P> = Arc::downgrade(pool);
    reg.pools.push(pool as Weak<dyn Terminate>);
}

fn watch_sigint(reader: OwnedFd) {
    let mut reader = UnixStream::from(reader);
    let mut byte = [0u8; 1];
    while reader.read_exact(&mut byte).is_ok() {
        let (pools, waiters) = {
            let mut reg = registry();
            let waiters: Vec<Arc<dyn Wake>> = reg
                .waiters
                .iter()
                .filter_map(|(_, w)| w.upgrade())
                .collect();
            let pools: Vec<Arc<dyn Terminate>> =
                reg.pools.iter().filter_map(Weak::upgrade).collect();
            if waiters.is_empty() {
                // Nobody waits on a pool: Ctrl-C means what it always means. Dropping the
                // handler restores the default disposition, which the signal then takes.
                reg.handler = None;
                reg.installed = false;
                drop(reg);
                mp_sys::signal::kill_self(libc::SIGINT);
                return;
            }
            (pools, waiters)
        };
        EPOCH.fetch_add(1, Ordering::SeqCst);
        for pool in pools {
            pool.terminate();
        }
        for job in waiters {
            job.wake();
        }
    }
}

/// A thread's wait on a job, registered so that SIGINT can end it.
pub(crate) struct Watch {
    id: Option<u64>,
    epoch: u64,
}

impl Watch {
    pub(crate) fn begin<J: Wake + 'static>(job: &Arc<J>) -> Watch {
        let epoch = EPOCH.load(Ordering::SeqCst);
        if !ours() {
            return Watch { id: None, epoch };
        }
        let mut reg = registry();
        if !reg.installed {
            return Watch { id: None, epoch };
        }
        let id = reg.next_waiter;
        reg.next_waiter += 1;
        let job: Weak<J> = Arc::downgrade(job);
        reg.waiters.push((id, job as Weak<dyn Wake>));
        Watch {
            id: Some(id),
            epoch,
        }
    }

    /// Whether a SIGINT arrived since the wait began.
    pub(crate) fn interrupted(&self) -> bool {
        EPOCH.load(Ordering::SeqCst) != self.epoch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            registry().waiters.retain(|(i, _)| *i != id);
        }
    }
}

//! `SharedMemoryManager`: [`SharedMemory`] and [`ShareableList`] blocks that belong to a
//! manager, all unlinked at its shutdown (Python's `multiprocessing.managers.SharedMemoryManager`).
//!
//! **Who unlinks a block, and when.** A block made through the manager is the manager's, not
//! the making process's: dropping a [`SharedMemory`] only unmaps this process's view, and the
//! block is never registered with mp-shm's resource tracker (made `track(false)`), so neither a
//! child's exit nor the end of its process tree unlinks it. Three things do:
//!
//! - The server makes every block itself (the `Segments` servant, one per manager) and records
//!   its name; [`SharedMemoryManager::shutdown`] (or drop) has it unlink them all, then stops
//!   the server.
//! - The server is a daemon of its owner: when the owner dies, even by SIGKILL, the server is
//!   killed at once and can run nothing. So the servant starts a *keeper* when it is created:
//!   a [`ResourceTracker`] of its own, the same tracker program as the tree's, and tells it
//!   each name before the block exists (and when it is unlinked). Only the server holds the
//!   keeper's channel: when the server ends, however, the keeper reads end-of-file and unlinks
//!   what is left, then exits (saying so on stderr, since only a server that died leaves
//!   anything).
//! - `shutdown` waits for the keeper to end (it holds a pidfd to it), so every block is gone
//!   when it returns, even if the server had died before it.
//!
//! The tree's shared tracker is not used for these blocks because it unlinks only when its
//! whole process tree is gone (too late after the owner's death when the owner is one child
//! among others), and because the server could not reliably tell it of its own unlinks: the
//! keeper is one tracker per server instead, with the tree tracker's code.
//!
//! Python differs in the details: its client makes the block and registers it with the
//! resource tracker it shares with the server (bpo-36867), then asks the server to track the
//! name; a client killed between the two leaks the block until the tree ends, and nothing
//! cleans up after the server's death but that tracker. Here no moment leaves a block without
//! an owner that outlives the making process.
//!
//! A [`Segments`] handle (from [`SharedMemoryManager::segments`]) is an ordinary argument: a
//! child given one makes blocks that are the manager's too.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use mp_ipc::Address;
use mp_shm::{ListError, ResourceTracker, ShareableList, SharedMemory, ShmError, ShmOptions};
use mp_spawn::Context;
use serde::{Deserialize, Serialize};

use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::Proxy;
use crate::servant::Servant;

/// How long `shutdown` waits for the keeper to finish its unlinks once the server has ended
/// (it ends at once then; the bound only keeps a stopped keeper from hanging the caller).
const KEEPER_WAIT: Duration = Duration::from_secs(10);

/// What went wrong making or attaching a block through a [`SharedMemoryManager`].
///
/// ```
/// use mp_managers::{ManagerError, SharedMemoryManager, SmmError};
/// use mp_shm::ShmError;
///
/// let smm = SharedMemoryManager::new()?;
/// assert!(matches!(smm.shared_memory(0), Err(SmmError::Shm(ShmError::ZeroSize))));
/// smm.shutdown()?;
/// assert!(matches!(
///     smm.shared_memory(8),
///     Err(SmmError::Manager(ManagerError::ServerGone))
/// ));
/// # Ok::<(), SmmError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SmmError {
    /// The manager's server failed or is gone ([`ManagerError::ServerGone`] after
    /// [`shutdown`](SharedMemoryManager::shutdown): Python's `ValueError` for a manager that is
    /// not running).
    Manager(ManagerError),
    /// The block could not be made (in the server: size 0, the OS refused) or attached here.
    Shm(ShmError),
    /// The list could not be made or attached.
    List(ListError),
}

impl fmt::Display for SmmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmmError::Manager(e) => e.fmt(f),
            SmmError::Shm(e) => e.fmt(f),
            SmmError::List(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SmmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SmmError::Manager(e) => Some(e),
            SmmError::Shm(e) => Some(e),
            SmmError::List(e) => Some(e),
        }
    }
}

impl From<ManagerError> for SmmError {
    fn from(e: ManagerError) -> SmmError {
        SmmError::Manager(e)
    }
}

/// Why the server could not make a block (an `io::Error` does not travel: its errno does).
#[derive(Debug, Serialize, Deserialize)]
enum Failure {
    ZeroSize,
    Os(i32),
    Other(String),
    /// The manager is shutting down: it makes no more blocks.
    ShutDown,
}

impl Failure {
    fn of_shm(e: &ShmError) -> Failure {
        match e {
            ShmError::ZeroSize => Failure::ZeroSize,
            // `make` tries another name.
            ShmError::Exists(_) => Failure::Os(libc::EEXIST),
            ShmError::Os(e) => e
                .raw_os_error()
                .map_or_else(|| Failure::Other(e.to_string()), Failure::Os),
            other => Failure::Other(other.to_string()),
        }
    }

    fn into_shm(self) -> Result<ShmError, ManagerError> {
        match self {
            Failure::ZeroSize => Ok(ShmError::ZeroSize),
            Failure::Os(errno) => Ok(ShmError::Os(io::Error::from_raw_os_error(errno))),
            Failure::Other(m) => Ok(ShmError::Os(io::Error::other(m))),
            Failure::ShutDown => Err(ManagerError::ServerGone),
        }
    }
}

/// A call on the server's `Segments`.
#[derive(Debug, Serialize, Deserialize)]
enum SegmentsCall {
    SharedMemory(u64),
    ShareableList(Vec<mp_shm::Item>),
    Names,
    KeeperPid,
    /// Unlinks every block and makes no more (the manager's shutdown).
    Shutdown,
}

#[derive(Debug, Serialize, Deserialize)]
enum SegmentsReply {
    Created(String),
    Names(Vec<String>),
    Pid(u32),
    Failed(Failure),
    Done,
}

/// The server's side: the names of the blocks the manager owns, and their keeper.
struct SegmentsServant {
    names: BTreeSet<String>,
    /// The keeper (the tracker that unlinks the blocks left when the server ends), or the
    /// errno of its failed start (then no block is made: none could be cleaned up after the
    /// server's death).
    keeper: Result<ResourceTracker, i32>,
    shut_down: bool,
}

impl Servant for SegmentsServant {
    type Args = ();
    type Call = SegmentsCall;
    type Reply = SegmentsReply;

    fn create((): ()) -> Self {
        let keeper = ResourceTracker::start().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
        SegmentsServant {
            names: BTreeSet::new(),
            keeper,
            shut_down: false,
        }
    }

    fn call(&mut self, call: SegmentsCall) -> Result<SegmentsReply, RemoteError> {
        let made = match call {
            SegmentsCall::SharedMemory(size) => {
                let Ok(size) = usize::try_from(size) else {
                    return Ok(SegmentsReply::Failed(Failure::Os(libc::EFBIG)));
                };
                self.make(|options| {
                    options
                        .create(size)
                        .map(drop)
                        .map_err(|e| Failure::of_shm(&e))
                })
            }
            SegmentsCall::ShareableList(items) => self.make(|options| {
                ShareableList::create(&items, options)
                    .map(drop)
                    .map_err(|e| match e {
                        ListError::Shm(e) => Failure::of_shm(&e),
                        other => Failure::Other(other.to_string()),
                    })
            }),
            SegmentsCall::Names => {
                return Ok(SegmentsReply::Names(self.names.iter().cloned().collect()));
            }
            SegmentsCall::KeeperPid => {
                return Ok(match &self.keeper {
                    Ok(keeper) => SegmentsReply::Pid(keeper.pid()),
                    Err(errno) => SegmentsReply::Failed(Failure::Os(*errno)),
                });
            }
            SegmentsCall::Shutdown => {
                self.shut_down();
                return Ok(SegmentsReply::Done);
            }
        };
        Ok(match made {
            Ok(name) => SegmentsReply::Created(name),
            Err(failure) => SegmentsReply::Failed(failure),
        })
    }
}

impl SegmentsServant {
    /// Makes a block with `create` under a fresh name, which the keeper learns first.
    fn make(
        &mut self,
        create: impl Fn(ShmOptions) -> Result<(), Failure>,
    ) -> Result<String, Failure> {
        if self.shut_down {
            return Err(Failure::ShutDown);
        }
        let keeper = self.keeper.as_ref().map_err(|errno| Failure::Os(*errno))?;
        let os = |e: io::Error| Failure::Os(e.raw_os_error().unwrap_or(libc::EIO));
        loop {
            let name = mp_shm::random_name().map_err(os)?;
            // Before the block exists: a server killed right after making it leaves it to
            // the keeper, never to nobody.
            keeper.register(&name).map_err(os)?;
            let options = SharedMemory::options().name(name.as_str()).track(false);
            match create(options) {
                Ok(()) => {
                    self.names.insert(name.clone());
                    return Ok(name);
                }
                Err(failure) => {
                    let taken = matches!(&failure, Failure::Os(errno) if *errno == libc::EEXIST);
                    if !taken {
                        // Made, then failed (a list that could not be written): not left
                        // behind. Nothing made: nothing to unlink.
                        let _ = unlink(&name);
                    }
                    // The name is not ours (taken by another block), or no longer is.
                    let _ = keeper.unregister(&name);
                    if !taken {
                        return Err(failure);
                    }
                }
            }
        }
    }

    /// Unlinks every block, makes no more, and lets the keeper go (it ends at end-of-file,
    /// with nothing left to do, and is reaped here).
    fn shut_down(&mut self) {
        self.shut_down = true;
        for name in std::mem::take(&mut self.names) {
            // Already gone if a user unlinked it: nothing to do.
            let _ = unlink(&name);
            if let Ok(keeper) = &self.keeper {
                let _ = keeper.unregister(&name);
            }
        }
        // Dropping the keeper closes its channel and reaps it.
        drop(std::mem::replace(&mut self.keeper, Err(libc::EIO)));
    }
}

impl Drop for SegmentsServant {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Unlinks a block of this server's by name (mp-shm's, as every segment's name rule).
fn unlink(name: &str) -> Result<(), mp_shm::ShmError> {
    SharedMemory::options().name(name).unlink()
}

/// A handle that makes blocks owned by a [`SharedMemoryManager`], from any process: get one
/// with [`SharedMemoryManager::segments`] and pass it to children like any argument. The blocks
/// it makes are the manager's: they outlive the process that made them, and the manager's
/// shutdown unlinks them.
///
/// ```
/// use mp_managers::{Process, Segments, SharedMemoryManager};
///
/// fn fill(segments: Segments, out: mp_ipc::Connection) {
///     let shm = segments.shared_memory(16).unwrap();
///     shm.write_at(0, b"from the child").unwrap();
///     out.send(&shm.name().to_owned()).unwrap();
/// }
///
/// let smm = SharedMemoryManager::new()?;
/// let (ours, theirs) = mp_ipc::pipe(false)?;
/// let mut child = Process::new(fill, (smm.segments()?, theirs));
/// child.start()?;
/// let name: String = ours.recv()?;
/// child.join()?;
/// // The child is gone; its block is still there.
/// let shm = mp_shm::SharedMemory::attach(&name)?;
/// let mut buf = [0u8; 14];
/// shm.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"from the child");
/// smm.shutdown()?;
/// assert!(mp_shm::SharedMemory::attach(&name).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Segments {
    proxy: Proxy<SegmentsServant>,
}

proxy_wrapper!(Segments<> where);

impl Segments {
    /// A new zero-filled block of `size` bytes, owned by the manager (Python's
    /// `smm.SharedMemory(size)`).
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory, SmmError> {
        if size == 0 {
            return Err(SmmError::Shm(ShmError::ZeroSize));
        }
        let name = match self.proxy.call(SegmentsCall::SharedMemory(size as u64))? {
            SegmentsReply::Created(name) => name,
            SegmentsReply::Failed(f) => {
                return Err(f.into_shm().map_or_else(SmmError::Manager, SmmError::Shm));
            }
            _ => unexpected()?,
        };
        SharedMemory::attach(&name).map_err(SmmError::Shm)
    }

    /// A new list holding `items`, in a block owned by the manager (Python's
    /// `smm.ShareableList(sequence)`).
    pub fn shareable_list(&self, items: &[mp_shm::Item]) -> Result<ShareableList, SmmError> {
        let name = match self
            .proxy
            .call(SegmentsCall::ShareableList(items.to_vec()))?
        {
            SegmentsReply::Created(name) => name,
            SegmentsReply::Failed(f) => {
                return Err(f
                    .into_shm()
                    .map_or_else(SmmError::Manager, |e| SmmError::List(ListError::Shm(e))));
            }
            _ => unexpected()?,
        };
        ShareableList::attach(&name).map_err(SmmError::List)
    }

    /// The names of the blocks the manager owns now, sorted (Python's `list_segments`).
    pub fn names(&self) -> Result<Vec<String>, SmmError> {
        match self.proxy.call(SegmentsCall::Names)? {
            SegmentsReply::Names(names) => Ok(names),
            _ => Ok(unexpected()?),
        }
    }
}

/// A manager whose [`SharedMemory`] and [`ShareableList`] blocks are all unlinked at its
/// shutdown (Python's `multiprocessing.managers.SharedMemoryManager`), and after its owner's
/// death too, SIGKILL included.
///
/// The blocks are the manager's, not their maker's: its server makes them (untracked by the
/// resource tracker), so a process that made one through the manager, or a [`Segments`]
/// handle, may exit and the block stays. Dropping a [`SharedMemory`] only unmaps it.
/// [`shutdown`](SharedMemoryManager::shutdown) (or drop) unlinks them all. If the server dies
/// first (it is killed with its owner, however the owner dies), a keeper process that the
/// server started, and that learns each name before its block exists, unlinks them when the
/// server is gone; it says so on stderr, as the resource tracker does for leaked segments.
///
/// ```
/// use mp_managers::SharedMemoryManager;
///
/// let smm = SharedMemoryManager::new()?;
/// let shm = smm.shared_memory(64)?;
/// shm.write_at(0, b"hi")?;
/// let list = smm.shareable_list(&[1i64.into(), "howdy".into()])?;
/// assert_eq!(list.get(1)?, mp_shm::Item::Str("howdy".into()));
/// let names = [shm.name().to_owned(), list.shm().name().to_owned()];
/// smm.shutdown()?; // or drop it
/// for name in names {
///     assert!(mp_shm::SharedMemory::attach(&name).is_err()); // unlinked
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedMemoryManager {
    /// Until `shutdown`, which drops it while the server still answers (a proxy dropped
    /// after its server is gone waits to learn that it is).
    segments: RwLock<Option<Segments>>,
    /// A pidfd of the keeper, until `shutdown` has waited for it.
    keeper: Mutex<Option<OwnedFd>>,
    keeper_pid: u32,
    manager: Manager,
}

impl SharedMemoryManager {
    /// Starts a manager's server with the default start method.
    pub fn new() -> Result<SharedMemoryManager, SmmError> {
        SharedMemoryManager::start(Manager::new()?)
    }

    /// Starts a manager's server with the start method of `context` (Python's
    /// `SharedMemoryManager(ctx=context)`).
    pub fn with_context(context: &Context) -> Result<SharedMemoryManager, SmmError> {
        SharedMemoryManager::start(Manager::with_context(context)?)
    }

    fn start(manager: Manager) -> Result<SharedMemoryManager, SmmError> {
        let segments = Segments {
            proxy: manager.serve::<SegmentsServant>(())?,
        };
        let keeper_pid = match segments.proxy.call(SegmentsCall::KeeperPid)? {
            SegmentsReply::Pid(pid) => pid,
            SegmentsReply::Failed(f) => {
                return Err(f.into_shm().map_or_else(SmmError::Manager, SmmError::Shm));
            }
            _ => unexpected()?,
        };
        // The keeper lives while the server does (it holds the keeper's channel), and the
        // server answered just now: this pidfd names the keeper.
        let keeper = mp_sys::pidfd::open(keeper_pid).map_err(|e| SmmError::Shm(ShmError::Os(e)))?;
        Ok(SharedMemoryManager {
            segments: RwLock::new(Some(segments)),
            keeper: Mutex::new(Some(keeper)),
            keeper_pid,
            manager,
        })
    }

    /// A new zero-filled block of `size` bytes, owned by the manager (Python's
    /// `smm.SharedMemory(size)`).
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory, SmmError> {
        self.with_segments(|s| s.shared_memory(size))
    }

    /// A new list holding `items`, in a block owned by the manager (Python's
    /// `smm.ShareableList(sequence)`).
    pub fn shareable_list(&self, items: &[mp_shm::Item]) -> Result<ShareableList, SmmError> {
        self.with_segments(|s| s.shareable_list(items))
    }

    /// A handle that makes blocks owned by this manager, for other processes (see
    /// [`Segments`]); [`ManagerError::ServerGone`] after `shutdown`.
    pub fn segments(&self) -> Result<Segments, SmmError> {
        self.with_segments(|s| Ok(s.clone()))
    }

    /// The names of the blocks the manager owns now, sorted (Python's `list_segments`).
    ///
    /// ```
    /// let smm = mp_managers::SharedMemoryManager::new()?;
    /// let shm = smm.shared_memory(8)?;
    /// assert_eq!(smm.names()?, [shm.name()]);
    /// # Ok::<(), mp_managers::SmmError>(())
    /// ```
    pub fn names(&self) -> Result<Vec<String>, SmmError> {
        self.with_segments(Segments::names)
    }

    fn with_segments<T>(
        &self,
        f: impl FnOnce(&Segments) -> Result<T, SmmError>,
    ) -> Result<T, SmmError> {
        match &*self.segments.read().unwrap_or_else(|e| e.into_inner()) {
            Some(segments) => f(segments),
            None => Err(SmmError::Manager(ManagerError::ServerGone)),
        }
    }

    /// The server's address (Python's `smm.address`).
    pub fn address(&self) -> &Address {
        self.manager.address()
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.manager.pid()
    }

    /// The pid of the keeper, the process that unlinks the blocks if the server ends without
    /// a shutdown (for diagnostics and tests).
    pub fn keeper_pid(&self) -> u32 {
        self.keeper_pid
    }

    /// Unlinks every block the manager owns and stops its server (Python's `shutdown`).
    /// Views mapped in processes stay valid; the names are gone. Calling it twice is fine;
    /// afterwards making a block fails with [`ManagerError::ServerGone`].
    pub fn shutdown(&self) -> Result<(), SmmError> {
        let segments = self
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let unlinked = match segments {
            Some(segments) => segments.proxy.call(SegmentsCall::Shutdown),
            None => Err(ManagerError::ServerGone),
        };
        self.manager.shutdown()?;
        let keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(keeper) = keeper {
            // The server has ended: the keeper unlinks what it left (if it died first) and
            // exits. Its exit is the sign that every block is gone.
            let _ = mp_sys::poll::readable(&[keeper.as_fd()], Some(KEEPER_WAIT));
        }
        match unlinked {
            Ok(_) | Err(ManagerError::ServerGone) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl fmt::Debug for SharedMemoryManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemoryManager")
            .field("manager", &self.manager)
            .field("keeper_pid", &self.keeper_pid)
            .finish()
    }
}

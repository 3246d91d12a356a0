//! `Manager`: starts a server process and makes objects in it (Python's `SyncManager`).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use mp_ipc::Address;
use mp_spawn::{Context, Process};

use crate::error::ManagerError;
use crate::proxy::{Proxy, Server, request};
use crate::servant::{Servant, type_offset};
use crate::server::{Reply, Request, serve};

/// How long `shutdown` waits for the server to exit before it kills it.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// A server process holding shared objects, and the maker of proxies to them (Python's
/// `multiprocessing.Manager()`).
///
/// The server is a daemon child of the process that creates the manager: it ends when the
/// manager is dropped or [`shutdown`](Manager::shutdown), and it never outlives that process
/// (killed with it, however it dies). It ignores SIGINT, as Python's does, so Ctrl-C reaches
/// the program.
///
/// ```
/// use mp_managers::{List, Manager, Process};
///
/// fn report(results: List<u32>, n: u32) {
///     results.append(n * 10).unwrap();
/// }
///
/// let manager = Manager::new()?;
/// let results = manager.list::<u32>()?;
/// let mut children: Vec<_> = (0..3)
///     .map(|n| Process::new(report, (results.clone(), n)))
///     .collect();
/// for c in &mut children { c.start().unwrap(); }
/// for c in &mut children { c.join().unwrap(); }
/// let mut got = results.to_vec()?;
/// got.sort();
/// assert_eq!(got, [0, 10, 20]);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Manager {
    server: Server,
    process: Mutex<Option<Process<()>>>,
}

impl Manager {
    /// Starts a manager's server with the default start method.
    pub fn new() -> Result<Manager, ManagerError> {
        Manager::start(None)
    }

    /// Starts a manager's server with the start method of `context` (Python's
    /// `ctx.Manager()`).
    pub fn with_context(context: &Context) -> Result<Manager, ManagerError> {
        Manager::start(Some(context))
    }

    fn start(context: Option<&Context>) -> Result<Manager, ManagerError> {
        let mut authkey = vec![0u8; 32];
        mp_sys::random::fill(&mut authkey).map_err(|e| ManagerError::Encode(e.to_string()))?;
        let (ours, theirs) = mp_ipc::pipe(true).map_err(|e| ManagerError::Start(e.into()))?;
        let mut process = match context {
            Some(context) => context.process(serve, (theirs, authkey.clone())),
            None => Process::new(serve, (theirs, authkey.clone())),
        }
        .with_daemon(true);
        process.set_name("SyncManager-1");
        process.start().map_err(ManagerError::Start)?;
        let address = match ours.recv::<Result<Address, String>>() {
            Ok(Ok(address)) => address,
            Ok(Err(e)) => {
                let _ = process.join();
                return Err(ManagerError::Decode(format!(
                    "the server cannot listen: {e}"
                )));
            }
            Err(_) => {
                // The server died before it listened: its exit says why.
                return Err(match process.join() {
                    Err(e) => ManagerError::Start(e),
                    Ok(()) => ManagerError::ServerGone,
                });
            }
        };
        Ok(Manager {
            server: Server { address, authkey },
            process: Mutex::new(Some(process)),
        })
    }

    /// The server's address (Python's `manager.address`).
    pub fn address(&self) -> &Address {
        &self.server.address
    }

    /// Makes an object of a user type in the server and returns a proxy to it (Python's
    /// `BaseManager.register(typeid, callable)` then `manager.typeid(...)`); see [`Servant`].
    pub fn serve<S: Servant>(&self, args: S::Args) -> Result<Proxy<S>, ManagerError> {
        let args = postcard::to_stdvec(&args).map_err(|e| ManagerError::Encode(e.to_string()))?;
        let create = Request::Create {
            type_offset: type_offset::<S>(),
            args,
        };
        match request(&self.server, &create)? {
            Reply::Created(id) => Ok(Proxy::owned(self.server.clone(), id)),
            other => Err(ManagerError::Decode(format!("unexpected reply {other:?}"))),
        }
    }

    /// How many objects the server holds now (each freed when its last proxy is gone).
    pub fn object_count(&self) -> Result<u64, ManagerError> {
        match request(&self.server, &Request::Count)? {
            Reply::Count(n) => Ok(n),
            other => Err(ManagerError::Decode(format!("unexpected reply {other:?}"))),
        }
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Process::pid)
    }

    /// Stops the server and waits for it (Python's `shutdown`). Proxies fail with
    /// [`ManagerError::ServerGone`] afterwards. Calling it twice is fine.
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        let Some(mut process) = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(());
        };
        let _ = request(&self.server, &Request::Shutdown);
        match process.join_timeout(EXIT_WAIT) {
            Ok(Some(())) => Ok(()),
            _ => {
                let _ = process.kill();
                let _ = process.join();
                Ok(())
            }
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.server.address)
            .field("pid", &self.pid())
            .finish()
    }
}

//! `Manager`: starts a server process and makes objects in it (Python's `SyncManager`).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use mp_ipc::Address;
use mp_spawn::{Context, Process};

use serde::Serialize;

use crate::error::{ManagerError, unexpected};
use crate::link::{CONNECT_TIMEOUT, Endpoint, first_request, request};
use crate::protocol::{Reply, Request};
use crate::proxy::{BaseProxy, Managed, Proxy, type_name};
use crate::servant::{Servant, SharedServant, shared_type_ref, type_ref};
use crate::server::{bind, run, serve};

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
    endpoint: Endpoint,
    /// The server process, if this manager started it (not one it connected to).
    process: Mutex<Option<Process<()>>>,
}

impl Manager {
    /// Starts a manager's server with the default start method.
    pub fn new() -> Result<Manager, ManagerError> {
        Manager::start(None, None, random_authkey()?)
    }

    /// Starts a manager's server with the start method of `context` (Python's
    /// `ctx.Manager()`).
    pub fn with_context(context: &Context) -> Result<Manager, ManagerError> {
        Manager::start(Some(context), None, random_authkey()?)
    }

    /// Starts a manager's server listening at `address` (a TCP address for other hosts; port 0
    /// picks a free port, see [`address`](Manager::address)) for clients that know `authkey`
    /// (Python's `BaseManager(address, authkey).start()`). Other processes reach it with
    /// [`Manager::connect`] and find its objects by the names given with
    /// [`publish`](Manager::publish).
    ///
    /// ```
    /// use mp_ipc::Address;
    /// use mp_managers::{ManagedQueue, Manager};
    ///
    /// let server = Manager::listen(&Address::Tcp("127.0.0.1:0".parse()?), b"secret")?;
    /// let jobs = server.queue::<String>()?;
    /// server.publish("jobs", &jobs)?;
    ///
    /// // Elsewhere (another process, another host):
    /// let client = Manager::connect(server.address(), b"secret")?;
    /// let jobs: ManagedQueue<String> = client.lookup("jobs")?;
    /// jobs.put("hello".to_owned())?;
    /// # assert_eq!(server.lookup::<ManagedQueue<String>>("jobs")?.get()?, "hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen(address: &Address, authkey: &[u8]) -> Result<Manager, ManagerError> {
        Manager::start(None, Some(address.clone()), authkey.to_vec())
    }

    /// [`listen`](Manager::listen) with the start method of `context`.
    pub fn listen_with_context(
        context: &Context,
        address: &Address,
        authkey: &[u8],
    ) -> Result<Manager, ManagerError> {
        Manager::start(Some(context), Some(address.clone()), authkey.to_vec())
    }

    /// A manager for a server that is already running at `address` (Python's
    /// `BaseManager(address, authkey).connect()`): one started by [`Manager::listen`] or
    /// a [`Server`], maybe on another host. Dropping it leaves the
    /// server running.
    ///
    /// A client whose executable differs from the server's (another build, on another host)
    /// may call and look up objects, but not create them: the server refuses with
    /// [`RemoteError::BadCall`](crate::RemoteError::BadCall).
    ///
    /// A server that does not answer the handshake within 30 s is an error,
    /// [`ListenerError::HandshakeTimeout`](mp_ipc::ListenerError::HandshakeTimeout) (see
    /// [`connect_timeout`](Manager::connect_timeout)).
    pub fn connect(address: &Address, authkey: &[u8]) -> Result<Manager, ManagerError> {
        Manager::connect_timeout(address, authkey, CONNECT_TIMEOUT)
    }

    /// [`connect`](Manager::connect), giving up after `timeout`: a server that is not reached,
    /// or does not answer the handshake, by then is a [`ManagerError::Connect`] error
    /// (`HandshakeTimeout`, or an I/O error `TimedOut`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_ipc::{Address, ListenerError};
    /// use mp_managers::{Manager, ManagerError};
    ///
    /// // A peer that accepts and never speaks.
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let address = Address::Tcp(silent.local_addr()?);
    /// let e = Manager::connect_timeout(&address, b"secret", Duration::from_millis(100));
    /// assert!(matches!(
    ///     e,
    ///     Err(ManagerError::Connect(ListenerError::HandshakeTimeout))
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_timeout(
        address: &Address,
        authkey: &[u8],
        timeout: Duration,
    ) -> Result<Manager, ManagerError> {
        let manager = Manager {
            endpoint: Endpoint {
                address: address.clone(),
                authkey: authkey.to_vec(),
            },
            process: Mutex::new(None),
        };
        // Connect now, so that a wrong address or authkey is this call's error.
        match first_request(&manager.endpoint, &Request::Count, timeout)? {
            Reply::Count(_) => Ok(manager),
            _ => unexpected(),
        }
    }

    fn start(
        context: Option<&Context>,
        address: Option<Address>,
        authkey: Vec<u8>,
    ) -> Result<Manager, ManagerError> {
        let (ours, theirs) = mp_ipc::pipe(true).map_err(|e| ManagerError::Start(e.into()))?;
        let args = (theirs, address, authkey.clone());
        let mut process = match context {
            Some(context) => context.process(serve, args),
            None => Process::new(serve, args),
        }
        .with_daemon(true);
        process.set_name("SyncManager-1");
        process.start().map_err(ManagerError::Start)?;
        let address = match ours.recv::<Result<Address, String>>() {
            Ok(Ok(address)) => address,
            Ok(Err(e)) => {
                let _ = process.join();
                return Err(ManagerError::Listen(e));
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
            endpoint: Endpoint { address, authkey },
            process: Mutex::new(Some(process)),
        })
    }

    /// The server's address (Python's `manager.address`).
    pub fn address(&self) -> &Address {
        &self.endpoint.address
    }

    /// Makes an object of a user type in the server and returns a proxy to it (Python's
    /// `BaseManager.register(typeid, callable)` then `manager.typeid(...)`); see [`Servant`].
    pub fn serve<S: Servant>(&self, args: S::Args) -> Result<Proxy<S>, ManagerError> {
        Ok(Proxy::new(self.create(
            type_ref::<S>(),
            type_name::<S>(),
            &args,
        )?))
    }

    /// Makes an object of a type whose calls may block (see [`SharedServant`]).
    pub(crate) fn serve_shared<S: SharedServant>(
        &self,
        args: S::Args,
    ) -> Result<BaseProxy, ManagerError> {
        self.create(shared_type_ref::<S>(), type_name::<S>(), &args)
    }

    fn create<A: Serialize>(
        &self,
        type_ref: mp_spawn::code::RawCodeRef,
        type_name: &str,
        args: &A,
    ) -> Result<BaseProxy, ManagerError> {
        let args = postcard::to_stdvec(args).map_err(|e| ManagerError::Encode(e.to_string()))?;
        let create = Request::Create {
            type_ref,
            type_name: type_name.to_owned(),
            args,
        };
        match request(&self.endpoint, &create)? {
            Reply::Created(id) => Ok(BaseProxy::owned(self.endpoint.clone(), id)),
            _ => unexpected(),
        }
    }

    /// Gives the object of `proxy` the name `name` on the server, where other processes
    /// [`lookup`](Manager::lookup) it (Python's `BaseManager.register(typeid, callable=...)`
    /// on a remote manager's server). The name holds the object until the server ends or the
    /// name is given to another object.
    pub fn publish<P: Managed>(&self, name: &str, proxy: &P) -> Result<(), ManagerError> {
        let base = proxy.base();
        if base.endpoint() != &self.endpoint {
            return Err(ManagerError::OtherServer);
        }
        match request(
            &self.endpoint,
            &Request::Publish {
                name: name.to_owned(),
                id: base.id(),
            },
        )? {
            Reply::Done => Ok(()),
            _ => unexpected(),
        }
    }

    /// A proxy to the object published as `name` (Python's `manager.typeid()` on a
    /// connected manager). No such name: [`RemoteError::NoSuchName`](crate::RemoteError);
    /// an object of another type than `P`'s: [`ManagerError::WrongType`].
    pub fn lookup<P: Managed>(&self, name: &str) -> Result<P, ManagerError> {
        match request(
            &self.endpoint,
            &Request::Lookup {
                name: name.to_owned(),
            },
        )? {
            Reply::Found { id, type_name } => {
                P::from_base(BaseProxy::owned(self.endpoint.clone(), id), &type_name)
            }
            _ => unexpected(),
        }
    }

    /// How many objects the server holds now (each freed when its last proxy is gone).
    pub fn object_count(&self) -> Result<u64, ManagerError> {
        match request(&self.endpoint, &Request::Count)? {
            Reply::Count(n) => Ok(n),
            _ => unexpected(),
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

    /// Stops the server this manager started, and waits for it (Python's `shutdown`).
    /// Proxies fail with [`ManagerError::ServerGone`] afterwards. Calling it twice is fine; on
    /// a manager made by [`connect`](Manager::connect) it does nothing (see
    /// [`shutdown_server`](Manager::shutdown_server)).
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        let Some(mut process) = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(());
        };
        let _ = request(&self.endpoint, &Request::Shutdown);
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

impl Manager {
    /// Asks the server to end, whoever started it (a connected client of a [`Server`], say).
    pub fn shutdown_server(&self) -> Result<(), ManagerError> {
        match request(&self.endpoint, &Request::Shutdown) {
            Ok(_) | Err(ManagerError::ServerGone) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A manager's server run in this process (Python's `manager.get_server()`), for a program
/// whose job is to serve: clients [`connect`](Manager::connect), make objects, and
/// [`publish`](Manager::publish) them for one another.
///
/// ```
/// use mp_ipc::Address;
/// use mp_managers::{Manager, Server};
///
/// let server = Server::bind(&Address::Tcp("127.0.0.1:0".parse()?), b"secret")?;
/// let address = server.address().clone();
/// let serving = std::thread::spawn(move || server.serve_forever());
///
/// let client = Manager::connect(&address, b"secret")?;
/// let names = client.list_from(["a".to_owned()])?;
/// client.publish("names", &names)?;
/// client.shutdown_server()?;
/// serving.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    listener: mp_ipc::Listener,
}

impl Server {
    /// Listens at `address` for clients that know `authkey` (a TCP port 0 picks a free port).
    pub fn bind(address: &Address, authkey: &[u8]) -> Result<Server, ManagerError> {
        let listener = bind(Some(address.clone()), authkey)
            .map_err(|e| ManagerError::Listen(e.to_string()))?;
        Ok(Server { listener })
    }

    /// Where it listens.
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    /// Serves until a client asks the server to end ([`Manager::shutdown_server`]) (Python's
    /// `serve_forever()`).
    pub fn serve_forever(self) {
        run(self.listener);
    }
}

fn random_authkey() -> Result<Vec<u8>, ManagerError> {
    let mut authkey = vec![0u8; 32];
    mp_sys::random::fill(&mut authkey).map_err(|e| ManagerError::Listen(e.to_string()))?;
    Ok(authkey)
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.endpoint.address)
            .field("pid", &self.pid())
            .finish()
    }
}

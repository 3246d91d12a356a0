//! `Process`, and what every process knows about itself: its name, its parent, its children.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bootstrap::{self, Outcome};
use crate::context::{StartMethod, get_start_method};
use crate::error::ProcessError;
use crate::reduction::{self, Dumped};
use crate::{channel, fork_helper, forkserver, popen_fork, popen_spawn};

/// A function that a process can run with the arguments `Args` (a tuple, as Python's `args`).
///
/// Implemented for every `FnOnce(A1, ..., An) -> R` with up to eight arguments, so that
/// `Process::new(f, (a, b))` calls `f(a, b)`. Sealed: a spawned child creates the target
/// anew from nothing (it is zero-sized), which only fn items and non-capturing closures allow,
/// so no other type may implement it.
///
/// ```compile_fail
/// struct Mine;
/// impl mp_spawn::Target<()> for Mine {
///     type Output = ();
///     fn call(self, _: ()) {}
/// }
/// ```
pub trait Target<Args>: sealed::Sealed<Args> + Send + 'static {
    /// What the function returns (handed back by [`Process::join`]).
    type Output;
    /// Calls the function.
    fn call(self, args: Args) -> Self::Output;
}

mod sealed {
    /// Implemented exactly where `Target` is.
    pub trait Sealed<Args> {}
}

macro_rules! impl_target {
    ($($arg:ident),*) => {
        impl<Func, Ret, $($arg,)*> sealed::Sealed<($($arg,)*)> for Func
        where
            Func: FnOnce($($arg),*) -> Ret + Send + 'static,
        {
        }

        impl<Func, Ret, $($arg,)*> Target<($($arg,)*)> for Func
        where
            Func: FnOnce($($arg),*) -> Ret + Send + 'static,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn call(self, ($($arg,)*): ($($arg,)*)) -> Ret {
                self($($arg),*)
            }
        }
    };
}
impl_target!();
impl_target!(A1);
impl_target!(A1, A2);
impl_target!(A1, A2, A3);
impl_target!(A1, A2, A3, A4);
impl_target!(A1, A2, A3, A4, A5);
impl_target!(A1, A2, A3, A4, A5, A6);
impl_target!(A1, A2, A3, A4, A5, A6, A7);
impl_target!(A1, A2, A3, A4, A5, A6, A7, A8);

/// What may travel to a child and back, as an argument or a result: a serde type that owns
/// its data (Python's "picklable"). One name for the bounds every entry point repeats;
/// implemented for every such type.
///
/// ```
/// fn takes<T: mp_spawn::Portable>(_: T) {}
/// takes((1u64, "text".to_string(), vec![2.5f64]));
/// ```
pub trait Portable: Serialize + DeserializeOwned + 'static {}

impl<T: Serialize + DeserializeOwned + 'static> Portable for T {}

/// What a spawn or forkserver child needs to find and call its target.
pub(crate) struct Recipe {
    pub(crate) entry: i64,
    pub(crate) args: Dumped,
}

/// The target and its arguments, erased over their types.
pub(crate) trait Launch<R>: Send {
    /// Runs the target here (in a forked child).
    fn run(self: Box<Self>) -> R;
    /// How a fresh process finds the target again, if it can.
    fn recipe(&self, method: StartMethod) -> Result<Recipe, ProcessError>;
}

struct FnLaunch<F, A> {
    target: F,
    args: A,
}

impl<F, A> Launch<F::Output> for FnLaunch<F, A>
where
    F: Target<A>,
    A: Portable + Send,
    F::Output: Serialize,
{
    fn run(self: Box<Self>) -> F::Output {
        self.target.call(self.args)
    }

    fn recipe(&self, _: StartMethod) -> Result<Recipe, ProcessError> {
        Ok(Recipe {
            entry: bootstrap::entry_offset::<F, A>(),
            args: reduction::dumps(&self.args)?,
        })
    }
}

struct ClosureLaunch<C>(C);

impl<C, R> Launch<R> for ClosureLaunch<C>
where
    C: FnOnce() -> R + Send,
{
    fn run(self: Box<Self>) -> R {
        (self.0)()
    }

    fn recipe(&self, method: StartMethod) -> Result<Recipe, ProcessError> {
        Err(ProcessError::ClosureNeedsFork { method })
    }
}

/// How long `join` waits for the exit alone before it also drains the result channel.
const SOLE_EXIT_WAIT: Duration = Duration::from_millis(1);

/// A child as the parent tracks it; shared by the `Process` and the registry of children.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: u32,
    /// The process that started it: only that one may wait for it or signal it.
    owner: u32,
    name: String,
    daemon: bool,
    /// Signals go through the pidfd (no pid-reuse race); for fork and spawn children it also
    /// turns readable at exit and is what `waitid` reaps.
    pidfd: OwnedFd,
    /// Forkserver children are the server's children: it writes their exit code here.
    status: Option<ServerStatus>,
    exitcode: Mutex<Option<i32>>,
}

/// Where a server's child learns its exit code: the status pipe the server writes it into, and
/// the server's own pidfd, so that a server that died does not leave `join` waiting on a pipe
/// whose write end another process may still hold.
#[derive(Debug)]
pub(crate) struct ServerStatus {
    pub(crate) pipe: OwnedFd,
    pub(crate) server: OwnedFd,
}

impl Child {
    pub(crate) fn new(
        pid: u32,
        name: String,
        daemon: bool,
        pidfd: OwnedFd,
        status: Option<ServerStatus>,
    ) -> Self {
        Child {
            pid,
            owner: mp_sys::process::getpid(),
            name,
            daemon,
            pidfd,
            status,
            exitcode: Mutex::new(None),
        }
    }

    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    fn sentinel(&self) -> BorrowedFd<'_> {
        self.status
            .as_ref()
            .map_or(&self.pidfd, |s| &s.pipe)
            .as_fd()
    }

    /// The exit code, reaping the child if it has ended; `None` while it runs.
    fn try_reap(&self) -> std::io::Result<Option<i32>> {
        let mut code = lock(&self.exitcode);
        if code.is_none() {
            *code = match &self.status {
                None => mp_sys::pidfd::reap(self.pidfd.as_fd())?,
                Some(status) => {
                    let ready = mp_sys::poll::readable(
                        &[status.pipe.as_fd(), status.server.as_fd()],
                        Some(Duration::ZERO),
                    )?;
                    if !ready[0] && !ready[1] {
                        return Ok(None);
                    }
                    let mut buf = [0u8; 4];
                    // A server that died has written the code already, or never will.
                    if !ready[0] {
                        return Err(std::io::Error::other(
                            "the forkserver died; the exit code is lost",
                        ));
                    }
                    match mp_sys::fd::read(status.pipe.as_fd(), &mut buf)? {
                        4 => Some(i32::from_le_bytes(buf)),
                        _ => {
                            return Err(std::io::Error::other(
                                "the forkserver died; the exit code is lost",
                            ));
                        }
                    }
                }
            };
        }
        Ok(*code)
    }

    /// Waits up to `timeout` (`None`: forever) for the child to end.
    fn wait(&self, timeout: Option<Duration>) -> std::io::Result<Option<i32>> {
        if let Some(code) = self.try_reap()? {
            return Ok(Some(code));
        }
        mp_sys::poll::readable(&[self.exit_fd()], timeout)?;
        self.try_reap_ended()
    }

    /// Turns readable the moment the child ends: its pidfd, for every start method (a pidfd
    /// of a forkserver child works too; only its exit code has to come from the server).
    fn exit_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// As `try_reap`, once `exit_fd` was readable: waits the moment it takes the forkserver to
    /// report the exit code of a child that has ended.
    fn try_reap_ended(&self) -> std::io::Result<Option<i32>> {
        if let Some(status) = &self.status {
            let ended = mp_sys::poll::readable(&[self.pidfd.as_fd()], Some(Duration::ZERO))?[0];
            if ended {
                mp_sys::poll::readable(&[status.pipe.as_fd(), status.server.as_fd()], None)?;
            }
        }
        self.try_reap()
    }

    fn signal(&self, signal: i32) -> std::io::Result<()> {
        if lock(&self.exitcode).is_some() {
            return Ok(());
        }
        mp_sys::pidfd::send_signal(self.pidfd.as_fd(), signal)
    }

    fn is_ours(&self) -> bool {
        self.owner == mp_sys::process::getpid()
    }
}

/// What this process knows about itself and its relatives.
pub(crate) struct Global {
    pub(crate) name: Cow<'static, str>,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    counter: u32,
    pub(crate) parent: Option<ParentLink>,
    /// The pipe whose write end only this process holds: children watch its read end to learn
    /// that this process has died, however it died.
    lifeline: Option<(OwnedFd, OwnedFd)>,
    pub(crate) children: Vec<Arc<Child>>,
    exit_hook: bool,
}

pub(crate) struct ParentLink {
    pub(crate) name: String,
    pub(crate) pid: u32,
    pub(crate) lifeline: Option<OwnedFd>,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    name: Cow::Borrowed("MainProcess"),
    identity: Vec::new(),
    daemon: false,
    counter: 0,
    parent: None,
    lifeline: None,
    children: Vec::new(),
    exit_hook: false,
});

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn global() -> MutexGuard<'static, Global> {
    lock(&GLOBAL)
}

/// This process's name if it is a child, for the panic hook; `None` in the main process, or
/// when the state is locked (never wait for a lock while panicking).
pub(crate) fn child_name_for_panic() -> Option<String> {
    let g = match GLOBAL.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    g.parent.as_ref().map(|_| g.name.to_string())
}

impl Global {
    /// The read end of this process's lifeline, created on first use.
    pub(crate) fn lifeline_reader(&mut self) -> std::io::Result<BorrowedFd<'_>> {
        if self.lifeline.is_none() {
            self.lifeline = Some(mp_sys::fd::pipe()?);
        }
        Ok(self
            .lifeline
            .as_ref()
            .map(|(r, _)| r.as_fd())
            .expect("created above"))
    }

    /// Becomes the state of a new child (called in the child, before its target runs).
    pub(crate) fn become_child(
        &mut self,
        name: String,
        identity: Vec<u32>,
        daemon: bool,
        parent: ParentLink,
    ) {
        self.name = Cow::Owned(name);
        self.identity = identity;
        self.daemon = daemon;
        self.counter = 0;
        self.parent = Some(parent);
        self.lifeline = None;
        self.children.clear();
    }

    /// In a forked child: the parent's lifeline becomes ours to watch; its write end is closed.
    pub(crate) fn take_parent_lifeline(&mut self) -> Option<OwnedFd> {
        self.lifeline.take().map(|(r, _w)| r)
    }

    fn reap_finished(&mut self) {
        self.children
            .retain(|c| !c.is_ours() || matches!(c.try_reap(), Ok(None)));
    }
}

/// Runs at the exit of every process that started children, as Python's `_exit_function`:
/// daemon children are terminated, the others joined.
pub(crate) fn finish_children() {
    let children = std::mem::take(&mut global().children);
    for child in children.iter().filter(|c| c.daemon && c.is_ours()) {
        let _ = child.signal(libc::SIGTERM);
    }
    for child in children.iter().filter(|c| c.is_ours()) {
        let _ = child.wait(None);
    }
    forkserver::shutdown();
}

extern "C" fn at_exit() {
    finish_children();
}

/// A process running a target function, as Python's `multiprocessing.Process`.
///
/// `R` is what the target returns; [`join`](Process::join) hands it back.
///
/// ```
/// use mp_spawn::Process;
///
/// fn greet(name: String) -> String {
///     format!("hello {name}")
/// }
///
/// let mut p = Process::new(greet, ("bob".to_string(),));
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), "hello bob");
/// assert_eq!(p.exitcode().unwrap(), Some(0));
/// ```
///
/// The target must be a fn item or a non-capturing closure, so that a spawned child can find
/// it again; a capturing closure does not compile (use
/// [`Context::process_closure`](crate::Context::process_closure) under fork):
///
/// ```compile_fail
/// let data = vec![1, 2, 3];
/// let p = mp_spawn::Process::new(move || data.len(), ());
/// ```
pub struct Process<R = ()> {
    name: String,
    daemon: bool,
    method: Option<StartMethod>,
    identity: Vec<u32>,
    creator: u32,
    launch: Option<Box<dyn Launch<R>>>,
    child: Option<Arc<Child>>,
    /// The parent end of the child's result channel, until the result has been read.
    control: Option<OwnedFd>,
    outcome: Option<(Outcome, Vec<OwnedFd>)>,
    joined: bool,
    closed: bool,
    /// Started through a fork helper instead of its start method (`ForkServer::process`);
    /// kept while the process lives, so that the helper can report its exit code.
    helper: Option<Arc<fork_helper::Helper>>,
    _value: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Python's repr: <Process name='X' pid=N started daemon>
        let mut d = f.debug_struct("Process");
        d.field("name", &self.name).field("daemon", &self.daemon);
        if let Some(child) = &self.child {
            d.field("pid", &child.pid)
                .field("exitcode", &*lock(&child.exitcode));
        }
        d.finish()
    }
}

impl<R: Portable> Process<R> {
    /// A process that will run `target(args...)` with the default start method.
    /// `args` is a tuple: `()`, `(x,)`, `(x, y)`, ...
    ///
    /// `target` must be zero-sized: a fn item or a non-capturing closure. This is checked when
    /// the program is built (`cargo build`; `cargo check` does not evaluate it).
    pub fn new<F, A>(target: F, args: A) -> Self
    where
        F: Target<A, Output = R>,
        A: Portable + Send,
    {
        Self::with_method(None, target, args)
    }

    pub(crate) fn with_method<F, A>(method: Option<StartMethod>, target: F, args: A) -> Self
    where
        F: Target<A, Output = R>,
        A: Portable + Send,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "Process::new needs a fn item or a non-capturing closure, so that a spawned child can \
                 find it; pass state through the args, or use Context::process_closure under fork"
            )
        };
        Self::unstarted(method, Box::new(FnLaunch { target, args }))
    }

    /// A process that the fork helper `helper` forks when it starts.
    pub(crate) fn through_helper<F, A>(helper: Arc<fork_helper::Helper>, target: F, args: A) -> Self
    where
        F: Target<A, Output = R>,
        A: Portable + Send,
    {
        let mut process = Self::with_method(Some(StartMethod::Fork), target, args);
        process.helper = Some(helper);
        process
    }

    pub(crate) fn closure_with_method<C>(method: Option<StartMethod>, closure: C) -> Self
    where
        C: FnOnce() -> R + Send + 'static,
    {
        Self::unstarted(method, Box::new(ClosureLaunch(closure)))
    }

    fn unstarted(method: Option<StartMethod>, launch: Box<dyn Launch<R>>) -> Self {
        let mut g = global();
        g.counter += 1;
        let mut identity = g.identity.clone();
        identity.push(g.counter);
        let name = format!(
            "Process-{}",
            identity
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(":")
        );
        Process {
            name,
            daemon: g.daemon,
            method,
            identity,
            creator: mp_sys::process::getpid(),
            launch: Some(launch),
            child: None,
            control: None,
            outcome: None,
            joined: false,
            closed: false,
            helper: None,
            _value: PhantomData,
        }
    }

    /// Sets the name (builder style).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the daemon flag (builder style); by default a process inherits its creator's.
    pub fn with_daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Starts the child.
    pub fn start(&mut self) -> Result<(), ProcessError> {
        self.check_open()?;
        if self.child.is_some() {
            return Err(ProcessError::AlreadyStarted);
        }
        if self.creator != mp_sys::process::getpid() {
            return Err(ProcessError::NotOurChild);
        }
        let method = self.method.unwrap_or_else(get_start_method);
        let launch = self.launch.take().ok_or(ProcessError::AlreadyStarted)?;
        global().reap_finished();
        let spec = ChildSpec {
            name: &self.name,
            identity: &self.identity,
            daemon: self.daemon,
        };
        let started = match method {
            StartMethod::Fork if self.helper.is_none() => {
                popen_fork::start(&spec, move |control| {
                    bootstrap::run_target(move || launch.run(), control)
                })
            }
            _ => {
                let recipe = match launch.recipe(method) {
                    Ok(recipe) => recipe,
                    Err(e) => {
                        self.launch = Some(launch);
                        return Err(e);
                    }
                };
                if let Some(helper) = &self.helper {
                    helper.start(&spec, &recipe)
                } else if method == StartMethod::Spawn {
                    popen_spawn::start(&spec, &recipe)
                } else {
                    forkserver::start(&spec, &recipe)
                }
            }
        };
        let (child, control) = started?;
        let child = Arc::new(child);
        let mut g = global();
        g.children.push(child.clone());
        if !g.exit_hook {
            g.exit_hook = true;
            mp_sys::process::atexit(at_exit);
        }
        self.child = Some(child);
        self.control = Some(control);
        Ok(())
    }

    /// Waits for the process to end and hands back what the target returned.
    ///
    /// A target that panicked, exited or was killed gives the matching [`ProcessError`];
    /// [`exitcode`](Process::exitcode) has the code either way.
    pub fn join(&mut self) -> Result<R, ProcessError> {
        loop {
            if let Some(value) = self.join_until(None)? {
                return Ok(value);
            }
        }
    }

    /// As [`join`](Process::join), but gives up after `timeout`: `Ok(None)` while the process
    /// still runs (then check [`is_alive`](Process::is_alive) or join again).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<R>, ProcessError> {
        self.join_until(crate::deadline::after(timeout))
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Result<Option<R>, ProcessError> {
        let child = self.started_child()?;
        if self.joined {
            return Err(ProcessError::AlreadyJoined);
        }
        // A short-lived child's result waits in the socket until it exits, so at first only
        // the exit is awaited: one wake-up instead of two. After `SOLE_EXIT_WAIT` the result
        // channel is watched too, so that a child blocked on a large result gets drained.
        let sole_exit_wait_until = Instant::now() + SOLE_EXIT_WAIT;
        let code = loop {
            if let Some(code) = child.try_reap_ended()? {
                break code;
            }
            let now = Instant::now();
            let left = deadline.map(|d| d.saturating_duration_since(now));
            let ready = match &self.control {
                // No result channel left to drain: wait for the exit itself.
                None => mp_sys::poll::readable(&[child.exit_fd()], left)?,
                Some(control) if now >= sole_exit_wait_until => {
                    mp_sys::poll::readable(&[child.exit_fd(), control.as_fd()], left)?
                }
                Some(_) => {
                    let phase = sole_exit_wait_until - now;
                    let wait = left.map_or(phase, |l| l.min(phase));
                    mp_sys::poll::readable(&[child.exit_fd()], Some(wait))?
                }
            };
            if ready.get(1) == Some(&true) {
                self.read_outcome();
            }
            if left == Some(Duration::ZERO) && child.try_reap()?.is_none() {
                return Ok(None);
            }
        };
        // The child has ended: whatever it wrote is already in the socket.
        if let Some(control) = &self.control {
            if mp_sys::poll::readable(&[control.as_fd()], Some(Duration::ZERO))?[0] {
                self.read_outcome();
            }
        }
        self.control = None;
        self.joined = true;
        global().children.retain(|c| !Arc::ptr_eq(c, &child));
        self.value_for(code).map(Some)
    }

    fn read_outcome(&mut self) {
        if let Some(control) = self.control.take() {
            if let Ok((payload, fds)) = channel::recv(control.as_fd(), channel::LIMIT) {
                if let Ok(outcome) = postcard::from_bytes::<Outcome>(&payload) {
                    self.outcome = Some((outcome, fds));
                }
            }
        }
    }

    fn value_for(&mut self, code: i32) -> Result<R, ProcessError> {
        match self.outcome.take() {
            // Said just before the child aborted: it wins over `Killed { signal: 6 }`.
            Some((Outcome::StackOverflow, _)) => Err(ProcessError::StackOverflow),
            _ if code < 0 => Err(ProcessError::Killed { signal: -code }),
            Some((Outcome::Returned(bytes), fds)) => {
                reduction::loads(&bytes, fds).map_err(ProcessError::Decode)
            }
            Some((Outcome::Panicked(message), _)) => Err(ProcessError::Panicked { message }),
            Some((Outcome::Failed(message), _)) => Err(ProcessError::Bootstrap { message }),
            // An explicit exit(0) hands back a value only if there is nothing to hand: `()`.
            None if code == 0 => {
                reduction::loads(&[], Vec::new()).map_err(|_| ProcessError::Exited { code })
            }
            None => Err(ProcessError::Exited { code }),
        }
    }
}

impl<R> Process<R> {
    /// The name: `Process-N` by default (`Process-1:2` for a child's child).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the process (Python's `p.name = ...`).
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Whether the process is a daemon: terminated when its parent exits, killed when its
    /// parent dies.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Sets the daemon flag; only before `start`.
    pub fn set_daemon(&mut self, daemon: bool) -> Result<(), ProcessError> {
        self.check_open()?;
        if self.child.is_some() {
            return Err(ProcessError::AlreadyStarted);
        }
        self.daemon = daemon;
        Ok(())
    }

    /// The process id, once started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// `None` while the process runs (or before it starts); then 0 after a normal return, 1
    /// after a panic, n after `exit(n)`, and -N after signal N.
    pub fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        self.check_open()?;
        match &self.child {
            None => Ok(None),
            Some(child) if !child.is_ours() => Err(ProcessError::NotOurChild),
            Some(child) => Ok(child.try_reap()?),
        }
    }

    /// Whether the process has started and not yet ended.
    pub fn is_alive(&self) -> Result<bool, ProcessError> {
        Ok(self.child.is_some() && self.exitcode()?.is_none())
    }

    /// Sends SIGTERM (the exit code becomes -15 unless the target handles it).
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (the exit code becomes -9).
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGKILL)
    }

    /// Sends SIGINT (Python 3.14's `interrupt`).
    pub fn interrupt(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGINT)
    }

    fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        Ok(self.started_child()?.signal(signal)?)
    }

    /// A descriptor that turns readable when the process ends, to wait on several processes at
    /// once with `poll` (or mp-ipc's `wait`).
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>, ProcessError> {
        self.check_open()?;
        Ok(self
            .child
            .as_ref()
            .ok_or(ProcessError::NotStarted)?
            .sentinel())
    }

    /// Releases the process's resources; an error while it still runs. Afterwards every method
    /// but `name`, `daemon` and `pid` returns [`ProcessError::Closed`].
    pub fn close(&mut self) -> Result<(), ProcessError> {
        if self.closed {
            return Ok(());
        }
        if let Some(child) = &self.child {
            if child.is_ours() && child.try_reap()?.is_none() {
                return Err(ProcessError::StillRunning);
            }
            let child = child.clone();
            global().children.retain(|c| !Arc::ptr_eq(c, &child));
        }
        self.launch = None;
        self.control = None;
        self.outcome = None;
        self.closed = true;
        Ok(())
    }

    fn check_open(&self) -> Result<(), ProcessError> {
        if self.closed {
            Err(ProcessError::Closed)
        } else {
            Ok(())
        }
    }

    fn started_child(&self) -> Result<Arc<Child>, ProcessError> {
        self.check_open()?;
        let child = self.child.as_ref().ok_or(ProcessError::NotStarted)?;
        if !child.is_ours() {
            return Err(ProcessError::NotOurChild);
        }
        Ok(child.clone())
    }
}

/// What a start method needs to know about the child it creates.
pub(crate) struct ChildSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) identity: &'a [u32],
    pub(crate) daemon: bool,
}

/// The calling process, as Python's `current_process()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    /// `MainProcess` in the main process, else the name its parent gave it.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it is a daemon.
    pub daemon: bool,
}

/// The calling process: its name, pid and daemon flag.
///
/// ```
/// assert_eq!(mp_spawn::current_process().name, "MainProcess");
/// ```
pub fn current_process() -> CurrentProcess {
    let g = global();
    CurrentProcess {
        name: g.name.to_string(),
        pid: mp_sys::process::getpid(),
        daemon: g.daemon,
    }
}

/// The parent of a child process, as Python's `parent_process()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProcess {
    /// The parent's name.
    pub name: String,
    /// The parent's process id.
    pub pid: u32,
}

impl ParentProcess {
    /// Whether the parent is still running (false as soon as it has died, however it died).
    pub fn is_alive(&self) -> bool {
        !self.join(Some(Duration::ZERO))
    }

    /// Waits up to `timeout` (`None`: forever) for the parent to end; true once it has.
    ///
    /// ```
    /// // In the main process there is no parent to wait for.
    /// assert!(mp_spawn::parent_process().is_none());
    /// ```
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        // A duplicate, so that the wait does not hold the global state's lock.
        let lifeline = global()
            .parent
            .as_ref()
            .and_then(|p| p.lifeline.as_ref()?.try_clone().ok());
        match lifeline {
            Some(fd) => mp_sys::poll::readable(&[fd.as_fd()], timeout)
                .map(|r| r[0])
                .unwrap_or(true),
            None => mp_sys::process::getppid() != self.pid,
        }
    }
}

/// The parent process, or `None` in the main process.
pub fn parent_process() -> Option<ParentProcess> {
    global().parent.as_ref().map(|p| ParentProcess {
        name: p.name.clone(),
        pid: p.pid,
    })
}

/// A running child, as listed by [`active_children`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveChild {
    /// Its name.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it is a daemon.
    pub daemon: bool,
}

/// The children of this process that are still running; finished ones are reaped on the way.
pub fn active_children() -> Vec<ActiveChild> {
    let mut g = global();
    g.reap_finished();
    g.children
        .iter()
        .filter(|c| c.is_ours())
        .map(|c| ActiveChild {
            name: c.name.clone(),
            pid: c.pid,
            daemon: c.daemon,
        })
        .collect()
}

/// The number of CPUs online, as Python's `cpu_count()` (it ignores affinity and quotas).
pub fn cpu_count() -> usize {
    mp_sys::process::online_cpus()
}

/// The number of CPUs this process may use: the affinity mask and the cgroup CPU quota taken
/// into account (Python 3.13's `os.process_cpu_count()`, plus quotas as loky does).
pub fn process_cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

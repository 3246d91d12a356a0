//! `Process`: a child running a target, from `start` to `join`.

use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use serde::Serialize;

use crate::bootstrap;
use crate::child::{Child, ChildSpec};
use crate::code::{Located, locate};
use crate::context::{Context, StartMethod, get_start_method};
use crate::error::ProcessError;
use crate::fork_helper;
use crate::fork_helper::ForkServer;
use crate::launch::{Launch, Recipe};
use crate::limits::{Armed, Limits};
use crate::reduction;
use crate::registry::global;
use crate::target::{Outcome, Portable, Target};
use crate::{entry, forkserver, popen_fork, popen_spawn};

mod caps;
mod join;

/// A target and its arguments. Under fork too, the arguments reach the child serialised (in
/// memory, not through a socket): every start method hands them over the same way, so a value
/// whose serialisation means something (a manager proxy takes a reference for the child) works
/// alike under all three, and the parent may drop its own copy as soon as `start` returns.
struct FnLaunch<F, A> {
    target: F,
    args: A,
    /// Under fork: the arguments, serialised in the parent before the fork.
    forked: Option<reduction::Dumped>,
}

impl<F, A> Launch<F::Output> for FnLaunch<F, A>
where
    F: Target<A>,
    A: Portable + Send,
    F::Output: Serialize,
{
    fn prepare_fork(&mut self) -> Result<(), ProcessError> {
        self.forked = Some(reduction::dumps(&self.args)?);
        Ok(())
    }

    fn run(self: Box<Self>) -> F::Output {
        let FnLaunch {
            target,
            args,
            forked,
        } = *self;
        let args = match forked {
            Some(dumped) => {
                // The parent's copy, duplicated by fork: this child uses its own.
                drop(args);
                match reduction::loads::<A>(&dumped.bytes, dumped.fds) {
                    Ok(args) => args,
                    Err(e) => panic!("cannot decode the arguments: {e}"),
                }
            }
            None => args,
        };
        target.call(args)
    }

    fn recipe(&self, method: StartMethod) -> Result<Recipe, ProcessError> {
        match locate(&self.target) {
            // The child gets the fn pointer's offset (or 0) with the arguments.
            located @ (Located::ZeroSized | Located::FnPointer(_)) => Ok(Recipe {
                entry: bootstrap::entry_ref::<F, A>(),
                args: reduction::dumps(&(located.code(), &self.args))?,
            }),
            Located::Foreign => Err(ProcessError::ForeignTarget),
            // A closure that captures one pointer-sized value: as `process_closure`.
            Located::Captures => Err(ProcessError::ClosureNeedsFork { method }),
        }
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
    limits: Option<Limits>,
    launch: Option<Box<dyn Launch<R>>>,
    child: Option<Arc<Child>>,
    /// The parent end of the child's result channel, until the result has been read.
    control: Option<OwnedFd>,
    outcome: Option<(Outcome, Vec<OwnedFd>)>,
    /// The child reported a stack overflow (it aborts too, as a failed allocation does).
    overflowed: bool,
    /// The child said an allocation failed under its memory cap (see `oom_guard`).
    out_of_memory: bool,
    /// How the process ended, once a join or `wait` has seen it end: what later joins say.
    ended: Option<join::Ended>,
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
                .field("exitcode", &child.known_exitcode());
        }
        d.finish()
    }
}

impl<R: Portable> Process<R> {
    /// A process that will run `target(args...)` with the default start method.
    /// `args` is a tuple: `()`, `(x,)`, `(x, y)`, ...
    ///
    /// `target` is a fn item, a fn pointer (into the program, not into a `dlopen`ed library),
    /// or a closure that captures nothing: a spawned child must find it again. A capturing
    /// closure is refused when the program is built (`cargo build`; `cargo check` does not
    /// evaluate the check), except one that captures a single pointer-sized value, which runs
    /// under fork and is refused by `start` under spawn and forkserver
    /// ([`ProcessError::ClosureNeedsFork`]), as [`Context::process_closure`](crate::Context::process_closure) is.
    ///
    /// ```
    /// fn double(x: u64) -> u64 { 2 * x }
    /// fn triple(x: u64) -> u64 { 3 * x }
    /// let chosen: fn(u64) -> u64 = if std::env::args().count() > 99 { double } else { triple };
    /// let mut p = mp_spawn::Process::new(chosen, (7,));
    /// p.start()?;
    /// assert_eq!(p.join()?, 21);
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    ///
    /// A capturing closure does not build:
    ///
    /// ```compile_fail
    /// let state = vec![1u8, 2, 3];
    /// let p = mp_spawn::Process::new(move || state.len(), ());
    /// ```
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
        const { crate::target::check_findable::<F>() };
        Self::unstarted(
            method,
            Box::new(FnLaunch {
                target,
                args,
                forked: None,
            }),
        )
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
        let identity = g.next_child_identity();
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
            limits: None,
            launch: Some(launch),
            child: None,
            control: None,
            outcome: None,
            overflowed: false,
            out_of_memory: false,
            ended: None,
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
        // Its cgroup (if it gets one) is made here; dropped unused if the start fails.
        let mut armed = self.limits.as_ref().map(Armed::prepare).transpose()?;
        let mut launch = self.launch.take().ok_or(ProcessError::AlreadyStarted)?;
        global().reap_finished();
        let spec = ChildSpec {
            name: &self.name,
            identity: &self.identity,
            daemon: self.daemon,
            limits: armed.as_ref(),
        };
        let started = match method {
            StartMethod::Fork if self.helper.is_none() => {
                if let Err(e) = launch.prepare_fork() {
                    self.launch = Some(launch);
                    return Err(e);
                }
                popen_fork::start(&spec, move |control| {
                    bootstrap::run_target(move || launch.run(), control)
                })
            }
            _ => {
                // Spawned children (and the forkserver) enter through the pre-`main` hook.
                entry::ensure_linked();
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
        let child = Arc::new(child.with_cgroup(armed.as_mut().and_then(Armed::take_cgroup)));
        global().register(child.clone());
        self.child = Some(child);
        self.control = Some(control);
        Ok(())
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
        self.ended = None;
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

// `Context` and `ForkServer` make processes; their constructors live here, with `Process`,
// so that the layers below never name it.
impl Context {
    /// A process running `target(args...)` with this start method. `target` must be a fn item
    /// or a non-capturing closure (it is found again in a spawned child); see [`Process::new`].
    pub fn process<F, A>(&self, target: F, args: A) -> Process<F::Output>
    where
        F: Target<A>,
        A: Portable + Send,
        F::Output: Portable,
    {
        Process::with_method(self.method, target, args)
    }

    /// A process running a closure that may capture anything. Only the fork start method can
    /// run it (the closure is copied with the address space); `start` under spawn or forkserver
    /// returns [`ProcessError::ClosureNeedsFork`](crate::ProcessError::ClosureNeedsFork).
    ///
    /// Under `cargo test`, `print!` in a forked child goes to the test harness's output
    /// capture (a copy inherited from the test thread) and is lost; write to `io::stdout()`
    /// or run the tests with `--nocapture`. Spawn and forkserver children print normally.
    ///
    /// ```
    /// let ctx = mp_spawn::get_context("fork").unwrap();
    /// let words = vec!["a".to_string(), "b".to_string()];
    /// let mut p = ctx.process_closure(move || words.join("+"));
    /// p.start().unwrap();
    /// assert_eq!(p.join().unwrap(), "a+b");
    /// ```
    pub fn process_closure<C, R>(&self, closure: C) -> Process<R>
    where
        C: FnOnce() -> R + Send + 'static,
        R: Portable,
    {
        Process::closure_with_method(self.method, closure)
    }
}

impl ForkServer {
    /// A process running `target(args...)`, to be forked by the helper when it starts. As
    /// with [`Process::new`], `target` is a fn item or a non-capturing closure and `args` a
    /// tuple of serde types (they travel to the helper as for the forkserver start method).
    pub fn process<F, A>(&self, target: F, args: A) -> Process<F::Output>
    where
        F: Target<A>,
        A: Portable + Send,
        F::Output: Portable,
    {
        Process::through_helper(Arc::clone(&self.helper), target, args)
    }
}

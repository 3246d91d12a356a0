//! `AnyProcess`: a [`Process`] with its return type erased, so that processes of different
//! targets share one `Vec`, as in Python's list of processes.

use std::any::{Any, TypeId};
use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::error::ProcessError;
use crate::process::Process;
use crate::target::Portable;

/// A [`Process`] whose return type is erased: everything a `Process` does, but
/// [`join`](AnyProcess::join) drops the target's value instead of handing it back. Processes
/// of different return types then fit in one `Vec`, as Python's list of processes.
///
/// Made by [`Process::erase`] or `AnyProcess::from(process)`, started or not;
/// [`downcast`](AnyProcess::downcast) gives the typed `Process` back.
///
/// ```
/// use mp_spawn::{AnyProcess, Process};
///
/// fn square(n: u64) -> u64 { n * n }
/// fn greet(name: String) -> String { format!("hello {name}") }
/// fn nothing() {}
///
/// let mut processes: Vec<AnyProcess> = vec![
///     Process::new(square, (7,)).erase(),
///     Process::new(greet, ("bob".to_string(),)).into(),
///     Process::new(nothing, ()).erase(),
/// ];
/// for p in &mut processes {
///     p.start()?;
/// }
/// for p in &mut processes {
///     p.join()?;
///     assert_eq!(p.exitcode()?, Some(0));
/// }
/// # Ok::<(), mp_spawn::ProcessError>(())
/// ```
pub struct AnyProcess(Box<dyn Erased>);

/// What `AnyProcess` forwards to its `Process<R>`: the methods whose signature names no `R`.
trait Erased: Send {
    fn start(&mut self) -> Result<(), ProcessError>;
    fn join(&mut self) -> Result<(), ProcessError>;
    fn wait(&mut self) -> Result<(), ProcessError>;
    fn join_timeout(&mut self, timeout: Duration) -> Result<Option<()>, ProcessError>;
    fn name(&self) -> &str;
    fn set_name(&mut self, name: String);
    fn daemon(&self) -> bool;
    fn set_daemon(&mut self, daemon: bool) -> Result<(), ProcessError>;
    fn pid(&self) -> Option<u32>;
    fn exitcode(&self) -> Result<Option<i32>, ProcessError>;
    fn is_alive(&self) -> Result<bool, ProcessError>;
    fn terminate(&self) -> Result<(), ProcessError>;
    fn kill(&self) -> Result<(), ProcessError>;
    fn interrupt(&self) -> Result<(), ProcessError>;
    fn sentinel(&self) -> Result<BorrowedFd<'_>, ProcessError>;
    fn close(&mut self) -> Result<(), ProcessError>;
    fn debug(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn type_id_of(&self) -> TypeId;
}

impl<R: Portable> Erased for Process<R> {
    fn start(&mut self) -> Result<(), ProcessError> {
        Process::start(self)
    }
    fn join(&mut self) -> Result<(), ProcessError> {
        while self.join_dropping(None)?.is_none() {}
        Ok(())
    }
    fn wait(&mut self) -> Result<(), ProcessError> {
        Process::wait(self)
    }
    fn join_timeout(&mut self, timeout: Duration) -> Result<Option<()>, ProcessError> {
        self.join_dropping(mp_sys::deadline::after(timeout))
    }
    fn name(&self) -> &str {
        Process::name(self)
    }
    fn set_name(&mut self, name: String) {
        Process::set_name(self, name)
    }
    fn daemon(&self) -> bool {
        Process::daemon(self)
    }
    fn set_daemon(&mut self, daemon: bool) -> Result<(), ProcessError> {
        Process::set_daemon(self, daemon)
    }
    fn pid(&self) -> Option<u32> {
        Process::pid(self)
    }
    fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        Process::exitcode(self)
    }
    fn is_alive(&self) -> Result<bool, ProcessError> {
        Process::is_alive(self)
    }
    fn terminate(&self) -> Result<(), ProcessError> {
        Process::terminate(self)
    }
    fn kill(&self) -> Result<(), ProcessError> {
        Process::kill(self)
    }
    fn interrupt(&self) -> Result<(), ProcessError> {
        Process::interrupt(self)
    }
    fn sentinel(&self) -> Result<BorrowedFd<'_>, ProcessError> {
        Process::sentinel(self)
    }
    fn close(&mut self) -> Result<(), ProcessError> {
        Process::close(self)
    }
    fn debug(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn type_id_of(&self) -> TypeId {
        TypeId::of::<Self>()
    }
}

impl<R: Portable> Process<R> {
    /// This process with its return type erased, to keep it beside processes of other types
    /// (see [`AnyProcess`]). Works before or after `start`.
    ///
    /// ```
    /// fn square(n: u64) -> u64 { n * n }
    /// fn nothing() {}
    ///
    /// use mp_spawn::Process;
    ///
    /// let mut ps = vec![Process::new(square, (3,)).erase(), Process::new(nothing, ()).erase()];
    /// for p in &mut ps {
    ///     p.start()?;
    /// }
    /// for p in &mut ps {
    ///     p.join()?;
    /// }
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    pub fn erase(self) -> AnyProcess {
        AnyProcess(Box::new(self))
    }
}

impl<R: Portable> From<Process<R>> for AnyProcess {
    fn from(process: Process<R>) -> Self {
        process.erase()
    }
}

impl std::fmt::Debug for AnyProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.debug(f)
    }
}

impl AnyProcess {
    /// Starts the child (see [`Process::start`]).
    pub fn start(&mut self) -> Result<(), ProcessError> {
        self.0.start()
    }

    /// Waits for the process to end; the target's value is dropped. A target that panicked,
    /// exited or was killed gives the matching [`ProcessError`], as [`Process::join`].
    ///
    /// As Python's `join`, any number of times: once the process has ended, a join returns at
    /// once, `Ok(())` again, or the same error again if the process failed (no value is
    /// handed back, so there is none to have taken: never `AlreadyJoined`).
    ///
    /// ```
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let mut p = mp_spawn::Process::new(square, (4,)).erase();
    /// p.start()?;
    /// p.join()?;
    /// p.join()?;
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    pub fn join(&mut self) -> Result<(), ProcessError> {
        self.0.join()
    }

    /// Waits for the process to end without taking the value, so that a typed `join` after
    /// [`downcast`](AnyProcess::downcast) still gets it (see [`Process::wait`]).
    ///
    /// ```
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let mut p = mp_spawn::Process::new(square, (5,)).erase();
    /// p.start()?;
    /// p.wait()?;
    /// assert_eq!(p.downcast::<u64>().unwrap().join()?, 25);
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    pub fn wait(&mut self) -> Result<(), ProcessError> {
        self.0.wait()
    }

    /// As [`join`](AnyProcess::join), but gives up after `timeout`: `Ok(None)` while the
    /// process still runs, `Ok(Some(()))` once it has ended (as `Process<()>::join_timeout`),
    /// also when joined again.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<()>, ProcessError> {
        self.0.join_timeout(timeout)
    }

    /// The name: `Process-N` by default.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Renames the process (Python's `p.name = ...`).
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.0.set_name(name.into())
    }

    /// Whether the process is a daemon (see [`Process::daemon`]).
    pub fn daemon(&self) -> bool {
        self.0.daemon()
    }

    /// Sets the daemon flag; only before `start`.
    pub fn set_daemon(&mut self, daemon: bool) -> Result<(), ProcessError> {
        self.0.set_daemon(daemon)
    }

    /// The process id, once started.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    /// The exit code, as [`Process::exitcode`]: `None` while it runs, then 0, 1 after a
    /// panic, n after `exit(n)`, -N after signal N.
    pub fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        self.0.exitcode()
    }

    /// Whether the process has started and not yet ended.
    pub fn is_alive(&self) -> Result<bool, ProcessError> {
        self.0.is_alive()
    }

    /// Sends SIGTERM (the exit code becomes -15 unless the target handles it).
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.0.terminate()
    }

    /// Sends SIGKILL (the exit code becomes -9).
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.0.kill()
    }

    /// Sends SIGINT (Python 3.14's `interrupt`).
    pub fn interrupt(&self) -> Result<(), ProcessError> {
        self.0.interrupt()
    }

    /// A descriptor that turns readable when the process ends (see [`Process::sentinel`]).
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>, ProcessError> {
        self.0.sentinel()
    }

    /// Releases the process's resources; an error while it still runs (see
    /// [`Process::close`]).
    pub fn close(&mut self) -> Result<(), ProcessError> {
        self.0.close()
    }

    /// The typed process back, if its return type is `R`; else `self` unchanged.
    ///
    /// ```
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let any = mp_spawn::Process::new(square, (4,)).erase();
    /// let any = any.downcast::<String>().unwrap_err();
    /// let mut p = any.downcast::<u64>().unwrap();
    /// p.start()?;
    /// assert_eq!(p.join()?, 16);
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    pub fn downcast<R: Portable>(self) -> Result<Process<R>, AnyProcess> {
        // Asked first, so that a mismatch keeps the erased box intact.
        if self.is::<R>() {
            let any = self.0.into_any();
            Ok(*any
                .downcast::<Process<R>>()
                .expect("the type was checked above"))
        } else {
            Err(self)
        }
    }

    /// Whether this process's target returns `R`.
    pub fn is<R: Portable>(&self) -> bool {
        // Asked of the boxed value, not of the box: the id of the concrete `Process<R>`.
        self.0.type_id_of() == TypeId::of::<Process<R>>()
    }
}

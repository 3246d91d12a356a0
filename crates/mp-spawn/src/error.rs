//! The error types of mp-spawn: one for processes, one for contexts.

use std::path::PathBuf;
use std::time::Duration;
use std::{fmt, io};

pub use crate::context::ContextError;
use crate::context::StartMethod;
use crate::reduction::{DecodeError, EncodeError};

/// What went wrong with a [`Process`](crate::Process): misuse (typed, never a panic), or the
/// way the child ended when it did not hand back a value.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// `start` was called on a process that was already started.
    AlreadyStarted,
    /// The operation needs a started process.
    NotStarted,
    /// The process object was closed.
    Closed,
    /// `close` was called while the process is still running.
    StillRunning,
    /// The process is not a child of the calling process (it was started by another one).
    NotOurChild,
    /// An earlier `join` handed the target's value over, and this later one has none to give
    /// (a target that returns `()` joins again with `Ok(())`). The process has ended:
    /// [`wait`](crate::Process::wait) and `exitcode` still answer, any number of times.
    ///
    /// ```
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let mut p = mp_spawn::Process::new(square, (3,));
    /// p.start()?;
    /// assert_eq!(p.join()?, 9);
    /// assert!(matches!(p.join(), Err(mp_spawn::ProcessError::AlreadyJoined)));
    /// p.wait()?;
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    AlreadyJoined,
    /// A fn pointer target that lies outside the program's code (in a `dlopen`ed library): a
    /// spawned child could not find it. Use a fn item, or the fork start method.
    ForeignTarget,
    /// A capturing closure can run only under the fork start method.
    ClosureNeedsFork {
        /// The start method that refused it.
        method: StartMethod,
    },
    /// Spawn and forkserver start a fresh copy of `/proc/self/exe`, but this process runs
    /// another program than the one that contains mp: it was started through the dynamic
    /// loader (`ld.so ./app`), or mp lives in a shared library loaded by another program (a
    /// Python extension, a plugin). That program would not find mp's entry, so `start` refuses
    /// before starting anything; the fork start method works.
    ///
    /// ```
    /// let e = mp_spawn::ProcessError::ForeignExecutable {
    ///     method: mp_spawn::StartMethod::Spawn,
    ///     exe: "/lib64/ld-linux-x86-64.so.2".into(),
    /// };
    /// assert!(e.to_string().contains("use the fork start method"));
    /// ```
    ForeignExecutable {
        /// The start method that refused.
        method: StartMethod,
        /// What `/proc/self/exe` names (the program a spawned child would run).
        exe: PathBuf,
    },
    /// The target panicked (exit code 1); the message was also printed on the child's stderr.
    Panicked {
        /// The panic message with its location, as Rust prints it:
        /// `panicked at src/x.rs:3:5:\nthe message` (as mp-pool's `PoolError::Panicked`).
        message: String,
    },
    /// The target overflowed its stack. The child printed Rust's message on its stderr (after
    /// `Process <name>:`) and aborted, so its exit code is -6 (SIGABRT), under every start
    /// method, as a Rust program's.
    ///
    /// ```
    /// #[allow(unconditional_recursion)]
    /// fn deep(n: u64) -> u64 {
    ///     let frame = std::hint::black_box([n; 16]);
    ///     deep(std::hint::black_box(n + 1)) + frame[0]
    /// }
    ///
    /// let mut p = mp_spawn::Process::new(deep, (0,));
    /// p.start()?;
    /// assert!(matches!(p.join(), Err(mp_spawn::ProcessError::StackOverflow)));
    /// assert_eq!(p.exitcode()?, Some(-6));
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    StackOverflow,
    /// The process went past its memory cap ([`Limits::memory`](crate::Limits::memory)): an
    /// allocation failed and Rust aborted (SIGABRT, exit code -6; the child reports the failed
    /// allocation just before, from `errno`), or the kernel OOM-killed it in its cgroup
    /// (SIGKILL, exit code -9). An explicit `abort()` stays [`Killed`](Self::Killed).
    ///
    /// ```
    /// use mp_spawn::{Limits, Process, ProcessError};
    ///
    /// fn hog() -> usize {
    ///     let mut blocks = Vec::new();
    ///     loop {
    ///         blocks.push(vec![1u8; 1 << 20]);
    ///         if blocks.len() > 4096 {
    ///             return blocks.len();
    ///         }
    ///     }
    /// }
    ///
    /// let mut p = Process::new(hog, ()).with_limits(Limits::new().memory(32 << 20));
    /// p.start()?;
    /// let e = p.join().unwrap_err();
    /// assert!(matches!(e, ProcessError::MemoryLimit { limit } if limit == 32 << 20));
    /// assert_eq!(e.to_string(), "the process went past its memory limit of 32 MiB");
    /// # Ok::<(), ProcessError>(())
    /// ```
    MemoryLimit {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The process used up its CPU time ([`Limits::cpu_time`](crate::Limits::cpu_time)): the
    /// kernel ended it with SIGXCPU (exit code -24).
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_spawn::{Limits, Process, ProcessError};
    ///
    /// fn spin() {
    ///     let mut x = 0u64;
    ///     loop {
    ///         x = std::hint::black_box(x.wrapping_add(1));
    ///     }
    /// }
    ///
    /// let limits = Limits::new().cpu_time(Duration::from_millis(100));
    /// let mut p = Process::new(spin, ()).with_limits(limits);
    /// p.start()?;
    /// let e = p.join().unwrap_err();
    /// assert!(matches!(e, ProcessError::CpuLimit { .. }));
    /// assert_eq!(e.to_string(), "the process used up its CPU time limit of 100ms");
    /// assert_eq!(p.exitcode()?, Some(-24));
    /// # Ok::<(), ProcessError>(())
    /// ```
    CpuLimit {
        /// The cap.
        limit: Duration,
    },
    /// The process exited with this code without handing back a value (`std::process::exit`).
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The process was killed by this signal (its exit code is `-signal`).
    Killed {
        /// The signal number.
        signal: i32,
    },
    /// The child could not find or decode its target (for instance a different executable).
    Bootstrap {
        /// What the child reported.
        message: String,
    },
    /// The arguments could not be serialised for a spawn or forkserver child.
    Encode(EncodeError),
    /// The child's return value could not be deserialised.
    Decode(DecodeError),
    /// An operating-system call failed.
    Io(io::Error),
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyStarted => f.write_str("cannot start a process twice"),
            Self::NotStarted => f.write_str("process not started"),
            Self::Closed => f.write_str("process object is closed"),
            Self::StillRunning => f.write_str("cannot close a process while it is still running"),
            Self::NotOurChild => {
                f.write_str("can only use a process started by the calling process")
            }
            Self::AlreadyJoined => {
                f.write_str("the process's value was already taken by an earlier join")
            }
            Self::ForeignTarget => f.write_str(
                "the target is a fn pointer outside the program's code (in a dynamically loaded \
                 library), which a spawned child cannot find; use a fn item, or the fork start method",
            ),
            Self::ClosureNeedsFork { method } => write!(
                f,
                "a capturing closure can only be started with the fork start method, not {method}; \
                 use Process::new with a fn and pass the state as arguments"
            ),
            Self::ForeignExecutable { method, exe } => write!(
                f,
                "the {method} start method cannot start a child: this process runs {}, which is \
                 not the program that contains mp (it was started through the dynamic loader, \
                 `ld.so ./app`, or mp is inside a shared library loaded by another program); \
                 use the fork start method (or run the program itself, not through ld.so)",
                exe.display()
            ),
            Self::Panicked { message } => write!(f, "the process {message}"),
            Self::Exited { code } => write!(
                f,
                "the process exited with code {code} without returning a value"
            ),
            Self::StackOverflow => f.write_str("the process overflowed its stack"),
            Self::MemoryLimit { limit } => {
                write!(f, "the process went past its memory limit of {}", Bytes(*limit))
            }
            Self::CpuLimit { limit } => {
                write!(f, "the process used up its CPU time limit of {limit:?}")
            }
            Self::Killed { signal } => write!(f, "the process was killed by signal {signal}"),
            Self::Bootstrap { message } => {
                write!(f, "the child could not start its target: {message}")
            }
            Self::Encode(e) => write!(f, "arguments: {e}"),
            Self::Decode(e) => write!(f, "return value: {e}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl ProcessError {
    /// The same error again, for a later join of a process that failed. Not `Clone`, because
    /// `io::Error` is not: an `Io` keeps its kind and text.
    pub(crate) fn again(&self) -> Self {
        match self {
            Self::AlreadyStarted => Self::AlreadyStarted,
            Self::NotStarted => Self::NotStarted,
            Self::Closed => Self::Closed,
            Self::StillRunning => Self::StillRunning,
            Self::NotOurChild => Self::NotOurChild,
            Self::AlreadyJoined => Self::AlreadyJoined,
            Self::ForeignTarget => Self::ForeignTarget,
            Self::ClosureNeedsFork { method } => Self::ClosureNeedsFork { method: *method },
            Self::ForeignExecutable { method, exe } => Self::ForeignExecutable {
                method: *method,
                exe: exe.clone(),
            },
            Self::Panicked { message } => Self::Panicked {
                message: message.clone(),
            },
            Self::StackOverflow => Self::StackOverflow,
            Self::MemoryLimit { limit } => Self::MemoryLimit { limit: *limit },
            Self::CpuLimit { limit } => Self::CpuLimit { limit: *limit },
            Self::Exited { code } => Self::Exited { code: *code },
            Self::Killed { signal } => Self::Killed { signal: *signal },
            Self::Bootstrap { message } => Self::Bootstrap {
                message: message.clone(),
            },
            Self::Encode(e) => Self::Encode(e.clone()),
            Self::Decode(e) => Self::Decode(e.clone()),
            Self::Io(e) => Self::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// A byte count as people read it: `64 MiB` when it is a whole number of KiB, MiB or GiB.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n >= 1 << shift && n % (1 << shift) == 0 {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        write!(f, "{n} bytes")
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Encode(e) => Some(e),
            Self::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ProcessError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<EncodeError> for ProcessError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

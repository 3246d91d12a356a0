//! Joining a process: waiting for its end, handing its value over once, and telling every
//! later join how it ended (Python's `join` may be called any number of times).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Process;
use crate::child::Child;
use crate::error::ProcessError;
use crate::frame::{self, Codec, Stop};
use crate::reduction;
use crate::registry::global;
use crate::target::{Outcome, Portable};

/// How long `join` waits for the exit alone before it also drains the result channel.
const SOLE_EXIT_WAIT: Duration = Duration::from_millis(1);

/// How a process ended, kept so that every join after the first answers at once.
pub(super) enum Ended {
    /// The target returned: its value, serialised, until a join decodes it.
    Value(Vec<u8>, Vec<OwnedFd>),
    /// A join handed the value over.
    Taken,
    /// The process failed, or its value did not decode: this error, to every join.
    Failed(ProcessError),
}

impl<R: Portable> Process<R> {
    /// Waits for the process to end and hands back what the target returned.
    ///
    /// A target that panicked, exited or was killed gives the matching [`ProcessError`];
    /// [`exitcode`](Process::exitcode) has the code either way.
    ///
    /// As Python's, a process may be joined any number of times: once it has ended, a join
    /// returns at once. The first join moves the value out, so later ones say how the process
    /// ended without it:
    ///
    /// - a process that failed gives the same error again (`Panicked`, `Killed`, ...);
    /// - a target that returns `()`, as a ported Python target does, gives `Ok(())` again
    ///   (nothing was moved out), so `p.join()?; p.join()?;` works as in Python;
    /// - a target that returned another value gives [`ProcessError::AlreadyJoined`]: a copy
    ///   would need `R: Clone`, or decoding the value twice (which duplicates the descriptors
    ///   and references it carries). [`wait`](Process::wait) waits any number of times
    ///   without taking the value, for code that joins in several places.
    ///
    /// `join` keeps returning `Result<R, _>` rather than `Result<Option<R>, _>`, which would
    /// turn every `p.join()?` that uses the value into an `Option` to unwrap.
    ///
    /// ```
    /// use mp_spawn::{Process, ProcessError};
    ///
    /// fn nothing() {}
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let mut p = Process::new(nothing, ());
    /// p.start()?;
    /// p.join()?;
    /// p.join()?; // at once, as Python's
    ///
    /// let mut q = Process::new(square, (7,));
    /// q.start()?;
    /// assert_eq!(q.join()?, 49);
    /// assert!(matches!(q.join(), Err(ProcessError::AlreadyJoined)));
    /// assert_eq!(q.exitcode()?, Some(0));
    /// # Ok::<(), ProcessError>(())
    /// ```
    pub fn join(&mut self) -> Result<R, ProcessError> {
        while !self.wait_until(None)? {}
        self.hand_over()
    }

    /// As [`join`](Process::join), but gives up after `timeout`: `Ok(None)` while the process
    /// still runs (then check [`is_alive`](Process::is_alive) or join again). Once the process
    /// has ended, it answers at once, as `join` does.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<R>, ProcessError> {
        if !self.wait_until(mp_sys::deadline::after(timeout))? {
            return Ok(None);
        }
        self.hand_over().map(Some)
    }

    /// Waits for the process to end, as [`join`](Process::join), but leaves the target's value
    /// for a later `join`: `Ok(())` if the target returned, else the error its ending gives
    /// (as `join`'s). Any number of times; once the process has ended it returns at once.
    /// This is Python's `join`, for code that waits in several places and takes the value
    /// once. (Whether the value decodes is known when `join` decodes it.)
    ///
    /// ```
    /// use mp_spawn::{Process, ProcessError};
    ///
    /// fn square(n: u64) -> u64 { n * n }
    /// fn boom() { panic!("boom") }
    ///
    /// let mut p = Process::new(square, (6,));
    /// p.start()?;
    /// p.wait()?;
    /// p.wait()?;
    /// assert_eq!(p.join()?, 36);
    /// p.wait()?; // still fine once the value is taken
    ///
    /// let mut q = Process::new(boom, ());
    /// q.start()?;
    /// assert!(matches!(q.wait(), Err(ProcessError::Panicked { .. })));
    /// assert!(matches!(q.join(), Err(ProcessError::Panicked { .. })));
    /// # Ok::<(), ProcessError>(())
    /// ```
    pub fn wait(&mut self) -> Result<(), ProcessError> {
        while !self.wait_until(None)? {}
        match &self.ended {
            Some(Ended::Failed(e)) => Err(e.again()),
            _ => Ok(()),
        }
    }

    /// For `AnyProcess`: waits until `deadline` (`Ok(None)` if it passes first), then decodes
    /// the value, if not yet taken, and drops it: its descriptors close, and a value that does
    /// not decode is reported as by `join`.
    pub(crate) fn join_dropping(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<()>, ProcessError> {
        if !self.wait_until(deadline)? {
            return Ok(None);
        }
        self.take_value().map(|_| Some(()))
    }

    /// Waits for the process to end; `false` if `deadline` passed first. Once the process
    /// has ended (`self.ended` set), returns at once.
    fn wait_until(&mut self, deadline: Option<Instant>) -> Result<bool, ProcessError> {
        let child = self.started_child()?;
        if self.ended.is_some() {
            return Ok(true);
        }
        // A short-lived child's result waits in the socket until it exits, so at first only
        // the exit is awaited: one wake-up instead of two. After `SOLE_EXIT_WAIT` the result
        // channel is watched too, so that a child blocked on a large result gets drained.
        let sole_exit_wait_until = mp_sys::deadline::after(SOLE_EXIT_WAIT);
        let code = loop {
            if let Some(code) = child.try_reap_ended()? {
                break code;
            }
            let now = Instant::now();
            let left = deadline.map(|d| d.saturating_duration_since(now));
            let ready = match &self.control {
                // No result channel left to drain: wait for the exit itself.
                None => mp_sys::poll::readable(&[child.exit_fd()], left)?,
                Some(control) if sole_exit_wait_until.is_none_or(|until| now >= until) => {
                    mp_sys::poll::readable(&[child.exit_fd(), control.as_fd()], left)?
                }
                Some(_) => {
                    let phase = sole_exit_wait_until.map_or(Duration::ZERO, |until| until - now);
                    let wait = left.map_or(phase, |l| l.min(phase));
                    mp_sys::poll::readable(&[child.exit_fd()], Some(wait))?
                }
            };
            if ready.get(1) == Some(&true) {
                self.read_outcome();
            }
            if left == Some(Duration::ZERO) && child.try_reap()?.is_none() {
                return Ok(false);
            }
        };
        self.finish(&child, code)?;
        Ok(true)
    }

    /// Waits for the process to end without blocking a thread (feature `async`): the future
    /// resolves on the readiness of the process's pidfd (and of its result channel, so that a
    /// child writing a large result is drained meanwhile), through async-io's reactor, under
    /// any executor (tokio, either flavour; smol; `futures::executor`). Same result as
    /// [`join`](Process::join), also when joined again.
    ///
    /// Dropping the future before it resolves loses nothing: the process can still be joined
    /// (blocking or async).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let mut p = mp_spawn::Process::new(square, (7,));
    /// p.start()?;
    /// // Any executor; futures' own here.
    /// assert_eq!(futures::executor::block_on(p.join_async())?, 49);
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    #[cfg(feature = "async")]
    pub async fn join_async(&mut self) -> Result<R, ProcessError> {
        let child = self.started_child()?;
        while self.ended.is_none() {
            if let Some(code) = child.try_reap_ended()? {
                self.finish(&child, code)?;
                break;
            }
            let ready = match &self.control {
                Some(control) => mp_sys::aio::readable(&[child.exit_fd(), control.as_fd()])?,
                None => mp_sys::aio::readable(&[child.exit_fd()])?,
            };
            ready.await?;
            let result_waiting = match &self.control {
                Some(control) => {
                    mp_sys::poll::readable(&[control.as_fd()], Some(Duration::ZERO))?[0]
                }
                None => false,
            };
            if result_waiting {
                self.read_outcome();
            }
        }
        self.hand_over()
    }

    /// The end of a wait, once the child has ended with `code`: how it ended, for every join.
    fn finish(&mut self, child: &Arc<Child>, code: i32) -> Result<(), ProcessError> {
        // The child has ended: whatever it wrote is already in the socket.
        if let Some(control) = &self.control {
            if mp_sys::poll::readable(&[control.as_fd()], Some(Duration::ZERO))?[0] {
                self.read_outcome();
            }
        }
        self.control = None;
        global().children.retain(|c| !Arc::ptr_eq(c, child));
        self.ended = Some(self.ending(code));
        Ok(())
    }

    fn read_outcome(&mut self) {
        if let Some(control) = self.control.take() {
            if let Ok((payload, fds)) =
                Codec::CHANNEL.recv(control.as_fd(), frame::LIMIT, Stop::NEVER)
            {
                if let Ok(outcome) = postcard::from_bytes::<Outcome>(&payload) {
                    self.outcome = Some((outcome, fds));
                }
            }
        }
    }

    /// How a child that ended with `code` ended, from what it said on its result channel.
    fn ending(&mut self, code: i32) -> Ended {
        if let Some((Outcome::StackOverflow, _)) = &self.outcome {
            self.overflowed = true;
        }
        let failure = match self.outcome.take() {
            // Said just before the child aborted: it wins over `Killed { signal: 6 }` (and
            // over a memory cap's reading of SIGABRT).
            Some((Outcome::StackOverflow, _)) => ProcessError::StackOverflow,
            // Said just before the child aborted, after an allocation failed under its cap.
            Some((Outcome::OutOfMemory, _)) => {
                self.out_of_memory = true;
                self.limit_hit()
                    .map_or(ProcessError::Killed { signal: -code }, ProcessError::from)
            }
            _ if code < 0 => self
                .limit_hit()
                .map_or(ProcessError::Killed { signal: -code }, Into::into),
            Some((Outcome::Returned(bytes), fds)) => return Ended::Value(bytes, fds),
            Some((Outcome::Panicked(message), _)) => ProcessError::Panicked { message },
            Some((Outcome::Failed(message), _)) => ProcessError::Bootstrap { message },
            // An explicit exit(0) hands back a value only if there is nothing to hand: `()`.
            None if code == 0 && reduction::loads::<R>(&[], Vec::new()).is_ok() => {
                return Ended::Value(Vec::new(), Vec::new());
            }
            None => ProcessError::Exited { code },
        };
        Ended::Failed(failure)
    }

    /// What a join of the ended process gives: the value the first time; then see `join`.
    fn hand_over(&mut self) -> Result<R, ProcessError> {
        match self.take_value()? {
            Some(value) => Ok(value),
            // Taken already. A `()` has nothing to take: made again, as `exit(0)`'s is.
            None => reduction::loads(&[], Vec::new()).map_err(|_| ProcessError::AlreadyJoined),
        }
    }

    /// The value, decoded, if no join took it yet (`None` if one did); the ending's error if
    /// the process failed. Called once the process has ended.
    fn take_value(&mut self) -> Result<Option<R>, ProcessError> {
        match self.ended.take() {
            Some(Ended::Value(bytes, fds)) => {
                let value = reduction::loads(&bytes, fds).map_err(ProcessError::Decode);
                self.ended = Some(match &value {
                    Ok(_) => Ended::Taken,
                    Err(e) => Ended::Failed(e.again()),
                });
                value.map(Some)
            }
            Some(Ended::Failed(e)) => {
                let again = e.again();
                self.ended = Some(Ended::Failed(e));
                Err(again)
            }
            ended => {
                self.ended = ended;
                Ok(None)
            }
        }
    }
}

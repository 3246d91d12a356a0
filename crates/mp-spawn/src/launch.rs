//! The erased [`Launch`] a start method turns into a child: a target and its arguments, run in
//! a forked child, or described by a [`Recipe`] for a fresh process.

use crate::code::RawCodeRef;
use crate::context::StartMethod;
use crate::error::ProcessError;
use crate::reduction::Dumped;

/// What a spawn or forkserver child needs to find and call its target.
pub(crate) struct Recipe {
    pub(crate) entry: RawCodeRef,
    pub(crate) args: Dumped,
}

/// The target and its arguments, erased over their types.
pub(crate) trait Launch<R>: Send {
    /// Called in the parent just before a fork: the arguments are serialised here and
    /// deserialised in the child, as under spawn (see `FnLaunch`).
    fn prepare_fork(&mut self) -> Result<(), ProcessError> {
        Ok(())
    }
    /// Runs the target here (in a forked child).
    fn run(self: Box<Self>) -> R;
    /// How a fresh process finds the target again, if it can.
    fn recipe(&self, method: StartMethod) -> Result<Recipe, ProcessError>;
}

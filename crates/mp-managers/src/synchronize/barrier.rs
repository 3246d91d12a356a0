//! `Manager::barrier`: Python's `threading.Barrier`, held by the server.

use std::time::Duration;

use mp_shm::sync_rules;
use serde::{Deserialize, Serialize};

use super::Cell;
use crate::error::{ManagerError, RemoteError};
use crate::manager::Manager;
use crate::proxy::SharedProxy;
use crate::servant::{Caller, SharedServant};

/// A call on a barrier.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum BarrierCall {
    Wait(Option<Duration>),
    Abort,
    Reset,
    Parties,
    NWaiting,
    Broken,
}

/// A barrier's state (`sync_rules::Barrier`, the machine mp-shm's `Barrier` runs too) and its
/// default timeout.
pub(crate) struct State {
    rules: sync_rules::Barrier,
    timeout: Option<Duration>,
}

/// The server's side of a [`Barrier`].
pub(crate) struct BarrierServant(Cell<State>);

impl SharedServant for BarrierServant {
    type Args = (u64, Option<Duration>);
    type Call = BarrierCall;
    type Reply = u64;

    fn create((parties, timeout): (u64, Option<Duration>)) -> Self {
        BarrierServant(Cell::new(State {
            // `Manager::barrier` refuses 0; a forged request gets a barrier of one.
            rules: sync_rules::Barrier::new(parties),
            timeout,
        }))
    }

    fn call(&self, call: BarrierCall, caller: &Caller<'_>) -> Result<u64, RemoteError> {
        let mut state = self.0.lock();
        match call {
            BarrierCall::Wait(timeout) => {
                let deadline = mp_sys::deadline::of(timeout.or(state.timeout));
                // Wait for a previous round to drain or reset (a gone caller gets no answer).
                let (mut state, open) = self
                    .0
                    .wait_with(state, caller, None, |s| (!s.rules.closed()).then_some(()));
                if open.is_none() {
                    return Err(RemoteError::BrokenBarrier);
                }
                let Ok(arrival) = state.rules.arrive() else {
                    return Err(RemoteError::BrokenBarrier);
                };
                let result = if arrival.last {
                    self.0.notify();
                    Ok(arrival.index)
                } else {
                    let outcome;
                    (state, outcome) = self
                        .0
                        .wait_with(state, caller, deadline, |s| s.rules.outcome());
                    match outcome {
                        Some(Ok(())) => Ok(arrival.index),
                        Some(Err(_)) => Err(RemoteError::BrokenBarrier),
                        // Timed out, or its caller is gone (a party that will never come
                        // back): the barrier breaks, as Python's does on a timeout, instead
                        // of hanging the others.
                        None => {
                            state.rules.abort();
                            self.0.notify();
                            Err(RemoteError::BrokenBarrier)
                        }
                    }
                };
                // The last one out of a released or reset round opens the barrier again.
                if state.rules.leave() {
                    self.0.notify();
                }
                result
            }
            BarrierCall::Abort => {
                state.rules.abort();
                drop(state);
                self.0.notify();
                Ok(0)
            }
            BarrierCall::Reset => {
                state.rules.reset();
                drop(state);
                self.0.notify();
                Ok(0)
            }
            BarrierCall::Parties => Ok(state.rules.parties),
            BarrierCall::NWaiting => Ok(state.rules.n_waiting()),
            BarrierCall::Broken => Ok(u64::from(state.rules.broken())),
        }
    }
}

/// A barrier held by a manager's server (Python's `manager.Barrier(parties, timeout=...)`;
/// Python's `action` has no equivalent: run it in the party whose
/// [`wait`](Barrier::wait) returns 0). A party killed while it waits breaks the barrier, so the
/// others fail with [`RemoteError::BrokenBarrier`] instead of waiting forever.
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let barrier = manager.barrier(1, None)?;
/// assert_eq!(barrier.wait(None)?, 0);
/// assert_eq!(barrier.parties()?, 1);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Barrier {
    proxy: SharedProxy<BarrierServant>,
}

impl Barrier {
    /// Waits until all parties have called it (Python's `wait(timeout)`): this party's index,
    /// `0..parties`. Broken (aborted, reset, or timed out while waiting):
    /// [`RemoteError::BrokenBarrier`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<u64, ManagerError> {
        self.proxy.call(BarrierCall::Wait(timeout))
    }

    /// Breaks the barrier: its waiters, and later callers, fail (Python's `abort()`).
    pub fn abort(&self) -> Result<(), ManagerError> {
        self.proxy.call(BarrierCall::Abort).map(drop)
    }

    /// Makes it new: its waiters fail, and it can be used again (Python's `reset()`).
    pub fn reset(&self) -> Result<(), ManagerError> {
        self.proxy.call(BarrierCall::Reset).map(drop)
    }

    /// How many parties it waits for.
    pub fn parties(&self) -> Result<u64, ManagerError> {
        self.proxy.call(BarrierCall::Parties)
    }

    /// How many parties wait now.
    pub fn n_waiting(&self) -> Result<u64, ManagerError> {
        self.proxy.call(BarrierCall::NWaiting)
    }

    /// Whether it is broken.
    pub fn broken(&self) -> Result<bool, ManagerError> {
        Ok(self.proxy.call(BarrierCall::Broken)? == 1)
    }
}

proxy_wrapper!(Barrier<> where);

impl Manager {
    /// A new barrier for `parties` held by the server (Python's `manager.Barrier(parties,
    /// timeout=timeout)`): `timeout` is the default of each [`wait`](Barrier::wait). No
    /// parties: [`RemoteError::Value`] (Python's `ValueError`).
    pub fn barrier(
        &self,
        parties: u64,
        timeout: Option<Duration>,
    ) -> Result<Barrier, ManagerError> {
        if parties == 0 {
            return Err(ManagerError::Remote(RemoteError::Value));
        }
        Ok(Barrier {
            proxy: SharedProxy::new(self.serve_shared::<BarrierServant>((parties, timeout))?),
        })
    }
}

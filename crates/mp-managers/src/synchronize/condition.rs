//! `Manager::condition`: Python's `threading.Condition` (with its own reentrant lock), held by
//! the server.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Cell;
use super::lock::LockGuard;
use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::{BaseProxy, Managed, SharedProxy};
use crate::servant::{Caller, SharedServant};

/// A call on a condition.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ConditionCall {
    Acquire {
        block: bool,
        timeout: Option<Duration>,
    },
    Release,
    Wait(Option<Duration>),
    Notify(u64),
    NotifyAll,
}

/// The lock's holder and the waiters, each with a ticket, in the order they came.
#[derive(Default)]
pub(crate) struct State {
    owner: Option<u64>,
    depth: u32,
    next_ticket: u64,
    waiting: VecDeque<u64>,
    woken: HashSet<u64>,
}

impl State {
    fn take(&mut self, caller: u64, depth: u32) -> Option<()> {
        match self.owner {
            None => {
                (self.owner, self.depth) = (Some(caller), depth);
                Some(())
            }
            Some(owner) if owner == caller => {
                self.depth += depth;
                Some(())
            }
            Some(_) => None,
        }
    }

    fn owned_by(&self, caller: u64, what: &str) -> Result<(), RemoteError> {
        if self.owner == Some(caller) {
            Ok(())
        } else {
            Err(RemoteError::Runtime(format!(
                "cannot {what} un-acquired lock"
            )))
        }
    }
}

/// The server's side of a [`Condition`].
#[derive(Default)]
pub(crate) struct ConditionServant(Cell<State>);

impl SharedServant for ConditionServant {
    type Args = ();
    type Call = ConditionCall;
    type Reply = bool;

    fn create((): ()) -> Self {
        ConditionServant::default()
    }

    fn call(&self, call: ConditionCall, caller: &Caller<'_>) -> Result<bool, RemoteError> {
        match call {
            ConditionCall::Acquire { block, timeout } => {
                let timeout = if block { timeout } else { Some(Duration::ZERO) };
                Ok(self
                    .0
                    .wait_for(caller, timeout, |s| s.take(caller.id, 1))
                    .is_some())
            }
            ConditionCall::Release => {
                let mut state = self.0.lock();
                state.owned_by(caller.id, "release")?;
                state.depth -= 1;
                if state.depth == 0 {
                    state.owner = None;
                    drop(state);
                    self.0.notify();
                }
                Ok(true)
            }
            ConditionCall::Wait(timeout) => self.wait(caller, timeout),
            ConditionCall::Notify(n) => {
                let mut state = self.0.lock();
                state.owned_by(caller.id, "notify on")?;
                for _ in 0..n {
                    let Some(ticket) = state.waiting.pop_front() else {
                        break;
                    };
                    state.woken.insert(ticket);
                }
                drop(state);
                self.0.notify();
                Ok(true)
            }
            ConditionCall::NotifyAll => self.call(ConditionCall::Notify(u64::MAX), caller),
        }
    }

    fn caller_gone(&self, caller: u64) {
        let mut state = self.0.lock();
        if state.owner == Some(caller) {
            (state.owner, state.depth) = (None, 0);
            drop(state);
            self.0.notify();
        }
    }
}

impl ConditionServant {
    /// Python's `Condition.wait`: lets go of the lock, waits for a notify (or the timeout),
    /// and takes the lock again, as deep as it was held.
    fn wait(&self, caller: &Caller<'_>, timeout: Option<Duration>) -> Result<bool, RemoteError> {
        let mut state = self.0.lock();
        state.owned_by(caller.id, "wait on")?;
        let depth = std::mem::take(&mut state.depth);
        state.owner = None;
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push_back(ticket);
        self.0.notify();
        let deadline = mp_sys::deadline::of(timeout);
        let (mut state, notified) = self.0.wait_with(state, caller, deadline, |s| {
            s.woken.remove(&ticket).then_some(())
        });
        if notified.is_none() {
            state.waiting.retain(|&t| t != ticket);
            // Notified (which only a caller gone before it could see it leaves here) or not:
            // a gone caller's notify goes to the next waiter instead of being lost with it,
            // and a gone caller does not take the lock again.
            let notified_when_gone = state.woken.remove(&ticket);
            if notified_when_gone || !(caller.alive)() {
                if notified_when_gone {
                    if let Some(next) = state.waiting.pop_front() {
                        state.woken.insert(next);
                    }
                }
                drop(state);
                self.0.notify();
                return Err(RemoteError::Runtime("the caller is gone".to_owned()));
            }
        }
        // The lock is taken again whatever happened, as Python does (a gone caller excepted).
        let (state, again) = self
            .0
            .wait_with(state, caller, None, |s| s.take(caller.id, depth));
        drop(state);
        if again.is_none() {
            return Err(RemoteError::Runtime("the caller is gone".to_owned()));
        }
        Ok(notified.is_some())
    }
}

/// A condition variable held by a manager's server, with its own reentrant lock (Python's
/// `manager.Condition()`).
///
/// ```
/// use std::time::Duration;
///
/// let manager = mp_managers::Manager::new()?;
/// let cond = manager.condition()?;
/// let _guard = cond.lock()?;
/// // Nobody notifies: the wait times out, and the lock is held again.
/// assert!(!cond.wait(Some(Duration::from_millis(10)))?);
/// cond.notify_all()?;
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Condition {
    proxy: SharedProxy<ConditionServant>,
}

fn release(base: &BaseProxy) {
    // A server that is gone holds no lock.
    let _ = base.call::<_, bool>(&ConditionCall::Release);
}

impl Condition {
    /// Takes the lock (Python's `acquire(block, timeout)`).
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool, ManagerError> {
        self.proxy.call(ConditionCall::Acquire { block, timeout })
    }

    /// Releases the lock (Python's `release()`).
    pub fn release(&self) -> Result<(), ManagerError> {
        self.proxy.call(ConditionCall::Release).map(drop)
    }

    /// Takes the lock until the guard is dropped (Python's `with cond:`).
    pub fn lock(&self) -> Result<LockGuard<'_>, ManagerError> {
        if !self.acquire(true, None)? {
            return unexpected();
        }
        Ok(LockGuard::new(self.proxy.base(), release))
    }

    /// Waits for a notify (Python's `wait(timeout)`): lets go of the lock meanwhile, and holds
    /// it again on return; `false` if `timeout` passed first. Not holding the lock:
    /// [`RemoteError::Runtime`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, ManagerError> {
        self.proxy.call(ConditionCall::Wait(timeout))
    }

    /// Waits until `predicate` holds (Python's `wait_for(predicate, timeout)`, the predicate
    /// run here, in the caller): its last value.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, ManagerError> {
        let deadline = mp_sys::deadline::of(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            // No deadline: no timeout, or one too far to tell from forever.
            let left = match deadline {
                None => None,
                Some(deadline) => {
                    match deadline.checked_duration_since(std::time::Instant::now()) {
                        Some(left) if !left.is_zero() => Some(left),
                        _ => return Ok(false),
                    }
                }
            };
            self.wait(left)?;
        }
    }

    /// Wakes up to `n` waiters (Python's `notify(n)`).
    pub fn notify(&self, n: u64) -> Result<(), ManagerError> {
        self.proxy.call(ConditionCall::Notify(n)).map(drop)
    }

    /// Wakes every waiter (Python's `notify_all()`).
    pub fn notify_all(&self) -> Result<(), ManagerError> {
        self.proxy.call(ConditionCall::NotifyAll).map(drop)
    }
}

proxy_wrapper!(Condition<> where);

impl Manager {
    /// A new condition variable held by the server (Python's `manager.Condition()`).
    pub fn condition(&self) -> Result<Condition, ManagerError> {
        Ok(Condition {
            proxy: SharedProxy::new(self.serve_shared::<ConditionServant>(())?),
        })
    }
}

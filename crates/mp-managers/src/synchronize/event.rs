//! `Manager::event`: Python's `threading.Event`, held by the server.

use std::time::Duration;

use mp_shm::sync_rules;
use serde::{Deserialize, Serialize};

use super::Cell;
use crate::error::{ManagerError, RemoteError};
use crate::manager::Manager;
use crate::proxy::SharedProxy;
use crate::servant::{Caller, SharedServant};

/// A call on an event.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum EventCall {
    Set,
    Clear,
    IsSet,
    Wait(Option<Duration>),
}

/// The state of an [`Event`]: the flag, and how many times it was set.
#[derive(Default)]
pub(crate) struct EventState {
    set: bool,
    /// Moves on at every `set`: a waiter that sees it move was woken by a set, even if a
    /// `clear` came before it ran again (`sync_rules::event_woken`, as mp-shm's `Event`).
    generation: u64,
}

/// The server's side of an [`Event`].
#[derive(Default)]
pub(crate) struct EventServant(Cell<EventState>);

impl SharedServant for EventServant {
    type Args = ();
    type Call = EventCall;
    type Reply = bool;

    fn create((): ()) -> Self {
        EventServant::default()
    }

    fn call(&self, call: EventCall, caller: &Caller<'_>) -> Result<bool, RemoteError> {
        Ok(match call {
            EventCall::Set => {
                let mut state = self.0.lock();
                state.set = true;
                state.generation = state.generation.wrapping_add(1);
                drop(state);
                self.0.notify();
                true
            }
            EventCall::Clear => {
                self.0.lock().set = false;
                false
            }
            EventCall::IsSet => self.0.lock().set,
            EventCall::Wait(timeout) => self.wait(caller, timeout),
        })
    }
}

impl EventServant {
    /// Python's `wait`: true if the flag is set, or was set while this caller waited.
    fn wait(&self, caller: &Caller<'_>, timeout: Option<Duration>) -> bool {
        let state = self.0.lock();
        if state.set {
            return true;
        }
        // Read under the lock the waits below start from: no set can slip in between.
        let start = state.generation;
        let deadline = mp_sys::deadline::of(timeout);
        let (state, woken) = self.0.wait_with(state, caller, deadline, |state| {
            sync_rules::event_woken(state.set, start, state.generation).then_some(())
        });
        drop(state);
        woken.is_some()
    }
}

#[cfg(test)]
mod test;

/// An event held by a manager's server (Python's `manager.Event()`).
///
/// ```
/// use std::time::Duration;
///
/// let manager = mp_managers::Manager::new()?;
/// let event = manager.event()?;
/// assert!(!event.wait(Some(Duration::ZERO))?);
/// event.set()?;
/// assert!(event.is_set()?);
/// assert!(event.wait(None)?);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Event {
    proxy: SharedProxy<EventServant>,
}

impl Event {
    /// Sets the flag and wakes every waiter (Python's `set()`).
    pub fn set(&self) -> Result<(), ManagerError> {
        self.proxy.call(EventCall::Set).map(drop)
    }

    /// Clears the flag (Python's `clear()`).
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.proxy.call(EventCall::Clear).map(drop)
    }

    /// Whether the flag is set (Python's `is_set()`).
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        self.proxy.call(EventCall::IsSet)
    }

    /// Waits until the flag is set (Python's `wait(timeout)`): `false` if `timeout` passed
    /// first.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, ManagerError> {
        self.proxy.call(EventCall::Wait(timeout))
    }
}

proxy_wrapper!(Event<> where);

impl Manager {
    /// A new event held by the server (Python's `manager.Event()`).
    pub fn event(&self) -> Result<Event, ManagerError> {
        Ok(Event {
            proxy: SharedProxy::new(self.serve_shared::<EventServant>(())?),
        })
    }
}

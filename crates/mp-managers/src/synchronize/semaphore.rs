//! `Manager::semaphore` and `Manager::bounded_semaphore`: Python's `threading.Semaphore` and
//! `BoundedSemaphore`, held by the server.

use std::time::Duration;

use mp_shm::sync_rules;
use serde::{Deserialize, Serialize};

use super::Cell;
use crate::error::{ManagerError, RemoteError};
use crate::manager::Manager;
use crate::proxy::SharedProxy;
use crate::servant::{Caller, SharedServant};

/// A call on a semaphore.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SemaphoreCall {
    Acquire {
        block: bool,
        timeout: Option<Duration>,
    },
    Release(u32),
    Value,
}

/// A semaphore's count, and its bound if it has one.
pub(crate) struct Count {
    value: u64,
    bound: u64,
}

/// The server's side of a [`Semaphore`] (`BOUNDED = false`) or a [`BoundedSemaphore`].
pub(crate) struct SemaphoreServant<const BOUNDED: bool>(Cell<Count>);

impl<const BOUNDED: bool> SharedServant for SemaphoreServant<BOUNDED> {
    type Args = u32;
    type Call = SemaphoreCall;
    type Reply = u64;

    fn create(value: u32) -> Self {
        SemaphoreServant(Cell::new(Count {
            value: value.into(),
            bound: if BOUNDED { value.into() } else { u64::MAX },
        }))
    }

    fn call(&self, call: SemaphoreCall, caller: &Caller<'_>) -> Result<u64, RemoteError> {
        match call {
            SemaphoreCall::Acquire { block, timeout } => {
                let timeout = if block { timeout } else { Some(Duration::ZERO) };
                let got = self.0.wait_for(caller, timeout, |count| {
                    count.value = sync_rules::acquired(count.value)?;
                    Some(())
                });
                Ok(u64::from(got.is_some()))
            }
            SemaphoreCall::Release(n) => {
                let mut count = self.0.lock();
                let Some(value) = sync_rules::released(count.value, n.into(), count.bound) else {
                    return Err(RemoteError::Runtime(
                        "Semaphore released too many times".to_owned(),
                    ));
                };
                count.value = value;
                drop(count);
                self.0.notify();
                Ok(0)
            }
            SemaphoreCall::Value => Ok(self.0.lock().value),
        }
    }
}

/// A semaphore held by a manager's server (Python's `manager.Semaphore(value)`).
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let sem = manager.semaphore(2)?;
/// assert!(sem.acquire(true, None)?);
/// assert!(sem.acquire(false, None)?);
/// assert!(!sem.acquire(false, None)?);
/// sem.release()?;
/// assert_eq!(sem.get_value()?, 1);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Semaphore {
    proxy: SharedProxy<SemaphoreServant<false>>,
}

/// A semaphore that refuses to be released above its initial value (Python's
/// `manager.BoundedSemaphore(value)`): such a release is [`RemoteError::Runtime`].
///
/// ```
/// use mp_managers::{ManagerError, RemoteError};
///
/// let manager = mp_managers::Manager::new()?;
/// let sem = manager.bounded_semaphore(1)?;
/// assert!(matches!(sem.release(), Err(ManagerError::Remote(RemoteError::Runtime(_)))));
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct BoundedSemaphore {
    proxy: SharedProxy<SemaphoreServant<true>>,
}

macro_rules! semaphore_methods {
    ($name:ident) => {
        impl $name {
            /// Takes one unit (Python's `acquire(block, timeout)`): `false` if `block` is
            /// false and none is left, or if `timeout` passed first.
            pub fn acquire(
                &self,
                block: bool,
                timeout: Option<Duration>,
            ) -> Result<bool, ManagerError> {
                Ok(self.proxy.call(SemaphoreCall::Acquire { block, timeout })? == 1)
            }

            /// Gives one unit back (Python's `release()`).
            pub fn release(&self) -> Result<(), ManagerError> {
                self.release_n(1)
            }

            /// Gives `n` units back (Python's `release(n)`).
            pub fn release_n(&self, n: u32) -> Result<(), ManagerError> {
                self.proxy.call(SemaphoreCall::Release(n)).map(drop)
            }

            /// The units left now (Python's `_value`).
            pub fn get_value(&self) -> Result<u64, ManagerError> {
                self.proxy.call(SemaphoreCall::Value)
            }
        }
    };
}

semaphore_methods!(Semaphore);
semaphore_methods!(BoundedSemaphore);
proxy_wrapper!(Semaphore<> where);
proxy_wrapper!(BoundedSemaphore<> where);

impl Manager {
    /// A new semaphore held by the server (Python's `manager.Semaphore(value)`).
    pub fn semaphore(&self, value: u32) -> Result<Semaphore, ManagerError> {
        Ok(Semaphore {
            proxy: SharedProxy::new(self.serve_shared::<SemaphoreServant<false>>(value)?),
        })
    }

    /// A new bounded semaphore held by the server (Python's
    /// `manager.BoundedSemaphore(value)`).
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphore, ManagerError> {
        Ok(BoundedSemaphore {
            proxy: SharedProxy::new(self.serve_shared::<SemaphoreServant<true>>(value)?),
        })
    }
}

//! What a server holds: typed objects ("servants") behind one erased interface, and how a
//! client names the type of the object it wants the server to create.
//!
//! A servant type `S` answers calls of its own serde enum `S::Call` with `S::Reply`. The
//! client names "create an `S`" by the registered code reference of the monomorphised
//! `create::<S>` ([`mp_spawn::code`]): the server runs the same executable image (mp-spawn
//! started it, or a remote server checked the build), so the reference names the same
//! function there. The server resolves it only if it is exactly a registered creator, so an
//! authkey holder who forges one can create an object of some registered type at most, never
//! run other code.

use mp_spawn::code::{Kind, RawCodeRef};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::RemoteError;

/// A type a manager's server can hold and call (Python's `BaseManager.register(typeid,
/// callable)`): its calls are a serde enum, answered one at a time (the server serialises the
/// calls on one object).
///
/// ```
/// use mp_managers::{Manager, RemoteError, Servant};
/// use serde::{Deserialize, Serialize};
///
/// /// A counter served by the manager.
/// #[derive(Default)]
/// struct Counter(u64);
///
/// #[derive(Serialize, Deserialize)]
/// enum CounterCall { Add(u64), Get }
///
/// impl Servant for Counter {
///     type Args = u64;
///     type Call = CounterCall;
///     type Reply = u64;
///     fn create(start: u64) -> Self { Counter(start) }
///     fn call(&mut self, call: CounterCall) -> Result<u64, RemoteError> {
///         match call {
///             CounterCall::Add(n) => self.0 += n,
///             CounterCall::Get => {}
///         }
///         Ok(self.0)
///     }
/// }
///
/// let manager = Manager::new()?;
/// let counter = manager.serve::<Counter>(40)?;
/// counter.call(CounterCall::Add(2))?;
/// assert_eq!(counter.call(CounterCall::Get)?, 42);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub trait Servant: Send + 'static {
    /// What the object is created from.
    type Args: Serialize + DeserializeOwned;
    /// The calls it answers.
    type Call: Serialize + DeserializeOwned;
    /// What a call returns.
    type Reply: Serialize + DeserializeOwned;
    /// Creates the object, in the server.
    fn create(args: Self::Args) -> Self;
    /// Answers one call, in the server.
    fn call(&mut self, call: Self::Call) -> Result<Self::Reply, RemoteError>;
}

/// Who makes a call, and whether they still wait for it: what a call that may block needs.
pub(crate) struct Caller<'a> {
    /// The calling connection: one thread of one client process (who holds a lock).
    pub(crate) id: u64,
    /// False once the caller is gone: a blocked call gives up.
    pub(crate) alive: &'a dyn Fn() -> bool,
}

/// A servant behind bytes: what the server stores and calls from a thread per connection.
pub(crate) trait Erased: Send + Sync {
    fn call(&self, call: &[u8], caller: &Caller<'_>) -> Result<Vec<u8>, RemoteError>;
    /// The connection `caller` ended (its process died, or its thread ended): let go of
    /// what it held (a lock).
    fn caller_gone(&self, _caller: u64) {}
}

/// A [`Servant`] in the server: calls on one object take turns.
struct Exclusive<S>(Mutex<S>);

impl<S: Servant> Erased for Exclusive<S> {
    fn call(&self, call: &[u8], _: &Caller<'_>) -> Result<Vec<u8>, RemoteError> {
        let call: S::Call = decode(call)?;
        let reply = Servant::call(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()), call)?;
        encode(&reply)
    }
}

/// A servant whose calls may block (a lock, a queue, an event): called concurrently, with no
/// lock around it, so that one caller waiting does not stop the others.
pub(crate) trait SharedServant: Send + Sync + 'static {
    type Args: Serialize + DeserializeOwned;
    type Call: Serialize + DeserializeOwned;
    type Reply: Serialize + DeserializeOwned;
    fn create(args: Self::Args) -> Self;
    fn call(&self, call: Self::Call, caller: &Caller<'_>) -> Result<Self::Reply, RemoteError>;
    /// See [`Erased::caller_gone`].
    fn caller_gone(&self, _caller: u64) {}
}

/// A [`SharedServant`] in the server.
struct Shared<S>(S);

impl<S: SharedServant> Erased for Shared<S> {
    fn call(&self, call: &[u8], caller: &Caller<'_>) -> Result<Vec<u8>, RemoteError> {
        encode(&self.0.call(decode(call)?, caller)?)
    }

    fn caller_gone(&self, caller: u64) {
        self.0.caller_gone(caller);
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RemoteError> {
    crate::codec::decode(bytes).map_err(RemoteError::BadCall)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RemoteError> {
    postcard::to_stdvec(value).map_err(|e| RemoteError::BadCall(e.to_string()))
}

/// Creates a servant from its encoded arguments (the server side of `Request::Create`).
pub(crate) type Create = fn(&[u8]) -> Result<Arc<dyn Erased>, RemoteError>;

// SAFETY: `Create` is a fn pointer type.
static TYPES: Kind<Create> = unsafe { Kind::new() };

fn create<S: Servant>(args: &[u8]) -> Result<Arc<dyn Erased>, RemoteError> {
    Ok(Arc::new(Exclusive(Mutex::new(S::create(decode(args)?)))))
}

fn create_shared<S: SharedServant>(args: &[u8]) -> Result<Arc<dyn Erased>, RemoteError> {
    Ok(Arc::new(Shared(S::create(decode(args)?))))
}

/// The reference that names "create an `S`" in the server.
pub(crate) fn type_ref<S: Servant>() -> RawCodeRef {
    mp_spawn::code_ref!(TYPES, create::<S>).raw()
}

/// The reference that names "create an `S`" in the server, for a [`SharedServant`].
pub(crate) fn shared_type_ref<S: SharedServant>() -> RawCodeRef {
    mp_spawn::code_ref!(TYPES, create_shared::<S>).raw()
}

/// The creator `raw` names, if it names exactly one (anything a client sends is checked so).
pub(crate) fn creator_at(raw: RawCodeRef) -> Option<Create> {
    TYPES.resolve(raw).map(|r| r.get())
}

#[cfg(test)]
mod test;

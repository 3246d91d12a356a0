//! What a server holds: typed objects ("servants") behind one erased interface, and how a
//! client names the type of the object it wants the server to create.
//!
//! A servant type `S` answers calls of its own serde enum `S::Call` with `S::Reply`. The
//! client names "create an `S`" by the offset of the monomorphised `create::<S>`, looked up in
//! the `mp_manager_types` link section ([`mp_spawn::code::Section`]): the server runs the same
//! executable image (mp-spawn started it, or a remote server checked the build), so the offset
//! names the same function there, and an offset outside the section is refused.

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

/// A servant behind bytes: what the server stores.
pub(crate) trait Erased: Send {
    fn call(&mut self, call: &[u8]) -> Result<Vec<u8>, RemoteError>;
}

impl<S: Servant> Erased for S {
    fn call(&mut self, call: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let call: S::Call =
            postcard::from_bytes(call).map_err(|e| RemoteError::BadCall(e.to_string()))?;
        let reply = Servant::call(self, call)?;
        postcard::to_stdvec(&reply).map_err(|e| RemoteError::BadCall(e.to_string()))
    }
}

/// Creates a servant from its encoded arguments (the server side of `Request::Create`).
pub(crate) type Create = fn(&[u8]) -> Result<Box<dyn Erased>, RemoteError>;

unsafe extern "C" {
    // The linker defines these around the section holding every `create` instance (and
    // `no_type`, so that the section always exists).
    static __start_mp_manager_types: u8;
    static __stop_mp_manager_types: u8;
}

fn types() -> mp_spawn::code::Section<Create> {
    // SAFETY: `mp_manager_types` holds only `create` instances and `no_type`, all `Create`s.
    unsafe {
        mp_spawn::code::Section::new(
            &raw const __start_mp_manager_types,
            &raw const __stop_mp_manager_types,
            no_type,
        )
    }
}

/// Never a type: keeps `mp_manager_types` in every program that links the server.
#[unsafe(link_section = "mp_manager_types")]
fn no_type(_: &[u8]) -> Result<Box<dyn Erased>, RemoteError> {
    Err(RemoteError::BadCall("no such type".to_owned()))
}

#[unsafe(link_section = "mp_manager_types")]
fn create<S: Servant>(args: &[u8]) -> Result<Box<dyn Erased>, RemoteError> {
    let args: S::Args =
        postcard::from_bytes(args).map_err(|e| RemoteError::BadCall(e.to_string()))?;
    Ok(Box::new(S::create(args)))
}

/// The offset that names "create an `S`" in the server.
pub(crate) fn type_offset<S: Servant>() -> i64 {
    types().offset(create::<S>)
}

/// The creator an offset names, if it names one.
pub(crate) fn creator_at(offset: i64) -> Option<Create> {
    types().get(offset)
}

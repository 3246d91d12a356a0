//! [`Dict::update_with`](crate::Dict::update_with) in the server: the closure runs there, under
//! the dict's lock, so that a read-modify-write is one call and atomic (two calls, a get and
//! an insert, lost updates between processes).
//!
//! Named as `List::sort` names its sorter (see list.rs): the client names the monomorphised
//! `update::<V, F, R>` by its registered code reference ([`mp_spawn::code`]); the server
//! resolves it only if it is exactly a registered updater (anything else is refused), and the
//! updater checks the `TypeId` of the value it is given, so the updater of another value type
//! is an error, never a wrong cast. `F` is zero-sized (checked when the program is built), so
//! the updater makes its own `F`: the closure's code, not its state, travels.
//!
//! As with sorters, a client that forges the reference (or runs another build, which may call,
//! see `protocol`) reaches at most another registered updater of the same value type: never a
//! wrong cast and never unregistered code, but another closure of this program.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mp_spawn::code::{Kind, RawCodeRef};
use serde::Serialize;

use crate::error::RemoteError;

/// An updater: runs its closure on the `Option<V>` behind the `&mut dyn Any` and returns what
/// the closure returned, encoded; `None` if the value is not an `Option` of its `V`.
pub(crate) type Updater = fn(&mut dyn Any) -> Option<Result<Vec<u8>, RemoteError>>;

// SAFETY: `Updater` is a fn pointer type.
static UPDATERS: Kind<Updater> = unsafe { Kind::new() };

/// The build-time check: a closure the server cannot make is refused where it is passed.
const fn check_zero_sized<F>() {
    assert!(
        size_of::<F>() == 0,
        "update_with's closure runs in the manager's server, which makes it anew there: it \
         must be a fn item or a closure that captures nothing"
    )
}

fn update<V, F, R>(value: &mut dyn Any) -> Option<Result<Vec<u8>, RemoteError>>
where
    V: 'static,
    F: FnOnce(&mut Option<V>) -> R + Copy + 'static,
    R: Serialize,
{
    const { check_zero_sized::<F>() };
    let value = value.downcast_mut::<Option<V>>()?;
    // SAFETY: `F` is zero-sized (checked above, at build time), so it has no bytes to
    // initialise, and it is inhabited: it is a fn item or closure type (only those implement
    // `FnOnce` on stable Rust) of which the client held a value. `Copy` means it has no drop
    // and owns nothing, so making one more copies nothing the client's did not.
    let f: F = unsafe { std::mem::zeroed() };
    // A panic leaves the dict as it was (the caller applies `value` only after a return).
    let result = catch_unwind(AssertUnwindSafe(|| f(value)))
        .map_err(|_| RemoteError::Runtime("update_with's closure panicked".to_owned()))
        .and_then(|r| postcard::to_stdvec(&r).map_err(|e| RemoteError::BadCall(e.to_string())));
    Some(result)
}

/// The reference that names the updater running an `F` on an `Option<V>`.
pub(crate) fn updater_ref<V, F, R>() -> RawCodeRef
where
    V: 'static,
    F: FnOnce(&mut Option<V>) -> R + Copy + 'static,
    R: Serialize,
{
    const { check_zero_sized::<F>() };
    mp_spawn::code_ref!(UPDATERS, update::<V, F, R>).raw()
}

/// The updater `raw` names, if it names exactly one.
pub(crate) fn updater_at(raw: RawCodeRef) -> Option<Updater> {
    UPDATERS.resolve(raw).map(|r| r.get())
}

//! [`Dict::update_with`](crate::Dict::update_with) in the server: the closure runs there, under
//! the dict's lock, so that a read-modify-write is one call and atomic (two calls, a get and
//! an insert, lost updates between processes).
//!
//! Named as `List::sort` names its sorter (see list.rs): the client names the monomorphised
//! `update::<V, F, R>` by its offset in the `mp_dict_updaters` link section; the server runs the
//! same image, resolves the offset only inside the section (anything else is refused), and the
//! updater checks the `TypeId` of the value it is given, so the updater of another value type
//! is an error, never a wrong cast. `F` is zero-sized (checked when the program is built), so
//! the updater makes its own `F`: the closure's code, not its state, travels.
//!
//! As with sorters, a client of another build (which may call, see `protocol`) could name
//! another updater of the same value type: never a wrong cast, but another closure.
//!
//! Kept apart from the dict so that the way of naming code can change in one place.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;

use crate::error::RemoteError;

/// An updater: runs its closure on the `Option<V>` behind the `&mut dyn Any` and returns what
/// the closure returned, encoded; `None` if the value is not an `Option` of its `V`.
pub(crate) type Updater = fn(&mut dyn Any) -> Option<Result<Vec<u8>, RemoteError>>;

unsafe extern "C" {
    // The linker defines these around the section holding every `update` instance (and
    // `no_updater`, so that the section always exists).
    static __start_mp_dict_updaters: u8;
    static __stop_mp_dict_updaters: u8;
}

fn updaters() -> mp_spawn::code::Section<Updater> {
    // SAFETY: `mp_dict_updaters` holds only `update` instances and `no_updater`, all
    // `Updater`s.
    unsafe {
        mp_spawn::code::Section::new(
            &raw const __start_mp_dict_updaters,
            &raw const __stop_mp_dict_updaters,
            no_updater,
        )
    }
}

/// Never an updater: keeps `mp_dict_updaters` in every program that links the server.
#[unsafe(link_section = "mp_dict_updaters")]
fn no_updater(_: &mut dyn Any) -> Option<Result<Vec<u8>, RemoteError>> {
    None
}

/// The build-time check: a closure the server cannot make is refused where it is passed.
const fn check_zero_sized<F>() {
    assert!(
        size_of::<F>() == 0,
        "update_with's closure runs in the manager's server, which makes it anew there: it \
         must be a fn item or a closure that captures nothing"
    )
}

#[unsafe(link_section = "mp_dict_updaters")]
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

/// The offset that names the updater running an `F` on an `Option<V>`.
pub(crate) fn updater_offset<V, F, R>() -> i64
where
    V: 'static,
    F: FnOnce(&mut Option<V>) -> R + Copy + 'static,
    R: Serialize,
{
    const { check_zero_sized::<F>() };
    updaters().offset(update::<V, F, R>)
}

/// The updater an offset names, if it names one.
pub(crate) fn updater_at(offset: i64) -> Option<Updater> {
    updaters().get(offset)
}

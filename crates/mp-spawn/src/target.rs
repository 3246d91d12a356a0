//! What a process runs: the sealed [`Target`] trait, [`Portable`] values, and the erased
//! [`Launch`] a start method turns into a child (a [`Recipe`] for a fresh process), plus the
//! [`Outcome`] a child reports back.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::StartMethod;
use crate::error::ProcessError;
use crate::reduction::Dumped;

/// A function that a process can run with the arguments `Args` (a tuple, as Python's `args`).
///
/// Implemented for every `FnOnce(A1, ..., An) -> R` with up to eight arguments, so that
/// `Process::new(f, (a, b))` calls `f(a, b)`. Sealed: a spawned child must find the target
/// again from nothing, which works for fn items and non-capturing closures (zero-sized: the
/// child creates one) and for fn pointers into the program (the child gets the address as an
/// offset, as it gets the trampoline's). A closure that captures state is refused where the
/// target is taken (at build time), or by `start` if it captures exactly one pointer-sized
/// value (the build-time check cannot tell it from a fn pointer).
///
/// ```compile_fail
/// struct Mine;
/// impl mp_spawn::Target<()> for Mine {
///     type Output = ();
///     fn call(self, _: ()) {}
/// }
/// ```
pub trait Target<Args>: sealed::Sealed<Args> + Send + 'static {
    /// What the function returns (handed back by [`Process::join`](crate::Process::join)).
    type Output;
    /// Calls the function.
    fn call(self, args: Args) -> Self::Output;
}

pub(crate) mod sealed {
    /// Implemented exactly where `Target` is.
    pub trait Sealed<Args> {
        /// Whether `Self` is the fn pointer type `fn(Args...) -> Output` (told by `TypeId`, so
        /// never a closure that happens to be as large).
        fn is_fn_pointer() -> bool
        where
            Self: Sized;
        /// The function's address, if `Self` is that fn pointer type.
        fn fn_pointer(&self) -> Option<usize>;
    }
}

/// A target mp can find in a fresh process: zero-sized (created anew there), or a fn pointer
/// (found by its offset). Checked when the program is built: the message is the error a user
/// sees for a capturing closure.
pub(crate) const fn check_findable<F>() {
    assert!(
        size_of::<F>() == 0 || size_of::<F>() == size_of::<fn()>(),
        "the target must be a fn item, a fn pointer or a closure that captures nothing, so \
         that a child can find it; pass state through the arguments (or, under fork only, use \
         Context::process_closure)"
    )
}

/// How a fresh process finds a target again (see [`locate_target`]).
#[cfg_attr(not(feature = "unstable-internals"), allow(unreachable_pub))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// Zero-sized (a fn item or a non-capturing closure): the child creates it anew.
    ZeroSized,
    /// A fn pointer into the program: the child finds it at this offset
    /// ([`crate::code`]).
    FnPointer(i64),
    /// A fn pointer outside the program's code (a `dlopen`ed library).
    Foreign,
    /// A closure that captures state: only a forked child can run it.
    Captures,
}

impl Located {
    /// The offset to send with the arguments: the fn pointer's, or 0.
    #[cfg_attr(not(feature = "unstable-internals"), allow(unreachable_pub))]
    pub fn code(self) -> i64 {
        match self {
            Located::FnPointer(offset) => offset,
            _ => 0,
        }
    }
}

/// Says how a fresh process running this image can find `target` again. Feature
/// `unstable-internals` (mp-pool's tasks); `Process` does the same inside.
#[cfg_attr(not(feature = "unstable-internals"), allow(unreachable_pub))]
pub fn locate_target<F: Target<A>, A>(target: &F) -> Located {
    if size_of::<F>() == 0 {
        return Located::ZeroSized;
    }
    match target.fn_pointer() {
        Some(addr) if mp_sys::process::in_program_code(addr) => {
            Located::FnPointer(crate::code::offset_of(addr))
        }
        Some(_) => Located::Foreign,
        None => Located::Captures,
    }
}

/// The target again, in a fresh process: created if zero-sized, found at `code` if a fn
/// pointer; `None` otherwise, or if `code` lies outside the program's code. Feature
/// `unstable-internals`.
///
/// # Safety
/// `code` must be [`Located::code`] of [`locate_target`] of a value of type `F`, computed in
/// a process running this same executable image.
#[cfg_attr(not(feature = "unstable-internals"), allow(unreachable_pub))]
pub unsafe fn recreate_target<F: Target<A>, A>(code: i64) -> Option<F> {
    if size_of::<F>() == 0 {
        // SAFETY: F is zero-sized and is a fn item or closure type (the only `Target`s), which
        // is inhabited and has no bytes to initialise; the parent held a value of it.
        return Some(unsafe { std::mem::zeroed() });
    }
    if !F::is_fn_pointer() {
        return None;
    }
    // SAFETY: the caller's promise: `code` is the offset of a function of the fn pointer type
    // `F` (checked just above, by `TypeId`) in this image; `program_fn_at` refuses what lies
    // outside the program's code.
    let addr = unsafe { crate::code::program_fn_at(code) }?;
    // SAFETY: `F` is that fn pointer type, and `addr` the function's address.
    Some(unsafe { std::mem::transmute_copy::<usize, F>(&addr) })
}

macro_rules! impl_target {
    ($($arg:ident),*) => {
        impl<Func, Ret: 'static, $($arg: 'static,)*> sealed::Sealed<($($arg,)*)> for Func
        where
            Func: FnOnce($($arg),*) -> Ret + Send + 'static,
        {
            fn is_fn_pointer() -> bool {
                std::any::TypeId::of::<Func>() == std::any::TypeId::of::<fn($($arg),*) -> Ret>()
            }

            fn fn_pointer(&self) -> Option<usize> {
                if !Self::is_fn_pointer() {
                    return None;
                }
                // SAFETY: `Func` is the fn pointer type itself (same TypeId): a code address.
                Some(unsafe { std::mem::transmute_copy::<Func, usize>(self) })
            }
        }

        impl<Func, Ret: 'static, $($arg: 'static,)*> Target<($($arg,)*)> for Func
        where
            Func: FnOnce($($arg),*) -> Ret + Send + 'static,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn call(self, ($($arg,)*): ($($arg,)*)) -> Ret {
                self($($arg),*)
            }
        }
    };
}
impl_target!();
impl_target!(A1);
impl_target!(A1, A2);
impl_target!(A1, A2, A3);
impl_target!(A1, A2, A3, A4);
impl_target!(A1, A2, A3, A4, A5);
impl_target!(A1, A2, A3, A4, A5, A6);
impl_target!(A1, A2, A3, A4, A5, A6, A7);
impl_target!(A1, A2, A3, A4, A5, A6, A7, A8);

/// What may travel to a child and back, as an argument or a result: a serde type that owns
/// its data (Python's "picklable"). One name for the bounds every entry point repeats;
/// implemented for every such type.
///
/// ```
/// fn takes<T: mp_spawn::Portable>(_: T) {}
/// takes((1u64, "text".to_string(), vec![2.5f64]));
/// ```
pub trait Portable: Serialize + DeserializeOwned + 'static {}

impl<T: Serialize + DeserializeOwned + 'static> Portable for T {}

/// What a spawn or forkserver child needs to find and call its target.
pub(crate) struct Recipe {
    pub(crate) entry: crate::code::RawCodeRef,
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

/// How a child ended, as it tells its parent on the result channel.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Outcome {
    /// The target returned this (serialised) value.
    Returned(Vec<u8>),
    /// The target panicked with this message.
    Panicked(String),
    /// The child could not run the target.
    Failed(String),
    /// The target overflowed its stack (sent by `stack_guard`'s signal handler).
    StackOverflow,
}

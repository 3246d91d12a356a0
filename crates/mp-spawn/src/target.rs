//! What a process runs: the sealed [`Target`] trait and [`Portable`] values, plus the
//! [`Outcome`] a child reports back. (How a fresh process finds a target again is
//! [`code`](crate::code)'s; how a start method launches one, `launch`'s.)

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
    /// An allocation failed under the child's memory cap, and Rust aborted (sent by
    /// `oom_guard`'s signal handler).
    OutOfMemory,
}

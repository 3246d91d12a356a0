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
/// `Process::new(f, (a, b))` calls `f(a, b)`. Sealed: a spawned child creates the target
/// anew from nothing (it is zero-sized), which only fn items and non-capturing closures allow,
/// so no other type may implement it.
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

mod sealed {
    /// Implemented exactly where `Target` is.
    pub trait Sealed<Args> {}
}

macro_rules! impl_target {
    ($($arg:ident),*) => {
        impl<Func, Ret, $($arg,)*> sealed::Sealed<($($arg,)*)> for Func
        where
            Func: FnOnce($($arg),*) -> Ret + Send + 'static,
        {
        }

        impl<Func, Ret, $($arg,)*> Target<($($arg,)*)> for Func
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
    pub(crate) entry: i64,
    pub(crate) args: Dumped,
}

/// The target and its arguments, erased over their types.
pub(crate) trait Launch<R>: Send {
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

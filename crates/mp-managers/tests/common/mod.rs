//! Helpers shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]

use mp_managers::Manager;
use mp_spawn::testing::ctx;
use mp_spawn::{Portable, StartMethod, Target};

/// A manager whose server is started by `m`.
pub(crate) fn manager(m: StartMethod) -> Manager {
    Manager::with_context(&ctx(m)).unwrap()
}

/// A started child running `f(args)` under `m`.
pub(crate) fn start<F, A>(m: StartMethod, f: F, args: A) -> mp_spawn::Process<()>
where
    F: Target<A, Output = ()>,
    A: Portable + Send,
{
    let mut p = ctx(m).process(f, args);
    p.start().unwrap();
    p
}

/// Runs `f(args)` in a child under `m` to its end: a failed assertion there is an error here.
pub(crate) fn run<F, A>(m: StartMethod, f: F, args: A)
where
    F: Target<A, Output = ()>,
    A: Portable + Send,
{
    start(m, f, args).join().unwrap();
}

//! Helpers shared by the integration tests.

use mp_spawn::{Context, StartMethod, get_context};

/// Runs a test body once per start method, as CPython's suite does.
#[macro_export]
macro_rules! matrix {
    ($($name:ident),* $(,)?) => {
        mod fork { $( #[test] fn $name() { super::$name(mp_spawn::StartMethod::Fork) } )* }
        mod spawn { $( #[test] fn $name() { super::$name(mp_spawn::StartMethod::Spawn) } )* }
        mod forkserver { $( #[test] fn $name() { super::$name(mp_spawn::StartMethod::Forkserver) } )* }
    };
}

pub(crate) fn ctx(method: StartMethod) -> Context {
    get_context(method.name()).unwrap()
}

/// A target that never returns (to be killed).
#[allow(dead_code)] // not every test binary kills a process
pub(crate) fn park_forever() {
    loop {
        std::thread::park();
    }
}

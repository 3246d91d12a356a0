//! Helpers for the test suites of the mp crates (hidden from the docs).

use crate::{Context, StartMethod, get_context};

/// Runs each named test body `fn(StartMethod)` once per start method, as CPython's suite does:
/// it makes the modules `fork`, `spawn` and `forkserver` with one `#[test]` each.
#[macro_export]
macro_rules! test_matrix {
    ($($name:ident),* $(,)?) => {
        mod fork { $( #[test] fn $name() { super::$name($crate::StartMethod::Fork) } )* }
        mod spawn { $( #[test] fn $name() { super::$name($crate::StartMethod::Spawn) } )* }
        mod forkserver { $( #[test] fn $name() { super::$name($crate::StartMethod::Forkserver) } )* }
    };
}

/// The context of a start method.
pub fn ctx(method: StartMethod) -> Context {
    get_context(method.name()).expect("every start method exists on Linux")
}

/// A target that never returns (to be killed).
pub fn park_forever() {
    loop {
        std::thread::park();
    }
}

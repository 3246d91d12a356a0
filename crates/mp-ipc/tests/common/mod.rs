//! Helpers shared by the integration tests: those of every mp crate live in mp-spawn.

#[allow(unused_imports)] // not every test binary kills a process
pub(crate) use mp_spawn::testing::{ctx, park_forever};

//! Helpers shared by the integration tests.

pub(crate) mod generic;

use mp_pool::Pool;
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

/// A pool of `n` workers started by `m`.
pub(crate) fn pool(m: StartMethod, n: usize) -> Pool {
    Pool::builder()
        .processes(n)
        .context(ctx(m))
        .build()
        .unwrap()
}

/// The task most tests map.
pub(crate) fn square(x: u64) -> u64 {
    x * x
}

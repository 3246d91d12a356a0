//! `PoolApi` on the local `Pool`: the generic body that `tests/mpi.rs` also runs against an
//! `MpiPool` (no MPI needed here), once per start method.

mod common;

use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

fn generic_body_on_a_local_pool(m: StartMethod) {
    let pool = mp_pool::Pool::builder()
        .processes(2)
        .context(ctx(m))
        .build()
        .unwrap();
    common::generic_body(&pool);
}

mp_spawn::test_matrix!(generic_body_on_a_local_pool);

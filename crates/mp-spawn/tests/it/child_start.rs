//! `resources::CHILD_START`: the hooks run in every new child before its target, under each
//! start method, and never in the parent.

use std::sync::atomic::{AtomicU32, Ordering};

use mp_spawn::testing::ctx;
use mp_spawn::{StartMethod, test_matrix};

static STARTED: AtomicU32 = AtomicU32::new(0);

#[linkme::distributed_slice(mp_spawn::resources::CHILD_START)]
static COUNT: fn() = || {
    STARTED.fetch_add(1, Ordering::SeqCst);
};

/// What the child's target sees: the hook ran once, before it, in this process.
fn started() -> (u32, String) {
    (
        STARTED.load(Ordering::SeqCst),
        mp_spawn::current_process().name,
    )
}

fn the_hook_runs_once_in_each_child_before_its_target(m: StartMethod) {
    for _ in 0..2 {
        let mut p = ctx(m).process(started, ()).with_name("Hooked");
        p.start().unwrap();
        // The hook runs once the child is named: it may read `current_process()`.
        assert_eq!(p.join().unwrap(), (1, "Hooked".to_owned()));
    }
    assert_eq!(
        STARTED.load(Ordering::SeqCst),
        0,
        "a hook ran in the parent"
    );
}

test_matrix!(the_hook_runs_once_in_each_child_before_its_target);

//! The pre-`main` entry believes a channel only from its parent running the same executable
//! (issue #13). These tests check that every legitimate chain passes that check: a child of
//! each start method starts grandchildren under each start method (a spawned grandchild's
//! channel was made by the child, a forkserver's by its client), with preload hooks.

use std::sync::atomic::{AtomicU64, Ordering};

use mp_spawn::{StartMethod, get_context};

mp_spawn::test_matrix!(grandchildren_under_every_method);

static PRELOADED: AtomicU64 = AtomicU64::new(0);

fn preload() {
    PRELOADED.store(1, Ordering::Relaxed);
}

/// The square, plus 1 where the preload hook ran (only in a forkserver's children).
fn square(x: u64) -> u64 {
    x * x + PRELOADED.load(Ordering::Relaxed)
}

/// Starts one grandchild under each start method and returns their results; the child's own
/// forkserver runs a preload hook (its offset is believed only from its client).
fn start_grandchildren(x: u64) -> Vec<u64> {
    mp_spawn::set_forkserver_preload(&[preload]);
    ["fork", "spawn", "forkserver"]
        .iter()
        .map(|method| {
            let mut p = get_context(method).unwrap().process(square, (x,));
            p.start().unwrap();
            p.join().unwrap()
        })
        .collect()
}

fn grandchildren_under_every_method(m: StartMethod) {
    let mut p = mp_spawn::testing::ctx(m).process(start_grandchildren, (7,));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), vec![49, 49, 50]);
}

//! Helpers shared by the benches that drive child processes.
//!
//! Each bench uses only some of them.
#![allow(dead_code)]

use mp::Process;

/// Forkserver children hold only what they are passed: under fork a child would also inherit
/// the parent's end of every socket, and the end-of-file that stops it would never come.
pub(crate) fn ctx() -> mp::Context {
    mp::get_context("forkserver").expect("forkserver context")
}

/// Starts `p` and hands it back.
pub(crate) fn start<R: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    mut p: Process<R>,
) -> Process<R> {
    p.start().expect("start");
    p
}

/// `cargo xtask bench --quick` sets `MP_BENCH_QUICK`: every group then takes 10 samples over
/// about a second, enough for a median, not for criterion's change detection.
pub(crate) fn quick() -> bool {
    std::env::var_os("MP_BENCH_QUICK").is_some()
}

/// Sets a group's sample count and measurement time, shortened under [`quick`].
pub(crate) fn tune<M: criterion::measurement::Measurement>(
    group: &mut criterion::BenchmarkGroup<'_, M>,
    samples: usize,
    seconds: u64,
) {
    use std::time::Duration;
    if quick() {
        group
            .sample_size(10)
            .measurement_time(Duration::from_millis(800))
            .warm_up_time(Duration::from_millis(300));
    } else {
        group
            .sample_size(samples)
            .measurement_time(Duration::from_secs(seconds))
            .warm_up_time(Duration::from_secs(1));
    }
}

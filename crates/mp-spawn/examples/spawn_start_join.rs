//! Start+join of a trivial target under one start method, `N` times; prints the median and
//! quartiles. A quick stand-in for `cargo bench -p mp-bench --bench start_join -- spawn` that
//! builds only mp-spawn, and a check that the pre-`main` entry works in an example binary (link
//! sections and `--gc-sections` included).
//!
//! ```text
//! cargo run --release -p mp-spawn --example spawn_start_join -- spawn 200
//! ```

use std::time::Instant;

fn trivial(x: u64) -> u64 {
    x + 1
}

fn main() {
    let mut args = std::env::args().skip(1);
    let method = args.next().unwrap_or_else(|| "spawn".to_owned());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let ctx = mp_spawn::get_context(&method).expect("a start method");
    let mut times = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        let mut p = ctx.process(trivial, (i,));
        p.start().expect("start");
        assert_eq!(p.join().expect("join"), i + 1);
        times.push(t.elapsed());
    }
    times.sort();
    // The children's CPU time is less sensitive to a loaded machine than the wall clock.
    let cpu = children_cpu();
    println!(
        "{method}: start+join n={n} median {:?} (q1 {:?}, q3 {:?}); children's CPU {:?} each",
        times[n / 2],
        times[n / 4],
        times[3 * n / 4],
        cpu / n as u32
    );
}

/// User + system time of the reaped children (and their own reaped children).
fn children_cpu() -> std::time::Duration {
    // SAFETY: all zero is a valid rusage, and getrusage only writes to it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::time::Duration::from_micros(us(usage.ru_utime) + us(usage.ru_stime))
}

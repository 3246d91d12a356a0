//! Post 002, `multi_thread.py` (reconstructed from its output): the sum of 0..10^8 split over
//! two threads. In Python the GIL lets one thread run at a time, so the threads give no
//! speed-up (the post: 4 s against 5 s). Rust has no GIL: the two threads run on two cores
//! at once and take about half the time of `t002_single_thread`; processes are for isolation
//! here, not for getting around a lock.
use std::time::Instant;

fn partial(range: std::ops::Range<u64>) -> u64 {
    range.map(std::hint::black_box).sum()
}

fn main() {
    let start = Instant::now();
    let half = 50_000_000;
    let first = std::thread::spawn(move || partial(0..half));
    let second = std::thread::spawn(move || partial(half..2 * half));
    let result = first.join().expect("thread") + second.join().expect("thread");
    println!("Result: {result}");
    println!("***run time(sec) : {}", start.elapsed().as_secs());
}

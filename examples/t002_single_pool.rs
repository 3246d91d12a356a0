//! Post 002, `single_pool.py` (reconstructed from its output): fifth powers of 0..11 in this
//! one process, each taking a second.
use std::time::{Duration, Instant};

fn fifth(value: u64) -> u64 {
    println!("value {value} is in PID : {}", std::process::id());
    std::thread::sleep(Duration::from_secs(1));
    value.pow(5)
}

fn main() {
    let start = Instant::now();
    let result: Vec<u64> = (0..12).map(fifth).collect();
    println!("{result:?}");
    println!("***run time(sec) : {}", start.elapsed().as_secs());
}

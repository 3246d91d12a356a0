//! Post 002, `multi_pool.py` (reconstructed from its output): fifth powers of 1..12 with
//! `Pool(6)`: six PIDs, two values each, about 2 seconds instead of 12.
use std::time::{Duration, Instant};

fn fifth(value: u64) -> u64 {
    println!("value {value} is in PID : {}", std::process::id());
    std::thread::sleep(Duration::from_secs(1));
    value.pow(5)
}

fn main() -> Result<(), mp::PoolError> {
    let start = Instant::now();
    let pool = mp::Pool::new(6)?;
    let result = pool.map(fifth, 1..=12)?;
    println!("{result:?}");
    println!("***run time(sec) : {}", start.elapsed().as_secs());
    Ok(())
}

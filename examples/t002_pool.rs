//! Post 002, `pool.py` (reconstructed from its output): `Pool(6).map` over 1..99, each value
//! taking a second; the values arrive in chunks of 5 (Python's default chunksize for 99 items
//! on 6 workers), so the same PIDs recur in a cycle. `--serial` runs the post's
//! "non multiprocessing" variant: a plain loop over 1..11.
mod common;

use std::time::{Duration, Instant};

fn work(value: u32) {
    println!(
        "time : {}value :{value} PID : {}",
        common::datetime(),
        std::process::id()
    );
    std::thread::sleep(Duration::from_secs(1));
}

fn main() -> Result<(), mp::PoolError> {
    let start = Instant::now();
    if std::env::args().any(|a| a == "--serial") {
        (1..12).for_each(work);
    } else {
        let pool = mp::Pool::new(6)?;
        pool.map(work, 1..100)?;
    }
    println!("***run time(sec) : {}", start.elapsed().as_secs());
    Ok(())
}

//! Post 002, `process.py` (reconstructed from its output): one process per value, each
//! printing a timestamp, the value and its PID; then the run time and the core count.
mod common;

use std::time::{Duration, Instant};

fn work(value: u32) {
    println!(
        "time : {} value :{value} PID : {}",
        common::datetime(),
        std::process::id()
    );
    std::thread::sleep(Duration::from_secs(1));
}

fn main() -> Result<(), mp::ProcessError> {
    let start = Instant::now();
    let mut procs = Vec::new();
    for value in 1..=11 {
        let mut p = mp::Process::new(work, (value,));
        p.start()?;
        procs.push(p);
    }
    for p in &mut procs {
        p.join()?;
    }
    println!("***run time(sec) : {}", start.elapsed().as_secs());
    println!("Number of Core : {}", mp::cpu_count());
    Ok(())
}

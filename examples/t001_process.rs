//! Post 001, `Process`: four jobs `sum(i**2 for i in range(10**7))` in four processes, then
//! serially, with timings. The sum is 333333283333335000000, beyond u64: u128 here, as
//! Python's big int. Rust has no `freeze_support()` to call: nothing is needed in `main`.
//! At 10^7 a job takes Rust milliseconds (Python: seconds), so process start-up is a visible
//! share of the parallel time; raise `count` to see the two cores at work.
mod common;

use std::time::Instant;

use common::post001_task as task;

fn main() -> Result<(), mp::ProcessError> {
    let job = common::post001_jobs();

    let start = Instant::now();
    let mut process = Vec::new();
    for (idx, count) in job.clone() {
        let mut p = mp::Process::new(task, (idx, count));
        p.start()?;
        process.push(p);
    }
    for p in &mut process {
        p.join()?;
    }
    println!("End Time : {}s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    for (idx, count) in job {
        task(idx, count);
    }
    println!("End Time : {}s", start.elapsed().as_secs_f64());
    Ok(())
}

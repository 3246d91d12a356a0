//! Post 001, `Pool`: `Pool(processes=2).map(task, job)` over the four jobs, then the same
//! serially, with timings. The sum is 333333283333335000000, beyond u64: u128 here, as
//! Python's big int. `task` takes the pair as Python's does; the list prints as Python's.
mod common;

use std::time::Instant;

fn task((idx, count): (String, u128)) -> (String, u128) {
    common::post001_task(idx, count)
}

fn main() -> Result<(), mp::PoolError> {
    let job = common::post001_jobs();

    let start = Instant::now();
    let p = mp::Pool::new(2)?;
    let result = p.map(task, job.clone())?;
    println!("{}", common::python_pairs(&result));
    println!("End Time : {}s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let result: Vec<_> = job.into_iter().map(task).collect();
    println!("{}", common::python_pairs(&result));
    println!("End Time : {}s", start.elapsed().as_secs_f64());
    Ok(())
}

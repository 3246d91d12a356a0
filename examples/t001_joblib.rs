//! Post 001, `joblib`: `Parallel(n_jobs=4)(delayed(task)(idx, count) for idx, count in job)`,
//! then the same serially. `Parallel::run(task, calls)` is joblib's call with `delayed`: the
//! function once, and the argument tuples.
mod common;

use std::time::Instant;

use common::post001_task as task;

fn main() -> Result<(), mp::PoolError> {
    let job = common::post001_jobs();

    let start = Instant::now();
    let result = mp::Parallel::new(4).run(task, job.clone())?;
    println!("{}", common::python_pairs(&result));
    println!("End Time : {}s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let result: Vec<_> = job
        .into_iter()
        .map(|(idx, count)| task(idx, count))
        .collect();
    println!("{}", common::python_pairs(&result));
    println!("End Time : {}s", start.elapsed().as_secs_f64());
    Ok(())
}

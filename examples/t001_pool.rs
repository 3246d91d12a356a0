//! Post 001, `Pool`: `Pool(processes=2).map(task, job)` over the four jobs, then the same
//! serially, with timings. The sum is 333333283333335000000, beyond u64: u128 here, as
//! Python's big int. `task` takes the pair as Python's does; the list prints as Python's.
mod common;

use std::time::Instant;

fn task(pairs: (String, u128)) -> (String, u128) {
    println!("PID : {}", std::process::id());
    let (idx, count) = pairs;
    // black_box: without it LLVM replaces the loop by the closed form.
    let logic = (0..count).map(|i| std::hint::black_box(i) * i).sum();
    (idx, logic)
}

fn main() -> Result<(), mp::PoolError> {
    let job: Vec<(String, u128)> = ["첫 번째", "두 번째", "세 번째", "네 번째"]
        .into_iter()
        .map(|idx| (idx.to_string(), 10u128.pow(7)))
        .collect();

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

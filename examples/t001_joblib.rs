//! Post 001, `joblib`: `Parallel(n_jobs=4)(delayed(task)(idx, count) for idx, count in job)`,
//! then the same serially. `Parallel::run(task, calls)` is joblib's call with `delayed`: the
//! function once, and the argument tuples.
mod common;

use std::time::Instant;

fn task(idx: String, count: u128) -> (String, u128) {
    println!("PID : {}", std::process::id());
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

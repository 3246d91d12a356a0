//! Post 001, `Process`: four jobs `sum(i**2 for i in range(10**7))` in four processes, then
//! serially, with timings. The sum is 333333283333335000000, beyond u64: u128 here, as
//! Python's big int. Rust has no `freeze_support()` to call: nothing is needed in `main`.
//! At 10^7 a job takes Rust milliseconds (Python: seconds), so process start-up is a visible
//! share of the parallel time; raise `count` to see the two cores at work.
use std::time::Instant;

fn task(idx: String, count: u128) -> (String, u128) {
    println!("PID : {}", std::process::id());
    // black_box: without it LLVM replaces the loop by the closed form, and there is no work
    // left to parallelise.
    let logic = (0..count).map(|i| std::hint::black_box(i) * i).sum();
    (idx, logic)
}

fn main() -> Result<(), mp::ProcessError> {
    let job = [
        ("첫 번째", 10u128.pow(7)),
        ("두 번째", 10u128.pow(7)),
        ("세 번째", 10u128.pow(7)),
        ("네 번째", 10u128.pow(7)),
    ];

    let start = Instant::now();
    let mut process = Vec::new();
    for (idx, count) in job {
        let mut p = mp::Process::new(task, (idx.to_string(), count));
        p.start()?;
        process.push(p);
    }
    for p in &mut process {
        p.join()?;
    }
    println!("End Time : {}s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    for (idx, count) in job {
        task(idx.to_string(), count);
    }
    println!("End Time : {}s", start.elapsed().as_secs_f64());
    Ok(())
}

//! Post 001 over MPI: the four sum-of-squares jobs of `t001_pool`, on worker ranks.
//!
//! cargo build --release -p mp-mpi --features mpi --example t001_mpi && mpirun --oversubscribe -n 3 target/release/examples/t001_mpi
//!
//! (As root, Open MPI also wants `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`.)
//!
//! Rank 0 prints the same list as `t001_pool` (each task prints its PID, on whichever rank
//! runs it), then the same jobs serially. The one line that differs from `t001_pool` is the
//! one that makes the pool.
#[path = "../../../examples/common/mod.rs"]
mod common;

use std::time::Instant;

fn task((idx, count): (String, u128)) -> (String, u128) {
    common::post001_task(idx, count)
}

fn main() -> Result<(), mp_mpi::MpiError> {
    let job = common::post001_jobs();

    let start = Instant::now();
    let p = mp_mpi::MpiPool::init()?; // was: mp::Pool::new(2)?
    let result = p.map(task, job.clone())?;
    println!("{}", common::python_pairs(&result));
    println!("End Time : {}s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let result: Vec<_> = job.into_iter().map(task).collect();
    println!("{}", common::python_pairs(&result));
    println!("End Time : {}s", start.elapsed().as_secs_f64());
    Ok(())
}

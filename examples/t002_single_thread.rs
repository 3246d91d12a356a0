//! Post 002, `single_thread.py` (reconstructed from its output): the sum of 0..10^8 on one
//! thread. black_box keeps LLVM from replacing the loop by its closed form.
use std::time::Instant;

fn main() {
    let start = Instant::now();
    let result: u64 = (0..100_000_000u64).map(std::hint::black_box).sum();
    println!("Result: {result}");
    println!("***run time(sec) : {}", start.elapsed().as_secs());
}

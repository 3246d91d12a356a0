//! Post 002, `test.py`: the CPUs of this machine (Python's `multiprocessing.cpu_count()`), and
//! those this process may use (`os.process_cpu_count()`, which `Pool` uses by default).
fn main() {
    println!("{}", mp::cpu_count());
    println!("usable by this process: {}", mp::process_cpu_count());
}

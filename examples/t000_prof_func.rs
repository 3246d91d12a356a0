//! Post 000, `prof_func`: one Process, `start`, `join`, `is_alive`, with logging.
//! Python's `logging` writes to stderr, so the log lines go there here too.
mod common;

use std::time::Duration;

fn prof_func(name: String) {
    println!("Sub-Process {name}: starting");
    std::thread::sleep(Duration::from_secs(3));
    println!("Sub-Process {name}: finishing");
}

fn main() -> Result<(), mp::ProcessError> {
    let mut p = mp::Process::new(prof_func, ("First".to_string(),));
    common::log_info("Main-Process: before creating process");
    p.start()?;
    common::log_info("Main-Process: during process");
    common::log_info("Main-Process: joined process");
    p.join()?;
    println!("process p is alive: {}", common::py_bool(p.is_alive()?));
    Ok(())
}

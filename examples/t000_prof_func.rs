//! Post 000, `prof_func`: one Process, `start`, `join`, `is_alive`, with logging.
//! The post's `logging.basicConfig(format="%(asctime)s: %(message)s", level=logging.INFO,
//! datefmt="%H:%M:%S")` is `mp::log::basic_config` with the same format, and
//! `logging.info(...)` is `tracing::info!(...)`. Python's `logging` writes to stderr, so the
//! log lines go there here too (the times are UTC; Python's are local).
mod common;

use std::time::Duration;

use mp::log::PythonFormat;

fn prof_func(name: String) {
    println!("Sub-Process {name}: starting");
    std::thread::sleep(Duration::from_secs(3));
    println!("Sub-Process {name}: finishing");
}

fn main() -> Result<(), mp::ProcessError> {
    let format = PythonFormat::new("%(asctime)s: %(message)s").datefmt("%H:%M:%S");
    mp::log::basic_config(format, tracing::Level::INFO);
    let mut p = mp::Process::new(prof_func, ("First".to_string(),));
    tracing::info!("Main-Process: before creating process");
    p.start()?;
    tracing::info!("Main-Process: during process");
    tracing::info!("Main-Process: joined process");
    p.join()?;
    println!("process p is alive: {}", common::py_bool(p.is_alive()?));
    Ok(())
}

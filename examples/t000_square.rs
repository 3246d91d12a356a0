//! Post 000, `square`: 49 processes named "1".."49", each sleeping 1-3 s, printing its pid and
//! name. (The random sleep comes from the pid: no `rand` dependency for an example.)
use std::time::Duration;

fn square(n: u64) {
    std::thread::sleep(Duration::from_secs(1 + u64::from(std::process::id() % 3)));
    let process_id = std::process::id();
    let process_name = mp::current_process().name;
    let result = n * n;
    println!("Process ID: {process_id}, Process Name: {process_name}");
    println!("Result of {n} squared: {result}");
}

fn main() -> Result<(), mp::ProcessError> {
    println!("Parent process ID: {}", std::process::id());
    let mut processes = Vec::new();
    for i in 1..50 {
        let mut t = mp::Process::new(square, (i,)).with_name(i.to_string());
        t.start()?;
        processes.push(t);
    }
    for process in &mut processes {
        process.join()?;
    }
    println!("Main-Process Done.");
    Ok(())
}

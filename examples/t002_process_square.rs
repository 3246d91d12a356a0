//! Post 002, `process_square1.py` and `process_square2.py` (reconstructed from their output):
//! a process per number printing its ID and name. The first joins each process before the
//! next starts; the second starts them all, then joins them all.
fn square(number: u64) {
    println!("Process ID: {}", std::process::id());
    println!("Process Name: {}", mp::current_process().name);
    println!("The number {number} squares to {}.", number * number);
}

fn main() -> Result<(), mp::ProcessError> {
    // process_square1.py: one after the other, so the output is in order.
    for number in 1..=5 {
        let mut p = mp::Process::new(square, (number,));
        p.start()?;
        p.join()?;
    }
    // process_square2.py: all at once.
    let mut procs: Vec<_> = (1..=5)
        .map(|number| mp::Process::new(square, (number,)))
        .collect();
    for p in &mut procs {
        p.start()?;
    }
    for p in &mut procs {
        p.join()?;
    }
    Ok(())
}

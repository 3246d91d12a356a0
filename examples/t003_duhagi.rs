//! Post 003, `duhagi`: 0..99 split into four slices, one process each, printing n+1; the
//! numbers interleave, and `끝!` comes after all the joins.
fn duhagi(tissi: Vec<u32>) {
    for i in tissi {
        println!("{}", i + 1);
    }
}

fn main() -> Result<(), mp::ProcessError> {
    let tosso: Vec<u32> = (0..100).collect();
    let mut ps: Vec<_> = tosso
        .chunks(25)
        .map(|slice| mp::Process::new(duhagi, (slice.to_vec(),)))
        .collect();
    for p in &mut ps {
        p.start()?;
    }
    for p in &mut ps {
        p.join()?;
    }
    println!("끝!");
    Ok(())
}

//! Post 004, the smallest Process: `f('bob')` prints `hello bob`.
fn f(name: String) {
    println!("hello {name}");
}

fn main() -> Result<(), mp::ProcessError> {
    let mut p = mp::Process::new(f, ("bob".to_string(),));
    p.start()?;
    p.join()?;
    Ok(())
}

//! Post 003, `tosso` / `tissi`: two functions one after the other, then each in its own process.
fn tosso() {
    println!("tosso");
}

fn tissi() {
    println!("tissi");
}

fn main() -> Result<(), mp::ProcessError> {
    tosso();
    tissi();
    // The post's point: the same two functions as two processes of one program.
    let mut a = mp::Process::new(tosso, ());
    let mut b = mp::Process::new(tissi, ());
    a.start()?;
    b.start()?;
    a.join()?;
    b.join()?;
    Ok(())
}

//! Post 004, `set_start_method('spawn')` + Queue: a spawned child puts `'hello'`.
fn foo(q: mp::Queue<String>) {
    q.put("hello".to_string()).expect("put");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mp::set_start_method("spawn", false)?;
    let q = mp::Queue::new()?;
    let mut p = mp::Process::new(foo, (q.clone(),));
    p.start()?;
    println!("{}", q.get()?);
    p.join()?;
    Ok(())
}

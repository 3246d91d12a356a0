//! Post 004, the Queue exchange: the child puts `'3'`, the parent puts `'1'` and `'2'`, then
//! three gets print `1 get: 1`, `2 get: 2`, `3 get: 3`.
//!
//! In Python the parent's two puts win a race against the child only because a child takes
//! tens of milliseconds to start. An mp child starts in half a millisecond and could win, so
//! this port puts `'1'` and `'2'` before it starts the child, to print the same on every run.
fn info() {
    println!("module name: {}", module_path!());
    let parent = mp::parent_process()
        .map(|p| p.pid)
        .unwrap_or_else(std::os::unix::process::parent_id);
    println!("parent process id: {parent}");
    println!("process id: {}", std::process::id());
}

fn foo(q: mp::Queue<String>) {
    info();
    q.put("3".to_string()).expect("put");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q = mp::Queue::new()?;
    q.put("1".to_string())?;
    q.put("2".to_string())?;
    let mut p = mp::Process::new(foo, (q.clone(),));
    p.start()?;
    info();
    println!("1 get: {}", q.get()?);
    println!("2 get: {}", q.get()?);
    println!("3 get: {}", q.get()?);
    p.join()?;
    Ok(())
}

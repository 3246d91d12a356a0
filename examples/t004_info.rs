//! Post 004, `info()`: module name, parent pid and own pid, in the parent and in a child.
//!
//! Rust has no `__name__`; `module_path!()` is the closest. The child's parent pid is
//! `mp::parent_process()`: under the default forkserver start method the OS parent
//! (`getppid`) is the fork server, while `parent_process()` is the process that started it,
//! which is what the tutorial shows.
fn info(title: &str) {
    println!("{title}");
    println!("module name:  {}", module_path!());
    let parent = mp::parent_process()
        .map(|p| p.pid)
        .unwrap_or_else(std::os::unix::process::parent_id);
    println!("parent process:  {parent}");
    println!("process id:  {}", std::process::id());
}

fn f(name: String) {
    info("function f");
    println!("hello {name}");
}

fn main() -> Result<(), mp::ProcessError> {
    info("main line");
    let mut p = mp::Process::new(f, ("bob".to_string(),));
    p.start()?;
    p.join()?;
    Ok(())
}

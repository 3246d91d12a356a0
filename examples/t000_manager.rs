//! Post 000's counter through a `Manager` (the post names it as the next tool after `Value` and
//! `Array`): nine processes add 1 fifty times each to a managed value and record their names in
//! a managed dict. The read-modify-write runs under a managed lock (`manager.Lock()`), so the
//! total always ends at 450, as the post's locked version prints (`Final Data in parent
//! process 450`).

use mp::managers::{Dict, Lock, ManagedValue};

fn add_fifty(total: ManagedValue<i32>, seen: Dict<String, i32>, lock: Lock) {
    for _ in 0..50 {
        // The manager answers one call at a time, but `get` then `set` are two calls: hold a
        // lock across them, as Python's `with lock: v.value += 1`.
        let _held = lock.lock().expect("lock");
        let n = total.get().expect("get");
        total.set(n + 1).expect("set");
    }
    let name = mp::current_process().name;
    let now = total.get().expect("get");
    seen.insert(name.clone(), now).expect("insert");
    println!("{name} data: {now}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("Parent process ID: {}", std::process::id());
    let manager = mp::Manager::new()?;
    let total = manager.value(0i32)?;
    let seen = manager.dict::<String, i32>()?;
    let lock = manager.lock()?;
    let mut processes = Vec::new();
    for _ in 1..10 {
        let mut p = mp::Process::new(add_fifty, (total.clone(), seen.clone(), lock.clone()));
        p.start()?;
        processes.push(p);
    }
    for p in &mut processes {
        p.join()?;
    }
    println!("Final Data in parent process {}", total.get()?);
    println!("{} processes reported", seen.len()?);
    Ok(())
}

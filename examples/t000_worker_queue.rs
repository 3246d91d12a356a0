//! Post 000, `worker` + `Queue`: five processes count to a base number and put their
//! sub-totals; the parent puts `'exit'` and sums until it.
//!
//! Python's queue mixes ints and the string `'exit'`; a typed queue carries an enum instead.
//! The loop goes through `black_box` so that the compiler cannot replace it with its result.
use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Msg {
    Count(u64),
    Exit,
}

fn worker(id: u32, base_num: u64, q: mp::Queue<Msg>) {
    let process_id = std::process::id();
    let process_name = mp::current_process().name;
    let mut sub_total = 0u64;
    for _ in 0..base_num {
        sub_total = black_box(sub_total + 1);
    }
    q.put(Msg::Count(sub_total)).expect("put");
    println!("Process ID: {process_id}, Process name: {process_name}, ID: {id}");
    println!("Result: {sub_total}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("Parent process id: {}", std::process::id());
    let start_time = Instant::now();
    let q = mp::Queue::new()?;
    let mut processes = Vec::new();
    for i in 0..5 {
        let mut t = mp::Process::new(worker, (i, 100_000_000, q.clone())).with_name(i.to_string());
        t.start()?;
        processes.push(t);
    }
    for process in &mut processes {
        process.join()?;
    }
    println!("--- {} seconds ---", start_time.elapsed().as_secs_f64());
    q.put(Msg::Exit)?;
    let mut total = 0;
    loop {
        match q.get()? {
            Msg::Exit => break,
            Msg::Count(n) => total += n,
        }
    }
    println!("Main-Processing Total Count={total}");
    println!("Main-Processing Done.");
    Ok(())
}

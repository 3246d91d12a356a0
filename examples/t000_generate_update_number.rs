//! Post 000, `generate_update_number`: `Value('i', 0)` and `Array('i', range(50))` shared by
//! nine processes, each adding 1 fifty times.
//!
//! First as the post writes it, `v.value += 1`: a locked read, then a locked write, so two
//! processes can read the same value and one increment is lost (the race the post shows; the
//! total is often below 450). Then with the read-modify-write under one lock hold
//! (`update`, Python's `with v.get_lock(): v.value += 1`), which always ends at 450.

fn generate_update_number(v: mp::Value<i32>) {
    for _ in 0..50 {
        // The post's `v.value += 1`: two lock holds, with a gap between them.
        let x = v.value().expect("read");
        std::thread::yield_now(); // widen the gap, as a busy machine would
        v.set_value(x + 1).expect("write");
    }
    println!(
        "{} data: {}",
        mp::current_process().name,
        v.value().expect("read")
    );
}

fn generate_update_number_locked(v: mp::Value<i32>, numbers: mp::Array<i32>) {
    for _ in 0..50 {
        v.update(|x| *x += 1).expect("update");
        numbers
            .lock()
            .expect("lock")
            .iter_mut()
            .for_each(|n| *n += 1);
    }
    println!(
        "{} data: {}",
        mp::current_process().name,
        v.value().expect("read")
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let parent_process_id = std::process::id();
    println!("Parent process ID: {parent_process_id}");

    let share_value = mp::Value::new(0i32)?;
    let share_numbers = mp::Array::from_slice(&(0..50).collect::<Vec<i32>>())?;
    let mut processes = Vec::new();
    for _ in 1..10 {
        let mut p = mp::Process::new(generate_update_number, (share_value.clone(),));
        p.start()?;
        processes.push(p);
    }
    for p in &mut processes {
        p.join()?;
    }
    println!(
        "Final Data in parent process (unsynchronised) {}",
        share_value.value()?
    );

    let share_value = mp::Value::new(0i32)?;
    let mut processes = Vec::new();
    for _ in 1..10 {
        let mut p = mp::Process::new(
            generate_update_number_locked,
            (share_value.clone(), share_numbers.clone()),
        );
        p.start()?;
        processes.push(p);
    }
    for p in &mut processes {
        p.join()?;
    }
    println!(
        "Final Data in parent process (locked) {}",
        share_value.value()?
    );
    let numbers = share_numbers.to_vec()?;
    println!("Final numbers: {} .. {}", numbers[0], numbers[49]);
    Ok(())
}

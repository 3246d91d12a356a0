//! Post 004, `get_context('spawn')`: the same as `t004_spawn_queue`, through a context object.
//!
//! Python makes the queue with `ctx.Queue()`; an mp queue lives in shared memory that any start
//! method can hand over, so one `Queue` type serves every context.
fn foo(q: mp::Queue<String>) {
    q.put("hello".to_string()).expect("put");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = mp::get_context("spawn")?;
    let q = mp::Queue::new()?;
    let mut p = ctx.process(foo, (q.clone(),));
    p.start()?;
    println!("{}", q.get()?);
    p.join()?;
    Ok(())
}

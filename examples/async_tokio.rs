//! A tokio program awaiting mp (issue #18): a pool's `apply_async` and an `imap` stream, and a
//! queue fed by a child process, all awaited on the runtime's threads without blocking them.
//!
//! `cargo run --example async_tokio --features async`

use futures::StreamExt;

fn square(x: u64) -> u64 {
    x * x
}

/// The child: puts `n` lines, then returns.
fn produce(q: mp::Queue<String>, n: u32) {
    for i in 0..n {
        q.put(format!("line {i} from the child")).expect("put");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = mp::Pool::new(2)?;

    // One call, awaited: the runtime's thread runs other tasks meanwhile.
    let v = pool.apply_async(square, (12,))?.await?;
    println!("apply_async: 12 * 12 = {v}");

    // Results as they come, in input order, as a stream.
    let mut squares = pool.imap(square, 0..10u64).into_stream();
    let mut total = 0;
    while let Some(v) = squares.next().await {
        total += v?;
    }
    println!("imap: the sum of the squares below 10 is {total}");

    // A queue fed by a child process, awaited beside a pool call.
    let q = mp::Queue::new()?;
    let mut child = mp::Process::new(produce, (q.clone(), 3));
    child.start()?;
    let (first, pooled) = tokio::join!(q.get_async(), async {
        pool.apply_async(square, (3,))?.await
    });
    println!("queue: {}", first?);
    println!("apply_async beside it: {}", pooled?);
    for _ in 1..3 {
        println!("queue: {}", q.get_async().await?);
    }
    child.join_async().await?;
    println!("the child exited with {:?}", child.exitcode()?);
    Ok(())
}

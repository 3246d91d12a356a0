//! A remote manager (Python's `BaseManager(address, authkey)` with a registered queue): a
//! server listens on a TCP address with an authkey and publishes two queues by name; a client
//! that knows only the address and the key (here a child process; it could run on another
//! host, started with the same executable) connects, looks the queues up, and squares the jobs
//! it takes until it gets `None`.
//!
//! Prints the address, then `4 squared is 16` and so on for 1 to 5, in order.

use mp::ipc::Address;
use mp::managers::{ManagedQueue, Manager};

const AUTHKEY: &[u8] = b"the key both sides know";

/// The client side: everything it needs is the address and the key.
fn client(address: Address) {
    let manager = Manager::connect(&address, AUTHKEY).expect("connect");
    let jobs: ManagedQueue<Option<u64>> = manager.lookup("jobs").expect("jobs");
    let results: ManagedQueue<(u64, u64)> = manager.lookup("results").expect("results");
    while let Some(n) = jobs.get().expect("get") {
        results.put((n, n * n)).expect("put");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server side: a manager listening on a TCP port (0: any free one).
    let server = Manager::listen(&Address::Tcp("127.0.0.1:0".parse()?), AUTHKEY)?;
    println!("serving at {}", server.address());
    let jobs = server.queue::<Option<u64>>()?;
    let results = server.queue::<(u64, u64)>()?;
    server.publish("jobs", &jobs)?;
    server.publish("results", &results)?;

    let mut worker = mp::Process::new(client, (server.address().clone(),));
    worker.start()?;
    for n in 1..=5 {
        jobs.put(Some(n))?;
    }
    jobs.put(None)?;
    for _ in 1..=5 {
        let (n, square) = results.get()?;
        println!("{n} squared is {square}");
    }
    worker.join()?;
    Ok(())
}

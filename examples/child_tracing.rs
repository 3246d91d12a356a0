//! A child's `tracing` events arriving in the parent (issue #18): one call in the parent,
//! `mp::log::basic_config` (or `mp::log_to_stderr`, or `mp::log::forward_children` beside a
//! subscriber of your own), and every child's events, under each start method, from pool
//! workers and from a child's own children, are re-emitted in the parent with the child's
//! process name and pid. Nothing is written in the children beyond `tracing`'s macros.
//!
//! ```text
//! 12:24:11 [INFO/MainProcess pid 28504] child_tracing: starting
//! 12:24:11 [INFO/Process-1 pid 30625] child_tracing: hello from a child method="fork"
//! 12:24:11 [WARNING/Process-1 pid 30625] child_tracing: something odd n=2
//! ...
//! 12:24:11 [INFO/ForkServerPoolWorker-1 pid 30631] child_tracing: square x=1
//! ...
//! 12:24:11 [INFO/MainProcess pid 28504] child_tracing: pool done squares=[1, 4, 9]
//! 12:24:11 [INFO/Process-6:1 pid 30636] child_tracing: a grandchild
//! ```

use mp::log::PythonFormat;
use mp::{Pool, StartMethod};

fn child(method: String) -> u32 {
    tracing::info!(method, "hello from a child");
    tracing::warn!(n = 2, "something odd");
    std::process::id()
}

fn square(x: u64) -> u64 {
    tracing::info!(x, "square");
    x * x
}

fn grandchild() {
    tracing::info!("a grandchild");
}

fn parent_of_one() -> Result<(), String> {
    let mut p = mp::Process::new(grandchild, ());
    p.start().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let format = PythonFormat::new(
        "%(asctime)s [%(levelname)s/%(processName)s pid %(process)d] %(name)s: %(message)s",
    )
    .datefmt("%H:%M:%S");
    mp::log::basic_config(format, tracing::Level::INFO);
    // mp-log's listener is a thread, which the fork start method warns about; it holds no lock
    // that a forked child needs.
    mp::spawn::set_fork_warning(false);
    tracing::info!("starting");
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        let mut p = mp::get_context(method)?.process(child, (method.name().to_owned(),));
        p.start()?;
        p.join()?;
    }
    let pool = Pool::new(2)?;
    let squares = pool.map(square, 1..=3u64)?;
    // The workers' events come through the listener, the parent's own directly: flush first
    // to print them in that order.
    mp::log::flush();
    tracing::info!(?squares, "pool done");
    let mut p = mp::Process::new(parent_of_one, ());
    p.start()?;
    p.join()??;
    // Every event the children sent has been re-emitted once this returns.
    mp::log::flush();
    Ok(())
}

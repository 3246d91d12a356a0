//! A worker rank: says hello, waits for START (or STOP), then runs each task frame it receives
//! in its node-local mp pool (`Pool::relay`: a task that segfaults kills a local process, not
//! the rank) and sends the answers back, until STOP; then exits.

use std::sync::mpsc;

use mp_pool::{Pool, PoolError};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::backoff::Backoff;
use crate::wire::{Hello, MAX_VALUES, Start, TAG_HELLO, TAG_RESULT, TAG_START, TAG_STOP, TAG_TASK};
use mp_spawn::identity;

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A worker rank: says hello, waits for START (or STOP), then runs chunks in its local pool
/// until STOP. Exits the process.
pub(crate) fn serve(universe: Universe) -> ! {
    let world = universe.world();
    let code = match serve_on(&world) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("mp-mpi worker rank {}: {message}", world.rank());
            1
        }
    };
    drop(world);
    // MPI_Finalize, then leave: the rest of the user's `main` is the master's.
    drop(universe);
    std::process::exit(code)
}

fn serve_on(world: &SimpleCommunicator) -> Result<(), String> {
    let own = identity::digest().map_or_else(|_| Vec::new(), |d| d.0.to_vec());
    let hello = Hello {
        identity: own.to_vec(),
        host: host_name(),
        pid: std::process::id(),
    };
    let hello = postcard::to_stdvec(&hello).map_err(|e| e.to_string())?;
    let master = world.process_at_rank(0);
    master.send_with_tag(&hello[..], TAG_HELLO);
    let (bytes, tag) = receive_from(&master);
    match tag {
        TAG_STOP => return Ok(()),
        TAG_START => {}
        other => return Err(format!("a first message with tag {other}")),
    }
    let start: Start = postcard::from_bytes(&bytes).map_err(|e| e.to_string())?;
    if own.is_empty() || start.identity != own {
        // The master checked already; this side keeps a forged START from running code.
        return Err("the master runs another executable; no task will run here".into());
    }
    // Forkserver, whatever the program's default: the local workers are forked from a server
    // exec'd afresh, never from this process, whose MPI state (pinned memory on InfiniBand)
    // a fork must not share.
    let pool = mp_spawn::get_context(mp_spawn::StartMethod::Forkserver)
        .map_err(|e| e.to_string())
        .and_then(|ctx| {
            let mut builder = Pool::builder()
                .processes(start.local_processes.max(1) as usize)
                .context(ctx);
            if let Some(bytes) = start.max_memory {
                builder = builder.max_memory_per_worker(bytes);
            }
            if let Some(ms) = start.max_cpu_ms {
                builder = builder.max_cpu_time_per_task(std::time::Duration::from_millis(ms));
            }
            if let Some(bytes) = start.leak_guard {
                builder = builder.leak_guard(bytes);
            }
            builder.build().map_err(|e| e.to_string())
        });
    // The local pool's answers, from its thread to this one (which makes the MPI calls).
    let (answers_tx, answers) = mpsc::channel::<Vec<u8>>();
    let mut idle = Backoff::new();
    loop {
        let mut busy = false;
        if let Some(probed) = master.immediate_matched_probe() {
            busy = true;
            let (frame, status) = probed.matched_receive_vec::<u8>();
            match status.tag() {
                TAG_STOP => return Ok(()),
                TAG_TASK => match &pool {
                    Ok(pool) => {
                        let answers = answers_tx.clone();
                        // The master stops listening only after every frame is answered.
                        // SAFETY: task frames come only from the master, rank 0 of the job
                        // that started this rank, whose START carried an executable identity
                        // equal to ours (checked above): the same image, and a process the
                        // user launched to run this program, trusted to run code here (the
                        // trust model, docs/DESIGN.md).
                        unsafe {
                            pool.relay(&frame, MAX_VALUES, move |answer| {
                                let _ = answers.send(answer);
                            })
                        };
                    }
                    Err(e) => {
                        let refused = PoolError::StartFailed {
                            message: format!("the rank's local pool did not start: {e}"),
                        };
                        let _ = answers_tx.send(mp_pool::transport::refuse(&frame, &refused));
                    }
                },
                _ => {}
            }
        }
        let mut next = answers.try_recv().ok();
        while let Some(answer) = next {
            busy = true;
            // The master never blocks in a send to this rank, so this send completes.
            master.send_with_tag(&answer[..], TAG_RESULT);
            next = answers.try_recv().ok();
        }
        if busy {
            idle = Backoff::new();
        } else if let Some(answer) = idle.wait_on(&answers) {
            master.send_with_tag(&answer[..], TAG_RESULT);
        }
    }
}

/// The next message from `source` (any tag), polled with a back-off rather than MPI's busy
/// wait, so that an idle rank leaves the CPU to the others.
fn receive_from(source: &mpi::topology::Process<'_>) -> (Vec<u8>, i32) {
    let mut idle = Backoff::new();
    loop {
        if let Some(probed) = source.immediate_matched_probe() {
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            return (bytes, status.tag());
        }
        idle.wait();
    }
}

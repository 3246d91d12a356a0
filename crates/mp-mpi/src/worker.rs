//! A worker rank: says hello, waits for START (or STOP), then runs chunks in its node-local
//! pool until STOP, and exits.

use mp_pool::Pool;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::backoff::Backoff;
use crate::entry;
use crate::wire::{
    Hello, RemoteError, Reply, Start, TAG_HELLO, TAG_RESULT, TAG_START, TAG_STOP, TAG_TASK, Task,
};
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
    let pool = Pool::builder()
        .processes(start.local_processes.max(1) as usize)
        .context(
            mp_spawn::get_context(mp_spawn::StartMethod::Forkserver).map_err(|e| e.to_string())?,
        )
        .build();
    loop {
        let (bytes, tag) = receive_from(&master);
        match tag {
            TAG_STOP => return Ok(()),
            TAG_TASK => {
                let reply = match &pool {
                    Ok(pool) => entry::execute(pool, &bytes),
                    Err(e) => match Task::decode(&bytes) {
                        Ok(task) => Reply {
                            job: task.job,
                            chunk: task.chunk,
                            outcome: Err(RemoteError::Other(format!(
                                "the rank's local pool did not start: {e}"
                            ))),
                        },
                        Err(e) => Reply {
                            job: u64::MAX,
                            chunk: u64::MAX,
                            outcome: Err(RemoteError::Decode(e)),
                        },
                    },
                };
                master.send_with_tag(&reply.encode()[..], TAG_RESULT);
            }
            _ => {}
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

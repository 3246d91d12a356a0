//! The worker process's loop (CPython's `pool.worker`): take a frame from its own queue, run
//! the chunk, put the result on the pool's queue; stop on `Stop`, after `maxtasksperchild`
//! chunks, or when the pool is gone.

use std::os::fd::AsFd;
use std::time::Duration;

/// How long an idle worker polls its queue before it sleeps.
const POLL: Duration = Duration::from_micros(50);
/// How long an idle worker keeps the shared array it received last (see `mp_shm`'s
/// lingering arrays) before it lets go of it.
const LINGER: Duration = Duration::from_millis(100);

use mp_ipc::Queue;
use mp_spawn::reduction::Fd;
use serde::{Deserialize, Serialize};

use crate::task::{self, InitSpec};
use crate::wire;

/// Everything a worker needs: its slot (to sign its results), its own task queue, the pool's
/// result queue, the initializer and its task budget.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) slot: u32,
    pub(crate) tasks: Queue<()>,
    pub(crate) results: Queue<()>,
    pub(crate) init: Option<InitSpec>,
    pub(crate) maxtasks: Option<u64>,
    /// The CPU time one task may use (re-armed before each), and the resident set above which
    /// the worker retires after a task (its leak guard).
    pub(crate) cpu_per_task: Option<Duration>,
    pub(crate) leak_guard: Option<u64>,
    /// The pool's progress counters (see `progress`), and how many slots it has.
    pub(crate) board: Fd,
    pub(crate) slots: u32,
}

/// The worker's main function.
pub(crate) fn worker_main(args: WorkerArgs) {
    // Ctrl-C goes to the whole foreground process group: the pool's owner decides what it
    // means and stops the workers itself, so they print nothing (bpo-8296).
    mp_sys::signal::set_ignored(libc::SIGINT, true);
    task::become_worker();
    let WorkerArgs {
        slot,
        tasks,
        results,
        init,
        maxtasks,
        cpu_per_task,
        leak_guard,
        board,
        slots,
    } = args;
    // Without its board a worker could not honour a cancel (see `control`): it exits, and
    // the pool sees a worker that died as it started.
    let Ok(board) = crate::progress::Board::attach(board.as_fd(), slots as usize) else {
        return;
    };
    let control = board.control(slot as usize);

    if let Some(init) = init {
        let fds = init.fds.into_iter().map(Fd::into_inner).collect();
        let outcome = match task::init_entry_at(init.task.entry) {
            Some(entry) => entry(&init.args, fds, init.task.code),
            None => Err("the pool named no initializer entry".to_owned()),
        };
        if let Err(message) = outcome {
            let _ = results.put_bytes(&wire::init_failed(slot, &message), &[]);
            return;
        }
    }
    // Up: from now on a death is not a crash while starting, and does not count towards the
    // pool's crash-loop guard (an idle worker killed by an operator or the OOM killer).
    if results.put_bytes(&wire::ready(slot), &[]).is_err() {
        return;
    }
    // Back-to-back tasks on one shared array map it once; an idle worker holds none.
    mp_shm::set_lingering(true);

    let mut frame = Vec::new();
    let mut taken = Vec::new();
    let mut done = 0u64;
    // The number of the frame in hand, counted as the pool counts the frames it sends.
    let mut seq = 0u64;
    while maxtasks.is_none_or(|max| done < max) {
        // Idle: poll a moment before sleeping, so that the next task costs no wake-up.
        let mut wait = None;
        if !crate::spin::spin_for(POLL, || tasks.qsize() > 0) {
            // Still idle: keep the shared array received last mapped a moment longer, for the
            // next call on it (a remap faults its pages in again), then let it go, so that
            // an idle pool holds no array's memory.
            wait = Some(LINGER);
        }
        // The frame is copied out before it is decoded: a worker that dies decoding it (a
        // bad `Deserialize`) has taken it, and the pool must not hand it to the next worker.
        let fds = loop {
            let got = tasks.get_bytes(wait, |bytes, fds| {
                taken.clear();
                taken.extend_from_slice(bytes);
                fds
            });
            match got {
                Err(mp_ipc::GetError::Empty) if wait.is_some() => {
                    mp_shm::release_lingering();
                    wait = None;
                }
                got => break got,
            }
        };
        let Ok(fds) = fds else {
            // The queue is unusable: the pool will see this worker exit.
            return;
        };
        let Some(header) = wire::parse_task(&taken) else {
            // Stop.
            return;
        };
        let (tally, task_fn) = (header.tally, header.task);
        wire::result_header(&mut frame, slot, header.id);
        if control.is_some_and(|words| words.take(seq)) {
            // Cancelled before it started: it never runs, and this worker stops here (the
            // pool sends it nothing more).
            wire::set_outcome(&mut frame, wire::Outcome::Skipped);
            let _ = results.put_bytes(&frame, &[]);
            return;
        }
        let mut send = |bytes: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]| {
            // If the pool is gone there is nobody to tell; its lifeline ends this process.
            // Values over the call's limit stay here (their handles close with them).
            let _ = match wire::too_large(bytes, header.limit) {
                Some(refused) => results.put_bytes(&refused, &[]),
                None => results.put_bytes(bytes, fds),
            };
        };
        if let Some(cpu) = cpu_per_task {
            // Without the re-arm the cap would count every earlier task's time too; a worker
            // that cannot re-arm it keeps the budget it started with.
            let _ = mp_spawn::limits::cpu_budget_from_now(cpu);
        }
        let mut counter = board.counter(slot, tally);
        let mut tick = || counter.tick();
        match task::entry_at(task_fn.entry) {
            Some(entry) => entry(
                &taken[wire::TASK_HEADER..],
                fds,
                task_fn.code,
                &mut frame,
                &mut send,
                &mut tick,
            ),
            None => {
                wire::set_outcome(&mut frame, wire::Outcome::DecodeFailed);
                frame.extend_from_slice(b"the task names no pool entry");
                send(&frame, &[]);
            }
        }
        // Cancelled while it ran: the pool may be killing this worker, which must not take
        // another chunk and have that killed instead.
        if control.is_some_and(|words| words.answered(seq)) {
            return;
        }
        seq += 1;
        // Grown past the leak guard: a fresh worker takes over (the pool sends this one
        // nothing more once it reads `Retire`; what it queued meanwhile goes elsewhere).
        if leak_guard.is_some_and(|guard| mp_spawn::limits::rss().is_ok_and(|rss| rss > guard)) {
            let _ = results.put_bytes(&wire::retire(slot), &[]);
            return;
        }
        // Keep the buffers for the next task, unless a large one came by.
        for buf in [&mut frame, &mut taken] {
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new();
            }
        }
        done += 1;
    }
}

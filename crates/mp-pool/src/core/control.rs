//! Cancelling a job's chunks and killing the workers that run them (SIGKILL, or SIGTERM and
//! SIGKILL after the pool's grace period): the engine's side of `AsyncResult::cancel` and of
//! timeouts (see `control.rs` at the crate root for the handshake).

use std::sync::Arc;
use std::time::Instant;

use super::{Inner, Link, State, run};
use crate::control::Cancel;
use crate::result::Job;

impl Inner {
    /// Cancels every unfinished chunk of `job`, killing the workers that run one.
    pub(crate) fn cancel(&self, job: &Arc<Job>) -> Cancel {
        let mut st = self.lock();
        let (report, callbacks, kill) = st.cancel_job(job);
        for (slot, generation) in kill {
            self.kill_worker(&mut st, slot, generation);
        }
        // Chunks that went back to the pending ones may go to other workers now.
        let more = st.dispatch();
        drop(st);
        // A remote pool's timer may have a late worker to watch.
        self.wake_handler();
        run(callbacks);
        run(more);
        report
    }

    /// Kills the local worker in `slot` if it is of `generation`: SIGKILL, or SIGTERM and
    /// SIGKILL after the pool's grace period. Its death, seen by the monitor, brings a
    /// replacement.
    pub(super) fn kill_worker(&self, st: &mut State, slot: usize, generation: u32) {
        let Some(Some(worker)) = st.workers.get(slot) else {
            return;
        };
        let Link::Local { process, .. } = &worker.port else {
            return;
        };
        if worker.generation != generation {
            return;
        }
        match self.config.kill_grace {
            Some(grace) => {
                let _ = process.terminate();
                if let Some(deadline) = Instant::now().checked_add(grace) {
                    st.grace(slot, generation, deadline);
                }
            }
            None => {
                let _ = process.kill();
            }
        }
    }
}

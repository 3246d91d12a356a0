//! Cancelling: the chunks of a job wherever they are (`AsyncResult::cancel`), and the pending
//! chunks of a dropped `imap` or of an executor shut down with `cancel_futures`.

use std::sync::Arc;

use super::{Port, Scheduler};
use crate::control::{Cancel, Found};
use crate::error::PoolError;
use crate::result::{Deferred, Job};

impl<P: Port> Scheduler<P> {
    /// Forgets the chunks of `job` that are not in a worker's queue yet: an `imap` dropped
    /// before its end. The chunks that workers already hold still run, and their results are
    /// dropped.
    pub(crate) fn cancel_pending(&mut self, job: &Arc<Job>) {
        let Scheduler { pending, tasks, .. } = self;
        pending.retain(|id| match tasks.get(id) {
            Some(task) if Arc::ptr_eq(&task.job, job) => {
                tasks.remove(id);
                false
            }
            _ => true,
        });
        self.stop_idle_workers();
    }

    /// Fails with [`PoolError::Cancelled`] every chunk that is not in a worker's queue yet, of
    /// every job (`ProcessPoolExecutor::shutdown` with `cancel_futures`).
    pub(crate) fn cancel_all_pending(&mut self) -> Vec<Deferred> {
        let mut callbacks = Vec::new();
        for id in std::mem::take(&mut self.pending) {
            if let Some(task) = self.tasks.remove(&id) {
                callbacks.extend(task.job.finish(task.chunk, Err(PoolError::Cancelled)));
            }
        }
        self.stop_idle_workers();
        callbacks
    }

    /// Cancels every unfinished chunk of `job`: a pending one is dropped; one in a local
    /// worker's queue is skipped there (the worker exits when it reaches it); a running one's
    /// worker is returned, to be killed (slot, generation). A remote worker cannot be stopped:
    /// its chunk fails here, and the worker gets no more work until it answers. Each fails with
    /// [`PoolError::Cancelled`]; a chunk that finished meanwhile keeps its result.
    pub(crate) fn cancel_job(
        &mut self,
        job: &Arc<Job>,
    ) -> (Cancel, Vec<Deferred>, Vec<(usize, u32)>) {
        let (mut queued, mut running) = (0, 0);
        let mut callbacks = Vec::new();
        let mut kill = Vec::new();
        let ours = |tasks: &std::collections::HashMap<u64, super::Task>, id: &u64| {
            tasks.get(id).is_some_and(|t| Arc::ptr_eq(&t.job, job))
        };
        let Scheduler {
            pending,
            tasks,
            workers,
            ..
        } = self;
        let mut cancelled = Vec::new();
        pending.retain(|id| {
            let mine = ours(tasks, id);
            if mine {
                cancelled.push(*id);
                queued += 1;
            }
            !mine
        });
        for (slot, worker) in workers.iter_mut().enumerate() {
            let Some(worker) = worker else { continue };
            for id in &worker.outstanding {
                let Some(task) = tasks.get(id).filter(|_| ours(tasks, id)) else {
                    continue;
                };
                worker.marked = true;
                match worker.port.mark_cancelled(task.seq) {
                    Some(Found::Queued) => {
                        worker.stopping = true;
                        worker.retiring = true;
                        queued += 1;
                    }
                    Some(Found::Running) => {
                        worker.stopping = true;
                        worker.retiring = true;
                        if !worker.killed {
                            worker.killed = true;
                            kill.push((slot, worker.generation));
                        }
                        running += 1;
                    }
                    // Its answer is on its way; the worker may exit after it.
                    Some(Found::Finished) => {
                        worker.retiring = true;
                        continue;
                    }
                    None => {
                        worker.late += 1;
                        running += 1;
                    }
                }
                cancelled.push(*id);
            }
        }
        for id in cancelled {
            if let Some(task) = self.tasks.remove(&id) {
                callbacks.extend(task.job.finish(task.chunk, Err(PoolError::Cancelled)));
            }
        }
        self.stop_idle_workers();
        let report = if queued + running == 0 {
            Cancel::Finished
        } else {
            Cancel::Cancelled { queued, running }
        };
        (report, callbacks, kill)
    }
}

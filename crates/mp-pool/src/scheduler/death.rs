//! A worker's death (see `README.md`, "A worker's death" and "The crash-loop guard"), and
//! what a run that ended with its worker leads to: the task runs again, if its retries say
//! so (see `retry`), or fails.

use std::time::Duration;

use super::{Port, Scheduler, Task, Worker};
use crate::error::{PoolError, signal_name};
use crate::result::Deferred;
use crate::retry::RetryOn;
use crate::wire;

/// The cap a local worker died of, as its owner found out (see `mp_spawn::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    /// Its memory cap, in bytes.
    Memory(u64),
    /// Its CPU-time cap per task.
    Cpu(Duration),
}

impl<P: Port> Scheduler<P> {
    /// Takes the worker in `slot` out if it is of `generation` (the monitor reported its
    /// death), for the caller to reap and pass to [`on_died`](Scheduler::on_died).
    pub(crate) fn take_dead(&mut self, slot: usize, generation: u32) -> Option<Worker<P>> {
        let entry = self.workers.get_mut(slot)?;
        if entry.as_ref().is_none_or(|w| w.generation != generation) {
            return None;
        }
        entry.take()
    }

    /// A worker taken out by [`take_dead`](Scheduler::take_dead) died with `exitcode`, of
    /// `cap` if its owner found one: the chunk it was running fails or runs again, the ones it
    /// had not taken go back to the pending ones, and the death counts towards the crash-loop
    /// guard if it must.
    pub(crate) fn on_died(
        &mut self,
        worker: Worker<P>,
        exitcode: i32,
        cap: Option<Cap>,
    ) -> Vec<Deferred> {
        let generation = worker.generation;
        let mut callbacks = Vec::new();
        // Frames still in its queue were never taken: they go to another worker. If it had
        // taken more than it answered, the first unanswered one was running when it died.
        let untaken = worker.port.queued().min(worker.outstanding.len());
        let taken = worker.outstanding.len() - untaken;
        let mut outstanding = worker.outstanding;
        if taken > 0 {
            // A chunk timed out or cancelled has no task any more: nothing fails again.
            if let Some(task) = outstanding
                .pop_front()
                .and_then(|id| self.tasks.remove(&id))
            {
                let (index, len) = (task.index, task.len);
                let (ending, error) = match cap {
                    Some(Cap::Memory(limit)) => (
                        RetryOn::MEMORY,
                        PoolError::MemoryLimit { index, len, limit },
                    ),
                    Some(Cap::Cpu(limit)) => {
                        (RetryOn::CPU, PoolError::CpuLimit { index, len, limit })
                    }
                    None => (
                        RetryOn::CRASH,
                        PoolError::WorkerDied {
                            index,
                            len,
                            pid: worker.pid,
                            exitcode,
                        },
                    ),
                };
                callbacks.extend(self.end_run(task, ending, error));
            }
        }
        for id in outstanding.into_iter().rev() {
            self.pending.push_front(id);
        }
        // Only a worker that died before it was up, or that was up with work queued for it and
        // took none of it, counts towards the guard: one killed while idle (by an operator, by
        // the OOM killer) is replaced however often it happens, and one that exits at a
        // cancelled chunk did so on purpose. The count resets on a result only, so that
        // workers that always die right after `Ready` still trip it.
        let was_ready = self.ready.remove(&generation);
        if !was_ready || (taken == 0 && untaken > 0 && !worker.retiring) {
            self.early_deaths += 1;
            // Workers that die as they start (a crash in the initializer, say) would be
            // replaced forever, as Python's are: give up instead.
            if self.early_deaths > 2 * self.processes + 2 {
                let (count, how) = (self.early_deaths, how_it_ended(exitcode));
                let error = if self.has_init && !was_ready {
                    PoolError::Initializer {
                        message: format!(
                            "died before it returned, in {count} workers in a row (the last \
                             {how})"
                        ),
                    }
                } else {
                    PoolError::StartFailed {
                        message: format!(
                            "{count} workers in a row died before they took a task (the \
                             last {how})"
                        ),
                    }
                };
                callbacks.extend(self.on_broken(error));
            }
        }
        callbacks
    }

    /// A run of `task` ended with its worker (`ending`; `error` is its failure if it does not
    /// run again): it runs again, first in line under a new id, if its retries and its crash
    /// budget allow; otherwise it fails, with [`PoolError::GaveUp`] if it ran more than once.
    pub(super) fn end_run(
        &mut self,
        mut task: Task,
        ending: RetryOn,
        error: PoolError,
    ) -> Vec<Deferred> {
        task.runs += 1;
        if ending != RetryOn::TIMEOUT {
            task.crashes += 1;
        }
        if task.retry.again(task.runs, task.crashes, ending) {
            self.requeue(task);
            return Vec::new();
        }
        let error = match task.runs {
            1 => error,
            attempts => PoolError::GaveUp {
                attempts,
                error: Box::new(error),
            },
        };
        task.job.finish(task.chunk, Err(error))
    }
}

impl<P: Port> Scheduler<P> {
    /// Puts a chunk taken out of `tasks` back, first in line, under a new id: its old id may
    /// still be in a dying or exiting worker's list, whose end must not touch it.
    pub(super) fn requeue(&mut self, mut task: Task) {
        let id = self.next_id;
        self.next_id += 1;
        let _ = mp_sys::le::set_u64(&mut task.frame, wire::ID_AT, id);
        task.sent = None;
        self.tasks.insert(id, task);
        self.pending.push_front(id);
    }
}

/// The retry reason of a failure that a worker's end caused (as a remote worker's own pool
/// reports it); `None` for the task's own failures (a panic, a decode error).
pub(super) fn ending_of(error: &PoolError) -> Option<RetryOn> {
    match error.cause() {
        PoolError::WorkerDied { .. } => Some(RetryOn::CRASH),
        PoolError::MemoryLimit { .. } => Some(RetryOn::MEMORY),
        PoolError::CpuLimit { .. } => Some(RetryOn::CPU),
        PoolError::TaskTimeout { .. } => Some(RetryOn::TIMEOUT),
        _ => None,
    }
}

/// How a worker ended, for messages: "killed by SIGKILL (exit code -9)".
fn how_it_ended(exitcode: i32) -> String {
    match (exitcode < 0).then(|| signal_name(-exitcode)) {
        Some(Some(name)) => format!("was killed by {name}, exit code {exitcode}"),
        Some(None) => format!("was killed by signal {}, exit code {exitcode}", -exitcode),
        None => format!("exited with code {exitcode}"),
    }
}

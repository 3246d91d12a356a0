//! Timeouts (see `README.md`, "One exception, timeouts"): which running chunk is past its
//! call's timeout, and which workers asked to stop (SIGTERM) are past their grace period.

use std::time::{Duration, Instant};

use super::{Port, Scheduler};
use crate::control::Found;
use crate::error::PoolError;
use crate::result::Deferred;
use crate::retry::RetryOn;

impl<P: Port> Scheduler<P> {
    /// When the next running chunk's timeout ends, or a stopping worker's grace period.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let grace = self.graces.iter().map(|g| g.2).min();
        if !self.timed {
            return grace;
        }
        self.running()
            .filter_map(|(_, _, _, deadline)| deadline)
            .chain(grace)
            .min()
    }

    /// The chunks that run now, with a deadline: (slot, id, timeout, deadline).
    fn running(&self) -> impl Iterator<Item = (usize, u64, Duration, Option<Instant>)> + '_ {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| Some((slot, w.as_ref()?)))
            // A local worker being killed runs nothing more: its queued chunks go to another
            // worker when its death is seen, and must not time out meanwhile.
            .filter(|(_, w)| !w.killed)
            .flat_map(move |(slot, w)| {
                // A worker runs its first `parallel` chunks (those failed late among them);
                // each started when it was sent, or when the worker last answered.
                w.outstanding.iter().take(w.parallel).filter_map(move |id| {
                    let task = self.tasks.get(id)?;
                    let timeout = task.timeout?;
                    let started = task.sent?.max(w.last_result);
                    Some((slot, *id, timeout, started.checked_add(timeout)))
                })
            })
    }

    /// Ends every running chunk past its timeout: it fails with `PoolError::TaskTimeout`, or
    /// runs again if its retries say so. Returns the callbacks, and the local workers to kill
    /// (slot, generation): a remote worker keeps its late chunk until it answers it, and gets
    /// no work meanwhile.
    pub(crate) fn expire(&mut self, now: Instant) -> (Vec<Deferred>, Vec<(usize, u32)>) {
        let mut callbacks = Vec::new();
        let mut kill = Vec::new();
        if !self.timed {
            return (callbacks, kill);
        }
        let expired: Vec<(usize, u64, Duration)> = self
            .running()
            .filter(|(.., deadline)| deadline.is_some_and(|d| d <= now))
            .map(|(slot, id, timeout, _)| (slot, id, timeout))
            .collect();
        for (slot, id, timeout) in expired {
            let (Some(task), Some(Some(worker))) =
                (self.tasks.get(&id), self.workers.get_mut(slot))
            else {
                continue;
            };
            let local = worker.port.rank().is_none();
            if local {
                // Only a chunk the worker still runs may cost it its life (see `control`).
                worker.marked = true;
                match worker.port.mark_cancelled(task.seq) {
                    // Its answer is on its way.
                    Some(Found::Finished) => {
                        worker.retiring = true;
                        continue;
                    }
                    // Not started: it runs elsewhere (its worker skips it and exits), and its
                    // time starts anew.
                    Some(Found::Queued) => {
                        worker.stopping = true;
                        worker.retiring = true;
                        if let Some(task) = self.tasks.remove(&id) {
                            self.requeue(task);
                        }
                        continue;
                    }
                    Some(Found::Running) | None => {}
                }
                // It is killed: nothing more goes to it, and its death fails nothing else
                // (its untaken chunks go to another worker).
                worker.stopping = true;
                worker.retiring = true;
                worker.killed = true;
                kill.push((slot, worker.generation));
            } else {
                worker.late += 1;
            }
            let rank = worker.port.rank();
            let Some(task) = self.tasks.remove(&id) else {
                continue;
            };
            let error = PoolError::TaskTimeout {
                index: task.index,
                timeout,
            };
            let error = match rank {
                Some(rank) => PoolError::Remote {
                    rank,
                    error: Box::new(error),
                },
                None => error,
            };
            callbacks.extend(self.end_run(task, RetryOn::TIMEOUT, error));
        }
        // Every worker is remote and late: what waits would wait for them forever.
        let live: Vec<_> = self.workers.iter().flatten().collect();
        if !live.is_empty() && live.iter().all(|w| w.late > 0 && w.port.rank().is_some()) {
            for id in std::mem::take(&mut self.pending) {
                if let Some(task) = self.tasks.remove(&id) {
                    let error = PoolError::TaskTimeout {
                        index: task.index,
                        timeout: task.timeout.unwrap_or_default(),
                    };
                    callbacks.extend(task.job.finish(task.chunk, Err(error)));
                }
            }
        }
        (callbacks, kill)
    }

    /// A worker asked to stop (SIGTERM) is killed (SIGKILL) if it still lives at `deadline`.
    pub(crate) fn grace(&mut self, slot: usize, generation: u32, deadline: Instant) {
        self.graces.push((slot, generation, deadline));
    }

    /// The workers whose grace period ended (slot, generation), for the caller to kill if
    /// they still live.
    pub(crate) fn graces_over(&mut self, now: Instant) -> Vec<(usize, u32)> {
        let mut over = Vec::new();
        self.graces.retain(|&(slot, generation, deadline)| {
            let live = matches!(&self.workers[slot], Some(w) if w.generation == generation);
            if live && deadline <= now {
                over.push((slot, generation));
            }
            live && deadline > now
        });
        over
    }
}

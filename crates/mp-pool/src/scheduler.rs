//! The pool's bookkeeping: which chunk is where, which worker gets the next one, and what a
//! worker's death means. Pure state: no process and no OS call is made here (a worker is
//! reached through its [`Port`]), so that it can be tested without processes. The invariants
//! are in `README.md` beside this file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::Found;
use crate::error::PoolError;
use crate::result::{Deferred, Job, Part};
use crate::wire::{self, Outcome, Prepared};

mod cancel;
mod death;
#[cfg(test)]
mod test;
mod timeouts;

pub(crate) use death::Cap;

/// How many chunks a worker may hold at least: the one it runs and the next, so that it never
/// waits for the owner between two chunks.
const MIN_DEPTH: usize = 2;
/// At most.
const MAX_DEPTH: usize = 64;
/// How much work (by the measured time per chunk) a worker may have queued: short chunks are
/// queued deeper, so the owner's thread need not keep up chunk by chunk, while a slow chunk
/// never holds back more than this much work behind it.
const QUEUED_WORK: Duration = Duration::from_millis(1);

/// A worker's task queue, as the scheduler sees it.
pub(crate) trait Port {
    type Error: fmt::Display;
    /// Puts a frame (and the handles it carries) on the queue.
    fn send(&self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Self::Error>;
    /// How many frames are in the queue, not taken by the worker.
    fn queued(&self) -> usize;
    /// The number users know a remote worker by (an MPI rank), whose failures are reported
    /// as `PoolError::Remote`; `None` for a local worker process, which the pool can kill.
    fn rank(&self) -> Option<u32> {
        None
    }
    /// Frees the cancel mark of the worker's frame `seq` before it is sent (see `control`).
    fn clear_mark(&self, _seq: u64) {}
    /// Marks the worker's frame `seq` cancelled, and says where it is (see `control`);
    /// `None` for a worker that cannot tell (remote).
    fn mark_cancelled(&self, _seq: u64) -> Option<Found> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    Closed,
    Terminated,
}

/// A chunk, from submission until its result arrives.
struct Task {
    job: Arc<Job>,
    /// Its number within the job.
    chunk: usize,
    /// The index of its first input item, and how many it holds.
    index: usize,
    len: usize,
    /// The `Task` frame, kept until the result arrives so that it can go to another worker.
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// When it went into a worker's queue.
    sent: Option<Instant>,
    /// How long it may run (the call's `timeout`).
    timeout: Option<Duration>,
    /// Its frame's number at the worker that holds it (see `control`).
    seq: u64,
    /// When it runs again, how often it ran and ended with its worker, and how many of
    /// those endings were crashes (not timeouts).
    retry: crate::Retry,
    runs: u32,
    crashes: u32,
}

/// A live worker.
pub(crate) struct Worker<P> {
    /// Its task queue (and whatever else its owner keeps: the process).
    pub(crate) port: P,
    pub(crate) pid: u32,
    pub(crate) generation: u32,
    /// Ids of the chunks sent and not answered, in the order sent.
    outstanding: VecDeque<u64>,
    /// Chunks it may still be sent under `maxtasksperchild`.
    budget: Option<u64>,
    stopping: bool,
    /// When its last result arrived: a chunk queued before it started then.
    last_result: Instant,
    /// How many chunks it may hold at most (a remote worker: as many as it runs at once).
    max_depth: usize,
    /// How many of its chunks run at once (its first `parallel` outstanding ones).
    parallel: usize,
    /// Its chunks that ran past their timeout or were cancelled; a worker that cannot be
    /// killed (remote) keeps them outstanding, and so gets no more work, until it answers them.
    late: usize,
    /// Frames sent to it so far: the next one's number (see `control`).
    sent: u64,
    /// The pool killed this (local) worker, or will: its queued chunks run elsewhere, and do
    /// not time out meanwhile.
    killed: bool,
    /// A chunk it holds was cancelled: it exits when it reaches it, and its death is not a
    /// crash while starting.
    retiring: bool,
    /// A cancel bit was ever set for it: only then must a send clear the frame's bit first
    /// (a write to the cache line the worker writes per chunk; see `control`).
    marked: bool,
}

impl<P> Worker<P> {
    pub(crate) fn new(port: P, pid: u32, generation: u32, budget: Option<u64>) -> Self {
        Worker {
            port,
            pid,
            generation,
            outstanding: VecDeque::new(),
            budget,
            stopping: false,
            last_result: Instant::now(),
            max_depth: MAX_DEPTH,
            parallel: 1,
            late: 0,
            sent: 0,
            killed: false,
            retiring: false,
            marked: false,
        }
    }

    /// A worker that runs `parallel` chunks at once and holds no more than that (a remote
    /// worker: what it holds beyond what it runs would wait there, where the pool cannot
    /// move it to another worker).
    pub(crate) fn running_at_once(mut self, parallel: usize) -> Self {
        self.parallel = parallel.max(1);
        self.max_depth = self.parallel;
        self
    }
}

/// The state of a pool, under its lock.
pub(crate) struct Scheduler<P> {
    pub(crate) status: Status,
    pub(crate) workers: Vec<Option<Worker<P>>>,
    pending: VecDeque<u64>,
    tasks: HashMap<u64, Task>,
    next_id: u64,
    generation: u32,
    /// The initializer failed, or workers die as they start: no worker can take tasks.
    broken: Option<PoolError>,
    /// The generations of the live workers that are up (sent `Ready`).
    ready: HashSet<u32>,
    /// Slots whose new worker sent `Ready` before it was registered (it is started outside
    /// the lock, and may be up first).
    early_ready: HashSet<u32>,
    /// Workers that died in a row before they took a task (reset by every result): the
    /// crash-loop guard.
    early_deaths: usize,
    /// The time a chunk takes in a worker (a moving average), once measured.
    chunk_time: Option<Duration>,
    /// The number of workers, and whether they run an initializer (for the guard).
    processes: usize,
    has_init: bool,
    /// Replacements being started (outside the lock), for `pids` to wait for.
    pub(crate) replacing: usize,
    /// A chunk with a timeout was submitted once (until then, no clock is read for them).
    timed: bool,
    /// Workers asked to stop (SIGTERM), killed if they still live at the deadline:
    /// (slot, generation, deadline).
    graces: Vec<(usize, u32, Instant)>,
    /// When the thread that watches the deadlines wakes next, as it last said (`None`: not
    /// before a message): a submission whose deadlines come later need not wake it.
    pub(crate) wakes_at: Option<Instant>,
}

impl<P: Port> Scheduler<P> {
    pub(crate) fn new(processes: usize, has_init: bool) -> Self {
        Scheduler {
            status: Status::Running,
            workers: (0..processes).map(|_| None).collect(),
            pending: VecDeque::new(),
            tasks: HashMap::new(),
            next_id: 0,
            generation: 0,
            broken: None,
            ready: HashSet::new(),
            early_ready: HashSet::new(),
            early_deaths: 0,
            chunk_time: None,
            processes,
            has_init,
            replacing: 0,
            timed: false,
            graces: Vec::new(),
            wakes_at: None,
        }
    }

    /// How many chunks a worker may hold: about `QUEUED_WORK` of them.
    fn depth(&self) -> usize {
        match self.chunk_time {
            Some(t) if !t.is_zero() => {
                ((QUEUED_WORK.as_nanos() / t.as_nanos()) as usize).clamp(MIN_DEPTH, MAX_DEPTH)
            }
            Some(_) => MAX_DEPTH,
            None => MIN_DEPTH,
        }
    }

    /// Chunks waiting for a worker.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether the worker of this generation is up.
    pub(crate) fn is_ready(&self, generation: u32) -> bool {
        self.ready.contains(&generation)
    }

    /// The generation of the next worker.
    pub(crate) fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        self.generation
    }

    /// Queues chunks of a job and hands out what workers have room for.
    pub(crate) fn submit(
        &mut self,
        job: &Arc<Job>,
        chunks: Vec<Prepared>,
    ) -> Result<Vec<Deferred>, PoolError> {
        if self.status != Status::Running {
            return Err(PoolError::NotRunning);
        }
        if let Some(error) = &self.broken {
            return Err(error.duplicate());
        }
        for mut chunk in chunks {
            let id = self.next_id;
            self.next_id += 1;
            chunk.set_id(id);
            self.tasks.insert(
                id,
                Task {
                    job: Arc::clone(job),
                    chunk: chunk.chunk,
                    index: chunk.index,
                    len: chunk.len,
                    frame: chunk.frame,
                    fds: chunk.fds,
                    sent: None,
                    timeout: chunk.timeout,
                    seq: 0,
                    retry: chunk.retry,
                    runs: 0,
                    crashes: 0,
                },
            );
            self.timed |= chunk.timeout.is_some();
            self.pending.push_back(id);
        }
        Ok(self.dispatch())
    }

    /// Sends pending chunks to the workers with room, the least loaded first.
    pub(crate) fn dispatch(&mut self) -> Vec<Deferred> {
        let mut callbacks = Vec::new();
        let depth = self.depth();
        while let Some(&id) = self.pending.front() {
            let best = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(slot, w)| Some((slot, w.as_ref()?)))
                .filter(|(_, w)| {
                    !w.stopping
                        && w.outstanding.len() < depth.min(w.max_depth)
                        && w.budget != Some(0)
                })
                .min_by_key(|(_, w)| w.outstanding.len())
                .map(|(slot, _)| slot);
            let Some(slot) = best else { break };
            self.pending.pop_front();
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let Some(worker) = self.workers[slot].as_mut() else {
                continue;
            };
            task.sent = Some(Instant::now());
            task.seq = worker.sent;
            if worker.marked {
                worker.port.clear_mark(task.seq);
            }
            let fds: Vec<BorrowedFd<'_>> = task.fds.iter().map(AsFd::as_fd).collect();
            match worker.port.send(&task.frame, &fds) {
                Ok(()) => {
                    worker.sent += 1;
                    worker.outstanding.push_back(id);
                    if let Some(budget) = worker.budget.as_mut() {
                        *budget -= 1;
                    }
                }
                Err(e) => {
                    if let Some(task) = self.tasks.remove(&id) {
                        callbacks.extend(task.job.finish(
                            task.chunk,
                            Err(PoolError::Io(std::io::Error::other(e.to_string()))),
                        ));
                    }
                }
            }
        }
        callbacks
    }

    /// `close`: takes no more tasks. Whether the pool was running.
    pub(crate) fn close(&mut self) -> bool {
        if self.status != Status::Running {
            return false;
        }
        self.status = Status::Closed;
        self.stop_idle_workers();
        true
    }

    /// After `close`, tells the workers to exit once no chunk is left.
    pub(crate) fn stop_idle_workers(&mut self) {
        if self.status != Status::Closed || !self.tasks.is_empty() {
            return;
        }
        for worker in self.workers.iter_mut().flatten() {
            if !worker.stopping {
                worker.stopping = true;
                let _ = worker.port.send(&wire::STOP, &[]);
            }
        }
    }

    /// `terminate`: fails every unfinished chunk and marks every worker stopping, for the
    /// caller to kill. `None` if the pool was terminated already.
    pub(crate) fn terminate(&mut self) -> Option<Vec<Deferred>> {
        if self.status == Status::Terminated {
            return None;
        }
        self.status = Status::Terminated;
        self.pending.clear();
        let mut callbacks = Vec::new();
        for (_, task) in self.tasks.drain() {
            callbacks.extend(task.job.finish(task.chunk, Err(PoolError::Terminated)));
        }
        for worker in self.workers.iter_mut().flatten() {
            worker.stopping = true;
            worker.outstanding.clear();
        }
        Some(callbacks)
    }

    /// The pool is shut down and every worker is gone: the handler may stop.
    pub(crate) fn finished(&self) -> bool {
        self.status != Status::Running && self.workers.iter().all(Option::is_none)
    }

    /// A chunk's result.
    pub(crate) fn on_result(
        &mut self,
        slot: u32,
        id: u64,
        outcome: Outcome,
        body: Vec<u8>,
        fds: Vec<OwnedFd>,
    ) -> Vec<Deferred> {
        self.early_deaths = 0;
        let now = Instant::now();
        let mut rank = None;
        let mut took = None;
        let mut sent = None;
        if let Some(Some(worker)) = self.workers.get_mut(slot as usize) {
            // Out of the worker's list first: a late answer (its chunk failed past its
            // timeout) frees the worker's room even though its chunk is gone.
            if let Some(at) = worker.outstanding.iter().position(|&o| o == id) {
                worker.outstanding.remove(at);
                if !self.tasks.contains_key(&id) && worker.port.rank().is_some() {
                    worker.late = worker.late.saturating_sub(1);
                }
            }
            rank = worker.port.rank();
            sent = Some(worker.last_result);
            worker.last_result = now;
        }
        // A chunk failed by `terminate`, past its timeout or cancelled has no task any more.
        let Some(task) = self.tasks.remove(&id) else {
            return Vec::new();
        };
        // It started when it was sent, or when the worker finished the chunk before it.
        if let (Some(at), Some(previous)) = (task.sent, sent) {
            took = Some(now.saturating_duration_since(at.max(previous)));
        }
        if let Some(took) = took {
            self.chunk_time = Some(match self.chunk_time {
                None => took,
                Some(avg) => (avg * 7 + took) / 8,
            });
        }
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let result = match outcome {
            Outcome::Ok => Ok(Part { bytes: body, fds }),
            Outcome::Panicked => {
                let offset = wire::get_u64(&body, 0).unwrap_or(0) as usize;
                Err(PoolError::Panicked {
                    index: task.index + offset,
                    message: text(body.get(8..).unwrap_or_default()),
                })
            }
            Outcome::EncodeFailed => Err(PoolError::Encode(text(&body))),
            Outcome::DecodeFailed => Err(PoolError::Decode(text(&body))),
            Outcome::TooLarge => Err(PoolError::ResultTooLarge {
                index: task.index,
                len: wire::get_u64(&body, 0).unwrap_or(0) as usize,
                limit: wire::get_u64(&body, 8).unwrap_or(0) as usize,
            }),
            Outcome::Remote => match postcard::from_bytes::<wire::Failure>(&body) {
                Ok(failure) => Err(failure.into_error(task.index)),
                Err(e) => Err(PoolError::BadFrame(format!(
                    "an undecodable failure report: {e}"
                ))),
            },
            // Only a cancelled chunk is skipped, and a cancelled chunk has no task any more.
            Outcome::Skipped => Err(PoolError::Cancelled),
        };
        match (rank, result) {
            (Some(rank), Err(error)) => {
                // A remote worker's own worker ended under the chunk: the chunk may run again,
                // as a local one would (an MPI rank's local process died, say).
                let ending = death::ending_of(&error);
                let error = PoolError::Remote {
                    rank,
                    error: Box::new(error),
                };
                match ending {
                    Some(ending) => self.end_run(task, ending, error),
                    None => task.job.finish(task.chunk, Err(error)),
                }
            }
            (_, result) => task.job.finish(task.chunk, result),
        }
    }

    /// A frame from remote worker `slot` that is not a result of a chunk it holds: fails
    /// the oldest chunk it holds with `PoolError::BadFrame` (the frame may have been its
    /// answer), and says why in `reason`.
    pub(crate) fn on_bad_frame(&mut self, slot: u32, reason: String) -> Vec<Deferred> {
        let Some(Some(worker)) = self.workers.get_mut(slot as usize) else {
            return Vec::new();
        };
        let rank = worker.port.rank().unwrap_or(0);
        let Some(id) = worker.outstanding.pop_front() else {
            return Vec::new();
        };
        worker.last_result = Instant::now();
        match self.tasks.remove(&id) {
            Some(task) => task.job.finish(
                task.chunk,
                Err(PoolError::Remote {
                    rank,
                    error: Box::new(PoolError::BadFrame(reason)),
                }),
            ),
            None => {
                worker.late = worker.late.saturating_sub(1);
                Vec::new()
            }
        }
    }

    /// The items of chunk `id` of a watched call, with the call's tally: a remote worker
    /// counts nothing on the pool's board, so the pool counts a chunk it answered (before the
    /// answer settles the call, so that a waiter sees the count).
    pub(crate) fn watched_items(&self, id: u64) -> Option<(u64, u64)> {
        let task = self.tasks.get(&id)?;
        Some((task.job.tally()?.0, task.len as u64))
    }

    /// Whether remote worker `slot` holds chunk `id` (a result for another is a bad frame).
    pub(crate) fn holds(&self, slot: u32, id: u64) -> bool {
        matches!(self.workers.get(slot as usize), Some(Some(w)) if w.outstanding.contains(&id))
    }

    /// Whether a dead worker's slot needs a new worker.
    pub(crate) fn needs_replacement(&self) -> bool {
        let needed = match self.status {
            Status::Running => true,
            Status::Closed => !self.tasks.is_empty(),
            Status::Terminated => false,
        };
        needed && self.broken.is_none()
    }

    /// A worker is up.
    pub(crate) fn on_ready(&mut self, slot: u32) {
        // Its `Ready` comes before the monitor's `Died` for it, so the slot still holds it,
        // unless it is not registered yet: a slot is empty only between a death and the
        // replacement's registration, and the dead worker's `Ready` came before its `Died`.
        match self.workers.get(slot as usize) {
            Some(Some(worker)) => {
                self.ready.insert(worker.generation);
            }
            Some(None) => {
                self.early_ready.insert(slot);
            }
            None => {}
        }
    }

    /// The worker in `slot` exits after the chunk it answered (its leak guard): it gets nothing
    /// more, and its death is no crash.
    pub(crate) fn on_retire(&mut self, slot: u32) {
        if let Some(Some(worker)) = self.workers.get_mut(slot as usize) {
            worker.stopping = true;
            worker.retiring = true;
        }
    }

    /// Puts a newly started worker in `slot` (empty).
    pub(crate) fn register(&mut self, slot: usize, worker: Worker<P>) {
        if self.early_ready.remove(&(slot as u32)) {
            self.ready.insert(worker.generation);
        }
        if let Some(entry) = self.workers.get_mut(slot) {
            *entry = Some(worker);
        }
    }

    /// No chunk is left unfinished.
    pub(crate) fn idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// No worker can take tasks: every waiting and every later task fails with `error`.
    pub(crate) fn on_broken(&mut self, error: PoolError) -> Vec<Deferred> {
        let callbacks = self.fail_all(|| error.duplicate());
        self.broken = Some(error);
        callbacks
    }

    /// Fails every unfinished chunk with `error()`.
    pub(crate) fn fail_all(&mut self, error: impl Fn() -> PoolError) -> Vec<Deferred> {
        self.pending.clear();
        for worker in self.workers.iter_mut().flatten() {
            worker.outstanding.clear();
        }
        let mut callbacks = Vec::new();
        for (_, task) in self.tasks.drain() {
            callbacks.extend(task.job.finish(task.chunk, Err(error())));
        }
        callbacks
    }
}

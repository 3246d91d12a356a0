//! The pool's engine: one [`Scheduler`] over the pool's workers, whether they are local worker
//! processes or remote workers behind a [`Transport`], and what moves between them.
//!
//! Local workers: each has its own task queue, and all of them share one result queue (both
//! are shared-memory rings, see mp-ipc). A *handler* thread reads the result queue (results,
//! and the deaths the *monitor* thread reports by watching the workers' pidfds), replaces dead
//! workers and hands out pending chunks; it also wakes when the next running chunk's timeout
//! ends. Callers hand out chunks themselves when a worker has room, so a lone `apply` costs no
//! thread hop on the way out. A shared task queue, as Python's, could not know which chunk a
//! dead worker held (gh-66587); per-worker queues and the scheduler's lists do.
//!
//! Remote workers: the transport sends the frames and hands the answers to `on_answer` from its
//! own thread; a *timer* thread fails the chunks past their timeout. They are never replaced
//! (a transport's worker that is gone ends the job, as MPI does).
//!
//! Workers are started outside the scheduler's lock: the scheduler says which slot needs one,
//! the engine starts it unlocked, then registers it under the lock, so that a burst of
//! replacements does not stall submitters.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use mp_ipc::Queue;
use mp_spawn::reduction::Fd;
use mp_spawn::{Process, StartMethod};

use crate::builder::Config;
use crate::control::{Cancel, Found};
use crate::error::PoolError;
use crate::interrupt;
use crate::monitor::{self, Monitor};
use crate::progress::{Board, Rows};
use crate::result::{Deferred, Job, Owner};
use crate::scheduler::{self, Cap, Port, Scheduler, Status, Worker};
use crate::transport::{self, Transport};
use crate::wire::{self, Limits, Msg, Prepared};
use crate::worker::{self, WorkerArgs};

mod control;
mod remote;

/// A worker, as the scheduler reaches it.
pub(crate) enum Link {
    /// A local worker process and its task queue.
    Local {
        /// Boxed: a `Process` is much larger than a remote link.
        process: Box<Process<()>>,
        tasks: Queue<()>,
        /// The pool's board and the worker's slot: its cancel handshake (see `control`).
        board: Arc<Board>,
        slot: usize,
    },
    /// A worker behind a transport.
    Remote(transport::Remote),
}

impl scheduler::Port for Link {
    type Error = String;

    fn send(&self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), String> {
        match self {
            Link::Local { tasks, .. } => tasks.put_bytes(frame, fds).map_err(|e| e.to_string()),
            // A remote worker stops when the transport shuts down, not on a frame.
            Link::Remote(_) if frame == wire::STOP => Ok(()),
            Link::Remote(_) if !fds.is_empty() => Err("the arguments carry handles \
                 (descriptors), which cannot travel to a remote worker"
                .into()),
            Link::Remote(remote) => remote
                .transport
                .send(remote.worker, frame)
                .map_err(|e| e.to_string()),
        }
    }

    fn queued(&self) -> usize {
        match self {
            Link::Local { tasks, .. } => tasks.qsize(),
            Link::Remote(_) => 0,
        }
    }

    fn rank(&self) -> Option<u32> {
        match self {
            Link::Local { .. } => None,
            Link::Remote(remote) => Some(remote.rank),
        }
    }

    fn clear_mark(&self, seq: u64) {
        if let Some(words) = self.control() {
            words.clear(seq);
        }
    }

    fn mark_cancelled(&self, seq: u64) -> Option<Found> {
        Some(self.control()?.cancel(seq))
    }
}

impl Link {
    fn control(&self) -> Option<crate::control::Words<'_>> {
        match self {
            Link::Local { board, slot, .. } => board.control(*slot),
            Link::Remote(_) => None,
        }
    }
}

type State = Scheduler<Link>;

/// Where the workers are.
enum Backend {
    Local(Local),
    Remote(Arc<dyn Transport>),
}

/// What local workers need beside the scheduler.
struct Local {
    /// Every worker's results, the monitor's deaths, wake-ups.
    results: Queue<()>,
    /// Tells the monitor thread about new workers.
    monitor: Mutex<Monitor>,
    /// Under the fork method, forks every worker (see `mp_spawn::ForkServer`); dropped once
    /// the workers are gone.
    fork_helper: Mutex<Option<mp_spawn::ForkServer>>,
}

/// A pool's shared state: what `Pool` handles, `AsyncResult`s, `IMap`s and the threads reach.
pub(crate) struct Inner {
    state: Mutex<State>,
    /// Notified when a worker reports that it is up; for a remote pool also when its answers
    /// leave it with nothing to do (`join` waits for that), and for its timer thread when a
    /// chunk with a timeout is submitted or the pool shuts down.
    ready: Condvar,
    pub(crate) config: Config,
    backend: Backend,
    /// The per-item progress counters of watched calls, the descriptor the workers map, and
    /// which rows are taken (see `progress`).
    board: (Arc<Board>, OwnedFd),
    rows: Rows,
    /// Workers started so far (for their names).
    started: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the callbacks of settled jobs, after the pool's lock is released (a callback may
/// submit more work).
fn run(callbacks: Vec<Deferred>) {
    for callback in callbacks {
        callback();
    }
}

/// The pids of the live local workers that reported `READY`.
fn ready_pids(st: &State) -> Vec<u32> {
    st.workers
        .iter()
        .flatten()
        .filter(|w| w.port.rank().is_none() && st.is_ready(w.generation))
        .map(|w| w.pid)
        .collect()
}

impl Inner {
    /// Starts a pool of local workers: the monitor and handler threads (returned, for `join`),
    /// then the workers.
    pub(crate) fn start_local(
        config: Config,
    ) -> Result<(Arc<Inner>, Vec<JoinHandle<()>>), PoolError> {
        crate::task::install_panic_capture();
        // Forked first, from the caller's thread: the first workers and every replacement
        // are forks of this one snapshot, not of whichever thread starts them (the handler's
        // small stack, locks that other threads hold at that moment).
        let fork_helper = match config.ctx.start_method() {
            StartMethod::Fork => Some(mp_spawn::ForkServer::start()?),
            _ => None,
        };
        let results = Queue::<()>::new()?;
        let (monitor, monitor_thread) = Monitor::start(results.clone())?;
        let processes = config.processes;
        let inner = Arc::new(Inner {
            state: Mutex::new(Scheduler::new(processes, config.init.is_some())),
            ready: Condvar::new(),
            backend: Backend::Local(Local {
                results,
                monitor: Mutex::new(monitor),
                fork_helper: Mutex::new(fork_helper),
            }),
            board: Board::shared(processes)?,
            rows: Rows::default(),
            started: AtomicUsize::new(0),
            config,
        });
        let mut threads = vec![monitor_thread];
        // The handler runs before any worker exists: if a worker cannot be started, the
        // caller terminates the ones that were, and the handler reaps them and stops the
        // monitor (without a handler, `join` would wait for the monitor forever).
        let handler_inner = Arc::clone(&inner);
        let handler = std::thread::Builder::new()
            .name("mp-pool-handler".into())
            .spawn(move || handler_inner.handle_results());
        match handler {
            Ok(handler) => threads.push(handler),
            Err(e) => {
                lock(&inner.local().monitor).stop();
                return Err(e.into());
            }
        }
        interrupt::register_pool(&inner);
        for slot in 0..processes {
            if let Err(e) = inner.start_worker(slot) {
                return Err(inner.abandon(threads, e));
            }
        }
        Ok((inner, threads))
    }

    /// A pool that could not start all its workers: terminates the others, waits for the
    /// threads, and gives back `error`.
    fn abandon(&self, threads: Vec<JoinHandle<()>>, error: PoolError) -> PoolError {
        self.terminate_all();
        for thread in threads {
            let _ = thread.join();
        }
        error
    }

    fn local(&self) -> &Local {
        match &self.backend {
            Backend::Local(local) => local,
            Backend::Remote(_) => unreachable!("only a local pool has a handler"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The number of workers.
    pub(crate) fn processes(&self) -> usize {
        self.config.processes
    }

    /// The state, for `Debug`: (status, pending chunks).
    pub(crate) fn status(&self) -> (Status, usize) {
        let st = self.lock();
        (st.status, st.pending_len())
    }

    /// The limits of a call: its own, or the pool's defaults.
    pub(crate) fn limits(
        &self,
        timeout: Option<std::time::Duration>,
        max_result_bytes: Option<usize>,
        retry: Option<crate::Retry>,
    ) -> Limits {
        Limits {
            retry: retry.unwrap_or(self.config.retry),
            timeout: timeout.or(self.config.timeout),
            max_result: max_result_bytes
                .or(self.config.max_result_bytes)
                .map_or(0, |n| u64::try_from(n).unwrap_or(u64::MAX)),
        }
    }

    /// Queues chunks of a job and hands out what workers have room for, on this thread.
    pub(crate) fn submit(
        self: &Arc<Self>,
        job: &Arc<Job>,
        mut chunks: Vec<Prepared>,
        limits: Limits,
    ) -> Result<(), PoolError> {
        let owner: std::sync::Weak<dyn Owner> = Arc::downgrade(self) as _;
        job.set_owner(owner);
        let tally = job.tally().map_or(0, |t| t.0);
        for chunk in &mut chunks {
            chunk.set_tally(tally);
            chunk.set_limits(limits);
        }
        let mut st = self.lock();
        let callbacks = st.submit(job, chunks)?;
        // The handler sleeps until the next deadline it knew of: it must learn of these
        // chunks' deadlines unless it wakes before the earliest of them anyway (a chunk's
        // time starts when a worker gets it, not before now).
        let earliest = limits.timeout.map(|t| Instant::now().checked_add(t));
        let wake = match (earliest, st.wakes_at) {
            (None, _) | (Some(None), _) => false,
            (Some(Some(_)), None) => true,
            (Some(Some(earliest)), Some(wakes_at)) => wakes_at > earliest,
        };
        drop(st);
        if wake {
            self.wake_handler();
        }
        run(callbacks);
        Ok(())
    }

    /// Forgets the chunks of `job` that are not in a worker's queue yet: an `imap` dropped
    /// before its end. The chunks that workers already hold still run, and their results are
    /// dropped.
    pub(crate) fn cancel_pending(&self, job: &Arc<Job>) {
        self.lock().cancel_pending(job);
    }

    /// Fails every chunk no worker has taken yet with `PoolError::Cancelled`.
    pub(crate) fn cancel_all_pending(&self) {
        let callbacks = self.lock().cancel_all_pending();
        run(callbacks);
    }

    /// The progress counters (see `progress`).
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn board(&self) -> &Board {
        &self.board.0
    }

    /// The rows of the progress counters.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) fn rows(&self) -> &Rows {
        &self.rows
    }

    /// The pids of the live local workers (once the replacements being started are in).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut st = self.lock();
        while st.replacing > 0 {
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.workers
            .iter()
            .flatten()
            .filter(|w| w.port.rank().is_none())
            .map(|w| w.pid)
            .collect()
    }

    /// The pids of the live local workers that are up.
    pub(crate) fn ready_pids(&self) -> Vec<u32> {
        ready_pids(&self.lock())
    }

    /// Waits until `until(ready_pids)` holds, woken by each worker that comes up; `None` if
    /// the deadline passes first.
    pub(crate) fn wait_ready_pids(
        &self,
        deadline: Option<Instant>,
        mut until: impl FnMut(&[u32]) -> bool,
    ) -> Option<Vec<u32>> {
        let mut st = self.lock();
        loop {
            let up = ready_pids(&st);
            if until(&up) {
                return Some(up);
            }
            st = match deadline {
                None => self.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.ready
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// The pid of the process that forks a fork-method pool's workers.
    #[cfg_attr(not(feature = "unstable-test-hooks"), allow(dead_code))]
    pub(crate) fn fork_helper_pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Local(local) => lock(&local.fork_helper)
                .as_ref()
                .map(mp_spawn::ForkServer::pid),
            Backend::Remote(_) => None,
        }
    }

    /// `close`: takes no more tasks; the workers exit once the submitted ones are done.
    pub(crate) fn close(&self) {
        let closed = self.lock().close();
        if closed {
            self.wake_handler();
            self.ready.notify_all();
        }
    }

    /// Whether `join` may wait: the pool is closed or terminated.
    pub(crate) fn running(&self) -> bool {
        self.lock().status == Status::Running
    }

    /// After the pool's threads are joined (`join`): lets go of what served the workers. A
    /// remote pool first waits for its chunks to finish (after `close`), then shuts its
    /// transport down.
    pub(crate) fn release(&self) {
        match &self.backend {
            // Every worker has been reaped: the helper has nothing left to fork or report.
            Backend::Local(local) => drop(lock(&local.fork_helper).take()),
            Backend::Remote(transport) => {
                let mut st = self.lock();
                while st.status == Status::Closed && !st.idle() {
                    st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                drop(st);
                transport.shutdown();
                let mut st = self.lock();
                st.workers.iter_mut().for_each(|w| *w = None);
            }
        }
    }

    /// Starts a worker for `slot`, outside the scheduler's lock, then registers it.
    fn start_worker(&self, slot: usize) -> Result<(), PoolError> {
        let local = self.local();
        let tasks = Queue::<()>::new()?;
        let init = match &self.config.init {
            Some(init) => Some(init.try_clone()?),
            None => None,
        };
        let args = WorkerArgs {
            slot: slot as u32,
            tasks: tasks.clone(),
            results: local.results.clone(),
            init,
            maxtasks: self.config.maxtasks,
            cpu_per_task: self.config.caps.cpu_per_task,
            leak_guard: self.config.caps.leak_guard,
            board: Fd::new(self.board.1.try_clone()?),
            slots: self.config.processes as u32,
        };
        // A fresh worker in the slot: no frame taken, none cancelled (the last one is dead).
        if let Some(words) = self.board.0.control(slot) {
            words.reset();
        }
        let number = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let process = match &*lock(&local.fork_helper) {
            Some(helper) => helper.process(worker::worker_main, (args,)),
            None => self.config.ctx.process(worker::worker_main, (args,)),
        };
        let mut process = process
            .with_name(format!("{}-{number}", self.config.prefix))
            .with_daemon(true);
        if let Some(limits) = self.config.caps.limits() {
            process = process.with_limits(limits);
        }
        process.start()?;
        let pid = process.pid().unwrap_or(0);
        let sentinel = process.sentinel()?.try_clone_to_owned()?;
        let mut st = self.lock();
        if st.status == Status::Terminated {
            // Terminated while it started: it has no place.
            let _ = process.kill();
            drop(st);
            let _ = process.join();
            return Ok(());
        }
        let generation = st.next_generation();
        lock(&local.monitor).add(slot as u32, generation, sentinel);
        st.register(
            slot,
            Worker::new(
                Link::Local {
                    process: Box::new(process),
                    tasks,
                    board: Arc::clone(&self.board.0),
                    slot,
                },
                pid,
                generation,
                self.config.maxtasks,
            ),
        );
        let callbacks = st.dispatch();
        drop(st);
        run(callbacks);
        Ok(())
    }

    /// Wakes the thread that watches the timeouts (the handler, or a remote pool's timer).
    fn wake_handler(&self) {
        match &self.backend {
            Backend::Local(local) => {
                let _ = local.results.put_bytes(&wire::WAKE, &[]);
            }
            Backend::Remote(_) => self.ready.notify_all(),
        }
    }

    /// Kills the workers and fails every unfinished chunk (terminate, drop, Ctrl-C).
    pub(crate) fn terminate_all(&self) {
        self.stop_all(true);
    }

    /// Fails every unfinished chunk and stops the workers: SIGKILL, or SIGTERM (`kill` false).
    pub(crate) fn stop_all(&self, kill: bool) {
        let mut st = self.lock();
        let Some(callbacks) = st.terminate() else {
            return;
        };
        for worker in st.workers.iter_mut().flatten() {
            if let Link::Local { process, .. } = &worker.port {
                let _ = if kill {
                    process.kill()
                } else {
                    process.terminate()
                };
            }
        }
        drop(st);
        self.wake_handler();
        self.ready.notify_all();
        run(callbacks);
    }

    /// The handler thread: results, deaths, replacements, until the pool is shut down and
    /// every worker has exited.
    fn handle_results(&self) {
        let local = self.local();
        monitor::handle_results(
            &local.results,
            |msgs| self.on_batch(msgs),
            || self.terminate_all(),
        );
        lock(&local.monitor).stop();
    }

    /// Takes in what the handler read, under one lock: whether the pool is finished, and when
    /// the next running chunk's timeout ends.
    fn on_batch(&self, msgs: &mut Vec<Msg>) -> (bool, Option<Instant>) {
        let mut st = self.lock();
        let mut callbacks = Vec::new();
        let mut replace = Vec::new();
        for msg in msgs.drain(..) {
            callbacks.extend(match msg {
                Msg::Result {
                    slot,
                    id,
                    outcome,
                    body,
                    fds,
                } => st.on_result(slot, id, outcome, body, fds),
                Msg::Died { slot, generation } => {
                    self.on_died(&mut st, slot, generation, &mut replace)
                }
                Msg::InitFailed { message } => st.on_broken(PoolError::Initializer { message }),
                Msg::Retire { slot } => {
                    st.on_retire(slot);
                    Vec::new()
                }
                Msg::Ready { slot } => {
                    st.on_ready(slot);
                    self.ready.notify_all();
                    Vec::new()
                }
                Msg::Wake => Vec::new(),
            });
        }
        callbacks.extend(self.expire_locked(&mut st));
        callbacks.extend(st.dispatch());
        st.stop_idle_workers();
        let state = (st.finished(), st.next_deadline());
        st.wakes_at = state.1;
        drop(st);
        run(callbacks);
        if replace.is_empty() {
            return state;
        }
        for slot in replace {
            self.replace(slot);
        }
        let mut st = self.lock();
        st.wakes_at = st.next_deadline();
        (st.finished(), st.wakes_at)
    }

    /// The monitor saw a worker die: reap it, let the scheduler account for it, and note its
    /// slot for a replacement.
    fn on_died(
        &self,
        st: &mut State,
        slot: u32,
        generation: u32,
        replace: &mut Vec<usize>,
    ) -> Vec<Deferred> {
        let slot = slot as usize;
        let Some(mut worker) = st.take_dead(slot, generation) else {
            return Vec::new();
        };
        let (exitcode, cap) = match &mut worker.port {
            Link::Local { process, .. } => {
                let _ = process.join();
                // The process's limits are the pool's caps (`Caps::limits`).
                let cap = process.limit_hit().map(|hit| match hit {
                    mp_spawn::LimitHit::Memory { limit } => Cap::Memory(limit),
                    mp_spawn::LimitHit::Cpu { limit } => Cap::Cpu(limit),
                });
                (process.exitcode().ok().flatten().unwrap_or(-1), cap)
            }
            Link::Remote(_) => (-1, None),
        };
        let callbacks = st.on_died(worker, exitcode, cap);
        if st.needs_replacement() {
            st.replacing += 1;
            replace.push(slot);
        }
        callbacks
    }

    /// Starts a worker in a dead one's slot (on the handler thread, unlocked).
    fn replace(&self, slot: usize) {
        let started = self.start_worker(slot);
        let mut st = self.lock();
        st.replacing -= 1;
        self.ready.notify_all();
        if let Err(e) = started {
            // No worker can be started: fail what waits, rather than wait forever.
            if st.workers.iter().all(Option::is_none) {
                let message = e.to_string();
                let callbacks =
                    st.fail_all(|| PoolError::Io(std::io::Error::other(message.clone())));
                drop(st);
                run(callbacks);
            }
        }
    }

    /// Fails the chunks past their timeout, killing the local workers that run them.
    fn expire_locked(&self, st: &mut State) -> Vec<Deferred> {
        let Some(next) = st.next_deadline() else {
            return Vec::new();
        };
        let now = Instant::now();
        if next > now {
            return Vec::new();
        }
        let (callbacks, kill) = st.expire(now);
        for (slot, generation) in kill {
            self.kill_worker(st, slot, generation);
        }
        // Asked to stop and still alive past the grace period: killed.
        for (slot, _) in st.graces_over(now) {
            if let Some(Some(Worker {
                port: Link::Local { process, .. },
                ..
            })) = st.workers.get(slot)
            {
                let _ = process.kill();
            }
        }
        callbacks
    }
}

impl Owner for Inner {
    fn cancel(&self, job: &Arc<Job>) -> Cancel {
        Inner::cancel(self, job)
    }
}

impl interrupt::Terminate for Inner {
    fn terminate(&self) {
        self.terminate_all();
    }
}

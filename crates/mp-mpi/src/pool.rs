//! `MpiPool`: the master's side (rank 0): the handshake, the chunk queue, dispatch, and
//! replies.
//!
//! All MPI calls happen on the thread that called [`MpiPool::init`] (rsmpi does not encode
//! MPI's threading levels in `Send`/`Sync`, so `MpiPool` is neither). No thread runs in the
//! background: the master moves work along while the caller waits (`map`, `IMap::next`,
//! `get`), one chunk in flight per worker rank, polling MPI with a short back-off so that it
//! leaves the CPU to the ranks' local pools.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use mp_spawn::{Portable, Target};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::backoff::Backoff;
use crate::calls::{MpiAsyncResult, MpiIMap, MpiSubmit};
use crate::entry::{self, TaskFn};
use crate::error::MpiError;
use crate::wire::{
    Hello, Reply, Start, TAG_HELLO, TAG_RESULT, TAG_START, TAG_STOP, TAG_TASK, Task,
};
use mp_spawn::identity;

/// The settings of an [`MpiPool`], made on every rank; only the master's count.
///
/// ```no_run
/// use std::time::Duration;
///
/// let pool = mp_mpi::MpiPool::builder()
///     .local_processes(4)
///     .deadline(Some(Duration::from_secs(600)))
///     .max_result_bytes(64 << 20)
///     .init()?;
/// # Ok::<(), mp_mpi::MpiError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MpiPoolBuilder {
    local_processes: usize,
    deadline: Option<Duration>,
    max_result_bytes: usize,
}

impl Default for MpiPoolBuilder {
    fn default() -> Self {
        MpiPoolBuilder {
            local_processes: 1,
            deadline: None,
            max_result_bytes: MAX_FRAME,
        }
    }
}

/// MPI counts are `int`s: one message holds at most this many bytes.
pub(crate) const MAX_FRAME: usize = i32::MAX as usize;

impl MpiPoolBuilder {
    /// How many processes each worker rank's local pool has (default 1; at least 1). With
    /// one rank per node, the node's core count: the ranks x processes layout.
    pub fn local_processes(mut self, n: usize) -> Self {
        self.local_processes = n.max(1);
        self
    }

    /// How long a worker rank may take to answer one chunk (default `None`: forever). Past
    /// it, the chunk fails with [`MpiError::RankTimeout`] and the rank gets no more work
    /// until it answers.
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The largest encoded result of one chunk a worker rank sends (default and at most
    /// `i32::MAX`, MPI's limit); a larger one fails with [`MpiError::ResultTooLarge`].
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = bytes.min(MAX_FRAME);
        self
    }

    /// Initialises MPI. On rank 0, returns the pool; on every other rank, serves tasks until
    /// the master's pool is dropped, then exits the process (status 0) without returning.
    /// Without `mpirun`, or with `-n 1`: [`MpiError::NoWorkers`].
    pub fn init(self) -> Result<MpiPool, MpiError> {
        let universe = mpi::initialize()
            .ok_or_else(|| MpiError::Init("MPI is already initialised in this process".into()))?;
        let world = universe.world();
        if world.rank() != 0 {
            crate::worker::serve(universe)
        }
        let size = world.size();
        if size < 2 {
            return Err(MpiError::NoWorkers);
        }
        let workers = match handshake(&world, &self) {
            Ok(workers) => workers,
            Err(e) => {
                for rank in 1..size {
                    world
                        .process_at_rank(rank)
                        .send_with_tag(&[0u8][..], TAG_STOP);
                }
                return Err(e);
            }
        };
        Ok(MpiPool {
            world,
            state: RefCell::new(State {
                next_job: 0,
                jobs: HashMap::new(),
                queue: VecDeque::new(),
                ranks: (1..size).map(|_| RankSlot::default()).collect(),
            }),
            config: self,
            workers,
            _universe: universe,
        })
    }
}

/// A worker rank, as it introduced itself.
///
/// ```no_run
/// let pool = mp_mpi::MpiPool::init()?;
/// for w in pool.workers() {
///     println!("rank {} is pid {} on {}", w.rank, w.pid, w.host);
/// }
/// # Ok::<(), mp_mpi::MpiError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RankInfo {
    /// Its rank in `MPI_COMM_WORLD`.
    pub rank: i32,
    /// Its host name.
    pub host: String,
    /// Its pid on that host.
    pub pid: u32,
}

/// Collects every worker's hello and checks that it runs this executable; then tells each
/// to start.
fn handshake(
    world: &SimpleCommunicator,
    config: &MpiPoolBuilder,
) -> Result<Vec<RankInfo>, MpiError> {
    let own = identity::digest().map_err(|e| MpiError::Init(e.to_string()))?;
    let own = own.as_bytes();
    let size = world.size();
    let mut hellos: Vec<Option<Hello>> = (1..size).map(|_| None).collect();
    let mut first_error = None;
    // A rank that never says hello (another program in an MPMD job) would block `init`
    // forever; past the deadline the job is aborted, since MPI_Finalize would wait for it.
    let deadline = mp_sys::deadline::of(config.deadline);
    for _ in 1..size {
        let mut idle = Backoff::new();
        let probed = loop {
            if let Some(probed) = world
                .any_process()
                .immediate_matched_probe_with_tag(TAG_HELLO)
            {
                break probed;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let silent: Vec<i32> = (1..size)
                    .filter(|r| hellos[(r - 1) as usize].is_none())
                    .collect();
                eprintln!(
                    "mp-mpi: worker ranks {silent:?} did not start within {:?} (not running \
                     MpiPool::init?); aborting the MPI job",
                    config.deadline.unwrap_or_default()
                );
                world.abort(1);
            }
            idle.wait();
        };
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        let rank = status.source_rank();
        match postcard::from_bytes::<Hello>(&bytes) {
            Ok(hello) => hellos[(rank - 1) as usize] = Some(hello),
            Err(e) => {
                first_error.get_or_insert(MpiError::BadFrame {
                    rank,
                    reason: format!("a hello that does not decode: {e}"),
                });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut workers = Vec::new();
    for (i, hello) in hellos.into_iter().enumerate() {
        let rank = i as i32 + 1;
        let Some(hello) = hello else {
            return Err(MpiError::BadFrame {
                rank,
                reason: "no hello".into(),
            });
        };
        if hello.identity != own {
            return Err(MpiError::IdentityMismatch {
                rank,
                host: format!("{} pid {}", hello.host, hello.pid),
                expected: identity::hex(own),
                found: identity::hex(&hello.identity),
            });
        }
        workers.push(RankInfo {
            rank,
            host: hello.host,
            pid: hello.pid,
        });
    }
    let start = postcard::to_stdvec(&Start {
        identity: own.to_vec(),
        local_processes: u32::try_from(config.local_processes).unwrap_or(u32::MAX),
    })
    .map_err(|e| MpiError::Encode(e.to_string()))?;
    for rank in 1..size {
        world
            .process_at_rank(rank)
            .send_with_tag(&start[..], TAG_START);
    }
    Ok(workers)
}

/// The Pool API over the ranks of an MPI job: rank 0 (the user's `main`) is the master, the
/// other ranks are workers, each running its tasks in a node-local mp
/// [`Pool`](mp_pool::Pool) (so a task that segfaults fails with `WorkerDied`, and the rank
/// goes on).
///
/// ```no_run
/// // mpirun -n 4 ./app   (1 master + 3 worker ranks)
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), mp_mpi::MpiError> {
///     let pool = mp_mpi::MpiPool::init()?; // worker ranks serve here, and exit
///     assert_eq!(pool.map(square, [1, 2, 3])?, [1, 4, 9]);
///     let lazy: Vec<u64> = pool.imap(square, 0..).take(3).collect::<Result<_, _>>()?;
///     assert_eq!(lazy, [0, 1, 4]);
///     assert_eq!(pool.apply_async(square, (7,))?.get()?, 49);
///     Ok(())
/// }
/// ```
///
/// All MPI calls stay on the thread that initialised MPI: the pool cannot be sent to, or
/// shared with, another thread.
///
/// ```compile_fail
/// fn on_another_thread<T: Send>(_: T) {}
/// on_another_thread(mp_mpi::MpiPool::init().unwrap());
/// ```
///
/// Without `mpirun` (a singleton), [`init`](MpiPool::init) fails with
/// [`MpiError::NoWorkers`]: the program says so rather than silently running elsewhere.
/// A rank killed whole (not a task in it) ends the job: Open MPI 4 aborts every rank, and
/// `mpirun` exits non-zero within about a second.
pub struct MpiPool {
    world: SimpleCommunicator,
    pub(crate) state: RefCell<State>,
    config: MpiPoolBuilder,
    pub(crate) workers: Vec<RankInfo>,
    // Last: dropped (MPI_Finalize) after the STOPs of `drop` are sent.
    _universe: Universe,
}

impl fmt::Debug for MpiPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPool")
            .field("workers", &self.workers)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct State {
    pub(crate) next_job: u64,
    pub(crate) jobs: HashMap<u64, Job>,
    /// Chunks not sent yet, in submission order.
    pub(crate) queue: VecDeque<Queued>,
    /// Worker rank `i + 1`.
    pub(crate) ranks: Vec<RankSlot>,
}

pub(crate) struct Queued {
    pub(crate) job: u64,
    pub(crate) chunk: u64,
    pub(crate) start: usize,
    pub(crate) frame: Vec<u8>,
    pub(crate) limits: Limits,
}

/// The per-call limits (the pool's unless the call's options say).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_result_bytes: usize,
}

#[derive(Default)]
pub(crate) struct RankSlot {
    pub(crate) running: Option<Running>,
    /// Its chunk failed with `RankTimeout`; its reply, when it comes, is dropped.
    pub(crate) late: bool,
}

pub(crate) struct Running {
    pub(crate) job: u64,
    pub(crate) chunk: u64,
    pub(crate) start: usize,
    pub(crate) limits: Limits,
    pub(crate) deadline: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Job {
    pub(crate) done: BTreeMap<u64, Result<Vec<u8>, MpiError>>,
    /// Chunks in the order they finished (for `imap_unordered`).
    pub(crate) order: VecDeque<u64>,
}

impl MpiPool {
    /// Initialises MPI with the default settings: see [`MpiPoolBuilder::init`].
    pub fn init() -> Result<MpiPool, MpiError> {
        MpiPoolBuilder::default().init()
    }

    /// Settings: local processes per rank, a deadline per chunk, a result size limit.
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder::default()
    }

    /// The worker ranks.
    pub fn workers(&self) -> &[RankInfo] {
        &self.workers
    }

    /// The options of one call: how many items travel per chunk (at least 1).
    pub fn chunksize(&self, chunksize: usize) -> MpiSubmit<'_> {
        MpiSubmit::new(self).chunksize(chunksize)
    }

    /// The options of one call: how many chunks an `imap` keeps in flight (at least 1).
    pub fn buffersize(&self, chunks: usize) -> MpiSubmit<'_> {
        MpiSubmit::new(self).buffersize(chunks)
    }

    /// The options of one call: its deadline per chunk.
    pub fn deadline(&self, deadline: Option<Duration>) -> MpiSubmit<'_> {
        MpiSubmit::new(self).deadline(deadline)
    }

    /// The options of one call: its limit on a chunk's encoded result.
    pub fn max_result_bytes(&self, bytes: usize) -> MpiSubmit<'_> {
        MpiSubmit::new(self).max_result_bytes(bytes)
    }

    /// `f` applied to every item, in input order (Python's `map`); chunks of
    /// `ceil(n / (4 × worker ranks))` items unless [`chunksize`](MpiPool::chunksize) says.
    ///
    /// A closure that captures state does not build (a worker rank could not recreate it):
    ///
    /// ```compile_fail
    /// let pool = mp_mpi::MpiPool::init().unwrap();
    /// let (scale, shift) = (3u64, 1u64);
    /// let _ = pool.map(move |i: u64| i * scale + shift, 0..3);
    /// ```
    pub fn map<F, T, R>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, MpiError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        MpiSubmit::new(self).map(f, items)
    }

    /// `f` applied to every tuple of arguments, in input order (Python's `starmap`).
    pub fn starmap<F, A>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, MpiError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        MpiSubmit::new(self).starmap(f, items)
    }

    /// A lazy, ordered map: the input is read only as chunks finish, a bounded number ahead
    /// (2 per worker rank unless [`buffersize`](MpiPool::buffersize) says), so an endless
    /// iterator works. Chunks of one item unless [`chunksize`](MpiPool::chunksize) says. A
    /// failed chunk gives one `Err`, then the output goes on.
    pub fn imap<F, T, R, I>(&self, f: F, items: I) -> MpiIMap<'_, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        MpiSubmit::new(self).imap(f, items)
    }

    /// As [`imap`](MpiPool::imap), in the order the chunks finish.
    pub fn imap_unordered<F, T, R, I>(&self, f: F, items: I) -> MpiIMap<'_, I::IntoIter, R>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        MpiSubmit::new(self).imap_unordered(f, items)
    }

    /// `f(args...)` on a worker rank; the value comes through [`MpiAsyncResult::get`].
    pub fn apply_async<F, A>(
        &self,
        f: F,
        args: A,
    ) -> Result<MpiAsyncResult<'_, F::Output>, MpiError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        let task = entry::task_fn::<F, A>(&f).map_err(MpiError::InvalidArgument)?;
        let payload = encode(std::slice::from_ref(&args))?;
        let mut st = self.state.borrow_mut();
        let job = new_job(&mut st);
        self.enqueue(&mut st, job, 0, 0, task, &payload, self.limits());
        self.poll(&mut st);
        Ok(MpiAsyncResult::new(self, job))
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            deadline: self.config.deadline,
            max_result_bytes: self.config.max_result_bytes,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn enqueue(
        &self,
        st: &mut State,
        job: u64,
        chunk: u64,
        start: usize,
        task: TaskFn,
        payload: &[u8],
        limits: Limits,
    ) {
        let frame = Task {
            job,
            chunk,
            start: start as u64,
            entry: task.entry,
            code: task.code,
            max_result: limits.max_result_bytes as u64,
            payload,
        }
        .encode();
        st.queue.push_back(Queued {
            job,
            chunk,
            start,
            frame,
            limits,
        });
    }

    /// Sends queued chunks to idle ranks.
    fn dispatch(&self, st: &mut State) {
        while let Some(i) = st.ranks.iter().position(|r| r.running.is_none()) {
            let Some(q) = st.queue.pop_front() else { break };
            // The rank is idle, polling for a message: a large one's rendezvous completes.
            self.world
                .process_at_rank(i as i32 + 1)
                .send_with_tag(&q.frame[..], TAG_TASK);
            st.ranks[i].running = Some(Running {
                job: q.job,
                chunk: q.chunk,
                start: q.start,
                limits: q.limits,
                deadline: mp_sys::deadline::of(q.limits.deadline),
            });
        }
    }

    /// One step: sends what can go, takes every reply that arrived, fails what is late.
    /// Whether a reply arrived.
    pub(crate) fn poll(&self, st: &mut State) -> bool {
        self.dispatch(st);
        let mut any = false;
        while let Some(probed) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(TAG_RESULT)
        {
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            self.accept(st, status.source_rank(), bytes);
            any = true;
        }
        if any {
            self.dispatch(st);
        } else {
            self.check_deadlines(st);
        }
        any
    }

    /// Polls until `ready` holds.
    pub(crate) fn pump(&self, st: &mut State, ready: impl Fn(&State) -> bool) {
        let mut idle = Backoff::new();
        loop {
            if self.poll(st) {
                idle = Backoff::new();
            }
            if ready(st) {
                return;
            }
            idle.wait();
        }
    }

    fn accept(&self, st: &mut State, rank: i32, bytes: Vec<u8>) {
        let Some(slot) = usize::try_from(rank - 1)
            .ok()
            .and_then(|i| st.ranks.get_mut(i))
        else {
            return;
        };
        let late = std::mem::take(&mut slot.late);
        let Some(run) = slot.running.take() else {
            return;
        };
        if late {
            return;
        }
        let outcome = match Reply::decode(bytes) {
            Ok(reply) if reply.job == run.job && reply.chunk == run.chunk => reply
                .outcome
                .map_err(|e| e.into_mpi(rank, run.start, run.limits.max_result_bytes)),
            Ok(reply) => Err(MpiError::BadFrame {
                rank,
                reason: format!(
                    "a reply to job {} chunk {}, not to the chunk it runs (job {} chunk {})",
                    reply.job, reply.chunk, run.job, run.chunk
                ),
            }),
            Err(reason) => Err(MpiError::BadFrame { rank, reason }),
        };
        settle(st, run.job, run.chunk, outcome);
    }

    fn check_deadlines(&self, st: &mut State) {
        let now = Instant::now();
        let mut failed = Vec::new();
        for (i, slot) in st.ranks.iter_mut().enumerate() {
            // (No let-chain: the workspace's MSRV is 1.85.)
            let Some(run) = &slot.running else { continue };
            if !slot.late && run.deadline.is_some_and(|d| now >= d) {
                let timeout = run.limits.deadline.unwrap_or_default();
                failed.push((i as i32 + 1, run.job, run.chunk, run.start, timeout));
                slot.late = true;
            }
        }
        for (rank, job, chunk, index, timeout) in failed {
            settle(
                st,
                job,
                chunk,
                Err(MpiError::RankTimeout {
                    rank,
                    index,
                    timeout,
                }),
            );
        }
        // Every rank silent: what is queued would wait for them forever.
        if st.ranks.iter().all(|r| r.late) {
            for q in std::mem::take(&mut st.queue) {
                let e = MpiError::RankTimeout {
                    rank: 0,
                    index: q.start,
                    timeout: q.limits.deadline.unwrap_or_default(),
                };
                settle(st, q.job, q.chunk, Err(e));
            }
        }
    }
}

pub(crate) fn settle(st: &mut State, job: u64, chunk: u64, outcome: Result<Vec<u8>, MpiError>) {
    if let Some(job) = st.jobs.get_mut(&job) {
        job.done.insert(chunk, outcome);
        job.order.push_back(chunk);
    }
}

pub(crate) fn new_job(st: &mut State) -> u64 {
    let id = st.next_job;
    st.next_job += 1;
    st.jobs.insert(id, Job::default());
    id
}

pub(crate) fn forget_job(st: &mut State, job: u64) {
    st.jobs.remove(&job);
    st.queue.retain(|q| q.job != job);
}

pub(crate) fn encode<T: serde::Serialize>(items: &[T]) -> Result<Vec<u8>, MpiError> {
    let bytes = postcard::to_stdvec(items).map_err(|e| MpiError::Encode(e.to_string()))?;
    if bytes.len() > MAX_FRAME - 64 {
        return Err(MpiError::Encode(format!(
            "a chunk of {} bytes is over MPI's limit of one message ({MAX_FRAME} bytes); use a \
             smaller chunksize",
            bytes.len()
        )));
    }
    Ok(bytes)
}

pub(crate) fn decode<R: Portable>(bytes: &[u8]) -> Result<Vec<R>, MpiError> {
    postcard::from_bytes(bytes).map_err(|e| MpiError::Decode(e.to_string()))
}

impl Drop for MpiPool {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        st.queue.clear();
        st.jobs.clear();
        // Wait for the chunks still running, so that no rank is mid-task when told to stop.
        let deadline = mp_sys::deadline::of(self.config.deadline);
        let mut idle = Backoff::new();
        let st = self.state.get_mut();
        while st.ranks.iter().any(|r| r.running.is_some()) {
            while let Some(probed) = self
                .world
                .any_process()
                .immediate_matched_probe_with_tag(TAG_RESULT)
            {
                let (_, status) = probed.matched_receive_vec::<u8>();
                let rank = usize::try_from(status.source_rank() - 1).unwrap_or(usize::MAX);
                if let Some(slot) = st.ranks.get_mut(rank) {
                    slot.running = None;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                eprintln!(
                    "mp-mpi: worker ranks are still silent at shutdown; aborting the MPI job"
                );
                self.world.abort(1);
            }
            idle.wait();
        }
        for rank in 1..self.world.size() {
            self.world
                .process_at_rank(rank)
                .send_with_tag(&[0u8][..], TAG_STOP);
        }
    }
}

//! The master's side (rank 0): the MPI thread, which initialises MPI, runs the handshake, and
//! then carries mp-pool's frames to the worker ranks and their answers back, as an
//! `mp_pool::transport::Transport`. Every MPI call of the process is made on this one thread
//! (MPI's `FUNNELED` level: rsmpi does not encode MPI's threading levels in `Send`/`Sync`);
//! the pool's other threads reach it through a channel.

use std::io;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use mp_pool::transport::{Sink, Transport};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::backoff::Backoff;
use crate::error::MpiError;
use crate::sending::Sending;
use crate::wire::{Hello, MAX_FRAME, Start, TAG_HELLO, TAG_RESULT, TAG_START, TAG_STOP, TAG_TASK};
use mp_spawn::identity;

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

/// The settings the MPI thread needs (from `MpiPoolBuilder`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) local_processes: usize,
    /// The caps of the ranks' local workers.
    pub(crate) max_memory: Option<u64>,
    pub(crate) max_cpu: Option<std::time::Duration>,
    pub(crate) leak_guard: Option<u64>,
    /// How long the handshake and the last answers may take.
    pub(crate) deadline: Option<std::time::Duration>,
}

/// What the pool asks of the MPI thread.
enum Cmd {
    /// Answers go to this sink from now on.
    Start(Sink),
    /// A task frame for worker `usize` (rank `usize + 1`).
    Send(usize, Vec<u8>),
    /// Let the ranks go once they have answered, and finalise MPI.
    Shutdown,
}

/// The worker ranks of the job, as a pool's transport.
#[derive(Debug)]
pub(crate) struct MpiTransport {
    ranks: usize,
    parallel: usize,
    cmds: Sender<CmdBox>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// `Cmd` with a `Debug` for the transport's.
struct CmdBox(Cmd);

impl std::fmt::Debug for CmdBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl Transport for MpiTransport {
    fn workers(&self) -> usize {
        self.ranks
    }

    fn rank(&self, worker: usize) -> u32 {
        worker as u32 + 1
    }

    fn parallel(&self, _worker: usize) -> usize {
        self.parallel
    }

    fn start(&self, sink: Sink) -> io::Result<()> {
        self.command(Cmd::Start(sink))
    }

    fn send(&self, worker: usize, frame: &[u8]) -> io::Result<()> {
        if frame.len() > MAX_FRAME {
            return Err(io::Error::other(format!(
                "a chunk of {} bytes is over MPI's limit of one message ({MAX_FRAME} bytes); \
                 use a smaller chunksize",
                frame.len()
            )));
        }
        self.command(Cmd::Send(worker, frame.to_vec()))
    }

    fn shutdown(&self) {
        let _ = self.command(Cmd::Shutdown);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl MpiTransport {
    fn command(&self, cmd: Cmd) -> io::Result<()> {
        self.cmds
            .send(CmdBox(cmd))
            .map_err(|_| io::Error::other("the MPI thread has ended"))
    }
}

/// Starts the MPI thread: on rank 0, returns the transport and the worker ranks once the
/// handshake is done; on every other rank, the thread serves tasks and exits the process, and
/// this never returns.
pub(crate) fn start(config: Settings) -> Result<(MpiTransport, Vec<RankInfo>), MpiError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("mp-mpi".into())
        .spawn(move || mpi_thread(config, &ready_tx, cmd_rx))
        .map_err(|e| MpiError::Init(e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(workers)) => Ok((
            MpiTransport {
                ranks: workers.len(),
                parallel: config.local_processes,
                cmds: cmd_tx,
                thread: Mutex::new(Some(thread)),
            },
            workers,
        )),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(MpiError::Init("the MPI thread ended".into()))
        }
    }
}

type Ready = Sender<Result<Vec<RankInfo>, MpiError>>;

fn mpi_thread(config: Settings, ready: &Ready, cmds: Receiver<CmdBox>) {
    let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
        let _ = ready.send(Err(MpiError::Init(
            "MPI is already initialised in this process".into(),
        )));
        return;
    };
    let world = universe.world();
    if world.rank() != 0 {
        crate::worker::serve(universe)
    }
    let size = world.size();
    if size < 2 {
        drop(world);
        drop(universe);
        let _ = ready.send(Err(MpiError::NoWorkers));
        return;
    }
    match handshake(&world, config) {
        Ok(workers) => {
            if ready.send(Ok(workers)).is_ok() {
                carry(&world, config, &cmds);
            }
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
    for rank in 1..size {
        world
            .process_at_rank(rank)
            .send_with_tag(&[0u8][..], TAG_STOP);
    }
    drop(world);
    // MPI_Finalize, after the STOPs.
    drop(universe);
}

/// Collects every worker's hello and checks that it runs this executable; then tells each
/// to start.
fn handshake(world: &SimpleCommunicator, config: Settings) -> Result<Vec<RankInfo>, MpiError> {
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
        max_memory: config.max_memory,
        max_cpu_ms: config
            .max_cpu
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        leak_guard: config.leak_guard,
    })
    .map_err(|e| MpiError::Init(e.to_string()))?;
    for rank in 1..size {
        world
            .process_at_rank(rank)
            .send_with_tag(&start[..], TAG_START);
    }
    Ok(workers)
}

/// The MPI thread's work once the pool exists: sends the pool's frames without blocking,
/// hands every answer to the sink; on shutdown, waits for the ranks to
/// answer what they hold (at most the pool's deadline: a silent rank then aborts the job, as
/// MPI_Finalize would wait for it forever).
fn carry(world: &SimpleCommunicator, config: Settings, cmds: &Receiver<CmdBox>) {
    let ranks = world.size() as usize - 1;
    let mut sink: Option<Sink> = None;
    let mut held = vec![0usize; ranks];
    let mut sending: Vec<Sending> = Vec::new();
    let mut shutdown: Option<Option<Instant>> = None;
    let mut idle = Backoff::new();
    let mut woken: Option<CmdBox> = None;
    loop {
        let mut busy = false;
        loop {
            let cmd = match woken.take().map(Ok).unwrap_or_else(|| cmds.try_recv()) {
                Ok(CmdBox(cmd)) => cmd,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => Cmd::Shutdown,
            };
            busy = true;
            match cmd {
                Cmd::Start(s) => sink = Some(s),
                Cmd::Send(worker, frame) => {
                    if let Some(count) = held.get_mut(worker) {
                        *count += 1;
                        sending.push(Sending::start(world, worker as i32 + 1, TAG_TASK, frame));
                    }
                }
                Cmd::Shutdown => {
                    if shutdown.is_none() {
                        shutdown = Some(mp_sys::deadline::of(config.deadline));
                    }
                    break;
                }
            }
        }
        sending.retain_mut(|s| !s.done());
        while let Some(probed) = world
            .any_process()
            .immediate_matched_probe_with_tag(TAG_RESULT)
        {
            let (answer, status) = probed.matched_receive_vec::<u8>();
            busy = true;
            let Some(worker) = usize::try_from(status.source_rank() - 1)
                .ok()
                .filter(|w| *w < ranks)
            else {
                continue;
            };
            held[worker] = held[worker].saturating_sub(1);
            if shutdown.is_none() {
                if let Some(sink) = &sink {
                    sink.deliver(worker, answer);
                }
            }
        }
        if let Some(deadline) = shutdown {
            if held.iter().all(|h| *h == 0) {
                // Every frame was answered, so every send has completed.
                drop(sending);
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                eprintln!(
                    "mp-mpi: worker ranks are still silent at shutdown; aborting the MPI job"
                );
                world.abort(1);
            }
        }
        if busy {
            idle = Backoff::new();
        } else {
            woken = idle.wait_on(cmds);
        }
    }
}

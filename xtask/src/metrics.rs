//! Every metric of the report: what mp, Python, the best Rust peer and the OS limit each
//! measured, and where each figure comes from.

use std::collections::HashMap;
use std::path::Path;

use crate::figures::{Figure, criterion_ns};

/// Whether a larger or a smaller figure is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Better {
    Lower,
    Higher,
}

impl Better {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// How a criterion time (ns per iteration) becomes the metric's unit.
#[derive(Debug, Clone, Copy)]
enum Conv {
    Ms,
    Us,
    Ns,
    /// Operations per second, `n` per iteration.
    PerSec(f64),
    /// GB/s, `n` bytes per iteration.
    GbPerSec(f64),
}

impl Conv {
    fn apply(self, ns: Figure) -> Figure {
        ns.map(|t| match self {
            Conv::Ms => t / 1e6,
            Conv::Us => t / 1e3,
            Conv::Ns => t,
            Conv::PerSec(n) => n * 1e9 / t,
            Conv::GbPerSec(bytes) => bytes / t,
        })
    }
}

/// Where one figure comes from.
#[derive(Debug, Clone)]
enum Src {
    /// A criterion benchmark of this run: (group, name, conversion).
    Crit(&'static str, &'static str, Conv),
    /// A line of a Python script, already in the metric's unit: (script, key).
    Py(&'static str, &'static str),
    /// A line of an MPI run (`mpi`): mp-mpi's (`true`) or mpi4py.futures' (`false`).
    Mpi(bool, &'static str),
    /// One figure divided by another.
    Ratio(Box<Src>, Box<Src>),
    /// Not measured, and why.
    Missing(&'static str),
}

/// The sources of one metric.
struct Def {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
    mp: Src,
    python: (Src, &'static str),
    peer: (Src, &'static str),
    limit: (Src, &'static str),
}

/// One column of a metric: the figure, or why there is none.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    pub(crate) figure: Result<Figure, String>,
    /// What was measured ("procspawn spawn + join").
    pub(crate) name: String,
}

impl Cell {
    pub(crate) fn value(&self) -> Option<f64> {
        self.figure.as_ref().ok().map(|f| f.value)
    }
}

/// A metric with its figures.
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub(crate) key: &'static str,
    pub(crate) label: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    pub(crate) mp: Cell,
    pub(crate) python: Cell,
    pub(crate) peer: Cell,
    pub(crate) limit: Cell,
}

impl Metric {
    /// How many times better `self.mp` is than `other` (above 1: mp is better).
    pub(crate) fn advantage(&self, other: &Cell) -> Option<f64> {
        let (mp, other) = (self.mp.value()?, other.value()?);
        if mp <= 0.0 || other <= 0.0 {
            return None;
        }
        Some(match self.better {
            Better::Higher => mp / other,
            Better::Lower => other / mp,
        })
    }
}

/// Everything measured, by source.
pub(crate) struct Inputs<'a> {
    pub(crate) root: &'a Path,
    /// Script name -> its figures.
    pub(crate) python: &'a HashMap<&'static str, HashMap<String, Figure>>,
    /// Why a script has no figures, if it has none.
    pub(crate) python_missing: &'a str,
    /// CPUs this process may use.
    pub(crate) cpus: usize,
    /// The MPI runs' figures.
    pub(crate) mpi: &'a crate::mpi::MpiFigures,
}

impl Inputs<'_> {
    fn eval(&self, src: &Src) -> Result<Figure, String> {
        match src {
            Src::Crit(group, name, conv) => criterion_ns(self.root, group, name)
                .map(|ns| conv.apply(ns))
                .ok_or_else(|| format!("criterion bench {group}/{name} has no samples")),
            Src::Py(script, key) => match self.python.get(script) {
                Some(figures) if !figures.is_empty() => figures
                    .get(*key)
                    .copied()
                    .ok_or_else(|| format!("{script} printed no {key}")),
                _ => Err(self.python_missing.to_string()),
            },
            Src::Mpi(rust, key) => {
                let figures = if *rust {
                    &self.mpi.rust
                } else {
                    &self.mpi.python
                };
                match figures {
                    Ok(figures) => figures
                        .get(*key)
                        .copied()
                        .ok_or_else(|| format!("the MPI run printed no {key}")),
                    Err(e) => Err(e.clone()),
                }
            }
            Src::Ratio(a, b) => self
                .eval(a)?
                .ratio(self.eval(b)?)
                .ok_or_else(|| "division by zero".to_string()),
            Src::Missing(reason) => Err((*reason).to_string()),
        }
    }

    fn cell(&self, (src, name): &(Src, &'static str)) -> Cell {
        Cell {
            figure: self.eval(src),
            name: (*name).to_string(),
        }
    }

    /// Every metric of the report, evaluated.
    pub(crate) fn metrics(&self) -> Vec<Metric> {
        definitions()
            .into_iter()
            .map(|d| Metric {
                key: d.key,
                label: d.label,
                unit: d.unit,
                better: d.better,
                mp: self.cell(&(d.mp, "mp")),
                python: self.cell(&d.python),
                peer: self.cell(&d.peer),
                limit: self.cell(&d.limit),
            })
            .collect()
    }

    /// The OS baselines on their own: (what, unit, figure).
    pub(crate) fn baselines(&self) -> Vec<(&'static str, &'static str, Result<Figure, String>)> {
        use Conv::*;
        use Src::Crit;
        let mib = (1u64 << 20) as f64;
        [
            (
                "fork + _exit + waitpid",
                "us",
                Crit("start_join", "bare_fork_waitpid", Us),
            ),
            (
                "fork + exec of the same binary",
                "us",
                Crit("start_join", "bare_fork_exec_self", Us),
            ),
            (
                "socketpair ping-pong, 8 bytes",
                "us",
                Crit("ipc_rtt", "socketpair", Us),
            ),
            (
                "shared-memory ping-pong, both spinning",
                "us",
                Crit("os_limit", "spin_rtt", Us),
            ),
            (
                "shared-memory ring, 8-byte items, spinning",
                "msgs/s",
                Crit("os_limit", "ring_1_to_1", PerSec(1.0)),
            ),
            (
                "pipe, 1 MiB writes",
                "GB/s",
                Crit("os_limit", "pipe_one_mib", GbPerSec(mib)),
            ),
            (
                "socketpair, 1 MiB writes",
                "GB/s",
                Crit("one_mib", "socketpair", GbPerSec(mib)),
            ),
            (
                "memcpy 1 MiB, one process",
                "GB/s",
                Crit("one_mib", "memcpy", GbPerSec(mib)),
            ),
            (
                "process-shared pthread mutex, += 1, 2 processes",
                "ops/s",
                Crit("value_lock", "pthread_2proc", PerSec(1.0)),
            ),
            (
                "robust pthread mutex, lock + unlock",
                "ns",
                Crit("lock_uncontended", "pthread_robust", Ns),
            ),
            (
                "shm_open + ftruncate + mmap + munmap + unlink, 1 MiB",
                "us",
                Crit("shm_create", "1mib_libc", Us),
            ),
            (
                "4 x sum of i*i (i < 10^7), serially",
                "us",
                Crit("pool_cpu", "serial_4_jobs", Us),
            ),
            (
                "the same on 2 threads",
                "us",
                Crit("pool_cpu", "threads_2_4_jobs", Us),
            ),
        ]
        .into_iter()
        .map(|(what, unit, src)| (what, unit, self.eval(&src)))
        .collect()
    }
}

#[rustfmt::skip]
fn definitions() -> Vec<Def> {
    use Better::*;
    use Conv::*;
    use Src::*;
    let mib = (1u64 << 20) as f64;
    const GIB: f64 = (1u64 << 30) as f64;
    let ratio = |a: Src, b: Src| Ratio(Box::new(a), Box::new(b));
    let fork_waitpid = (Crit("start_join", "bare_fork_waitpid", Us), "fork + _exit + waitpid");
    let spin_rtt = (Crit("os_limit", "spin_rtt", Us), "shared-memory ping-pong, both spinning");
    let ipc_channel_rtt = (Crit("ipc_channel", "rtt", Us), "ipc-channel IpcSender<u64>");
    let serial = || Crit("pool_cpu", "serial_4_jobs", Ns);
    vec![
        Def {
            key: "start_join_fork_us", label: "Process start + join, fork", unit: "us", better: Lower,
            mp: Crit("start_join", "fork", Us),
            python: (Py("start_join.py", "fork"), "multiprocessing, fork"),
            peer: (Missing("no Rust peer starts a process by fork alone (procspawn re-executes: see spawn)"), ""),
            limit: fork_waitpid.clone(),
        },
        Def {
            key: "start_join_spawn_us", label: "Process start + join, spawn", unit: "us", better: Lower,
            mp: Crit("start_join", "spawn", Us),
            python: (Py("start_join.py", "spawn"), "multiprocessing, spawn"),
            peer: (Crit("start_join", "procspawn", Us), "procspawn spawn + join"),
            limit: (Crit("start_join", "bare_fork_exec_self", Us), "fork + exec of the same binary"),
        },
        Def {
            key: "start_join_forkserver_us", label: "Process start + join, forkserver", unit: "us", better: Lower,
            mp: Crit("start_join", "forkserver", Us),
            python: (Py("start_join.py", "forkserver"), "multiprocessing, forkserver"),
            peer: (Missing("no Rust peer has a fork server"), ""),
            limit: fork_waitpid,
        },
        Def {
            key: "pipe_rtt_us", label: "Pipe round trip, u64", unit: "us", better: Lower,
            mp: Crit("ipc_rtt", "pipe", Us),
            python: (Py("ipc.py", "pipe_rtt_us"), "Pipe"),
            peer: ipc_channel_rtt.clone(),
            limit: (Crit("ipc_rtt", "socketpair", Us), "socketpair ping-pong"),
        },
        Def {
            key: "queue_rtt_us", label: "Queue round trip, u64", unit: "us", better: Lower,
            mp: Crit("ipc_rtt", "queue", Us),
            python: (Py("ipc.py", "queue_rtt_us"), "Queue"),
            peer: ipc_channel_rtt,
            limit: spin_rtt.clone(),
        },
        Def {
            key: "queue_small_msgs_per_s", label: "Queue 1 -> 1, u64 messages", unit: "msgs/s", better: Higher,
            mp: Crit("queue_small", "1_to_1", PerSec(1.0)),
            python: (Py("ipc.py", "queue_small_msgs_per_s"), "Queue"),
            peer: (Crit("ipc_channel", "small_1_to_1", PerSec(1.0)), "ipc-channel IpcSender<u64>"),
            limit: (Crit("os_limit", "ring_1_to_1", PerSec(1.0)), "shared-memory ring, spinning"),
        },
        Def {
            key: "queue_1mib_gb_per_s", label: "Queue 1 -> 1, 1 MiB items", unit: "GB/s", better: Higher,
            mp: Crit("one_mib", "queue", GbPerSec(mib)),
            python: (Py("ipc.py", "queue_1mib_gb_per_s"), "Queue"),
            peer: (Crit("ipc_channel", "one_mib", GbPerSec(mib)), "ipc-channel IpcBytesSender"),
            limit: (Crit("one_mib", "memcpy", GbPerSec(mib)), "memcpy, one process"),
        },
        Def {
            key: "pipe_1mib_gb_per_s", label: "Pipe, 1 MiB messages", unit: "GB/s", better: Higher,
            mp: Crit("one_mib", "pipe", GbPerSec(mib)),
            python: (Py("ipc.py", "pipe_1mib_gb_per_s"), "Pipe"),
            peer: (Crit("ipc_channel", "one_mib", GbPerSec(mib)), "ipc-channel IpcBytesSender"),
            limit: (Crit("one_mib", "socketpair", GbPerSec(mib)), "socketpair, 1 MiB writes"),
        },
        Def {
            key: "pool_map_tasks_per_s", label: "Pool.map, 200k trivial tasks, default chunksize, 2 workers", unit: "tasks/s", better: Higher,
            mp: Crit("pool_map", "200k_default_chunksize", PerSec(200_000.0)),
            python: (Py("pool.py", "map_200k_tasks_per_s"), "Pool(2).map"),
            peer: (Crit("procspawn_pool", "200k_in_8_chunks", PerSec(200_000.0)), "procspawn Pool(2), 8 chunks by hand"),
            limit: (Missing("no OS bound: a trivial task costs only its transfer (see queue_1mib_gb_per_s)"), ""),
        },
        Def {
            key: "pool_map_logging_tasks_per_s", label: "Pool.map, 200k trivial tasks, cross-process logging on (nothing logged), 2 workers", unit: "tasks/s", better: Higher,
            mp: Crit("pool_map", "200k_logging_on", PerSec(200_000.0)),
            python: (Missing("Python has no cross-process logging to switch on (a QueueHandler is the user's own code)"), ""),
            peer: (Crit("pool_map", "200k_default_chunksize", PerSec(200_000.0)), "the same map, logging off"),
            limit: (Missing("no OS bound (see pool_map_tasks_per_s)"), ""),
        },
        Def {
            key: "pool_map_chunk1_tasks_per_s", label: "Pool.map, 20k trivial tasks, chunksize 1, 2 workers", unit: "tasks/s", better: Higher,
            mp: Crit("pool_map", "20k_chunksize_1", PerSec(20_000.0)),
            python: (Py("pool.py", "map_20k_c1_tasks_per_s"), "Pool(2).map, chunksize=1"),
            peer: (Crit("procspawn_pool", "2k_tasks", PerSec(2_000.0)), "procspawn Pool(2), a spawn per task"),
            limit: (Missing("no OS bound: each task is a message each way (see queue_small_msgs_per_s)"), ""),
        },
        Def {
            key: "pool_map_chunk1_limits_tasks_per_s", label: "Pool.map, 20k trivial tasks, chunksize 1, 2 workers, with a task timeout, retries and a memory cap", unit: "tasks/s", better: Higher,
            mp: Crit("pool_map", "20k_chunksize_1_limits", PerSec(20_000.0)),
            python: (Py("pool.py", "pebble_map_20k_c1_timeout_tasks_per_s"), "pebble ProcessPool(2).map, chunksize=1, timeout"),
            peer: (Crit("pool_map", "20k_chunksize_1", PerSec(20_000.0)), "the same map with no limits"),
            limit: (Missing("no OS bound (see pool_map_chunk1_tasks_per_s)"), ""),
        },
        Def {
            key: "task_timeout_kill_ms", label: "A task past its 20 ms timeout: from its deadline to its error returned and a replacement worker running the next task (1 worker)", unit: "ms", better: Lower,
            mp: Crit("pool_timeout", "kill_and_replace", Ms),
            python: (Py("pool.py", "pebble_timeout_kill_ms"), "pebble ProcessPool(1).schedule(timeout=)"),
            peer: (Missing("no Rust peer kills a pool's task at its timeout"), ""),
            limit: (Crit("start_join", "bare_fork_waitpid", Ms), "fork + _exit + waitpid (a worker's start, at least)"),
        },
        Def {
            key: "apply_async_await_rtt_us", label: "apply_async(f) awaited under tokio (current-thread), round trip", unit: "us", better: Lower,
            mp: Crit("pool_apply", "apply_async_await", Us),
            python: (Py("pool.py", "apply_await_rtt_us"), "asyncio: apply_async callback -> call_soon_threadsafe -> awaited future"),
            peer: (Crit("pool_apply", "apply_async_get", Us), "mp's blocking apply_async(f).get()"),
            limit: spin_rtt.clone(),
        },
        Def {
            key: "apply_async_rtt_us", label: "apply_async(f).get() round trip", unit: "us", better: Lower,
            mp: Crit("pool_apply", "apply_async_get", Us),
            python: (Py("pool.py", "apply_rtt_us"), "Pool(2).apply_async().get()"),
            peer: (Crit("procspawn_pool", "apply_rtt", Us), "procspawn Pool(2) spawn + join"),
            limit: spin_rtt,
        },
        Def {
            key: "parallel_20k_calls_per_s", label: "Parallel(n_jobs=2), 20k calls, workers started per call", unit: "calls/s", better: Higher,
            mp: Crit("parallel", "20k_calls_2_jobs", PerSec(20_000.0)),
            python: (Py("pool.py", "joblib_20k_tasks_per_s"), "joblib Parallel (loky)"),
            peer: (Missing("no Rust peer has a joblib-style Parallel over processes"), ""),
            limit: (Missing("no OS bound (see pool_map_tasks_per_s)"), ""),
        },
        Def {
            key: "value_lock_incr_ops_per_s", label: "Value += 1 under its lock, 2 processes", unit: "ops/s", better: Higher,
            mp: Crit("value_lock", "incr_2proc", PerSec(1.0)),
            python: (Py("shm.py", "value_lock_incr_ops_per_s"), "Value('q') with get_lock()"),
            peer: (Missing("no Rust peer shares a locked value between processes (shared_memory and raw_sync leave it to the user)"), ""),
            limit: (Crit("value_lock", "pthread_2proc", PerSec(1.0)), "process-shared pthread mutex"),
        },
        Def {
            key: "shared_dict_ops_per_s", label: "Dict get + set of one key, from a child process", unit: "ops/s", better: Higher,
            mp: Crit("shared_dict", "get_set_child", PerSec(1.0)),
            python: (Py("shm.py", "shared_dict_ops_per_s"), "Manager().dict()"),
            peer: (Missing("no Rust peer shares a hash map between processes (shared_memory and raw_sync leave it to the user)"), ""),
            limit: (Crit("shared_dict", "get_set_this_process", PerSec(1.0)), "SharedDict, the same in one process"),
        },
        Def {
            key: "manager_dict_ops_per_s", label: "Manager dict get + set of one key, from a child process", unit: "ops/s", better: Higher,
            mp: Crit("manager_dict", "get_set_child", PerSec(1.0)),
            python: (Py("shm.py", "manager_dict_ops_per_s"), "Manager().dict()"),
            peer: (Missing("no Rust peer has a manager (a server process holding objects for proxies)"), ""),
            limit: (Crit("os_limit", "spin_rtt", PerSec(0.5)), "two shared-memory ping-pongs, both spinning"),
        },
        Def {
            key: "pool_map_progress_tasks_per_s", label: "Pool.map, 200k trivial tasks, 2 workers, with a progress bar (hidden: not a terminal)", unit: "tasks/s", better: Higher,
            mp: Crit("pool_map", "200k_progress", PerSec(200_000.0)),
            python: (Missing("tqdm's process_map is not measured"), ""),
            peer: (Crit("pool_map", "200k_default_chunksize", PerSec(200_000.0)), "the same map without the bar"),
            limit: (Crit("pool_map", "200k_default_chunksize", PerSec(200_000.0)), "the same map without the bar"),
        },
        Def {
            key: "manager_dict_tcp_ops_per_s", label: "Manager dict get + set of one key over TCP (a remote manager on loopback), from a child process", unit: "ops/s", better: Higher,
            mp: Crit("manager_dict", "get_set_child_tcp", PerSec(1.0)),
            python: (Py("shm.py", "manager_dict_tcp_ops_per_s"), "SyncManager(address=('127.0.0.1', 0))"),
            peer: (Missing("no Rust peer has a remote manager"), ""),
            limit: (Crit("ipc_rtt", "socketpair", PerSec(0.5)), "two Unix socket round trips (TCP loopback costs more)"),
        },
        Def {
            key: "lock_uncontended_ns", label: "Lock acquire + release, uncontended", unit: "ns", better: Lower,
            mp: Crit("lock_uncontended", "acquire_release", Ns),
            python: (Py("shm.py", "lock_uncontended_ns"), "Lock"),
            peer: (Missing("no maintained Rust peer has a process-shared lock (raw_sync 0.1.5 is dormant)"), ""),
            limit: (Crit("lock_uncontended", "pthread_robust", Ns), "robust pthread mutex"),
        },
        Def {
            key: "shm_fill_gb_per_s", label: "SharedMemory 256 MiB: a child fills, the parent sums", unit: "GB/s", better: Higher,
            mp: Crit("shm_fill", "256mib_child_fills_parent_sums", GbPerSec(256.0 * mib)),
            python: (Py("shm.py", "shm_fill_gb_per_s"), "shared_memory + zlib.adler32"),
            peer: (Missing("the shared_memory crate is not measured yet"), ""),
            limit: (Crit("shm_fill", "256mib_one_process", GbPerSec(256.0 * mib)), "the same work in one process"),
        },
        Def {
            key: "shm_create_unlink_us", label: "SharedMemory create + unlink, 1 MiB", unit: "us", better: Lower,
            mp: Crit("shm_create", "1mib_create_unlink", Us),
            python: (Py("shm.py", "shm_create_unlink_us"), "SharedMemory(create=True)"),
            peer: (Missing("the shared_memory crate is not measured yet"), ""),
            limit: (Crit("shm_create", "1mib_libc", Us), "shm_open + ftruncate + mmap + munmap + unlink"),
        },
        Def {
            key: "cpu_speedup_2_workers", label: "4 x sum of i*i (i < 10^7) on 2 workers: speedup over serial", unit: "x", better: Higher,
            mp: ratio(serial(), Crit("pool_cpu", "pool_2_workers_4_jobs", Ns)),
            python: (ratio(Py("pool.py", "cpu_serial_s"), Py("pool.py", "cpu_pool_s")), "Pool(2).map against a loop"),
            peer: (ratio(serial(), Crit("procspawn_pool", "cpu_4_jobs", Ns)), "procspawn Pool(2)"),
            // Measured, not 2.0: a shared host rarely gives two threads a full 2x.
            limit: (ratio(serial(), Crit("pool_cpu", "threads_2_4_jobs", Ns)), "the same 4 jobs on 2 threads of one process"),
        },
        Def {
            key: "mpi_map_tasks_per_s", label: "MpiPool.map, 200k trivial tasks, default chunksize, 1 master + 2 worker ranks (mpirun -n 3)", unit: "tasks/s", better: Higher,
            mp: Mpi(true, "map_200k_tasks_per_s"),
            python: (Mpi(false, "map_200k_tasks_per_s"), "mpi4py.futures MPIPoolExecutor.map, same chunksize"),
            peer: (Mpi(true, "local_map_200k_tasks_per_s"), "mp's local Pool(2).map, in the same mpirun job"),
            limit: (Missing("no OS bound (see pool_map_tasks_per_s)"), ""),
        },
        Def {
            key: "mpi_cpu_speedup_2_workers", label: "4 x sum of i*i (i < 10^7) on 2 worker ranks: speedup over serial", unit: "x", better: Higher,
            mp: ratio(Mpi(true, "cpu_serial_s"), Mpi(true, "cpu_pool_s")),
            python: (ratio(Mpi(false, "cpu_serial_s"), Mpi(false, "cpu_pool_s")), "mpi4py.futures, 2 worker ranks"),
            peer: (ratio(Mpi(true, "cpu_serial_s"), Mpi(true, "local_cpu_pool_s")), "mp's local Pool(2), in the same mpirun job"),
            limit: (ratio(serial(), Crit("pool_cpu", "threads_2_4_jobs", Ns)), "the same 4 jobs on 2 threads of one process"),
        },
        Def {
            key: "pool_map_shared_1gib_gb_per_s", label: "Pool(2) map summing a shared 1 GiB f64 array in 64 chunks (array bytes per second)", unit: "GB/s", better: Higher,
            mp: Crit("pool_shared_1gib", "pool_2_sum_64_chunks", GbPerSec(GIB)),
            python: (Py("bigdata.py", "joblib_shared_1gib_gb_per_s"), "joblib Parallel(n_jobs=2), memmapped"),
            peer: (Py("bigdata.py", "numpy_sum_1gib_gb_per_s"), "numpy a.sum(), one process"),
            limit: (Crit("pool_shared_1gib", "serial_sum", GbPerSec(GIB)), "the same sum in one process (Rust)"),
        },
        Def {
            key: "pool_map_big_arg_tasks_per_s", label: "Pool(2) map, tasks that each read a shared 64 MiB argument", unit: "tasks/s", better: Higher,
            mp: Crit("pool_big_arg", "shared_64mib_1000_tasks", PerSec(1000.0)),
            python: (Py("bigdata.py", "pool_big_arg_serialised_tasks_per_s"), "Pool(2).map, the argument pickled per task"),
            peer: (Crit("pool_big_arg", "serialised_64mib_20_tasks", PerSec(20.0)), "mp Pool(2), the argument serialised per task"),
            limit: (Crit("pool_map", "20k_chunksize_1", PerSec(20_000.0)), "the same map with a trivial argument"),
        },
    ]
}

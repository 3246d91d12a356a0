//! `cargo xtask bench [--quick]`: mp's criterion benches and, in the same run, the same work in
//! Python's multiprocessing and the bare OS, side by side.
//!
//! Today it covers process start+join, Pipe/Queue, shared memory and locks, and pools; the full
//! report (every metric, JSON, chart) is issue #6.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench(args.iter().any(|a| a == "--quick")),
        _ => {
            eprintln!("usage: cargo xtask bench [--quick]");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The median (in microseconds) of a criterion benchmark, read from its estimates file.
fn criterion_median_us(group: &str, name: &str) -> Option<f64> {
    let path = root()
        .join("target/criterion")
        .join(group)
        .join(name)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let median = &text[text.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end]
        .trim()
        .parse::<f64>()
        .ok()
        .map(|ns| ns / 1000.0)
}

/// Runs one of the Python comparison scripts; it prints `<key> <value>` lines.
fn python_figures(script: &str, quick: bool) -> Result<Vec<(String, f64)>, String> {
    let script = root().join("benches/python").join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("python3 not available ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (m, v) = l.split_once(' ')?;
            Some((m.to_string(), v.parse().ok()?))
        })
        .collect())
}

fn bench(quick: bool) -> ExitCode {
    for bench in ["start_join", "ipc", "shm", "pool"] {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .args(["bench", "--bench", bench, "--"]);
        if quick {
            cmd.args(["--warm-up-time", "0.5", "--measurement-time", "2"]);
        }
        match cmd.status() {
            Ok(s) if s.success() => {}
            _ => {
                eprintln!("cargo bench --bench {bench} failed");
                return ExitCode::FAILURE;
            }
        }
    }
    start_join_table(quick);
    ipc_table(quick);
    shm_table(quick);
    pool_table(quick);
    ExitCode::SUCCESS
}

/// The figures of one Python script, or none (with the reason printed) when it cannot run.
struct PythonFigures(Vec<(String, f64)>);

impl PythonFigures {
    fn run(script: &str, quick: bool) -> PythonFigures {
        PythonFigures(python_figures(script, quick).unwrap_or_else(|reason| {
            println!("Python figures skipped: {reason}");
            Vec::new()
        }))
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

fn start_join_table(quick: bool) {
    let python = PythonFigures::run("start_join.py", quick);
    let py = |m: &str| python.get(m);
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} us"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    };
    let fork = criterion_median_us("start_join", "bare_fork_waitpid");
    let exec = criterion_median_us("start_join", "bare_fork_exec_self");
    println!();
    println!("| start+join (median) | mp | Python 3 | OS baseline | mp / baseline | Python / mp |");
    println!("|---|---|---|---|---|---|");
    for (method, baseline, base_name) in [
        ("fork", fork, "fork+waitpid"),
        ("spawn", exec, "fork+exec self"),
        ("forkserver", fork, "fork+waitpid"),
    ] {
        let mp = criterion_median_us("start_join", method);
        println!(
            "| {method} | {} | {} | {} ({base_name}) | {} | {} |",
            fmt(mp),
            fmt(py(method)),
            fmt(baseline),
            ratio(mp, baseline),
            ratio(py(method), mp)
        );
    }
}

/// (metric, unit, mp, Python, OS baseline, baseline's name)
type Row<'a> = (
    &'a str,
    &'a str,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    &'a str,
);

/// Pipe and Queue figures: mp, Python and the OS baseline of the same run.
fn ipc_table(quick: bool) {
    let python = PythonFigures::run("ipc.py", quick);
    let py = |k: &str| python.get(k);
    let us = |group: &str, name: &str| criterion_median_us(group, name);
    // Per-message medians (us) turned into rates.
    let per_s = |t: Option<f64>| t.map(|us| 1e6 / us);
    let gb_s = |t: Option<f64>| t.map(|us| (1u64 << 20) as f64 / (us * 1e-6) / 1e9);
    let rows: Vec<Row<'_>> = vec![
        (
            "pipe round trip (u64)",
            "us",
            us("ipc_rtt", "pipe"),
            py("pipe_rtt_us"),
            us("ipc_rtt", "socketpair"),
            "socketpair ping-pong",
        ),
        (
            "queue round trip (u64)",
            "us",
            us("ipc_rtt", "queue"),
            py("queue_rtt_us"),
            None,
            "",
        ),
        (
            "queue 1 -> 1 (u64)",
            "msgs/s",
            per_s(us("queue_small", "1_to_1")),
            py("queue_small_msgs_per_s"),
            None,
            "",
        ),
        (
            "queue 2 -> 1 (u64)",
            "msgs/s",
            per_s(us("queue_small", "2_to_1")),
            None,
            None,
            "",
        ),
        (
            "queue 1 -> 2 (u64)",
            "msgs/s",
            per_s(us("queue_small", "1_to_2")),
            None,
            None,
            "",
        ),
        (
            "queue 1 MiB items",
            "GB/s",
            gb_s(us("one_mib", "queue")),
            py("queue_1mib_gb_per_s"),
            gb_s(us("one_mib", "memcpy")),
            "memcpy",
        ),
        (
            "pipe 1 MiB messages",
            "GB/s",
            gb_s(us("one_mib", "pipe")),
            py("pipe_1mib_gb_per_s"),
            gb_s(us("one_mib", "socketpair")),
            "raw socketpair",
        ),
    ];
    print_table("ipc", &rows);
}

/// Prints one table: metric, mp, Python, the OS baseline, and the two ratios.
fn print_table(title: &str, rows: &[Row<'_>]) {
    let show = |v: Option<f64>, unit: &str| match v {
        Some(v) if unit == "msgs/s" || unit == "ops/s" => format!("{:.2}M {unit}", v / 1e6),
        Some(v) => format!("{v:.2} {unit}"),
        None => "-".to_string(),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    };
    println!();
    println!(
        "| {title} (median) | mp | Python 3 | OS baseline | mp / baseline | speedup over Python |"
    );
    println!("|---|---|---|---|---|---|");
    for &(name, unit, mp, python, base, base_name) in rows {
        let base_text = match base {
            Some(_) => format!("{} ({base_name})", show(base, unit)),
            None => "-".to_string(),
        };
        println!(
            "| {name} | {} | {} | {base_text} | {} | {} |",
            show(mp, unit),
            show(python, unit),
            ratio(mp, base),
            // Times: how many times less; rates: how many times more.
            if unit == "us" || unit == "ns" {
                ratio(python, mp)
            } else {
                ratio(mp, python)
            }
        );
    }
}

fn shm_table(quick: bool) {
    let python = PythonFigures::run("shm.py", quick);
    let py = |k: &str| python.get(k);
    let us = |group: &str, name: &str| criterion_median_us(group, name);
    let ns = |t: Option<f64>| t.map(|us| us * 1e3);
    let per_s = |t: Option<f64>| t.map(|us| 1e6 / us);
    let gb_s = |t: Option<f64>| t.map(|us| (256u64 << 20) as f64 / (us * 1e-6) / 1e9);
    let rows: Vec<Row<'_>> = vec![
        (
            "Value += 1 under its lock, 2 processes",
            "ops/s",
            per_s(us("value_lock", "incr_2proc")),
            py("value_lock_incr_ops_per_s"),
            per_s(us("value_lock", "pthread_2proc")),
            "pthread mutex, 2 processes",
        ),
        (
            "Lock acquire + release, uncontended",
            "ns",
            ns(us("lock_uncontended", "acquire_release")),
            py("lock_uncontended_ns"),
            ns(us("lock_uncontended", "pthread_robust")),
            "robust pthread mutex",
        ),
        (
            "SharedMemory 256 MiB: child fills, parent sums",
            "GB/s",
            gb_s(us("shm_fill", "256mib_child_fills_parent_sums")),
            py("shm_fill_gb_per_s"),
            gb_s(us("shm_fill", "256mib_one_process")),
            "same work, one process",
        ),
        (
            "SharedMemory create + unlink, 1 MiB",
            "us",
            us("shm_create", "1mib_create_unlink"),
            py("shm_create_unlink_us"),
            us("shm_create", "1mib_libc"),
            "shm_open+ftruncate+mmap+munmap+unlink",
        ),
    ];
    print_table("shm", &rows);
}

fn pool_table(quick: bool) {
    let python = PythonFigures::run("pool.py", quick);
    let py = |k: &str| python.get(k);
    let us = |group: &str, name: &str| criterion_median_us(group, name);
    let tasks_per_s = |t: Option<f64>, n: f64| t.map(|us| n / (us * 1e-6));
    let rows: Vec<Row<'_>> = vec![
        (
            "map, 200k trivial tasks, default chunksize, 2 workers",
            "ops/s",
            tasks_per_s(us("pool_map", "200k_default_chunksize"), 200_000.0),
            py("map_200k_tasks_per_s"),
            None,
            "",
        ),
        (
            "map, 20k trivial tasks, chunksize 1, 2 workers",
            "ops/s",
            tasks_per_s(us("pool_map", "20k_chunksize_1"), 20_000.0),
            py("map_20k_c1_tasks_per_s"),
            tasks_per_s(us("procspawn_pool", "2k_tasks"), 2_000.0),
            "procspawn pool, 2k tasks",
        ),
        (
            "apply_async(...).get() round trip",
            "us",
            us("pool_apply", "apply_async_get"),
            py("apply_rtt_us"),
            us("procspawn_pool", "apply_rtt"),
            "procspawn pool spawn+join",
        ),
        (
            "4 x sum of i*i (i < 10^7), 2 workers",
            "us",
            us("pool_cpu", "pool_2_workers_4_jobs"),
            py("cpu_pool_s").map(|s| s * 1e6),
            us("pool_cpu", "serial_4_jobs"),
            "the same, serially",
        ),
    ];
    print_table("pool", &rows);
}

//! `cargo xtask bench [--quick]`: mp's criterion benches and, in the same run, the same work in
//! Python's multiprocessing and the bare OS, side by side.
//!
//! Today it covers process start+join (issue #2); the full report (every metric, JSON, chart)
//! is issue #6.

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

fn python_start_join(quick: bool) -> Result<Vec<(String, f64)>, String> {
    let script = root().join("benches/python/start_join.py");
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
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root())
        .args(["bench", "--bench", "start_join", "--"]);
    if quick {
        cmd.args(["--warm-up-time", "0.5", "--measurement-time", "2"]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("cargo bench failed");
            return ExitCode::FAILURE;
        }
    }
    let python = python_start_join(quick);
    if let Err(reason) = &python {
        println!("Python figures skipped: {reason}");
    }
    let python = python.unwrap_or_default();
    let py = |m: &str| python.iter().find(|(k, _)| k == m).map(|(_, v)| *v);
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
    ExitCode::SUCCESS
}

//! `cargo xtask bench [--quick] [--no-bench]`: mp's criterion benches and, in the same run, the
//! same work in Python's multiprocessing and joblib, in the Rust peers (procspawn, a raw
//! ipc-channel) and in bare OS baselines. Prints one table and writes
//! `target/bench-report/{report.md, report.json, chart.png}`, and the table at the end of
//! `docs/benchmarks.md`.
//!
//! `cargo xtask stress [--runs N] [--hogs N]`: the test suite N times beside CPU hogs (see
//! `stress`).
//!
//! `cargo xtask alone`: each crate's front-page example built and run from a crate that
//! depends on that crate alone (see `alone`).
//!
//! `cargo xtask docs [--fix]`: the tables of docs/DESIGN.md (unsafe counts, crate order,
//! module map) and mp-sys's libc list checked against the code, `--fix` regenerating them;
//! and the READMEs' mechanical invariants checked (see `docs`, `invariants`).
//!
//! `--quick` shortens every criterion group (`MP_BENCH_QUICK`) and every Python script
//! (`--quick`); `--no-bench` reuses the criterion samples of the last run (to redo the report).

mod alone;
// The chart needs plotters (about 25 crates); behind a feature so that `cargo test --workspace`
// does not build them. The `cargo xtask` alias turns it on.
#[cfg(feature = "chart")]
mod chart;
mod docs;
mod figures;
mod invariants;
mod metrics;
mod mpi;
mod python;
mod report;
mod stress;
mod tokens;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::metrics::Inputs;
use crate::python::{Python, run_capture};

const BENCHES: [&str; 5] = ["start_join", "ipc", "shm", "pool", "bigdata"];
const SCRIPTS: [&str; 5] = ["start_join.py", "ipc.py", "shm.py", "pool.py", "bigdata.py"];

const USAGE: &str = "usage: cargo xtask bench [--quick] [--no-bench] | cargo xtask stress [--runs N] [--hogs N] | cargo xtask alone | cargo xtask docs [--fix]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    // An unknown flag, or a number that does not parse, is an error, not a default.
    let checked = match args.first().map(String::as_str) {
        Some("bench") => check_args(&args[1..], &["--quick", "--no-bench"], &[]),
        Some("stress") => check_args(&args[1..], &[], &["--runs", "--hogs"]),
        Some("hog" | "alone") => check_args(&args[1..], &[], &[]),
        Some("docs") => check_args(&args[1..], &["--fix"], &[]),
        _ => Err("no such command".to_string()),
    };
    if let Err(e) = checked {
        eprintln!("xtask: {e}\n{USAGE}");
        return ExitCode::FAILURE;
    }
    match args.first().map(String::as_str) {
        Some("bench") => bench(flag("--quick"), flag("--no-bench")),
        Some("stress") => {
            let number = |f: &str, default: usize| {
                args.iter()
                    .position(|a| a == f)
                    .and_then(|i| args.get(i + 1)?.parse().ok())
                    .unwrap_or(default)
            };
            stress::stress(number("--runs", 3), number("--hogs", 2))
        }
        Some("hog") => stress::hog(),
        Some("alone") => alone::alone(),
        Some("docs") => docs::docs(flag("--fix")),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}

/// Checks a command's arguments: each is one of `flags`, or one of `numbered` followed by a
/// number.
fn check_args(args: &[String], flags: &[&str], numbered: &[&str]) -> Result<(), String> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if flags.contains(&arg.as_str()) {
            continue;
        }
        if numbered.contains(&arg.as_str()) {
            match rest.next().map(|n| n.parse::<usize>()) {
                Some(Ok(_)) => continue,
                _ => return Err(format!("{arg} takes a number")),
            }
        }
        return Err(format!("unknown argument {arg:?}"));
    }
    Ok(())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The line of docs/benchmarks.md after which `bench` writes its run's table.
const BENCH_MARKER: &str = "<!-- cargo xtask bench: generated below this line -->";

fn bench(quick: bool, no_bench: bool) -> ExitCode {
    let started = Instant::now();
    let root = root();
    if !no_bench {
        // Only this run's samples may reach the report.
        let _ = std::fs::remove_dir_all(root.join("target/criterion"));
        for bench in BENCHES {
            println!("== cargo bench -p mp-bench --bench {bench}");
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(&root)
                .args(["bench", "--package", "mp-bench", "--bench", bench]);
            if quick {
                cmd.env("MP_BENCH_QUICK", "1");
            }
            if !cmd.status().is_ok_and(|s| s.success()) {
                eprintln!("cargo bench -p mp-bench --bench {bench} failed");
                return ExitCode::FAILURE;
            }
        }
    }
    let python = Python::set_up(&root);
    let figures: HashMap<&'static str, _> = SCRIPTS
        .into_iter()
        .map(|script| (script, python.run(&root, script, quick)))
        .collect();
    let mpi = mpi::run(&root, quick);
    let inputs = Inputs {
        root: &root,
        mpi: &mpi,
        python: &figures,
        python_missing: python
            .missing()
            .unwrap_or("the script failed (see the run's output)"),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let metrics = inputs.metrics();
    let baselines = inputs.baselines();
    let run = report::Run {
        date: run_capture(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
            .map(|d| d.trim().to_string())
            .unwrap_or_default(),
        mode: if quick { "quick" } else { "full" },
        machine: machine(inputs.cpus, &python.description),
    };

    println!("\n{}", report::table(&metrics));
    let dir = root.join("target/bench-report");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| {
            std::fs::write(
                dir.join("report.md"),
                report::markdown(&run, &metrics, &baselines),
            )
        })
        .and_then(|()| {
            let json = report::json(&run, &metrics, &baselines);
            std::fs::write(dir.join("report.json"), format!("{json:#}\n"))
        });
    if let Err(e) = written {
        eprintln!("could not write the report: {e}");
        return ExitCode::FAILURE;
    }
    // The README links this page; its table is this run's, never copied by hand.
    let page = root.join("docs/benchmarks.md");
    let written = std::fs::read_to_string(&page).and_then(|text| {
        let kept = text
            .find(BENCH_MARKER)
            .map_or(text.as_str(), |at| &text[..at + BENCH_MARKER.len()]);
        let table = report::markdown(&run, &metrics, &baselines);
        // The page has its own title: the report's goes.
        let table = table.trim_start();
        let table = table.strip_prefix("# mp benchmark report").unwrap_or(table);
        std::fs::write(&page, format!("{kept}\n\n{}", table.trim_start()))
    });
    if let Err(e) = written {
        eprintln!("could not write docs/benchmarks.md: {e}");
        return ExitCode::FAILURE;
    }
    let title = format!(
        "mp beside Python, its Rust peers and the OS ({} run, {})",
        run.mode, run.date
    );
    #[cfg(feature = "chart")]
    if let Err(e) = chart::draw(&dir.join("chart.png"), &metrics, &title) {
        eprintln!("could not draw the chart: {e}");
        return ExitCode::FAILURE;
    }
    #[cfg(not(feature = "chart"))]
    println!("no chart.png for \"{title}\": xtask was built without its `chart` feature");
    println!(
        "report: {}/report.md, report.json, chart.png ({:.0} s in all)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// What the report says about the machine.
fn machine(cpus: usize, python: &str) -> Vec<(&'static str, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let memory = field(&read("/proc/meminfo"), "MemTotal")
        .trim_end_matches(" kB")
        .parse::<f64>()
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb / (1u64 << 20) as f64)
        });
    vec![
        ("cpu", field(&read("/proc/cpuinfo"), "model name")),
        ("cpus", cpus.to_string()),
        ("memory", memory),
        (
            "kernel",
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        (
            "rustc",
            run_capture(Command::new("rustc").arg("--version"))
                .map_or("unknown".into(), |v| v.trim().to_string()),
        ),
        ("python", python.to_string()),
    ]
}

#[cfg(test)]
mod args_test {
    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_flags_and_bad_numbers_are_errors() {
        let check = |a: &[&str]| super::check_args(&args(a), &["--quick"], &["--runs"]);
        assert!(check(&["--quick", "--runs", "2"]).is_ok());
        assert!(check(&["--quik"]).unwrap_err().contains("--quik"));
        assert!(check(&["--runs"]).unwrap_err().contains("takes a number"));
        assert!(check(&["--runs", "two"]).is_err());
    }
}

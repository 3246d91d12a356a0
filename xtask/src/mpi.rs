//! The MPI rows (issue #19): mp-mpi's `bench_mpi` example and Python's mpi4py.futures, each
//! under `mpirun --oversubscribe -n 3` (1 master + 2 worker ranks), when `mpirun` is present.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::figures::{Figure, parse_lines};
use crate::python::run_capture;

/// Figures by key, or why there are none.
pub(crate) type Figures = Result<HashMap<String, Figure>, String>;

/// What the MPI runs measured: mp-mpi's and mpi4py.futures' figures.
pub(crate) struct MpiFigures {
    pub(crate) rust: Figures,
    pub(crate) python: Figures,
}

fn mpirun(program: &str) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-n", "3", program])
        // Open MPI refuses root without these.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd
}

/// Builds and runs both sides; each missing side says why.
pub(crate) fn run(root: &Path, quick: bool) -> MpiFigures {
    if run_capture(Command::new("mpirun").arg("--version")).is_err() {
        let reason = "skipped: no mpirun (apt-get install libopenmpi-dev openmpi-bin \
                      libclang-dev pkg-config)"
            .to_string();
        println!("MPI figures {reason}");
        return MpiFigures {
            rust: Err(reason.clone()),
            python: Err(reason),
        };
    }
    println!("== mp-mpi bench_mpi under mpirun -n 3");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rust = run_capture(Command::new(cargo).current_dir(root).args([
        "build",
        "--release",
        "-p",
        "mp-mpi",
        "--features",
        "mpi",
        "--example",
        "bench_mpi",
    ]))
    .and_then(|_| {
        let exe = root.join("target/release/examples/bench_mpi");
        let mut cmd = mpirun(exe.to_str().unwrap_or_default());
        if quick {
            cmd.arg("--quick");
        }
        run_capture(&mut cmd)
    })
    .map(|out| {
        print!("{out}");
        parse_lines(&out)
    });

    println!("== python -m mpi4py.futures mpi.py under mpirun -n 3");
    // Debian's python3-mpi4py is in the system interpreter, not in a pyenv or venv one.
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| run_capture(Command::new(p).args(["-c", "import mpi4py.futures"])).is_ok());
    let python = match python {
        None => Err("skipped: no python3 with mpi4py (apt-get install python3-mpi4py)".to_string()),
        Some(python) => {
            let dir = root.join("benches/python");
            let mut cmd = mpirun(python);
            cmd.args(["-m", "mpi4py.futures"])
                .arg(dir.join("mpi.py"))
                .env("PYTHONPATH", &dir);
            if quick {
                cmd.arg("--quick");
            }
            run_capture(&mut cmd).map(|out| {
                print!("{out}");
                parse_lines(&out)
            })
        }
    };
    if let Err(e) = &python {
        println!("mpi4py figures {e}");
    }
    MpiFigures { rust, python }
}

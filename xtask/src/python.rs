//! The Python side: an interpreter with joblib, set up by the project itself (a venv under
//! `target/` and the pinned `benches/python/requirements.txt`), and the comparison scripts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::figures::{Figure, parse_lines};

/// The interpreter the scripts run under, or why there is none.
pub(crate) struct Python {
    interpreter: Result<PathBuf, String>,
    /// What the report says about it ("Python 3.11.7, joblib 1.5.2").
    pub(crate) description: String,
}

impl Python {
    /// `python3` from PATH, in a venv under `target/bench-venv` with the requirements
    /// installed; the bare `python3` (without joblib) if the venv cannot be made.
    pub(crate) fn set_up(root: &Path) -> Python {
        let version = match run_capture(Command::new("python3").arg("--version")) {
            Ok(v) => v.trim().to_string(),
            Err(e) => {
                let reason = format!("python3 not found ({e})");
                println!("Python figures skipped: {reason}");
                return Python {
                    interpreter: Err(reason),
                    description: "not available".into(),
                };
            }
        };
        let interpreter = match venv(root) {
            Ok(python) => python,
            Err(e) => {
                println!("joblib figures skipped: could not set up the venv ({e})");
                PathBuf::from("python3")
            }
        };
        let joblib = run_capture(
            Command::new(&interpreter).args(["-c", "import joblib; print(joblib.__version__)"]),
        )
        .map(|v| format!("joblib {}", v.trim()))
        .unwrap_or_else(|_| "no joblib".into());
        Python {
            interpreter: Ok(interpreter),
            description: format!("{version}, {joblib}"),
        }
    }

    /// Why no script can run, if none can.
    pub(crate) fn missing(&self) -> Option<&str> {
        self.interpreter.as_ref().err().map(String::as_str)
    }

    /// Runs `benches/python/<script>` and returns its figures; none (with the reason printed)
    /// if it cannot run.
    pub(crate) fn run(&self, root: &Path, script: &str, quick: bool) -> HashMap<String, Figure> {
        let Ok(interpreter) = &self.interpreter else {
            return HashMap::new();
        };
        println!("== python {script}");
        let mut cmd = Command::new(interpreter);
        cmd.arg(root.join("benches/python").join(script));
        if quick {
            cmd.arg("--quick");
        }
        match run_capture(&mut cmd) {
            Ok(out) => {
                print!("{out}");
                parse_lines(&out)
            }
            Err(e) => {
                println!("Python figures of {script} skipped: {e}");
                HashMap::new()
            }
        }
    }
}

/// Makes (once) the venv and installs the requirements into it; returns its interpreter.
fn venv(root: &Path) -> Result<PathBuf, String> {
    let dir = root.join("target/bench-venv");
    let python = dir.join("bin/python");
    let requirements = root.join("benches/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| e.to_string())?;
    let stamp = dir.join("mp-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    println!(
        "== setting up {} (pip install -r {})",
        dir.display(),
        requirements.display()
    );
    run_capture(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    run_capture(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// Runs `cmd` and returns its stdout, or an error with its stderr.
pub(crate) fn run_capture(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{} ({})",
            stderr.lines().last().unwrap_or("no output"),
            out.status
        ))
    }
}

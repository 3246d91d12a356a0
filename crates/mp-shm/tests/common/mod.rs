//! Helpers shared by the integration tests.

use std::process::{Command, Stdio};

/// python3 with `multiprocessing.shared_memory`, or why not.
pub(crate) fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import multiprocessing.shared_memory"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: python3 with multiprocessing.shared_memory is not on this machine");
    }
    ok.then_some("python3")
}

/// Runs `py -c script arg`, checks that it succeeded (else fails with its stderr), and returns
/// its stdout, trimmed.
pub(crate) fn run_python(py: &str, script: &str, arg: &str) -> String {
    let out = Command::new(py).args(["-c", script, arg]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

//! Helpers shared by the benches that drive child processes.

use mp::Process;

/// Forkserver children hold only what they are passed: under fork a child would also inherit
/// the parent's end of every socket, and the end-of-file that stops it would never come.
pub(crate) fn ctx() -> mp::Context {
    mp::get_context("forkserver").expect("forkserver context")
}

/// Starts `p` and hands it back.
pub(crate) fn start<R: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    mut p: Process<R>,
) -> Process<R> {
    p.start().expect("start");
    p
}
